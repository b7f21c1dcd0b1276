import { CountedTape, EProcess, type SequentialState, type Tokenizer } from '@tracemark/verifier';
import type { Scheme } from '@tracemark/watermark';
import { sampleOf } from './samples';
import type { StoredResponse } from './store';

/**
 * The e-process of `probe --until-alpha`: every stored response, in arrival order, is tokenized and counted
 * exactly as `verify` will count it (prompt windows dropped, each PRF input once across the tape), and each new
 * counted token updates the owner's e-process. By Ville's inequality the probe may stop at the first response
 * after which E ≥ 1/α: the false-positive rate of that stopped test stays at most α.
 */
export class SequentialMonitor {
  readonly alpha: number;
  readonly #scheme: Scheme;
  readonly #tokenizer: Tokenizer;
  readonly #tape: CountedTape;
  readonly #eProcess: EProcess;
  #responses = 0;
  #stoppedAt: { responses: number; state: SequentialState } | null = null;

  constructor(scheme: Scheme, tokenizer: Tokenizer, alpha: number, priorStrength?: number) {
    this.alpha = alpha;
    this.#scheme = scheme;
    this.#tokenizer = tokenizer;
    this.#tape = new CountedTape({ scheme });
    this.#eProcess = new EProcess(scheme.nullLaw, { priorStrength });
  }

  /** Adds a stored response; true once the e-process has reached 1/α. */
  add(response: Pick<StoredResponse, 'prompt' | 'system' | 'output'>): boolean {
    const from = this.#tape.length;
    this.#tape.add(sampleOf(this.#tokenizer, response));
    this.#responses++;
    for (let j = from; j < this.#tape.length; j++) this.#eProcess.push(this.#tape.scoreAt(this.#scheme, j));
    if (this.#stoppedAt === null && this.#eProcess.rejects(this.alpha)) {
      this.#stoppedAt = { responses: this.#responses, state: this.#eProcess.state };
    }
    return this.#stoppedAt !== null;
  }

  get rejected(): boolean {
    return this.#stoppedAt !== null;
  }

  /** The state when 1/α was first reached (null before). */
  get stoppedAt(): { responses: number; state: SequentialState } | null {
    return this.#stoppedAt;
  }

  get state(): SequentialState {
    return this.#eProcess.state;
  }

  get responses(): number {
    return this.#responses;
  }

  /** "E = 10^4.2 after 3,120 scored tokens (stop at 10^6)". */
  note(): string {
    const s = this.#eProcess.state;
    return `e-value 10^${s.log10EValue.toFixed(2)} over ${s.scored} scored tokens (stop at 10^${(-Math.log10(this.alpha)).toFixed(1)})`;
  }
}
