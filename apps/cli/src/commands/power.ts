import { requiredTokens } from '@tracemark/verifier';
import { fail } from '../errors';

/** The options of `tracemark power`, as commander parses them (declared in main.ts). */
export interface PowerOptions {
  gamma: string;
  effect?: string;
  alpha: string;
  power: string;
  json?: boolean;
}

function numberOption(name: string, text: string): number {
  const value = Number(text);
  if (text.trim() === '' || !Number.isFinite(value))
    fail('E_USAGE', `--${name} must be a number; got ${text}`);
  return value;
}

/** `tracemark power`: scored tokens a fixed-size green-count test needs, exact and by the normal approximation. */
export function runPowerCommand(values: PowerOptions, positionals: string[]): number {
  if (positionals.length > 0) fail('E_USAGE', `power takes no positional arguments; got ${positionals[0]}`);
  if (values.effect === undefined)
    fail('E_USAGE', 'power needs --effect <green-rate increase>, e.g. --effect 0.01');
  const query = {
    gamma: numberOption('gamma', values.gamma),
    effect: numberOption('effect', values.effect),
    alpha: numberOption('alpha', values.alpha),
    power: numberOption('power', values.power),
  };
  const result = requiredTokens(query);
  if (values.json) {
    process.stdout.write(`${JSON.stringify(result)}\n`);
    return 0;
  }
  const n = (x: number) => x.toLocaleString('en-US');
  const p1 = query.gamma + query.effect;
  const lines = [
    `green rate   ${query.gamma} under H0, ${+p1.toFixed(12)} under the alternative (effect ${query.effect})`,
    `test         exact one-sided binomial test at α = ${formatAlpha(query.alpha)}, power ${query.power}`,
    `exact        ${n(result.tokens)} scored tokens  (exact binomial tails: reject at ≥ ${n(result.criticalCount)} green; size ${result.actualAlpha.toExponential(3)}, power ${result.actualPower.toFixed(4)})`,
    `normal       ${n(result.normalApproximation)} scored tokens  (normal approximation, for comparison only)`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  return 0;
}

/** 0.001 stays 0.001; 0.000001 reads 1e-6. */
function formatAlpha(alpha: number): string {
  return alpha >= 1e-3 ? String(alpha) : alpha.toExponential();
}
