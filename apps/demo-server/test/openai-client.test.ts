import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openAiClient, startApp, type TestApp } from './helpers';

// The official client against the running server, as any OpenAI-compatible tool would use it.
let t: TestApp;
let client: OpenAI;

beforeAll(async () => {
  t = await startApp({ PORT: '0' });
  client = await openAiClient(t);
});
afterAll(async () => {
  await t.cleanup();
});

describe('the openai client (v6)', () => {
  it('lists the models', async () => {
    const ids: string[] = [];
    for await (const model of client.models.list()) ids.push(model.id);
    expect(ids).toContain('tracemark-teacher');
    expect(ids).toContain('tracemark-student-distilled');
  });

  it('creates chat completions, streamed and not, with the same text for the same seed', async () => {
    const request = {
      model: 'tracemark-teacher',
      messages: [{ role: 'user' as const, content: 'Alice was beginning to get very' }],
      max_completion_tokens: 20,
      seed: 5,
    };
    const whole = await client.chat.completions.create(request);
    expect(whole.choices[0].message.content?.length).toBeGreaterThan(0);
    expect(whole.usage?.completion_tokens).toBe(20);

    const stream = await client.chat.completions.create({
      ...request,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    let usage: OpenAI.CompletionUsage | null | undefined;
    let finish: string | null = null;
    for await (const chunk of stream) {
      expect(chunk.object).toBe('chat.completion.chunk');
      for (const choice of chunk.choices) {
        text += choice.delta.content ?? '';
        finish = choice.finish_reason ?? finish;
      }
      if (chunk.usage) usage = chunk.usage;
    }
    expect(text).toBe(whole.choices[0].message.content);
    expect(finish).toBe('length');
    expect(usage?.total_tokens).toBe(whole.usage?.total_tokens);
  });

  it('creates completions, streamed and not, with logprobs', async () => {
    const request = {
      model: 'tracemark-student-clean',
      prompt: 'The Rabbit',
      max_tokens: 10,
      seed: 9,
      logprobs: 2,
    };
    const whole = await client.completions.create(request);
    expect(whole.choices[0].logprobs?.tokens?.length).toBe(10);
    const stream = await client.completions.create({ ...request, stream: true });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.text ?? '';
    expect(text).toBe(whole.choices[0].text);
  });

  it('raises the client errors the OpenAI API would', async () => {
    await expect(
      client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] }),
    ).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    const error = await client.completions
      .create({ model: 'tracemark-teacher', prompt: 'x', max_tokens: 1_000_000 })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.BadRequestError);
    expect((error as InstanceType<typeof OpenAI.BadRequestError>).param).toBe('max_tokens');
  });
});
