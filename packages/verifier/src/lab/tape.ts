import { KeySet64, type NullLaw, type Scheme, windowKey } from '@tracemark/watermark';
import { dedupKey, nullTail } from '../detect';
import { followsPromptWindow, promptWindows } from '../prompt-windows';
import type { RadioactivityResult, SuspectSample, WindowFilter } from '../radioactivity';

/**
 * The positions that `radioactivityTest` scores, selected once so that many keys can be tested on them.
 * The selection (prompt windows, the window filter, de-duplication on the PRF input) does not depend on
 * the key when the PRF input is the plain (window, token) pair (LeftHash seeding, every lab scheme), so
 * a control key needs only the sum of its scores over these positions: about a hundred times less work
 * than a full test per key. `matches` checks the selection against a full test of the same probes.
 */
export class ScoredPositions {
  readonly #sequences: Uint32Array[] = [];
  /** Pairs (sequence number, index in it). */
  #positions = new Int32Array(1024);
  #count = 0;

  /** Whether the selection is the same for every key of this scheme's spec. */
  static keyIndependent(scheme: Scheme): boolean {
    const hashing = (scheme.spec as { hashing?: string }).hashing;
    return scheme.contextWidth <= 1 || hashing === undefined || hashing === 'left';
  }

  constructor(samples: readonly SuspectSample[], scheme: Scheme, filter: WindowFilter | undefined) {
    const h = scheme.contextWidth;
    const tape = new KeySet64();
    const key = new Uint32Array(2);
    for (const { prompt, output } of samples) {
      const sequence = new Uint32Array(prompt.length + output.length);
      for (let i = 0; i < prompt.length; i++) sequence[i] = prompt[i];
      for (let i = 0; i < output.length; i++) sequence[prompt.length + i] = output[i];
      const promptKeys = promptWindows(prompt, h);
      const number = this.#sequences.length;
      let used = false;
      for (let i = Math.max(prompt.length, h); i < sequence.length; i++) {
        if (promptKeys !== null && followsPromptWindow(promptKeys, sequence, i, h, key)) continue;
        if (filter !== undefined) {
          if (i < filter.width) continue;
          windowKey(sequence, i - filter.width, i, key);
          if (!filter.windows.has(key[0], key[1])) continue;
        }
        dedupKey(scheme, sequence, i, 'pair', key);
        if (!tape.add(key[0], key[1])) continue;
        this.#push(number, i);
        used = true;
      }
      if (used) this.#sequences.push(sequence);
    }
  }

  get scored(): number {
    return this.#count;
  }

  #push(sequence: number, index: number): void {
    if (2 * this.#count + 2 > this.#positions.length) {
      const grown = new Int32Array(2 * this.#positions.length);
      grown.set(this.#positions);
      this.#positions = grown;
    }
    this.#positions[2 * this.#count] = sequence;
    this.#positions[2 * this.#count + 1] = index;
    this.#count++;
  }

  /** Sum of the scheme's scores over the positions, in the order the full test adds them. */
  scoreSum(scheme: Scheme): number {
    let sum = 0;
    const positions = this.#positions;
    for (let k = 0; k < this.#count; k++)
      sum += scheme.score(this.#sequences[positions[2 * k]], positions[2 * k + 1]);
    return sum;
  }

  /** The exact and the randomized p-value of the scheme's key over the positions (see `nullPValues`). */
  test(scheme: Scheme, uniform: number): NullPValues {
    return nullPValues(scheme.nullLaw, this.scoreSum(scheme), this.#count, uniform);
  }

  /** True when these positions give exactly the full test's count and score sum for its key. */
  matches(scheme: Scheme, full: RadioactivityResult): boolean {
    return full.scored === this.#count && full.scoreSum === this.scoreSum(scheme);
  }
}

export interface NullPValues {
  /** The test's exact p-value P[S ≥ s]: valid, and conservative (not uniform) for a discrete null law. */
  pValue: number;
  log10PValue: number;
  /**
   * The randomized p-value P[S > s] + U · P[S = s] with U uniform on (0, 1): exactly Uniform(0, 1) under H0
   * for the discrete laws (binomial), equal to `pValue` for the continuous one (Gamma). Calibration checks
   * (Kolmogorov-Smirnov of many keys) use it, since the exact p-values of a few hundred Bernoulli scores
   * have atoms of several percent that a KS test over hundreds of keys sees.
   */
  randomizedPValue: number;
}

export function nullPValues(law: NullLaw, sum: number, scored: number, uniform: number): NullPValues {
  const tail = nullTail(law, sum, scored);
  if (law.kind === 'exponential' || scored === 0) {
    return { pValue: tail.p, log10PValue: tail.log10p, randomizedPValue: scored === 0 ? uniform : tail.p };
  }
  const above = nullTail(law, Math.round(sum) + 1, scored).p;
  return { pValue: tail.p, log10PValue: tail.log10p, randomizedPValue: above + uniform * (tail.p - above) };
}
