/**
 * Field readers for interop specs. Interop specs use the field names of the reference implementations'
 * configs (camel-cased), carry their own integer keys, and are validated as strictly as native specs:
 * an unknown field is an error, so a typo never silently falls back to a default.
 */
import { fail } from '../errors';
import { MAX_VOCAB_SIZE, SPEC_VERSION, SpecReader } from '../spec';
import { toUint64, type Uint64Like } from './torch-random';

const INT64_MIN = -(1n << 63n);
const INT64_MAX = (1n << 63n) - 1n;

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (typeof value === 'number' || typeof value === 'boolean' || value === null) return String(value);
  return Array.isArray(value) ? 'an array' : `a ${typeof value}`;
}

/**
 * Splits a raw spec into the fields read here by hand (booleans, 64-bit integers, lists) and a SpecReader
 * over the rest, so that SpecReader.done() still rejects unknown fields.
 */
export class InteropFields {
  readonly scheme: string;
  readonly reader: SpecReader;
  readonly #raw: Record<string, unknown>;

  constructor(raw: Record<string, unknown>, scheme: string, manual: readonly string[]) {
    this.scheme = scheme;
    this.#raw = raw;
    const rest: Record<string, unknown> = {};
    for (const [field, value] of Object.entries(raw)) if (!manual.includes(field)) rest[field] = value;
    this.reader = new SpecReader(rest, scheme);
  }

  invalid(field: string, expected: string, got: unknown): never {
    return fail('E_INVALID_SPEC', `${this.scheme} spec: ${field} must be ${expected}; got ${describe(got)}`);
  }

  /** version (optional, must be this build's) and vocabSize (required unless a fallback is given). */
  base(vocabFallback?: number): { version: number; vocabSize: number } {
    const version = this.reader.integer('version', SPEC_VERSION, SPEC_VERSION, SPEC_VERSION);
    if (vocabFallback === undefined && this.#raw.vocabSize === undefined) {
      fail('E_INVALID_SPEC', `${this.scheme} spec: vocabSize is required`);
    }
    const vocabSize = this.reader.integer('vocabSize', 2, MAX_VOCAB_SIZE, vocabFallback);
    return { version, vocabSize };
  }

  boolean(field: string, fallback: boolean): boolean {
    const value = this.#raw[field] ?? fallback;
    if (typeof value !== 'boolean') this.invalid(field, 'true or false', value);
    return value;
  }

  /** An optional integer id in [0, max); absent and null both mean "none". */
  optionalId(field: string, max: number): number | undefined {
    const value = this.#raw[field];
    if (value === undefined || value === null) return undefined;
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value >= max) {
      this.invalid(field, `an integer in [0, ${max}) or null`, value);
    }
    return value;
  }

  /** An unsigned 64-bit integer: a safe-integer number, or a decimal string for larger values. */
  uint64(field: string, fallback: Uint64Like, max = (1n << 64n) - 1n): bigint {
    const value = (this.#raw[field] ?? fallback) as Uint64Like;
    let big: bigint;
    try {
      big = toUint64(value, field);
    } catch {
      return this.invalid(field, 'a non-negative integer (a decimal string above 2^53)', value);
    }
    if (big > max) this.invalid(field, `at most ${max}`, value);
    return big;
  }

  /** A non-empty list of signed 64-bit integers (numbers, or decimal strings beyond 2^53). */
  int64List(field: string, maxLength: number): bigint[] {
    const value = this.#raw[field];
    if (!Array.isArray(value) || value.length === 0 || value.length > maxLength) {
      this.invalid(field, `a list of 1 to ${maxLength} integers`, value);
    }
    return value.map((entry) => {
      let big: bigint | undefined;
      if (typeof entry === 'number' && Number.isSafeInteger(entry)) big = BigInt(entry);
      else if (typeof entry === 'string' && /^-?\d{1,19}$/.test(entry)) big = BigInt(entry);
      if (big === undefined || big < INT64_MIN || big > INT64_MAX) {
        this.invalid(field, 'a list of signed 64-bit integers (decimal strings beyond 2^53)', entry);
      }
      return big;
    });
  }

  /** A string field, validated by the caller. */
  string(field: string, fallback: string): string {
    const value = this.#raw[field] ?? fallback;
    if (typeof value !== 'string') this.invalid(field, 'a string', value);
    return value;
  }

  optionalString(field: string): string | undefined {
    const value = this.#raw[field];
    if (value === undefined || value === null) return undefined;
    if (typeof value !== 'string') this.invalid(field, 'a string or null', value);
    return value;
  }
}

/** A 64-bit integer as a spec writes it back: a number while exact, else a decimal string. */
export function uint64Json(value: bigint): number | string {
  return value <= BigInt(Number.MAX_SAFE_INTEGER) && value >= -BigInt(Number.MAX_SAFE_INTEGER)
    ? Number(value)
    : value.toString();
}
