import type { SuspectSample, Tokenizer } from '@tracemark/verifier';
import type { StoredResponse } from './store';

/**
 * How stored responses become token samples for the radioactivity test, the same in `probe --until-alpha`
 * and in `verify`: the prompt is the system message and the prompt text joined by a blank line (what a
 * chat-served model continues), the output the completion text; both through the same tokenizer.
 */
export function promptTextOf(response: Pick<StoredResponse, 'prompt' | 'system'>): string {
  return response.system === null ? response.prompt : `${response.system}\n\n${response.prompt}`;
}

export function encodeIds(tokenizer: Tokenizer, text: string): ArrayLike<number> {
  if (text === '') return [];
  return tokenizer.encodeIds?.(text) ?? tokenizer.encode(text).ids;
}

export function sampleOf(
  tokenizer: Tokenizer,
  response: Pick<StoredResponse, 'prompt' | 'system' | 'output'>,
): SuspectSample {
  return {
    prompt: encodeIds(tokenizer, promptTextOf(response)),
    output: encodeIds(tokenizer, response.output),
  };
}
