/**
 * The permutation test of EXP-edit (Kuditipudi, Thickstun, Hashimoto & Liang 2023, "Robust
 * Distortion-free Watermarks for Language Models", Algorithm 3; reference: github.com/jthickstun/watermark,
 * detect.py `permutation_test`). The observed statistic (minimum alignment cost over shifts, lower is more
 * watermarked) is compared with the statistics of the same text under K fresh key sequences:
 *
 *   p = (1 + #{k : fresh_k ≤ observed}) / (K + 1).
 *
 * Under H0 (the text does not depend on the secret key) the secret key is one more independent draw of the
 * same law as the fresh ones, so the K + 1 statistics are exchangeable and P(p ≤ k/(K+1)) ≤ k/(K+1) for
 * every text, whatever its distribution (ties only make the test conservative).
 *
 * Two statistics are offered. 'levenshtein' (the default) is the paper's: the minimum over the n shifts of
 * the reference's Levenshtein DP, O(n·m²) per key. 'local' is tracemark's own variant of their alignment,
 * not in the paper: one semi-global DP against the unrolled key with positive gap costs, O(m·(n + m)) per
 * key (`localAlignmentStatistic` in @tracemark/watermark). Either is a function of (key, text) alone, so
 * the same exchangeability argument makes the permutation test valid for it.
 *
 * Early stop (`stopAbove`): the count #{fresh ≤ observed} only grows, so once (1 + count)/(K + 1) exceeds
 * stopAbove the full test's p is known to exceed it too. The test then stops and returns that lower bound,
 * flagged `stopped: true`. Every decision "p ≤ α" with α ≤ stopAbove is exactly the full test's; the
 * returned value is not the full p (it is ≤ it), so do not compare it with levels above stopAbove.
 */
import { createRng, ExpEditKey, editStatistic, localAlignmentStatistic } from '@tracemark/watermark';
import { fail } from './errors';

export interface ExpEditTestOptions {
  /** K, the number of fresh key sequences (default 999). */
  nullKeys?: number;
  /** Seed of the fresh keys (default a fixed public string, so runs are reproducible); never the secret. */
  seed?: string;
  /**
   * 'levenshtein' (default): the reference statistic of Kuditipudi et al. 2023. 'local': tracemark's
   * fast semi-global variant (see `localAlignmentStatistic`), with gap cost `localGap`.
   */
  statistic?: 'levenshtein' | 'local';
  /**
   * Gap cost of the 'local' statistic, for both insertions and deletions (default 1.5, the best of 0.5–3
   * on 30 % deletion, insertion and substitution in tracemark's measurements). Must be > 0.
   */
  localGap?: number;
  /**
   * Stop as soon as the p-value is certain to exceed this (in (0, 1]); the result then has
   * `stopped: true` and a pValue that is a lower bound on the full test's (still > stopAbove).
   */
  stopAbove?: number;
}

export interface ExpEditTestResult {
  /** (1 + #{fresh ≤ observed}) / (K + 1): at least 1/(K+1). */
  pValue: number;
  log10PValue: number;
  /**
   * The observed statistic (lower is more watermarked): 'levenshtein', the min over shifts of the
   * alignment cost; 'local', the semi-global alignment cost.
   */
  statistic: number;
  nullKeys: number;
  /** Tokens scored. */
  scored: number;
  /** Mean and standard deviation of the fresh statistics evaluated (all K unless stopped early). */
  nullMean: number;
  nullSd: number;
  /** −(statistic − nullMean) / nullSd: larger is more watermarked. A convenience, never the test. */
  zScore: number;
  /**
   * 'levenshtein': the shift attaining the observed statistic. 'local': the key position where the best
   * alignment ends.
   */
  shift: number;
  statisticKind: 'levenshtein' | 'local';
  /** Fresh keys actually evaluated: nullKeys unless stopped early (nullMean and nullSd are over these). */
  evaluatedKeys: number;
  /** True when `stopAbove` ended the test early: pValue is then a lower bound that exceeds stopAbove. */
  stopped: boolean;
}

export const EXP_EDIT_TEST_DEFAULTS = {
  nullKeys: 999,
  seed: 'tracemark/exp-edit/null-keys/v1',
  statistic: 'levenshtein',
  localGap: 1.5,
} as const;

const MAX_NULL_KEYS = 1_000_000;

export function expEditTest(
  tokens: ArrayLike<number>,
  key: ExpEditKey,
  options: ExpEditTestOptions = {},
): ExpEditTestResult {
  const nullKeys = options.nullKeys ?? EXP_EDIT_TEST_DEFAULTS.nullKeys;
  if (!Number.isInteger(nullKeys) || nullKeys < 1 || nullKeys > MAX_NULL_KEYS) {
    fail(
      'E_INVALID_OPTIONS',
      `nullKeys must be an integer in [1, ${MAX_NULL_KEYS}]; got ${String(nullKeys)}`,
    );
  }
  const seed = options.seed ?? EXP_EDIT_TEST_DEFAULTS.seed;
  if (typeof seed !== 'string') fail('E_INVALID_OPTIONS', 'seed must be a string');
  const kind = options.statistic ?? EXP_EDIT_TEST_DEFAULTS.statistic;
  if (kind !== 'levenshtein' && kind !== 'local')
    fail('E_INVALID_OPTIONS', `statistic must be 'levenshtein' or 'local'; got ${String(kind)}`);
  const gap = options.localGap ?? EXP_EDIT_TEST_DEFAULTS.localGap;
  if (!(typeof gap === 'number' && gap > 0 && Number.isFinite(gap)))
    fail('E_INVALID_OPTIONS', `localGap must be a finite number > 0; got ${String(gap)}`);
  const stopAbove = options.stopAbove;
  if (stopAbove !== undefined && !(typeof stopAbove === 'number' && stopAbove > 0 && stopAbove <= 1))
    fail('E_INVALID_OPTIONS', `stopAbove must be a number in (0, 1]; got ${String(stopAbove)}`);
  if (tokens.length === 0) fail('E_EMPTY_TEXT', 'there are no tokens to score');
  const vocab = key.spec.vocabSize;
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i];
    if (!(t >>> 0 === t && t < vocab)) {
      fail('E_TOKEN_RANGE', `token id ${t} is outside the vocabulary [0, ${vocab})`);
    }
  }

  let observedStatistic: number;
  let shift: number;
  if (kind === 'local') {
    const local = localAlignmentStatistic(key, tokens, gap, gap);
    observedStatistic = local.statistic;
    shift = local.end;
  } else {
    const edit = editStatistic(key, tokens);
    observedStatistic = edit.statistic;
    shift = edit.shift;
  }
  const score = (fresh: ExpEditKey): number =>
    kind === 'local'
      ? localAlignmentStatistic(fresh, tokens, gap, gap).statistic
      : editStatistic(fresh, tokens).statistic;
  // (1 + atMost)/(K + 1) > stopAbove  ⇔  atMost > stopAbove·(K + 1) − 1: the count that ends the test.
  const stopCount = stopAbove === undefined ? Number.POSITIVE_INFINITY : stopAbove * (nullKeys + 1) - 1;
  const rng = createRng(seed);
  const values = new Float64Array(nullKeys);
  let atMost = 0;
  let sum = 0;
  let evaluated = 0;
  let stopped = false;
  while (evaluated < nullKeys) {
    const value = score(ExpEditKey.fresh(key.spec, rng));
    values[evaluated++] = value;
    sum += value;
    if (value <= observedStatistic) {
      atMost++;
      if (atMost > stopCount && evaluated < nullKeys) {
        stopped = true;
        break;
      }
    }
  }
  const pValue = (1 + atMost) / (nullKeys + 1);
  const nullMean = sum / evaluated;
  let squares = 0;
  for (let k = 0; k < evaluated; k++) squares += (values[k] - nullMean) ** 2;
  const nullSd = evaluated > 1 ? Math.sqrt(squares / (evaluated - 1)) : 0;
  return {
    pValue,
    log10PValue: Math.log10(pValue),
    statistic: observedStatistic,
    nullKeys,
    scored: tokens.length,
    nullMean,
    nullSd,
    zScore: nullSd > 0 ? -(observedStatistic - nullMean) / nullSd : 0,
    shift,
    statisticKind: kind,
    evaluatedKeys: evaluated,
    stopped,
  };
}
