// One-line RangeErrors naming the function and the argument, so a bad statistic is caught where it enters.

export function requireFinite(fn: string, name: string, value: number): void {
  if (!Number.isFinite(value)) throw new RangeError(`${fn}: ${name} must be a finite number, got ${value}`);
}

export function requirePositive(fn: string, name: string, value: number): void {
  if (!(Number.isFinite(value) && value > 0)) {
    throw new RangeError(`${fn}: ${name} must be a finite number > 0, got ${value}`);
  }
}

export function requireInteger(fn: string, name: string, value: number): void {
  if (!Number.isSafeInteger(value)) throw new RangeError(`${fn}: ${name} must be an integer, got ${value}`);
}

export function requireNonNegativeInteger(fn: string, name: string, value: number): void {
  if (!(Number.isSafeInteger(value) && value >= 0)) {
    throw new RangeError(`${fn}: ${name} must be a non-negative integer, got ${value}`);
  }
}

export function requireProbability(fn: string, name: string, value: number): void {
  if (!(value >= 0 && value <= 1)) throw new RangeError(`${fn}: ${name} must be in [0, 1], got ${value}`);
}

export function requireLog10Probability(fn: string, name: string, value: number): void {
  if (!(value <= 0)) throw new RangeError(`${fn}: ${name} must be a log10 probability <= 0, got ${value}`);
}

export function requireProbabilities(fn: string, name: string, values: number[]): void {
  values.forEach((value, i) => {
    requireProbability(fn, `${name}[${i}]`, value);
  });
}

export function requireLog10Probabilities(fn: string, name: string, values: number[]): void {
  values.forEach((value, i) => {
    requireLog10Probability(fn, `${name}[${i}]`, value);
  });
}
