import { fail } from './errors';

/** The spec format version this package writes and reads. */
export const SPEC_VERSION = 1;
/** Largest vocabulary a spec may declare (2^24 tokens; real tokenizers stay far below). */
export const MAX_VOCAB_SIZE = 1 << 24;
/** Longest context window that seeds the PRF; longer windows only make the watermark brittle. */
export const MAX_CONTEXT_WIDTH = 16;

/** What every scheme spec carries. Specs are plain JSON, versioned, and hold no secret. */
export interface BaseSpec {
  scheme: string;
  version: number;
  vocabSize: number;
}

/** Field readers that check one field of a raw spec and say exactly what is wrong. */
export class SpecReader {
  readonly #raw: Record<string, unknown>;
  readonly #scheme: string;
  readonly #seen = new Set<string>(['scheme']);

  constructor(raw: Record<string, unknown>, scheme: string) {
    this.#raw = raw;
    this.#scheme = scheme;
  }

  #take(field: string): unknown {
    this.#seen.add(field);
    return this.#raw[field];
  }

  #invalid(field: string, expected: string, got: unknown): never {
    return fail('E_INVALID_SPEC', `${this.#scheme} spec: ${field} must be ${expected}; got ${describe(got)}`);
  }

  integer(field: string, min: number, max: number, fallback?: number): number {
    const value = this.#take(field) ?? fallback;
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
      this.#invalid(field, `an integer in [${min}, ${max}]`, value);
    }
    return value;
  }

  /** A number in the open interval (min, max), or [min, ...) when `closedMin`. */
  number(
    field: string,
    bounds: { min: number; max: number; closedMin?: boolean },
    fallback?: number,
  ): number {
    const value = this.#take(field) ?? fallback;
    const { min, max, closedMin } = bounds;
    const aboveMin = typeof value === 'number' && (closedMin ? value >= min : value > min);
    if (typeof value !== 'number' || !Number.isFinite(value) || !aboveMin || !(value < max)) {
      this.#invalid(field, `a number in ${closedMin ? '[' : '('}${min}, ${max})`, value);
    }
    return value;
  }

  choice<T extends string>(field: string, options: readonly T[], fallback?: T): T {
    const value = this.#take(field) ?? fallback;
    if (typeof value !== 'string' || !options.includes(value as T)) {
      this.#invalid(field, `one of ${options.map((o) => `"${o}"`).join(', ')}`, value);
    }
    return value as T;
  }

  /** The fields every scheme shares; call first. */
  base(): { version: number; vocabSize: number } {
    const version = this.#take('version') ?? SPEC_VERSION;
    if (version !== SPEC_VERSION) {
      fail(
        'E_INVALID_SPEC',
        `${this.#scheme} spec: unsupported version ${describe(version)} (this build reads ${SPEC_VERSION})`,
      );
    }
    if (this.#raw.vocabSize === undefined)
      fail('E_INVALID_SPEC', `${this.#scheme} spec: vocabSize is required`);
    return { version: SPEC_VERSION, vocabSize: this.integer('vocabSize', 2, MAX_VOCAB_SIZE) };
  }

  /** Rejects fields no reader asked for, so that a typo ("gama") is an error rather than a silent default. */
  done(): void {
    for (const field of Object.keys(this.#raw)) {
      if (!this.#seen.has(field)) fail('E_INVALID_SPEC', `${this.#scheme} spec: unknown field "${field}"`);
    }
  }
}

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (typeof value === 'number' || typeof value === 'boolean' || value === null) return String(value);
  return Array.isArray(value) ? 'an array' : `a ${typeof value}`;
}

/** JSON with object keys sorted at every depth: the form that keys are derived from and specs compared by. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}
