import { KeySet64, type Scheme, type SchemeSpec, windowKey } from '@tracemark/watermark';
import { dedupKey } from '../detect';
import { fail } from '../errors';
import type { SuspectSample, WindowFilter } from '../radioactivity';

/**
 * The counted positions of the radioactivity test, kept once and scored under many keys.
 *
 * Which positions count (prompt windows dropped, the optional owner-text filter, each PRF input once across
 * the whole tape) is decided exactly as `radioactivityTest` decides it. For LeftHash seeding (and any scheme
 * of context width ≤ 1) none of that depends on the key: the de-duplication key is the window and the token.
 * The tape then stores each counted position's window and token (h + 1 ids) once, and a key's score sum is
 * one pass of `scheme.score` over the tape, with no hashing of the skipped positions and no set look-ups.
 * MinHash and SelfHash with h > 1 de-duplicate on a keyed winner; their tape is built per key
 * (`dedupScheme`).
 */
export interface TapeOptions {
  /** Context width h of the scheme. */
  contextWidth: number;
  filter?: WindowFilter;
  dedup?: boolean;
  dropPromptWindows?: boolean;
  /** For key-dependent de-duplication: the one scheme this tape is valid for. */
  dedupScheme?: Scheme;
}

export interface TapeCounts {
  seen: number;
  scored: number;
  skipped: { context: number; duplicate: number; promptWindow: number; filtered: number };
  samples: number;
}

/** Whether the counted positions are the same for every key of this spec (so one tape serves all keys). */
export function tapeIsKeyIndependent(spec: SchemeSpec): boolean {
  const hashing = (spec as { hashing?: string }).hashing;
  return hashing === undefined || hashing === 'left' || spec.contextWidth <= 1;
}

export class CountedTape {
  readonly contextWidth: number;
  readonly stride: number;
  readonly dedupScheme: Scheme | undefined;
  readonly #filter: WindowFilter | undefined;
  readonly #dedup: boolean;
  readonly #dropPromptWindows: boolean;
  readonly #seenKeys = new KeySet64();
  readonly #key = new Uint32Array(2);
  #ids = new Uint32Array(1024);
  #length = 0;
  readonly counts: TapeCounts = {
    seen: 0,
    scored: 0,
    skipped: { context: 0, duplicate: 0, promptWindow: 0, filtered: 0 },
    samples: 0,
  };

  constructor(options: TapeOptions) {
    const h = options.contextWidth;
    if (!(Number.isInteger(h) && h >= 0))
      fail('E_INVALID_OPTIONS', `contextWidth must be an integer ≥ 0; got ${h}`);
    if (options.dedupScheme !== undefined && options.dedupScheme.contextWidth !== h) {
      fail('E_INVALID_OPTIONS', 'the de-duplication scheme has another context width than the tape');
    }
    this.contextWidth = h;
    this.stride = h + 1;
    this.dedupScheme = options.dedupScheme;
    this.#filter = options.filter;
    this.#dedup = options.dedup ?? true;
    this.#dropPromptWindows = options.dropPromptWindows ?? true;
  }

  /** Counted positions so far. */
  get length(): number {
    return this.counts.scored;
  }

  /** The flat tape: position j's window and token are ids[j·stride .. (j + 1)·stride). */
  get ids(): Uint32Array {
    return this.#ids.subarray(0, this.#length);
  }

  /** Appends one sample's counted positions; returns how many it added. */
  add(sample: SuspectSample): number {
    const { prompt, output } = sample;
    const h = this.contextWidth;
    const filter = this.#filter;
    const key = this.#key;
    const counts = this.counts;
    const before = counts.scored;
    const sequence = new Uint32Array(prompt.length + output.length);
    for (let i = 0; i < prompt.length; i++) sequence[i] = prompt[i];
    for (let i = 0; i < output.length; i++) sequence[prompt.length + i] = output[i];
    const promptWindows = this.#dropPromptWindows ? promptWindowSet(prompt, h) : null;
    counts.samples++;
    for (let i = prompt.length; i < sequence.length; i++) {
      counts.seen++;
      if (i < h) {
        counts.skipped.context++;
        continue;
      }
      if (promptWindows !== null) {
        windowKey(sequence, i - h, h === 0 ? i + 1 : i, key);
        if (promptWindows.has(key[0], key[1])) {
          counts.skipped.promptWindow++;
          continue;
        }
      }
      if (filter !== undefined) {
        if (i < filter.width) {
          counts.skipped.filtered++;
          continue;
        }
        windowKey(sequence, i - filter.width, i, key);
        if (!filter.windows.has(key[0], key[1])) {
          counts.skipped.filtered++;
          continue;
        }
      }
      if (this.#dedup) {
        if (this.dedupScheme !== undefined) dedupKey(this.dedupScheme, sequence, i, 'pair', key);
        else windowKey(sequence, i - h, i + 1, key);
        if (!this.#seenKeys.add(key[0], key[1])) {
          counts.skipped.duplicate++;
          continue;
        }
      }
      this.#push(sequence, i - h, i + 1);
      counts.scored++;
    }
    return counts.scored - before;
  }

  #push(sequence: Uint32Array, start: number, end: number): void {
    if (this.#length + this.stride > this.#ids.length) {
      const grown = new Uint32Array(Math.max(2 * this.#ids.length, this.#length + this.stride));
      grown.set(this.#ids.subarray(0, this.#length));
      this.#ids = grown;
    }
    this.#ids.set(sequence.subarray(start, end), this.#length);
    this.#length += this.stride;
  }

  /** Score of counted position j under `scheme`. */
  scoreAt(scheme: Scheme, j: number): number {
    return scheme.score(this.#ids, j * this.stride + this.contextWidth);
  }

  /** Sum of the scores of positions [from, to) under `scheme` (every position by default). */
  scoreSum(scheme: Scheme, from = 0, to = this.counts.scored): number {
    this.#check(scheme);
    const ids = this.#ids;
    const stride = this.stride;
    let sum = 0;
    for (let index = from * stride + this.contextWidth, end = to * stride; index < end; index += stride) {
      sum += scheme.score(ids, index);
    }
    return sum;
  }

  #check(scheme: Scheme): void {
    if (scheme.contextWidth !== this.contextWidth) {
      fail(
        'E_INVALID_OPTIONS',
        `the scheme's context width ${scheme.contextWidth} is not the tape's ${this.contextWidth}`,
      );
    }
    if (this.dedupScheme !== undefined && scheme !== this.dedupScheme) {
      fail('E_INVALID_OPTIONS', 'this tape was de-duplicated under another key; build one per key');
    }
  }
}

/** Windows of a prompt (for h = 0, its tokens), as in radioactivityTest. */
function promptWindowSet(prompt: ArrayLike<number>, h: number): KeySet64 {
  const set = new KeySet64(prompt.length);
  const key = new Uint32Array(2);
  for (let j = h; j <= prompt.length - (h === 0 ? 1 : 0); j++) {
    windowKey(prompt, j - h, h === 0 ? j + 1 : j, key);
    set.add(key[0], key[1]);
  }
  return set;
}
