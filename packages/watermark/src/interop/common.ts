/** Pieces shared by the interop schemes. */
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex, utf8ToBytes } from '@noble/hashes/utils.js';
import { fail } from '../errors';
import { lowbias32 } from '../mix';
import type { KeyIdentity } from '../scheme';
import { canonicalJson } from '../spec';

/**
 * A printable fingerprint of an interop spec. Interop schemes are keyed by the integers in their spec,
 * not by a tracemark master key; the fingerprint tells two keys apart without printing them.
 */
export function interopFingerprint(scheme: string, spec: unknown): string {
  const digest = sha256(utf8ToBytes(`tracemark/interop/v1\0${canonicalJson(spec)}`));
  return `${scheme}:${bytesToHex(digest.subarray(0, 8))}`;
}

/** The key identity of an interop scheme: its spec's fingerprint, under the master name `interop:<scheme>`. */
export function interopKey(scheme: string, spec: unknown): KeyIdentity {
  return {
    fingerprint: interopFingerprint(scheme, spec),
    masterFingerprint: `interop:${scheme}`,
    tenant: undefined,
  };
}

/** Checks one token id against the vocabulary, with the position in the message. */
export function checkToken(token: number, index: number, vocabSize: number): void {
  if (!(Number.isInteger(token) && token >= 0 && token < vocabSize)) {
    fail(
      'E_TOKEN_RANGE',
      `token id ${token} at position ${index} is outside the vocabulary [0, ${vocabSize})`,
    );
  }
}

/** Checks every id of a sequence (detectors read whole sequences). */
export function checkTokens(ids: ArrayLike<number>, vocabSize: number): void {
  for (let i = 0; i < ids.length; i++) checkToken(ids[i], i, vocabSize);
}

/** The key of an n-gram, for counting repeats exactly (no hashing, so no collisions). */
export function ngramKey(ids: ArrayLike<number>, start: number, length: number): string {
  let key = '';
  for (let j = 0; j < length; j++) key += `${ids[start + j]},`;
  return key;
}

/** The reference KGW z-score, evaluated in the same order as numpy / Python does it. */
export function kgwZScore(green: number, scored: number, gamma: number): number {
  const numer = green - gamma * scored;
  const denom = Math.sqrt(scored * gamma * (1 - gamma));
  return numer / denom;
}

/**
 * A 64-bit key of sequence[start..end) (for Scheme.contextKey where the whole window decides the seed):
 * two chained lowbias32 streams, so that distinct windows collide with probability about 2^-64.
 */
export function windowKey64(sequence: ArrayLike<number>, start: number, end: number, out: Uint32Array): void {
  let a = 0x9e3779b9 ^ (end - start);
  let b = 0x85ebca6b;
  for (let i = start; i < end; i++) {
    const w = sequence[i] >>> 0;
    a = lowbias32((a ^ w) >>> 0);
    b = lowbias32((b + w + a) | 0);
  }
  out[0] = a;
  out[1] = b;
}
