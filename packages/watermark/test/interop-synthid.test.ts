import { describe, expect, it } from 'vitest';
import {
  createInteropScheme,
  GenerationSession,
  type HfSynthIdScheme,
  hfSynthIdSamplingTable,
  parseInteropSpec,
  type SynthIdTextScheme,
  synthIdDepthWeights,
  synthIdTextHashIv,
  tournamentUpdate,
} from '../src/index';
import { createRng } from '../src/sampler';
import vectors from './fixtures/interop.json';

function closeRel(actual: number, expected: number, tolerance = 1e-9): void {
  if (expected === 0) expect(actual).toBe(0);
  else expect(Math.abs(actual - expected)).toBeLessThanOrEqual(tolerance * Math.abs(expected));
}

type Variant = HfSynthIdScheme | SynthIdTextScheme;

function schemeOf(vector: (typeof vectors.synthid)[number]): Variant {
  const { variant, ids: _ids, gValues: _g, mask: _m, mean: _mean, weightedMean: _w, ...config } = vector;
  return createInteropScheme({ scheme: variant, ...config }) as Variant;
}

/** The float32 spacing at x (one unit in the last place). */
function ulp32(x: number): number {
  const f = new Float32Array([Math.abs(x)]);
  const u = new Uint32Array(f.buffer);
  u[0] += 1;
  return f[0] - Math.abs(Math.fround(x));
}

describe('SynthID detection (transformers and google-deepmind/synthid-text)', () => {
  it.each(vectors.synthid)('reproduces $variant g-values, masks and scores', (vector) => {
    const d = schemeOf(vector).detect(vector.ids);
    const rows: number[][] = [];
    for (let r = 0; r < d.rows; r++)
      rows.push(Array.from(d.gValues.subarray(r * d.depth, (r + 1) * d.depth)));
    expect(rows).toEqual(vector.gValues);
    expect(Array.from(d.mask)).toEqual(vector.mask);
    closeRel(d.mean, vector.mean);
    closeRel(d.weightedMean, vector.weightedMean);
    expect(d.numTokensScored).toBe(vector.mask.reduce((a, b) => a + b, 0));
  });

  it('scores a token as the number of its g-values that are 1 (the Scheme contract)', () => {
    for (const vector of vectors.synthid) {
      const scheme = schemeOf(vector);
      vector.gValues.forEach((row, r) => {
        expect(scheme.score(vector.ids, r + vector.ngramLen - 1)).toBe(row.reduce((a, b) => a + b, 0));
      });
    }
  });

  it('uses the sampling table randint(0, 2, size) and its real mean as the null probability', () => {
    const table = hfSynthIdSamplingTable(65536, 0);
    const record = vectors.randint01.find((v) => v.seed === '0');
    expect(Array.from(table.subarray(0, 64))).toEqual(record?.head);
    const scheme = schemeOf(vectors.synthid[0]) as HfSynthIdScheme;
    expect(scheme.tableMean).toBe(32743 / 65536);
    expect(scheme.nullLaw).toEqual({ kind: 'binomial', trials: 9, p: 32743 / 65536 });
    expect(schemeOf(vectors.synthid[1]).nullLaw).toEqual({ kind: 'binomial', trials: 9, p: 0.5 });
  });

  it("derives synthid-text's initial hash from SHA-256 of the keys, below 2^63 - 1", () => {
    const iv = synthIdTextHashIv([654, 400, 836, 123, 340, 443, 597, 160, 57]);
    expect(iv).toBeGreaterThan(0n);
    expect(iv).toBeLessThan(2n ** 63n - 1n);
    expect(synthIdTextHashIv([1, 2])).not.toBe(synthIdTextHashIv([2, 1]));
  });

  it('handles a table size that is not a power of two through the full 64-bit remainder', () => {
    const keys = [654, -400, '9223372036854775807', '-9223372036854775808'];
    const odd = createInteropScheme({
      scheme: 'hf-synthid',
      keys,
      samplingTableSize: 65537,
    }) as HfSynthIdScheme;
    const ids = Array.from({ length: 30 }, (_, i) => (i * 104729) % 256000);
    const d = odd.detect(ids);
    expect(d.rows).toBe(26);
    expect(d.gValues.every((g) => g === 0 || g === 1)).toBe(true);
  });

  it('keys a context by its 64-bit hash, and an input by the n-gram hash that decides its g-values', () => {
    const scheme = schemeOf(vectors.synthid[0]);
    const a = new Uint32Array(2);
    const b = new Uint32Array(2);
    const ids = vectors.synthid[0].ids;
    // Tokens 20..29 repeat tokens 0..9, so the contexts before 24 and 4 agree.
    scheme.contextKey(ids, 24, a);
    scheme.contextKey(ids, 4, b);
    expect(a).toEqual(b);
    scheme.inputKey(ids, 24, a);
    scheme.inputKey(ids, 4, b);
    expect(a).toEqual(b);
    scheme.inputKey(ids, 31, a);
    expect(a).not.toEqual(b);
  });

  it('uses linspace(10, 1, depth) weights normalised to sum to depth', () => {
    const w = synthIdDepthWeights(9);
    expect(w.reduce((a, b) => a + b, 0)).toBeCloseTo(9, 12);
    expect(w[0] / w[8]).toBeCloseTo(10, 12);
    expect(synthIdDepthWeights(1)).toEqual([1]);
  });

  it('fills defaults, keeps vocabSize optional for detection, and rejects bad specs', () => {
    expect(parseInteropSpec({ scheme: 'hf-synthid', keys: [1, 2] })).toEqual({
      scheme: 'hf-synthid',
      version: 1,
      vocabSize: 16777216,
      keys: [1, 2],
      ngramLen: 5,
      samplingTableSize: 65536,
      samplingTableSeed: 0,
      contextHistorySize: 1024,
    });
    const bad: [object, string][] = [
      [{ scheme: 'synthid-text' }, 'keys must be a list'],
      [{ scheme: 'synthid-text', keys: [] }, 'keys must be a list'],
      [{ scheme: 'synthid-text', keys: [1.5] }, 'keys must be a list of signed 64-bit integers'],
      [{ scheme: 'synthid-text', keys: ['9223372036854775808'] }, 'signed 64-bit'],
      [{ scheme: 'synthid-text', keys: [1], ngramLen: 1 }, 'ngramLen'],
      [{ scheme: 'hf-synthid', keys: [1], eosTokenId: -1 }, 'eosTokenId'],
      [{ scheme: 'hf-synthid', keys: [1], topK: 40 }, 'unknown field "topK"'],
    ];
    for (const [spec, message] of bad) {
      expect(() => parseInteropSpec(spec)).toThrow(expect.objectContaining({ code: 'E_INVALID_SPEC' }));
      expect(() => parseInteropSpec(spec)).toThrow(message);
    }
    const scheme = createInteropScheme({ scheme: 'hf-synthid', keys: [1], vocabSize: 10 });
    expect(() => (scheme as HfSynthIdScheme).detect([1, 2, 3, 4, 11])).toThrow(
      expect.objectContaining({ code: 'E_TOKEN_RANGE' }),
    );
    expect(() => (scheme as HfSynthIdScheme).detect([1, 2, 3])).toThrow(
      expect.objectContaining({ code: 'E_CONTEXT_TOO_SHORT' }),
    );
  });
});

describe('SynthID tournament update (update_scores)', () => {
  it.each(vectors.synthidUpdateScores.map((v, i) => ({ ...v, i })))(
    'reproduces torch float32 vector $i',
    ({ scores, g, out, i }) => {
      const n = scores.length;
      const depth = g[0].length;
      const layers = new Uint8Array(n * depth);
      for (let c = 0; c < n; c++) for (let l = 0; l < depth; l++) layers[l * n + c] = g[c][l];
      const result = tournamentUpdate(Float32Array.from(scores), n, layers, depth, new Float32Array(n), {
        float32: true,
      });
      result.forEach((value, c) => {
        if (i === 1 && c === 3) {
          // torch's vectorised logf (SLEEF, ≤ 1 ulp) rounds this one the other way: log p lies within 0.2%
          // of an ulp from the midpoint of two float32 values, and the correctly rounded log (here, and
          // glibc's logf) picks the other one. Every input to the log agrees bit for bit.
          expect(Math.abs(value - out[c])).toBeLessThanOrEqual(ulp32(out[c]));
        } else {
          closeRel(value, out[c]);
        }
      });
    },
  );

  it("keeps the expected distribution over the keys (E[p'] = p for each layer)", () => {
    // Averaged over both values of one layer's g on two candidates, the update preserves p.
    const scores = Float32Array.from([0.3, -1.2]);
    const total = new Float64Array(2);
    for (const g of [
      [0, 0],
      [0, 1],
      [1, 0],
      [1, 1],
    ]) {
      const out = tournamentUpdate(scores, 2, Uint8Array.from(g), 1, new Float32Array(2));
      total[0] += Math.exp(out[0]) / 4;
      total[1] += Math.exp(out[1]) / 4;
    }
    const p0 = Math.exp(0.3) / (Math.exp(0.3) + Math.exp(-1.2));
    expect(total[0]).toBeCloseTo(p0, 6);
  });
});

/** A synthetic model: i.i.d. Gaussian logits (σ = 3) per step, from a seeded stream. */
function syntheticLogits(vocabSize: number, seed: string): () => Float32Array {
  const u = createRng(seed);
  return () => {
    const logits = new Float32Array(vocabSize);
    for (let i = 0; i < vocabSize; i++)
      logits[i] = 3 * Math.sqrt(-2 * Math.log(1 - u())) * Math.cos(2 * Math.PI * u());
    return logits;
  };
}

describe('SynthID embedding through GenerationSession', () => {
  it.each(['hf-synthid', 'synthid-text'])(
    'raises the mean g-value of %s text and not of plain text',
    (name) => {
      const keys = Array.from({ length: 20 }, (_, i) => 1000 + 37 * i);
      const scheme = createInteropScheme({ scheme: name, keys, vocabSize: 4096 }) as Variant;
      const run = (watermark: boolean) => {
        const next = syntheticLogits(4096, 'synthid-model');
        const sampling = name === 'synthid-text' ? { topK: 40 } : {};
        const session = new GenerationSession(scheme, {
          prompt: [1, 2, 3, 4],
          seed: 's',
          watermark,
          sampling,
        });
        for (let i = 0; i < 200; i++) session.next(next());
        return scheme.detect(session.tokens);
      };
      const marked = run(true);
      const plain = run(false);
      expect(marked.mean).toBeGreaterThan(0.53);
      expect(Math.abs(plain.mean - 0.5)).toBeLessThan(0.03);
    },
  );
});
