import { createRng, createScheme, GenerationSession, MasterKey } from '@tracemark/watermark';
import { describe, expect, it } from 'vitest';
import { buildWindowFilter, radioactivityTest, type SuspectSample } from '../src/index';

const V = 2000;
const owner = MasterKey.parse('33'.repeat(32));
const spec = { scheme: 'kgw', vocabSize: V, gamma: 0.25, delta: 2, contextWidth: 1 };

function logits(sequence: number[]): Float32Array {
  const rng = createRng(`ctx:${sequence[sequence.length - 1]}`);
  const out = new Float32Array(V);
  for (let t = 0; t < V; t++)
    out[t] = 2.5 * Math.sqrt(-2 * Math.log(1 - rng())) * Math.cos(2 * Math.PI * rng());
  return out;
}

function generate(prompt: number[], length: number, watermark: boolean, seed: string): number[] {
  const session = new GenerationSession(createScheme(spec, owner), { prompt, seed, watermark });
  for (let i = 0; i < length; i++) session.next(logits(session.tokens));
  return session.generated;
}

/** Watermarked texts from the owner's model, used as prompts (as an investigator would send them). */
const watermarkedPrompts = Array.from({ length: 40 }, (_, k) => generate([k + 1], 60, true, `prompt-${k}`));

describe('radioactivityTest', () => {
  it('detects a suspect whose outputs carry the watermark, with a trajectory', () => {
    const samples: SuspectSample[] = watermarkedPrompts.map((prompt, k) => ({
      prompt,
      output: generate(prompt, 80, true, `out-${k}`),
    }));
    const result = radioactivityTest(samples, { scheme: createScheme(spec, owner) });
    expect(result.log10PValue).toBeLessThan(-30);
    expect(result.seen).toBe(40 * 80);
    expect(
      result.scored + result.skipped.duplicate + result.skipped.promptWindow + result.skipped.context,
    ).toBe(result.seen);
    expect(result.trajectory.length).toBeGreaterThan(5);
    expect(result.trajectory[result.trajectory.length - 1]).toEqual({
      scored: result.scored,
      log10PValue: result.log10PValue,
    });
    for (let i = 1; i < result.trajectory.length; i++)
      expect(result.trajectory[i].scored).toBeGreaterThan(result.trajectory[i - 1].scored);
  });

  it('does not fall into the trap of quoted watermarked prompts (and shows the trap without de-duplication)', () => {
    // A clean suspect that never saw watermarked training text but, like many models, quotes its prompt:
    // every output copies a stretch of its (watermarked) prompt, then continues unwatermarked, several times over.
    const rng = createRng('copy');
    const samples: SuspectSample[] = watermarkedPrompts.map((prompt, k) => {
      const output: number[] = [];
      for (let round = 0; round < 4; round++) {
        const from = Math.floor(rng() * (prompt.length - 20));
        output.push(...prompt.slice(from, from + 20));
        output.push(...generate([...prompt, ...output], 10, false, `clean-${k}-${round}`));
      }
      return { prompt, output };
    });
    const scheme = createScheme(spec, owner);
    const trap = radioactivityTest(samples, { scheme, dedup: false, dropPromptWindows: false });
    expect(trap.log10PValue).toBeLessThan(-10);
    const guarded = radioactivityTest(samples, { scheme });
    expect(guarded.pValue).toBeGreaterThan(1e-3);
    expect(guarded.skipped.promptWindow).toBeGreaterThan(0);
    // The clean suspect is still not radioactive for keys that were never used.
    const control = radioactivityTest(samples, {
      scheme: createScheme(spec, MasterKey.parse('21'.repeat(32))),
    });
    expect(control.pValue).toBeGreaterThan(1e-4);
  });

  it('keeps only windows of the owner’s text when given a filter', () => {
    const samples: SuspectSample[] = watermarkedPrompts.slice(0, 10).map((prompt, k) => ({
      prompt: [prompt[0]],
      output: generate([prompt[0]], 50, false, `f-${k}`),
    }));
    const filter = buildWindowFilter(watermarkedPrompts.slice(0, 5), 1);
    const result = radioactivityTest(samples, { scheme: createScheme(spec, owner), filter });
    expect(result.skipped.filtered).toBeGreaterThan(0);
    expect(
      result.scored + result.skipped.filtered + result.skipped.duplicate + result.skipped.promptWindow,
    ).toBe(result.seen);
  });
});
