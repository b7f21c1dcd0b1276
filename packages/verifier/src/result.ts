import type { NullLaw, Scheme, SchemeSpec } from '@tracemark/watermark';
import { nullTail, zScore } from './null-law';

/** Which scheme and key a result is about; no secret, only fingerprints. */
export interface SchemeIdentity {
  scheme: string;
  spec: SchemeSpec;
  keyFingerprint: string;
  masterFingerprint: string;
  tenant?: string;
  nullLaw: NullLaw;
}

export function schemeIdentity(scheme: Scheme): SchemeIdentity {
  return {
    scheme: scheme.spec.scheme,
    spec: scheme.spec as SchemeSpec,
    keyFingerprint: scheme.keyFingerprint,
    masterFingerprint: scheme.masterFingerprint,
    ...(scheme.tenant === undefined ? {} : { tenant: scheme.tenant }),
    nullLaw: scheme.nullLaw,
  };
}

/**
 * The one base of every test's result (text detection, radioactivity, investigation, interop detection, a
 * lab row, a scan record): the scheme identity, the exact p-value of the score sum under the null law, and
 * what it was computed from. Each test adds its own fields.
 */
export interface TestResult extends SchemeIdentity {
  /** Exact upper-tail p-value of the score sum under the null law (log10 stays finite where p underflows). */
  pValue: number;
  log10PValue: number;
  /** (sum − mean) / sd under H0: a convenience, never the test. */
  zScore: number;
  /** Scored (counted) tokens, and the sum of their scores. */
  scored: number;
  scoreSum: number;
}

/** The base fields of a test of `scored` scores summing to `scoreSum` under `identity`'s null law. */
export function testResult(identity: SchemeIdentity, scoreSum: number, scored: number): TestResult {
  const tail = nullTail(identity.nullLaw, scoreSum, scored);
  return {
    ...identity,
    pValue: tail.p,
    log10PValue: tail.log10p,
    zScore: zScore(identity.nullLaw, scoreSum, scored),
    scored,
    scoreSum,
  };
}
