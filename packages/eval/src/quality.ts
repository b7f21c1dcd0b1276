import { fail } from './errors';

/** A language model scoring one token after a context (the n-gram model of @tracemark/ngram has this shape). */
export interface TokenModel {
  vocabSize: number;
  /** Natural log of p(token | context); −Infinity for unseen tokens. */
  logProb(context: ArrayLike<number>, token: number): number;
}

export interface PerplexityResult {
  perplexity: number;
  /** Tokens scored. */
  tokens: number;
  /** Tokens the model gave probability 0 (scored at the floor ε/V). */
  floored: number;
}

/**
 * Perplexity of texts, each token scored after its prompt and preceding tokens. Every probability is mixed
 * with the uniform, log((1−ε)p + ε/V) with ε = 1e-4 by default, so a −∞ log-probability is floored at
 * log(ε/V) instead of making the perplexity infinite (and the scores still sum to 1). NaN with no tokens.
 */
export function perplexity(
  model: TokenModel,
  texts: readonly { prompt: readonly number[]; tokens: readonly number[] }[],
  epsilon = 1e-4,
): PerplexityResult {
  if (!(epsilon > 0 && epsilon < 1)) fail('E_USAGE', `epsilon must be in (0, 1); got ${String(epsilon)}`);
  const V = model.vocabSize;
  if (!(Number.isInteger(V) && V > 0)) fail('E_USAGE', `vocabSize must be a positive integer; got ${V}`);
  const floor = epsilon / V;
  let loss = 0;
  let tokens = 0;
  let floored = 0;
  for (const { prompt, tokens: text } of texts) {
    // One buffer per text; each token sees a prefix view of it, with no copying.
    const sequence = new Float64Array(prompt.length + text.length);
    sequence.set(prompt);
    sequence.set(text, prompt.length);
    for (let i = 0; i < text.length; i++) {
      const lp = model.logProb(sequence.subarray(0, prompt.length + i), text[i]);
      if (lp === Number.NEGATIVE_INFINITY) floored++;
      loss -= Math.log((1 - epsilon) * Math.exp(lp) + floor);
      tokens++;
    }
  }
  return { perplexity: tokens === 0 ? Number.NaN : Math.exp(loss / tokens), tokens, floored };
}

/** A numeric key for a pair of token ids below 2^24 (the largest vocabulary), a string key otherwise. */
function pairKey(a: number, b: number): number | string {
  return a >= 0 && b >= 0 && a < 0x1000000 && b < 0x1000000 ? a * 0x1000000 + b : `${a},${b}`;
}

/** Distinct bigrams over all bigrams, bigrams taken within each text, counted over the set (Li et al. 2016). */
export function distinct2(texts: readonly (readonly number[])[]): number {
  const distinct = new Set<number | string>();
  let total = 0;
  for (const text of texts) {
    for (let i = 1; i < text.length; i++) {
      distinct.add(pairKey(text[i - 1], text[i]));
      total++;
    }
  }
  return total === 0 ? 0 : distinct.size / total;
}

// Rolling hash mod a prime below 2^26 with a base below 2^20: every product stays under 2^53, so plain
// numbers are exact. Collisions only cost an exact comparison.
const HASH_MOD = 67_108_859;
const HASH_BASE = 1_000_003;

function windowEquals(
  a: readonly number[],
  aStart: number,
  b: readonly number[],
  bStart: number,
  width: number,
) {
  for (let k = 0; k < width; k++) if (a[aStart + k] !== b[bStart + k]) return false;
  return true;
}

/**
 * Share of texts whose last `width` tokens (default 20) occur, as a contiguous run anywhere, in another text
 * of the set; texts shorter than width are not counted. One rolling-hash pass over all windows, each hash
 * hit checked exactly: O(total tokens) plus O(width) per hit.
 */
export function crossRequestRepeat(texts: readonly (readonly number[])[], width = 20): number {
  if (!(Number.isInteger(width) && width > 0)) {
    fail('E_USAGE', `width must be a positive integer; got ${String(width)}`);
  }
  // Endings grouped by exact content: a group of two or more texts repeats by itself.
  interface Group {
    text: number; // a text holding this ending
    owners: number[];
    done: boolean;
  }
  const byHash = new Map<number, Group[]>();
  const repeated = new Uint8Array(texts.length);
  let counted = 0;
  for (let t = 0; t < texts.length; t++) {
    const text = texts[t];
    if (text.length < width) continue;
    counted++;
    const start = text.length - width;
    const h = hashWindow(text, start, width);
    let groups = byHash.get(h);
    if (groups === undefined) {
      groups = [];
      byHash.set(h, groups);
    }
    const group = groups.find((g) =>
      windowEquals(texts[g.text], texts[g.text].length - width, text, start, width),
    );
    if (group === undefined) groups.push({ text: t, owners: [t], done: false });
    else group.owners.push(t);
  }
  if (counted === 0) return 0;
  for (const groups of byHash.values()) {
    for (const group of groups) {
      if (group.owners.length < 2) continue;
      for (const owner of group.owners) repeated[owner] = 1;
      group.done = true;
    }
  }

  // B^(width−1) mod P, to drop the leading token of a window.
  let lead = 1;
  for (let k = 1; k < width; k++) lead = (lead * HASH_BASE) % HASH_MOD;
  for (let t = 0; t < texts.length; t++) {
    const text = texts[t];
    if (text.length < width) continue;
    let h = hashWindow(text, 0, width);
    for (let start = 0; ; start++) {
      const groups = byHash.get(h);
      if (groups !== undefined) {
        for (const group of groups) {
          if (group.done || group.owners[0] === t) continue; // a single owner: only another text counts
          const owner = texts[group.text];
          if (windowEquals(owner, owner.length - width, text, start, width)) {
            repeated[group.owners[0]] = 1;
            group.done = true;
          }
        }
      }
      const next = start + width;
      if (next >= text.length) break;
      h = (h - ((reduce(text[start]) * lead) % HASH_MOD) + HASH_MOD) % HASH_MOD;
      h = (h * HASH_BASE + reduce(text[next])) % HASH_MOD;
    }
  }
  let count = 0;
  for (const r of repeated) count += r;
  return count / counted;
}

function reduce(token: number): number {
  return ((token % HASH_MOD) + HASH_MOD) % HASH_MOD;
}

function hashWindow(text: readonly number[], start: number, width: number): number {
  let h = 0;
  for (let k = 0; k < width; k++) h = (h * HASH_BASE + reduce(text[start + k])) % HASH_MOD;
  return h;
}

/** Share of samples identical to another sample of the same prompt: groups[i] are the n samples of prompt i. */
export function identicalSamples(groups: readonly (readonly (readonly number[])[])[]): number {
  let total = 0;
  let identical = 0;
  for (const samples of groups) {
    const counts = new Map<string, number>();
    for (const sample of samples) {
      const key = sample.join(',');
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    for (const n of counts.values()) if (n > 1) identical += n;
    total += samples.length;
  }
  return total === 0 ? 0 : identical / total;
}
