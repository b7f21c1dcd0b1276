import type { ProbeProgress } from '@tracemark/evidence';

/**
 * Probe progress on standard error: on a terminal, one bar redrawn in place with the rate and the ETA; in a
 * log or a pipe, a plain line every 10 % (and at least every 30 s), so that no control characters reach a file.
 */
export interface ProgressSink {
  write(text: string): void;
  isTTY?: boolean;
  columns?: number;
}

export class Progress implements ProbeProgress {
  readonly #sink: ProgressSink;
  readonly #total: number;
  readonly #tty: boolean;
  readonly #label: string;
  readonly #started = performance.now();
  #done = 0;
  #lastDraw = 0;
  #lastLineAt = 0;
  #lastDecile = 0;
  #note = '';
  #open = false;

  constructor(sink: ProgressSink, total: number, label = 'probe') {
    this.#sink = sink;
    this.#total = total;
    this.#tty = sink.isTTY === true;
    this.#label = label;
  }

  /** One response stored; `note` is shown after the bar (e.g. the e-value). */
  tick(note?: string): void {
    this.#done++;
    if (note !== undefined) this.#note = note;
    const now = performance.now();
    if (this.#tty) {
      if (now - this.#lastDraw >= 100 || this.#done === this.#total) this.#draw(now);
      return;
    }
    const decile = Math.floor((10 * this.#done) / Math.max(1, this.#total));
    if (decile > this.#lastDecile || now - this.#lastLineAt >= 30_000 || this.#done === this.#total) {
      this.#lastDecile = decile;
      this.#lastLineAt = now;
      this.#sink.write(`${this.#label}: ${this.status(now)}\n`);
    }
  }

  /** A message on its own line (retries, warnings), without breaking the bar. */
  message(text: string): void {
    if (this.#tty && this.#open) {
      this.#sink.write(`\r\x1b[2K${text}\n`);
      this.#draw(performance.now());
    } else {
      this.#sink.write(`${text}\n`);
    }
  }

  /** Ends the bar's line. */
  finish(): void {
    if (this.#tty && this.#open) {
      this.#draw(performance.now());
      this.#sink.write('\n');
      this.#open = false;
    }
  }

  /** "120/400 (30 %), 3.2 responses/s, ETA 1 min 27 s". */
  status(now = performance.now()): string {
    const elapsed = (now - this.#started) / 1000;
    const rate = elapsed > 0 ? this.#done / elapsed : 0;
    const left = this.#total - this.#done;
    const eta = rate > 0 ? formatDuration(left / rate) : '?';
    const percent = this.#total === 0 ? 100 : Math.floor((100 * this.#done) / this.#total);
    return `${this.#done}/${this.#total} (${percent} %), ${rate.toFixed(1)} responses/s, ${left === 0 ? `done in ${formatDuration(elapsed)}` : `ETA ${eta}`}${this.#note === '' ? '' : `, ${this.#note}`}`;
  }

  #draw(now: number): void {
    this.#lastDraw = now;
    this.#open = true;
    const width = Math.max(10, Math.min(30, (this.#sink.columns ?? 80) - 70));
    const filled = this.#total === 0 ? width : Math.round((width * this.#done) / this.#total);
    const bar = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`;
    this.#sink.write(`\r\x1b[2K${this.#label} ${bar} ${this.status(now)}`);
  }
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  if (seconds < 10) return `${seconds.toFixed(1)} s`;
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${s % 60} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}
