import { hmac } from '@noble/hashes/hmac.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex, utf8ToBytes } from '@noble/hashes/utils.js';
import { canonicalJson, type MasterKey } from '@tracemark/watermark';
import { fail } from '../errors';
import type {
  KsSummary,
  OwnerFilterSummary,
  SuspectSummary,
  TenantRow,
  VerdictSummary,
  VerifySummary,
} from './input';

/**
 * v2 adds `verdict` (the cited p-value, its basis and the controls) and `suspect`, and drops v1's top-level
 * `detected`, which rested on the fixed-size p-value alone. v1 bundles still check: the signature is the same.
 */
export const EVIDENCE_FORMAT = 'tracemark-evidence/v2';
export const CHECKABLE_FORMATS: readonly string[] = ['tracemark-evidence/v1', EVIDENCE_FORMAT];

/** HKDF purpose of the signing key: `key.deriveBytes('report-signature', '')`. */
export const SIGNATURE_PURPOSE = 'report-signature';

const BODY_DOMAIN = 'tracemark/evidence/v1\0';
const FIELD_DOMAIN = 'tracemark/evidence-field/v1\0';

/** What a highlighted sample contributed: its hash and its own detection, not its text. */
export interface SampleEvidence {
  id: string;
  sha256: string;
  tokens: number;
  scored: number;
  pValue: number;
  log10PValue: number;
}

/** The signed content of an evidence bundle. */
export interface EvidenceBody {
  format: typeof EVIDENCE_FORMAT;
  tool: { name: 'tracemark'; version: string };
  createdAt: string;
  label?: string;
  spec: Record<string, unknown>;
  /** The fingerprint the verify result names, and the fingerprint of the master key that signed. */
  keyFingerprint: string;
  masterFingerprint: string;
  tokenizer: string;
  counts: { responses: number; seen: number; scored: number };
  /** The exact fixed-size p-value; the verdict cites it only when probing had a fixed budget. */
  pValue: number;
  log10PValue: number;
  alpha: number;
  /** The p-value to cite, and the decision at `alpha`: detected only when the controls passed. */
  verdict: VerdictSummary & { detected: boolean };
  /** The model probed (as the endpoint reported it), the endpoints without credentials, and when. */
  suspect?: SuspectSummary;
  /** Reading mode (the suspect's predictions on the owner's texts were scored); absent: closed mode, as before. */
  mode?: 'read';
  controls: { count: number; pValues: number[]; ks: KsSummary | null };
  tenants?: TenantRow[];
  trajectory: { scored: number; log10PValue: number }[];
  responses: { count: number; sha256: string[] };
  samples?: SampleEvidence[];
  /**
   * The owner-text filter that selected the scored tokens: the owner documents' SHA-256 (not their local
   * path), the window width and the number of distinct windows.
   */
  ownerFilter?: Omit<OwnerFilterSummary, 'source'>;
}

export interface EvidenceSignature {
  algorithm: 'HMAC-SHA256';
  /** How the signing key is made from the master key (public; the key itself is never written). */
  keyDerivation: string;
  keyFingerprint: string;
  /** HMAC over the canonical JSON of the body. */
  value: string;
  /** A shorter HMAC of each field (two levels deep), so that a failed check can name what changed. */
  fields: Record<string, string>;
}

export interface EvidenceBundle {
  format: typeof EVIDENCE_FORMAT;
  body: EvidenceBody;
  signature: EvidenceSignature;
}

export interface BodyOptions {
  toolVersion: string;
  alpha: number;
  createdAt?: Date;
  label?: string;
  samples?: SampleEvidence[];
}

/** The body of a bundle for one verify result, signed by `key`'s fingerprint. */
export function evidenceBody(summary: VerifySummary, key: MasterKey, options: BodyOptions): EvidenceBody {
  return {
    format: EVIDENCE_FORMAT,
    tool: { name: 'tracemark', version: options.toolVersion },
    createdAt: (options.createdAt ?? new Date()).toISOString(),
    ...(options.label === undefined ? {} : { label: options.label }),
    spec: summary.spec,
    keyFingerprint: summary.keyFingerprint,
    masterFingerprint: key.fingerprint,
    tokenizer: summary.tokenizer,
    counts: { responses: summary.responses.count, seen: summary.seen, scored: summary.scored },
    pValue: summary.pValue,
    log10PValue: summary.log10PValue,
    alpha: options.alpha,
    verdict: {
      ...summary.verdict,
      detected:
        summary.verdict.controlsPassed && summary.verdict.log10PValueCited <= Math.log10(options.alpha),
    },
    ...(summary.suspect === undefined ? {} : { suspect: summary.suspect }),
    ...(summary.mode === 'read' ? { mode: 'read' as const } : {}),
    controls: {
      count: summary.controls.pValues.length,
      pValues: summary.controls.pValues,
      ks: summary.controls.ks,
    },
    ...(summary.tenants === undefined ? {} : { tenants: summary.tenants }),
    trajectory: summary.trajectory,
    responses: summary.responses,
    ...(options.samples === undefined ? {} : { samples: options.samples }),
    ...(summary.ownerFilter === undefined
      ? {}
      : {
          ownerFilter: {
            documents: summary.ownerFilter.documents,
            sha256: summary.ownerFilter.sha256,
            width: summary.ownerFilter.width,
            windows: summary.ownerFilter.windows,
          },
        }),
  };
}

function signingKey(key: MasterKey): Uint8Array {
  return key.deriveBytes(SIGNATURE_PURPOSE, '');
}

function mac(secret: Uint8Array, domain: string, text: string): Uint8Array {
  return hmac(sha256, secret, utf8ToBytes(domain + text));
}

/** Paths of a body's fields: each top-level key, and each key of a top-level object (`controls.ks`). */
function fieldEntries(body: Record<string, unknown>): [string, unknown][] {
  const out: [string, unknown][] = [];
  for (const [name, value] of Object.entries(body)) {
    if (value === undefined) continue;
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
      const inner = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
      if (inner.length === 0) out.push([name, value]);
      for (const [sub, v] of inner) out.push([`${name}.${sub}`, v]);
    } else {
      out.push([name, value]);
    }
  }
  return out.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

function fieldMacs(secret: Uint8Array, body: Record<string, unknown>): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const [path, value] of fieldEntries(body)) {
    fields[path] = bytesToHex(mac(secret, FIELD_DOMAIN, `${path}\0${canonicalJson(value)}`).subarray(0, 16));
  }
  return fields;
}

export function signEvidence(body: EvidenceBody, key: MasterKey): EvidenceBundle {
  const secret = signingKey(key);
  return {
    format: EVIDENCE_FORMAT,
    body,
    signature: {
      algorithm: 'HMAC-SHA256',
      keyDerivation: `HKDF-SHA256(master key, "${SIGNATURE_PURPOSE}")`,
      keyFingerprint: key.fingerprint,
      value: bytesToHex(mac(secret, BODY_DOMAIN, canonicalJson(body))),
      fields: fieldMacs(secret, body as unknown as Record<string, unknown>),
    },
  };
}

export interface CheckResult {
  valid: boolean;
  /** Why not, in one line. */
  reason?: string;
  /** Fields whose value differs from what was signed, and fields added or removed since. */
  changed: string[];
  added: string[];
  removed: string[];
  signedBy: string;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** The envelope of a bundle; a malformed one is an input error (E_INPUT), not an invalid signature. */
function envelope(
  value: unknown,
  source: string,
): {
  body: Record<string, unknown>;
  signature: { value: string; keyFingerprint: string; fields: Record<string, string> };
} {
  if (!isObject(value))
    fail('E_INPUT', `${source} is not a tracemark evidence bundle (expected a JSON object)`);
  if (typeof value.format !== 'string' || !CHECKABLE_FORMATS.includes(value.format)) {
    fail(
      'E_INPUT',
      `${source} is not a tracemark evidence bundle (format is not one of ${CHECKABLE_FORMATS.map((f) => `"${f}"`).join(', ')})`,
    );
  }
  if (!isObject(value.body)) fail('E_INPUT', `${source}: the bundle has no "body" object`);
  const signature = value.signature;
  if (!isObject(signature)) fail('E_INPUT', `${source}: the bundle has no "signature" object`);
  if (signature.algorithm !== 'HMAC-SHA256')
    fail('E_INPUT', `${source}: unsupported signature algorithm (expected HMAC-SHA256)`);
  if (typeof signature.value !== 'string' || !/^[0-9a-f]{64}$/.test(signature.value))
    fail('E_INPUT', `${source}: signature.value is not 64 hex digits`);
  if (typeof signature.keyFingerprint !== 'string')
    fail('E_INPUT', `${source}: signature.keyFingerprint is missing`);
  const fields = signature.fields;
  if (!isObject(fields) || !Object.values(fields).every((v) => typeof v === 'string'))
    fail('E_INPUT', `${source}: signature.fields is not an object of hex digests`);
  return {
    body: value.body,
    signature: {
      value: signature.value,
      keyFingerprint: signature.keyFingerprint,
      fields: fields as Record<string, string>,
    },
  };
}

/** Constant-time equality of two hex strings of equal length. */
function sameHex(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

/**
 * Checks a parsed bundle against `key`. Valid only when the body's HMAC matches and so does every field
 * digest; otherwise the result names the fields that changed, were added or were removed.
 */
export function checkEvidence(value: unknown, key: MasterKey, source = 'the bundle'): CheckResult {
  const { body, signature } = envelope(value, source);
  const secret = signingKey(key);
  const bodyMatches = sameHex(bytesToHex(mac(secret, BODY_DOMAIN, canonicalJson(body))), signature.value);
  const expected = fieldMacs(secret, body);
  const changed: string[] = [];
  const added: string[] = [];
  for (const [path, digest] of Object.entries(expected)) {
    const signed = signature.fields[path];
    if (signed === undefined) added.push(path);
    else if (!sameHex(digest, signed)) changed.push(path);
  }
  const removed = Object.keys(signature.fields).filter((path) => !(path in expected));
  const result = { changed, added, removed, signedBy: signature.keyFingerprint };
  if (bodyMatches && changed.length + added.length + removed.length === 0) return { valid: true, ...result };
  let reason: string;
  if (signature.keyFingerprint !== key.fingerprint) {
    reason = `signed by ${signature.keyFingerprint}, not by the given key ${key.fingerprint}`;
  } else if (bodyMatches) {
    reason = 'the body is intact but the signature block was altered';
  } else if (changed.length + added.length + removed.length === 0) {
    reason = 'the signature does not match the body';
  } else if (changed.length === Object.keys(expected).length && added.length === 0 && removed.length === 0) {
    reason = 'no field matches: the bundle was not signed with this key, or it was rewritten throughout';
  } else {
    const parts = [
      changed.length > 0 ? `changed ${changed.join(', ')}` : '',
      added.length > 0 ? `added ${added.join(', ')}` : '',
      removed.length > 0 ? `removed ${removed.join(', ')}` : '',
    ].filter((p) => p !== '');
    reason = `altered since signing: ${parts.join('; ')}`;
  }
  return { valid: false, reason, ...result };
}

/** SHA-256 in hex of bytes, or of a text's UTF-8 bytes: how responses and samples are named in evidence. */
export function sha256Hex(data: Uint8Array | string): string {
  return bytesToHex(sha256(typeof data === 'string' ? utf8ToBytes(data) : data));
}
