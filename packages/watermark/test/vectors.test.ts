import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  createScheme,
  KeySet64,
  MasterKey,
  shortWindowKeyHi,
  shortWindowKeyLo,
  windowKey,
} from '../src/index';

interface NativeVectors {
  keyHex: string;
  sequence: number[];
  cases: {
    spec: { contextWidth: number } & Record<string, unknown>;
    scores: number[];
    greenAfterPrefix10?: number[];
  }[];
}

const vectors = JSON.parse(
  readFileSync(new URL('./fixtures/native-vectors.json', import.meta.url), 'utf8'),
) as NativeVectors;
const key = MasterKey.parse(vectors.keyHex);

describe('native scheme vectors (fixtures/native-vectors.json)', () => {
  it.each(vectors.cases.map((c) => [JSON.stringify(c.spec), c] as const))('%s', (_, vector) => {
    const scheme = createScheme(vector.spec, key);
    const { sequence } = vectors;
    const h = vector.spec.contextWidth;
    const scores = sequence.slice(h).map((_, j) => scheme.score(sequence, h + j));
    expect(scores).toEqual(vector.scores);
    // The batched scorer gives the very same numbers, in any order of positions and with repeats.
    if (scheme.scoreMany) {
      const positions = Int32Array.from(scores.keys(), (j) => h + j).reverse();
      const doubled = Int32Array.from([...positions, ...positions]);
      const out = new Float64Array(doubled.length);
      // Twice on a fresh scheme: once filling its seed cache, once reading it.
      const fresh = createScheme(vector.spec, key);
      for (let round = 0; round < 2; round++) {
        fresh.scoreMany?.(Uint32Array.from(sequence), doubled, doubled.length, out);
        expect(Array.from(out)).toEqual([...positions, ...positions].map((i) => vector.scores[i - h]));
      }
    }
    if (vector.greenAfterPrefix10 !== undefined && scheme.biasLogits) {
      const logits = new Float32Array(scheme.vocabSize);
      scheme.biasLogits(sequence.slice(0, 10), logits);
      expect(Array.from(logits.keys()).filter((i) => logits[i] > 0)).toEqual(vector.greenAfterPrefix10);
    }
  });

  it('scoreMany rejects an id outside the vocabulary as score does', () => {
    const scheme = createScheme({ scheme: 'kgw', vocabSize: 1000 }, key);
    const ids = Uint32Array.from([5, 1000]);
    expect(() => scheme.scoreMany?.(ids, Int32Array.from([1]), 1, new Float64Array(1))).toThrow(
      /token id 1000 is outside the vocabulary/,
    );
    expect(() => scheme.score(ids, 1)).toThrow(/token id 1000 is outside the vocabulary/);
  });
});

describe('KeySet64', () => {
  it('agrees with a Set of the same keys through many growths, for keys near 0 and 2^32', () => {
    const set = new KeySet64(4);
    const reference = new Set<string>();
    let state = 12345;
    const next = () => {
      state = (Math.imul(state, 1103515245) + 12345) >>> 0;
      return state;
    };
    const edge = [0, 1, 0x7fffffff, 0xfffffffe];
    let disagreements = 0;
    let repeats = 0;
    for (let i = 0; i < 300_000; i++) {
      // Small ranges force repeats; the edge words test the stored-plus-one encoding of the high word.
      const lo = i % 7 === 0 ? edge[i % 4] : next() % 5000;
      const hi = i % 5 === 0 ? edge[(i >> 2) % 4] : next() % 300;
      const fresh = !reference.has(`${lo}:${hi}`);
      reference.add(`${lo}:${hi}`);
      if (set.add(lo, hi) !== fresh) disagreements++;
      if (!fresh) repeats++;
    }
    expect(disagreements).toBe(0);
    expect(repeats).toBeGreaterThan(10_000);
    expect(set.size).toBe(reference.size);
    for (const entry of reference) {
      const [lo, hi] = entry.split(':').map(Number);
      expect(set.has(lo, hi)).toBe(true);
    }
    expect(set.has(4999, 301)).toBe(false);
  });

  it('keys short windows exactly, as windowKey does', () => {
    const words = [7, 0, 123456, 5];
    const out = new Uint32Array(2);
    for (let end = 0; end <= words.length; end++) {
      for (let length = 0; length <= Math.min(2, end); length++) {
        windowKey(words, end - length, end, out);
        expect([shortWindowKeyLo(words, end, length), shortWindowKeyHi(words, end, length)]).toEqual([
          out[0],
          out[1],
        ]);
      }
    }
  });
});
