import { KeySet64, type Scheme } from '@tracemark/watermark';
import { nullTail, zScore } from './null-law';
import { schemeIdentity, type TestResult } from './result';
import { checkDedup, checkTokenId, type Dedup, markPositions, type SkipCounts, scorePositions } from './tape';

export interface TokenStreamOptions {
  scheme: Scheme;
  dedup?: Dedup;
}

/** The exact test of a whole token sequence: `detectTokens`' result without windows and per-token entries. */
export interface StreamDetection extends TestResult {
  tokens: number;
  dedup: Dedup;
}

/**
 * `detectTokens` over a token sequence that arrives in pieces (no prompt, no end of sequence, no windows or
 * per-token entries), holding only the current piece, the last h ids and the de-duplication set: the same
 * positions count, in the same order, with the same scores added in the same order, so the result is the
 * one-pass result bit for bit however the sequence is cut.
 */
export class TokenStreamDetector {
  readonly #scheme: Scheme;
  readonly #dedup: Dedup;
  readonly #seen: KeySet64 | null;
  readonly #skipped: SkipCounts = { context: 0, duplicate: 0, promptWindow: 0, filtered: 0 };
  /** The previous pieces' last h ids (fewer while the sequence is shorter), then the current piece. */
  #ids = new Uint32Array(0);
  #contextLength = 0;
  #counted = new Int32Array(0);
  #scores = new Float64Array(0);
  #tokens = 0;
  #scored = 0;
  #sum = 0;

  constructor(options: TokenStreamOptions) {
    const dedup = checkDedup(options.dedup ?? 'pair');
    this.#scheme = options.scheme;
    this.#dedup = dedup;
    this.#seen = dedup === 'none' ? null : new KeySet64();
  }

  /** Tokens seen so far. */
  get tokens(): number {
    return this.#tokens;
  }

  /** Counts and scores the next piece of the sequence. */
  push(piece: ArrayLike<number>): void {
    const scheme = this.#scheme;
    const h = scheme.contextWidth;
    const context = this.#contextLength;
    const n = context + piece.length;
    if (this.#ids.length < n) {
      const grown = new Uint32Array(n);
      grown.set(this.#ids.subarray(0, context));
      this.#ids = grown;
      this.#counted = new Int32Array(n);
      this.#scores = new Float64Array(n);
    }
    const ids = this.#ids;
    const vocabSize = scheme.vocabSize;
    for (let i = 0; i < piece.length; i++) {
      const token = piece[i];
      checkTokenId(token, this.#tokens + i, vocabSize);
      ids[context + i] = token;
    }
    // Positions before `context` were counted with the previous piece; while the whole sequence is shorter than h,
    // buffer positions are sequence positions, so markPositions still skips the first h as lacking a context.
    const rule = { dedup: this.#dedup, promptKeys: null, seen: this.#seen };
    const counted = this.#counted;
    const scores = this.#scores;
    const m = markPositions(ids, context, n, scheme, rule, counted, null, this.#skipped);
    scorePositions(scheme, ids, counted, m, scores);
    let sum = this.#sum;
    for (let j = 0; j < m; j++) sum += scores[j];
    this.#sum = sum;
    this.#scored += m;
    this.#tokens += piece.length;
    const kept = Math.min(h, n);
    ids.copyWithin(0, n - kept, n);
    this.#contextLength = kept;
  }

  /** The exact test of everything pushed so far (p = 1 with nothing scored). */
  result(): StreamDetection {
    const law = this.#scheme.nullLaw;
    const tail = nullTail(law, this.#sum, this.#scored);
    return {
      ...schemeIdentity(this.#scheme),
      pValue: tail.p,
      log10PValue: tail.log10p,
      zScore: zScore(law, this.#sum, this.#scored),
      tokens: this.#tokens,
      scored: this.#scored,
      scoreSum: this.#sum,
      dedup: this.#dedup,
    };
  }
}
