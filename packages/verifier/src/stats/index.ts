export { binomialCountInterval, binomialLowerTail, binomialUpperTail } from './binomial';
export { chiSquareUpperTail } from './chiSquare';
export { gammaLowerTail, gammaUpperTail } from './gamma';
export { holmAdjust, holmAdjustLog10 } from './holm';
export { type KolmogorovSmirnovResult, kolmogorovSmirnovUniform } from './ks';
export { logGamma } from './logGamma';
export { normalUpperTail } from './normal';
export type { TailProbability } from './tail';
