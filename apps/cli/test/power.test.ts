import { describe, expect, it } from 'vitest';
import { tracemark } from './support/cli';

describe('tracemark power', () => {
  const run = (args: string[]) => {
    const result = tracemark(['power', ...args]);
    return { status: result.code, stdout: result.stdout, stderr: result.stderr };
  };

  it('prints the exact figure and the labelled normal approximation, or one error line', () => {
    const ok = run(['--gamma', '0.25', '--effect', '0.01', '--alpha', '1e-6', '--power', '0.9']);
    expect(ok.status).toBe(0);
    expect(ok.stdout).toMatch(/exact\s+69,043 scored tokens/);
    expect(ok.stdout).toMatch(/normal\s+68,667 scored tokens\s+\(normal approximation/);
    const bad = run(['--effect', 'x']);
    expect(bad.status).toBe(2);
    expect(bad.stderr.trim().split('\n')).toEqual(['tracemark: --effect must be a number; got x']);
  });
});
