import { fail } from './errors';
import { windowKey } from './key-set';
import type { SchemeKey } from './keys';
import { seededHash32 } from './mix';
import { type SipKey, sipHash24Words, sipKey } from './siphash';

/**
 * How the context window seeds the PRF (Kirchenbauer et al. 2023b, "On the Reliability of Watermarks", §3):
 *  - left: SipHash of all h tokens ("LeftHash"; h = 0 gives one fixed seed, the Unigram watermark);
 *  - min: the smallest per-token seed over the window ("MinHash"), robust to edits that keep the minimum;
 *  - self: the candidate token salts the seed as well ("SelfHash", anchored at the candidate).
 */
export type ContextHashing = 'left' | 'min' | 'self';

/** Per-token seeds are cached densely up to this vocabulary size (8 bytes per token). */
const DENSE_CACHE_MAX_VOCAB = 1 << 22;

/**
 * The keyed context PRF. SipHash-2-4 (Aumasson & Bernstein 2012) under the scheme's derived key turns a
 * context window into a 64-bit seed (`lo`, `hi`); the seed, never the key, is then expanded over
 * candidate tokens by the 32-bit mixers of mix.ts. Single-token seeds are cached: for h = 1 and MinHash,
 * scoring is a table look-up after the first occurrence of a token.
 */
export class ContextPrf {
  /** The seed computed by the last `seed`/`selfSeed` call. */
  lo = 0;
  hi = 0;
  /** MinHash and SelfHash: the window token whose seed won in the last call. */
  winner = 0;

  readonly #key: SipKey;
  readonly #vocabSize: number;
  readonly #width: number;
  readonly #hashing: ContextHashing;
  readonly #out = new Uint32Array(2);
  readonly #word = new Uint32Array(1);
  readonly #windowLo: Uint32Array;
  readonly #windowHi: Uint32Array;
  readonly #windowTokens: Uint32Array;
  #tokenSeeds: Uint32Array | null = null;
  #tokenLo = 0;
  #tokenHi = 0;
  #emptyLo = 0;
  #emptyHi = 0;

  constructor(key: SchemeKey, vocabSize: number, contextWidth: number, hashing: ContextHashing) {
    this.#key = sipKey(key.prfKeyBytes());
    this.#vocabSize = vocabSize;
    this.#width = contextWidth;
    this.#hashing = hashing;
    this.#windowLo = new Uint32Array(contextWidth);
    this.#windowHi = new Uint32Array(contextWidth);
    this.#windowTokens = new Uint32Array(contextWidth);
    sipHash24Words(this.#key, this.#word, 0, 0, this.#out);
    this.#emptyLo = this.#out[0];
    this.#emptyHi = this.#out[1];
  }

  /** Checks that `sequence[end − h .. end)` exists and holds valid token ids. */
  checkContext(sequence: ArrayLike<number>, end: number): void {
    if (end < this.#width) {
      fail(
        'E_CONTEXT_TOO_SHORT',
        `the context needs ${this.#width} tokens before the scored or generated one`,
      );
    }
    for (let i = end - this.#width; i < end; i++) this.checkToken(sequence[i]);
  }

  checkToken(token: number): void {
    if (!(token >>> 0 === token && token < this.#vocabSize)) {
      fail('E_TOKEN_RANGE', `token id ${token} is outside the vocabulary [0, ${this.#vocabSize})`);
    }
  }

  /** Seed for the window ending before `end` (left and min hashing). */
  seed(sequence: ArrayLike<number>, end: number): void {
    const seeds = this.#tokenSeeds;
    if (this.#width === 1 && end >= 1 && seeds !== null) {
      // Hot path of h = 1 scoring: a cached token seed ((0, 0) marks a seed not computed yet). The
      // typed-array reads are undefined for any id that is not an integer in range, which sends such ids
      // down the checked path below.
      const t = sequence[end - 1];
      const lo = seeds[2 * t];
      const hi = seeds[2 * t + 1];
      if ((lo | hi) !== 0) {
        this.lo = lo;
        this.hi = hi;
        return;
      }
    }
    this.checkContext(sequence, end);
    const h = this.#width;
    if (h === 0) {
      this.lo = this.#emptyLo;
      this.hi = this.#emptyHi;
    } else if (h === 1 || this.#hashing === 'min') {
      this.#minTokenSeed(sequence, end - h, end);
    } else {
      sipHash24Words(this.#key, sequence, end - h, end, this.#out);
      this.lo = this.#out[0];
      this.hi = this.#out[1];
    }
  }

  /**
   * The seeds of the one-token windows `tokens[i]`, into (lo[i], hi[i]): what `seed` gives for h = 1 (left and min
   * hashing alike), without the per-token cache, for callers that seed each distinct context once.
   */
  seedTokens(tokens: ArrayLike<number>, lo: Int32Array, hi: Int32Array): void {
    if (this.#width !== 1 || this.#hashing === 'self')
      fail('E_INVALID_SPEC', 'seedTokens needs one token of context and left or min hashing');
    const out = this.#out;
    for (let i = 0; i < tokens.length; i++) {
      this.checkToken(tokens[i]);
      sipHash24Words(this.#key, tokens, i, i + 1, out);
      lo[i] = out[0];
      hi[i] = out[1];
    }
  }

  /**
   * Loads the per-token seeds of the window ending before `end`, for `selfSeed` calls on that window
   * (one load per generation step, then one cheap `selfSeed` per candidate).
   */
  loadWindow(sequence: ArrayLike<number>, end: number): void {
    this.checkContext(sequence, end);
    const h = this.#width;
    for (let j = 0; j < h; j++) {
      this.#seedOfToken(sequence[end - h + j]);
      this.#windowLo[j] = this.#tokenLo;
      this.#windowHi[j] = this.#tokenHi;
      this.#windowTokens[j] = sequence[end - h + j];
    }
  }

  /**
   * SelfHash seed for `candidate` after the loaded window: for each window token t the candidate is
   * mixed into t's seed, and the smallest result is kept (anchored MinHash).
   */
  selfSeed(candidate: number): void {
    const lows = this.#windowLo;
    const highs = this.#windowHi;
    let bestLo = seededHash32(lows[0], highs[0], candidate);
    let bestHi = highs[0];
    let best = 0;
    for (let j = 1; j < this.#width; j++) {
      const v = seededHash32(lows[j], highs[j], candidate);
      if (v < bestLo) {
        bestLo = v;
        bestHi = highs[j];
        best = j;
      }
    }
    this.lo = bestLo;
    this.hi = bestHi;
    this.winner = this.#windowTokens[best];
  }

  /**
   * Whether `contextKey` is more than the plain window: MinHash over two or more tokens, where the
   * winning token alone decides the seed. Schemes expose `Scheme.contextKey` only then.
   */
  get hasContextKey(): boolean {
    return this.#hashing === 'min' && this.#width > 1;
  }

  /** Whether `inputKey` is more than the plain (window, token): MinHash and SelfHash over two or more tokens. */
  get hasInputKey(): boolean {
    return this.#hashing !== 'left' && this.#width > 1;
  }

  /**
   * Key of everything that determines the seed after the window ending before `end`: the window for
   * LeftHash, the winning token for MinHash. Equal keys mean the same keyed randomness, which a
   * distortion-free scheme must not spend twice in one sequence. (SelfHash seeds depend on the candidate;
   * its key is the whole window.)
   */
  contextKey(sequence: ArrayLike<number>, end: number, out: Uint32Array): void {
    if (this.#hashing === 'min' && this.#width > 1) {
      this.seed(sequence, end);
      out[0] = this.winner;
      out[1] = 0;
      return;
    }
    this.checkContext(sequence, end);
    windowKey(sequence, end - this.#width, end, out);
  }

  /**
   * Key of everything that determines the score of `sequence[index]`: (window, token) for LeftHash,
   * (winning token, token) for MinHash and SelfHash. Under H0, scores of positions with distinct keys are
   * independent, and positions with equal keys have equal scores: de-duplication must use this key.
   */
  inputKey(sequence: ArrayLike<number>, index: number, out: Uint32Array): void {
    const token = sequence[index];
    if (this.#width > 1 && this.#hashing !== 'left') {
      if (this.#hashing === 'min') {
        this.seed(sequence, index);
      } else {
        this.loadWindow(sequence, index);
        this.selfSeed(token);
      }
      out[0] = token;
      out[1] = this.winner + 1;
      return;
    }
    this.checkContext(sequence, index);
    windowKey(sequence, index - this.#width, index + 1, out);
  }

  /**
   * The per-token seed cache, (lo, hi) of token t at [2t, 2t + 1], (0, 0) where not computed yet; null for
   * vocabularies too large to cache densely. For callers that read h = 1 seeds in a hot loop.
   */
  tokenSeedCache(): Uint32Array | null {
    if (this.#tokenSeeds === null && this.#vocabSize <= DENSE_CACHE_MAX_VOCAB)
      this.#tokenSeeds = new Uint32Array(2 * this.#vocabSize);
    return this.#tokenSeeds;
  }

  #minTokenSeed(sequence: ArrayLike<number>, start: number, end: number): void {
    this.#seedOfToken(sequence[start]);
    let bestLo = this.#tokenLo;
    let bestHi = this.#tokenHi;
    let winner = sequence[start];
    for (let i = start + 1; i < end; i++) {
      this.#seedOfToken(sequence[i]);
      if (this.#tokenHi < bestHi || (this.#tokenHi === bestHi && this.#tokenLo < bestLo)) {
        bestHi = this.#tokenHi;
        bestLo = this.#tokenLo;
        winner = sequence[i];
      }
    }
    this.lo = bestLo;
    this.hi = bestHi;
    this.winner = winner;
  }

  #seedOfToken(token: number): void {
    const seeds = this.tokenSeedCache();
    if (seeds !== null) {
      const lo = seeds[2 * token];
      const hi = seeds[2 * token + 1];
      // (0, 0) marks an empty entry; a token whose seed really is (0, 0) (odds 2^-64) is just recomputed.
      if ((lo | hi) !== 0) {
        this.#tokenLo = lo;
        this.#tokenHi = hi;
        return;
      }
    }
    this.#word[0] = token;
    sipHash24Words(this.#key, this.#word, 0, 1, this.#out);
    this.#tokenLo = this.#out[0];
    this.#tokenHi = this.#out[1];
    if (seeds !== null) {
      seeds[2 * token] = this.#tokenLo;
      seeds[2 * token + 1] = this.#tokenHi;
    }
  }
}
