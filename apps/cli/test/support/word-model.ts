import type { Tokenizer } from '@tracemark/verifier';
import { createRng, GenerationSession, type Scheme } from '@tracemark/watermark';

// A synthetic model over real o200k " word" tokens, for the CLI tests and the scan benchmark (no test runner needed).

/**
 * " word" tokens of the tokenizer (among its first 40,000 ids) that re-tokenize to themselves, so that text
 * decoded from them tokenizes back to the same ids: a synthetic model over them makes text whose detection
 * from the text alone matches detection on the ids.
 */
export function wordModel(tokenizer: Tokenizer): number[] {
  const words: number[] = [];
  for (let id = 0; id < 40_000; id++) {
    const piece = tokenizer.decode([id]);
    if (!/^ [a-z]{3,9}$/.test(piece)) continue;
    const again = tokenizer.encode(piece).ids;
    if (again.length === 1 && again[0] === id) words.push(id);
  }
  return words;
}

/**
 * Token ids from a synthetic model that proposes 64 of `words` per step (the candidates and logits depend on
 * the previous token only), sampled through `scheme`'s GenerationSession: text a scan or a report can test.
 */
export function wordModelIds(
  scheme: Scheme,
  words: number[],
  seed: string,
  length: number,
  watermark = true,
): number[] {
  const session = new GenerationSession(scheme, { prompt: [words[0]], seed, watermark });
  const ids = new Int32Array(64);
  const logits = new Float32Array(64);
  for (let i = 0; i < length; i++) {
    const rng = createRng(`model:${session.tokens[session.tokens.length - 1]}`);
    for (let k = 0; k < 64; k++) {
      ids[k] = words[Math.floor(rng() * words.length)];
      logits[k] = 4 * (rng() - 0.5);
    }
    session.nextFromCandidates(ids, logits);
  }
  return session.generated;
}
