/**
 * Detection of the Python stacks' watermarks (transformers KGW and SynthID, lm-watermarking,
 * google-deepmind/synthid-text) from token ids and an interop spec: the reference detectors' own numbers,
 * bit for bit, beside tracemark's exact p-values. The schemes themselves live in @tracemark/watermark
 * (createInteropScheme); this file only adds the statistics.
 */
import {
  canonicalJson,
  createInteropScheme,
  type HfKgwScheme,
  hfApproxPValue,
  type InteropScheme,
  type InteropSchemeName,
  type LmwKgwScheme,
  type NullLaw,
  parseInteropSpec,
  type Scheme,
  type SynthIdInteropBase,
  WatermarkError,
} from '@tracemark/watermark';
import { schemeIdentity, type TestResult, testResult } from './result';
import { normalUpperTail } from './stats/index';

/**
 * The one result type, with the reference detector's own fields beside it. `pValue` is tracemark's exact
 * upper tail of `scoreSum` (green count or g-value sum) over `scored` tokens under `nullLaw`; `zScore` is the
 * reference detector's.
 */
interface InteropDetectionBase extends TestResult {
  scheme: InteropSchemeName;
  /** Tokens that counted (KGW: scored n-grams; SynthID: n-grams left by the masks; windowed: the window). */
  numTokensScored: number;
}

export interface KgwInteropDetection extends InteropDetectionBase {
  scheme: 'hf-kgw' | 'lmw-kgw';
  numGreenTokens: number;
  /** The reference detector's z-score (γ from the spec). */
  zScore: number;
  /** P[one scored token is green] under H0: G/V with G = int(V·γ), the exact green-list fraction. */
  nullGreenProbability: number;
  /** Green flag of every n-gram in order, before de-duplication (the reference's green_token_mask). */
  greenTokenMask: boolean[];
}

export interface HfKgwInteropDetection extends KgwInteropDetection {
  scheme: 'hf-kgw';
  /**
   * transformers' own p-value (WatermarkDetector._compute_pval), an approximation of the normal tail
   * that bottoms out at ~1e-16; reported as transformers computes it, never used as the test.
   */
  hfPValue: number;
}

export interface LmwKgwInteropDetection extends KgwInteropDetection {
  scheme: 'lmw-kgw';
  /** lm-watermarking's own p-value: scipy.stats.norm.sf(zScore), the normal approximation. */
  lmwPValue: number;
  /** With windowSize: the best window's size (numTokensScored and zScore are that window's). */
  bestWindow?: number;
  /** With windowSize: windows tried, and pValue corrected for them (Bonferroni: min(1, windows · p)). */
  windowsTried?: number;
  correctedPValue?: number;
}

export interface SynthIdInteropDetection extends InteropDetectionBase {
  scheme: 'hf-synthid' | 'synthid-text';
  /** synthid_text mean_score / weighted_mean_score over the unmasked n-grams. */
  mean: number;
  weightedMean: number;
  /** Sum of the unmasked g-values, and the number of them (numTokensScored × depth). */
  gValueSum: number;
  gValueCount: number;
  /** P[g = 1] under H0 used by pValue: the sampling table's actual mean (hf-synthid) or ½ (synthid-text). */
  nullGValueProbability: number;
  /** 1 where an n-gram counted (context not repeated, before any EOS), per n-gram in order. */
  mask: number[];
}

export type InteropDetection = HfKgwInteropDetection | LmwKgwInteropDetection | SynthIdInteropDetection;

function checkIds(ids: ArrayLike<number>): void {
  if (ids === null || typeof ids !== 'object' || typeof ids.length !== 'number') {
    throw new WatermarkError('E_TOKEN_RANGE', 'token ids must be an array of non-negative integers');
  }
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    if (!(Number.isInteger(id) && id >= 0 && id < 2 ** 31)) {
      throw new WatermarkError(
        'E_TOKEN_RANGE',
        `token id ${String(id)} at position ${i} is not a non-negative integer id`,
      );
    }
  }
}

/** The exact test of an interop detector's count under the null law its p-value uses. */
function exactTest(scheme: Scheme, nullLaw: NullLaw, sum: number, scored: number): TestResult {
  return testResult({ ...schemeIdentity(scheme), nullLaw }, sum, scored);
}

/** KGW schemes kept between detectInterop calls, so that green lists one call cached serve the next. */
const KEPT_KGW_SCHEMES = 4;
/** Green-list cache bound of each kept scheme: 64 MiB across all of them. */
const KEPT_SCHEME_CACHE_BYTES = 16 * 1024 * 1024;
const keptSchemes = new Map<string, InteropScheme & Scheme>();

/** The scheme of a spec: a kept one for the same KGW spec (exact: caches never change a result), or a new one. */
function interopScheme(spec: unknown): InteropScheme & Scheme {
  const parsed = parseInteropSpec(spec);
  if (parsed.scheme !== 'hf-kgw' && parsed.scheme !== 'lmw-kgw') return createInteropScheme(parsed);
  const key = canonicalJson(parsed);
  let scheme = keptSchemes.get(key);
  if (scheme !== undefined) {
    keptSchemes.delete(key);
  } else {
    scheme = createInteropScheme(parsed, { maxBytes: KEPT_SCHEME_CACHE_BYTES });
    if (keptSchemes.size >= KEPT_KGW_SCHEMES) keptSchemes.delete(keptSchemes.keys().next().value as string);
  }
  // Map order is insertion order: re-inserting marks the scheme most recently used.
  keptSchemes.set(key, scheme);
  return scheme;
}

/**
 * Detects an interop watermark in token ids. Throws WatermarkError: E_UNKNOWN_SCHEME / E_INVALID_SPEC for
 * a bad spec, E_TOKEN_RANGE for a bad id, E_CONTEXT_TOO_SHORT when nothing can be scored.
 */
export function detectInterop(ids: ArrayLike<number>, spec: unknown): InteropDetection {
  checkIds(ids);
  const scheme = interopScheme(spec);
  switch (scheme.spec.scheme) {
    case 'hf-kgw': {
      const d = (scheme as HfKgwScheme).detect(ids);
      // Exact: green count ~ Binomial(scored, G/V) when every scored n-gram gets an independent seed.
      const law: NullLaw = { kind: 'bernoulli', p: d.nullGreenProbability };
      return {
        ...exactTest(scheme, law, d.numGreenTokens, d.numTokensScored),
        scheme: 'hf-kgw',
        numTokensScored: d.numTokensScored,
        numGreenTokens: d.numGreenTokens,
        zScore: d.zScore,
        hfPValue: hfApproxPValue(d.zScore),
        nullGreenProbability: d.nullGreenProbability,
        greenTokenMask: Array.from(d.greenTokenMask, (g) => g === 1),
      };
    }
    case 'lmw-kgw': {
      const d = (scheme as LmwKgwScheme).detect(ids);
      const law: NullLaw = { kind: 'bernoulli', p: d.nullGreenProbability };
      const exact = exactTest(scheme, law, d.numGreenTokens, d.numTokensScored);
      const result: LmwKgwInteropDetection = {
        ...exact,
        scheme: 'lmw-kgw',
        numTokensScored: d.numTokensScored,
        numGreenTokens: d.numGreenTokens,
        zScore: d.zScore,
        lmwPValue: normalUpperTail(d.zScore).p,
        nullGreenProbability: d.nullGreenProbability,
        greenTokenMask: Array.from(d.greenTokenMask, (g) => g === 1),
      };
      if (d.bestWindow !== undefined && d.windowsTried !== undefined) {
        // The best window is chosen by its score, so its own p-value is optimistic; the corrected one is not.
        result.bestWindow = d.bestWindow;
        result.windowsTried = d.windowsTried;
        result.correctedPValue = Math.min(
          1,
          10 ** Math.min(0, exact.log10PValue + Math.log10(d.windowsTried)),
        );
      }
      return result;
    }
    case 'hf-synthid':
    case 'synthid-text': {
      const synthid = scheme as SynthIdInteropBase;
      const d = synthid.detect(ids);
      const trials = d.numTokensScored * d.depth;
      // Exact tail of the g-value sum: Binomial(depth · scored, p) with p = the table's mean for hf-synthid
      // (its g-values are table entries at uniform positions under H0) and ½ for synthid-text (hash bits).
      const law: NullLaw = { kind: 'binomial', trials: d.depth, p: d.nullGValueProbability };
      return {
        ...exactTest(scheme, law, d.gValueSum, d.numTokensScored),
        scheme: synthid.spec.scheme,
        numTokensScored: d.numTokensScored,
        mean: d.mean,
        weightedMean: d.weightedMean,
        gValueSum: d.gValueSum,
        gValueCount: trials,
        nullGValueProbability: d.nullGValueProbability,
        mask: Array.from(d.mask),
      };
    }
  }
}
