import { servingScheme } from '@tracemark/lab';
import { loadTokenizer } from '@tracemark/verifier';
import { createScheme, type Scheme, type SchemeSpec, SupportBiasScheme } from '@tracemark/watermark';
import { beforeAll, describe, expect, it } from 'vitest';
import { readConfig } from '../src/config';
import { ChoiceRun, type ServedModel, schemeForAccount, type TokenLogprob } from '../src/generate';
import { TokenBytes } from '../src/text';
import { testKey, testModels } from './helpers';

/**
 * The server steps over the model's support only (every other logit is −∞); the full-row path it replaced is kept
 * behind `fullRows`. For the same request and seed both must give the same tokens and log-probabilities, bit for bit.
 */
describe('ChoiceRun over the support', () => {
  let bytes: TokenBytes;
  let teacher: ServedModel['ngram'];
  const { servedSpec } = readConfig({ TRACEMARK_PROFILE: 'test' });

  beforeAll(async () => {
    teacher = (await testModels()).teacher;
    bytes = new TokenBytes(await loadTokenizer('o200k_base'));
  });

  const served = (scheme: Scheme, watermarked = true): ServedModel => ({
    id: 'tracemark-teacher',
    role: 'teacher',
    description: '',
    ngram: teacher,
    scheme,
    watermarked,
    created: 0,
  });

  function run(
    model: ServedModel,
    fullRows: boolean,
    settings: { temperature: number; topP: number; account?: string; logprobs?: number | null },
    prompt: string,
    seed: string,
  ): { tokens: number[]; logprobs: TokenLogprob[]; watermarkedSteps: number } {
    const m = { ...model, fullRows };
    const size = fullRows ? teacher.vocabSize : teacher.support.length;
    const choice = new ChoiceRun(
      {
        model: m,
        prompt: teacher.encode(prompt),
        maxTokens: 48,
        temperature: settings.temperature,
        topP: settings.topP,
        stop: [],
        seed,
        logprobs: settings.logprobs === undefined ? 3 : settings.logprobs,
        bytes,
        scheme: schemeForAccount(m, settings.account),
      },
      new Float32Array(size),
    );
    while (!choice.done) choice.step();
    const { logprobs } = choice.take();
    return {
      tokens: choice.session.generated,
      logprobs,
      watermarkedSteps: choice.session.watermarkedSteps,
    };
  }

  const prompts = ['The Queen said', 'Call me'];

  function expectSame(model: ServedModel, settings: Parameters<typeof run>[2]): void {
    for (const [i, prompt] of prompts.entries()) {
      const full = run(model, true, settings, prompt, `s${i}`);
      const compact = run(model, false, settings, prompt, `s${i}`);
      expect(compact.tokens).toEqual(full.tokens);
      expect(compact.logprobs).toEqual(full.logprobs);
      expect(compact.watermarkedSteps).toBe(full.watermarkedSteps);
      expect(compact.tokens.length).toBe(48);
      if (model.watermarked && settings.temperature > 0) expect(full.watermarkedSteps).toBeGreaterThan(0);
    }
  }

  it('gives the served teacher the same tokens and log-probabilities, with and without an account', () => {
    const scheme = servingScheme(servedSpec, testKey(), teacher);
    expect(scheme).toBeInstanceOf(SupportBiasScheme);
    expect((servedSpec as { accountDelta?: number }).accountDelta).toBeGreaterThan(0);
    const model = served(scheme);
    for (const temperature of [1, 0.7, 0])
      for (const topP of [1, 0.9])
        for (const account of [undefined, 'acct-42']) expectSame(model, { temperature, topP, account });
  });

  it('gives the same tokens for the plain teacher and for a scheme without the support cache', () => {
    const plain = createScheme(servedSpec, testKey());
    expectSame(served(plain, false), { temperature: 1, topP: 1 });
    // The scheme's own candidate path (no SupportBiasScheme): the bias goes through ids.
    expectSame(served(plain), { temperature: 0.7, topP: 0.9, account: 'acct-7' });
    expectSame(served(plain), { temperature: 1, topP: 1, logprobs: null });
  });

  it('gives the same tokens for chooser schemes (Gumbel-max, GumbelSoft) and self-hashing KGW', () => {
    const specs: SchemeSpec[] = [
      { scheme: 'gumbel', vocabSize: 200_019, contextWidth: 1 } as SchemeSpec,
      { scheme: 'gumbel', vocabSize: 200_019, contextWidth: 1, softness: 0.5 } as SchemeSpec,
      { scheme: 'kgw', vocabSize: 200_019, hashing: 'self', contextWidth: 2 } as SchemeSpec,
    ];
    for (const spec of specs) {
      const model = served(createScheme(spec, testKey()));
      expectSame(model, { temperature: 1, topP: 1 });
      expectSame(model, { temperature: 0.7, topP: 0.9 });
    }
  });

  it('writes the same logits over the support as over the full row', () => {
    const support = teacher.support;
    const row = new Float32Array(teacher.vocabSize);
    const compact = new Float32Array(support.length + 5);
    for (const prompt of ['', 'The Queen said to the', 'zzq unseen words xq']) {
      const context = teacher.encode(prompt);
      teacher.logits(context, row);
      const out = teacher.supportLogits(context, compact);
      expect(out.length).toBe(support.length);
      let finite = 0;
      for (const x of row) if (x !== Number.NEGATIVE_INFINITY) finite++;
      expect(finite).toBe(support.length);
      let differ = 0;
      for (let j = 0; j < support.length; j++) if (!Object.is(out[j], row[support[j]])) differ++;
      expect(differ).toBe(0);
      expect(teacher.supportIndex(support[7])).toBe(7);
    }
  });
});
