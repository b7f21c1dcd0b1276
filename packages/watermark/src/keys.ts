import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex, randomBytes, utf8ToBytes } from '@noble/hashes/utils.js';
import { fail } from './errors';

/** Bytes in a master key. */
export const MASTER_KEY_BYTES = 32;

/** Version label mixed into every derivation, so that a future change of derivation cannot collide. */
export const KEY_DERIVATION_VERSION = 'tracemark/v1';

const FINGERPRINT_DOMAIN = utf8ToBytes('tracemark/fingerprint/v1\0');
const INSPECT = Symbol.for('nodejs.util.inspect.custom');

/**
 * A short public name for a secret: the first 8 bytes of SHA-256 over a domain label and the secret.
 * The label keeps the fingerprint from ever equalling a hash that some other protocol publishes of the key.
 */
function fingerprintOf(secret: Uint8Array): string {
  const digest = sha256(concat(FINGERPRINT_DOMAIN, secret));
  return `tm1:${bytesToHex(digest.subarray(0, 8))}`;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

const HEX_KEY = /^[0-9a-fA-F]{64}$/;
const BASE64_KEY = /^[A-Za-z0-9+/]{43}=$/;
const BASE64URL_KEY = /^[A-Za-z0-9_-]{43}$/;

function decodeBase64(text: string): Uint8Array {
  const binary = atob(text.replace(/-/g, '+').replace(/_/g, '/') + (text.length === 43 ? '=' : ''));
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}

function encodeBase64(bytes: Uint8Array): string {
  let binary = '';
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary);
}

/**
 * The provider's secret. Its bytes live in a private field: `JSON.stringify`, `String()`,
 * `util.inspect` and `console.log` show only the fingerprint. Export is explicit (`exportHex`, `exportBase64`).
 */
export class MasterKey {
  readonly #bytes: Uint8Array;
  readonly fingerprint: string;

  private constructor(bytes: Uint8Array) {
    this.#bytes = Uint8Array.from(bytes);
    this.fingerprint = fingerprintOf(this.#bytes);
  }

  /** A new key from the platform's cryptographic random source. */
  static generate(): MasterKey {
    return new MasterKey(randomBytes(MASTER_KEY_BYTES));
  }

  static fromBytes(bytes: Uint8Array): MasterKey {
    if (!(bytes instanceof Uint8Array) || bytes.length !== MASTER_KEY_BYTES) {
      fail('E_KEY_FORMAT', `a master key must be exactly ${MASTER_KEY_BYTES} bytes`);
    }
    return new MasterKey(bytes);
  }

  /**
   * Reads a key written as 64 hex characters or as base64 (standard or URL-safe) of 32 bytes.
   * Surrounding whitespace is ignored. The error never repeats the input.
   */
  static parse(text: string): MasterKey {
    if (typeof text !== 'string') fail('E_KEY_FORMAT', 'a master key must be given as text');
    const trimmed = text.trim();
    if (HEX_KEY.test(trimmed)) {
      const bytes = new Uint8Array(MASTER_KEY_BYTES);
      for (let i = 0; i < MASTER_KEY_BYTES; i++)
        bytes[i] = Number.parseInt(trimmed.slice(2 * i, 2 * i + 2), 16);
      return new MasterKey(bytes);
    }
    if (BASE64_KEY.test(trimmed) || BASE64URL_KEY.test(trimmed)) return new MasterKey(decodeBase64(trimmed));
    return fail(
      'E_KEY_FORMAT',
      `malformed master key: expected ${MASTER_KEY_BYTES} bytes as 64 hex characters or 44 base64 characters`,
    );
  }

  exportHex(): string {
    return bytesToHex(this.#bytes);
  }

  exportBase64(): string {
    return encodeBase64(this.#bytes);
  }

  /**
   * HKDF-SHA256 (RFC 5869) from this key. `purpose` names what the bytes are for; `context` binds them
   * to a spec, tenant or other public data. Distinct (purpose, context) pairs give independent keys.
   */
  deriveBytes(purpose: string, context: string, length = 32): Uint8Array {
    const salt = utf8ToBytes(KEY_DERIVATION_VERSION);
    const info = utf8ToBytes(`${purpose}\0${context}`);
    return hkdf(sha256, this.#bytes, salt, info, length);
  }

  /** Whether two keys are the same secret, compared in constant time. */
  equals(other: MasterKey): boolean {
    const a = this.#bytes;
    const b = other.#bytes;
    let diff = 0;
    for (let i = 0; i < MASTER_KEY_BYTES; i++) diff |= a[i] ^ b[i];
    return diff === 0;
  }

  toJSON(): { fingerprint: string } {
    return { fingerprint: this.fingerprint };
  }

  toString(): string {
    return `MasterKey(${this.fingerprint})`;
  }

  [INSPECT](): string {
    return this.toString();
  }
}

/**
 * The secret of one scheme for one tenant: 16 bytes for the context PRF, derived from the master key,
 * the canonical scheme spec and the tenant id. Schemes hold this, never the master key.
 */
export class SchemeKey {
  readonly #prfKey: Uint8Array;
  readonly fingerprint: string;
  readonly masterFingerprint: string;
  readonly tenant: string | undefined;

  /**
   * `purpose` separates the keys of one scheme and tenant: 'scheme-prf' (the watermark itself) and
   * 'account-layer-prf' (its account layer, see account-layer.ts).
   */
  constructor(
    master: MasterKey,
    canonicalSpec: string,
    tenant?: string,
    purpose: 'scheme-prf' | 'account-layer-prf' = 'scheme-prf',
  ) {
    if (
      tenant !== undefined &&
      (typeof tenant !== 'string' || tenant.length === 0 || tenant.includes('\0'))
    ) {
      fail('E_KEY_FORMAT', 'a tenant id must be a non-empty string without NUL characters');
    }
    this.#prfKey = master.deriveBytes(purpose, `${canonicalSpec}\0${tenant ?? ''}`, 16);
    this.fingerprint = fingerprintOf(this.#prfKey);
    this.masterFingerprint = master.fingerprint;
    this.tenant = tenant;
  }

  /** The PRF key bytes, for the scheme that owns this key. */
  prfKeyBytes(): Uint8Array {
    return Uint8Array.from(this.#prfKey);
  }

  toJSON(): { fingerprint: string; masterFingerprint: string; tenant?: string } {
    return { fingerprint: this.fingerprint, masterFingerprint: this.masterFingerprint, tenant: this.tenant };
  }

  toString(): string {
    return `SchemeKey(${this.fingerprint}${this.tenant === undefined ? '' : `, tenant ${this.tenant}`})`;
  }

  [INSPECT](): string {
    return this.toString();
  }
}
