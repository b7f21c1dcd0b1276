import type { NullLaw } from '@tracemark/watermark';
import { binomialUpperTail, gammaUpperTail, type TailProbability } from './stats/index';

/**
 * The exact tests of a score sum under a scheme's null law: Bernoulli(γ) green bits (binomial tail),
 * m fair bits per token (binomial over m·N), or Exp(1) scores (Gamma tail). The one place where a score
 * sum becomes a p-value.
 */

/** Exact upper tail of a sum of `scored` scores under the null law. */
export function nullTail(law: NullLaw, sum: number, scored: number): TailProbability {
  if (scored === 0) return { p: 1, log10p: 0 };
  switch (law.kind) {
    case 'bernoulli':
      return binomialUpperTail(Math.round(sum), scored, law.p);
    case 'binomial':
      return binomialUpperTail(Math.round(sum), law.trials * scored, law.p);
    case 'exponential':
      return gammaUpperTail(sum, scored);
  }
}

/** Mean and variance of one score under the null law. */
export function nullMoments(law: NullLaw): { mean: number; variance: number } {
  switch (law.kind) {
    case 'bernoulli':
      return { mean: law.p, variance: law.p * (1 - law.p) };
    case 'binomial':
      return { mean: law.trials * law.p, variance: law.trials * law.p * (1 - law.p) };
    case 'exponential':
      return { mean: 1, variance: 1 };
  }
}

/** (sum − mean) / sd under H0: a convenience for people, never the test. */
export function zScore(law: NullLaw, sum: number, scored: number): number {
  if (scored === 0) return 0;
  const { mean, variance } = nullMoments(law);
  return (sum - scored * mean) / Math.sqrt(scored * variance);
}

/**
 * The randomized p-value P[S > s] + U · P[S = s], U uniform on (0, 1): exactly Uniform(0, 1) under H0 for the
 * discrete laws, equal to the ordinary p-value for the continuous one (Gamma). Calibration checks (a KS test
 * over many control keys) use it, since the exact p-values of a few hundred Bernoulli scores have atoms of
 * several percent that a KS test over hundreds of keys sees. With nothing scored it is U itself.
 */
export function randomizedPValue(law: NullLaw, sum: number, scored: number, u: number): number {
  if (scored === 0) return u;
  const atLeast = nullTail(law, sum, scored).p;
  if (law.kind === 'exponential') return atLeast;
  const above = nullTail(law, Math.round(sum) + 1, scored).p;
  return Math.min(1, Math.max(0, above + u * (atLeast - above)));
}
