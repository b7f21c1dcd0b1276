import { describe, expect, it } from 'vitest';
import {
  countOfCounts,
  modifiedKneserNeyDiscounts,
  NgramError,
  NgramTrainer,
  trainNgram,
} from '../src/index';
import { bookTokens, ReferenceKneserNey, softmax } from './support';

/** Three documents over tokens 0..2 of a 5-token vocabulary (3 and 4 never occur). */
const TINY = [
  [0, 1, 2],
  [0, 1, 0],
  [1, 2],
];

function tiny(order: number) {
  return trainNgram(TINY, { order, tokenizer: null, vocabSize: 5 });
}

describe('modified Kneser-Ney discounts (Chen & Goodman 1998, eq. 26)', () => {
  it('follows Y = n1/(n1+2n2), D1 = 1−2Y n2/n1, D2 = 2−3Y n3/n2, D3+ = 3−4Y n4/n3', () => {
    // n = (100, 40, 20, 10): Y = 5/9, D1 = 1 − 4/9, D2 = 2 − 5/6, D3+ = 3 − 10/9.
    const d = modifiedKneserNeyDiscounts(100, 40, 20, 10);
    expect(d.fallback).toBe(false);
    expect(d.d1).toBeCloseTo(5 / 9, 14);
    expect(d.d2).toBeCloseTo(7 / 6, 14);
    expect(d.d3).toBeCloseTo(17 / 9, 14);
  });

  it('always gives D_k in (0, k), falling back to (0.5, 1, 1.5) when the formulas do not', () => {
    for (const n of [
      [0, 0, 0, 0],
      [5, 0, 1, 1],
      [2, 3, 0, 0],
      [1, 10, 1, 1],
      [50, 1, 30, 1],
    ]) {
      const d = modifiedKneserNeyDiscounts(n[0], n[1], n[2], n[3]);
      const valid = d.d1 > 0 && d.d1 < 1 && d.d2 > 0 && d.d2 < 2 && d.d3 > 0 && d.d3 < 3;
      expect(valid).toBe(true);
    }
    expect(modifiedKneserNeyDiscounts(0, 0, 0, 0)).toEqual({ d1: 0.5, d2: 1, d3: 1.5, fallback: true });
    expect(modifiedKneserNeyDiscounts(2, 3, 0, 0).fallback).toBe(true);
  });

  it('counts of counts ignore zeros and counts above 4', () => {
    expect(countOfCounts([0, 1, 1, 2, 3, 4, 4, 4, 5, 9])).toEqual([2, 1, 1, 3]);
  });

  it("a trained model's discounts are the formulas applied to its adjusted count-of-counts", () => {
    const documents = bookTokens(['carroll-alice'], 400);
    for (const order of [3, 5]) {
      const model = trainNgram(documents, { order });
      const reference = new ReferenceKneserNey(documents, order);
      for (let n = 1; n <= order; n++) {
        const [n1, n2, n3, n4] = reference.countOfCounts[n];
        const expected = modifiedKneserNeyDiscounts(n1, n2, n3, n4);
        expect(expected.fallback).toBe(false);
        expect(model.discounts(n)).toEqual(expected);
      }
      expect(model.info.ngrams[order - 1]).toBe(
        [...reference.raw.keys()].filter((k) => k.split(',').length === order).length,
      );
    }
  });
});

describe('interpolated Kneser-Ney probabilities', () => {
  it('order 2: hand-computed probabilities on a tiny corpus', () => {
    // Unigram continuation counts: 0 ← {<bos>, 1}: 2, 1 ← {<bos>, 0}: 2, 2 ← {1}: 1; total 5, three known
    // tokens; fallback discounts (0.5, 1, 1.5): p0 = (1/5 + 1/6, 1/5 + 1/6, 1/10 + 1/6) = (11, 11, 8)/30.
    const model = tiny(2);
    const p = (context: number[], token: number) => Math.exp(model.logProb(context, token));
    expect(p([1], 2)).toBeCloseTo(28 / 60, 12); // c(1 2) = 2, c(1 0) = 1: 1/3 + ½·8/30
    expect(p([1], 0)).toBeCloseTo(21 / 60, 12); // 0.5/3 + ½·11/30
    expect(p([1], 1)).toBeCloseTo(11 / 60, 12); // ½·11/30
    expect(p([], 0)).toBeCloseTo(31 / 60, 12); // after <bos>: c(<bos> 0) = 2, c(<bos> 1) = 1
    expect(p([], 1)).toBeCloseTo(21 / 60, 12);
    expect(p([], 2)).toBeCloseTo(8 / 60, 12);
    // Token 2 ends every document it is in: no children, the unigram distribution.
    expect(p([2], 0)).toBeCloseTo(11 / 30, 12);
    expect(p([3], 2)).toBeCloseTo(8 / 30, 12); // unseen context token: unigram
    expect(model.logProb([1], 3)).toBe(Number.NEGATIVE_INFINITY);
    expect(model.logProb([1], 4)).toBe(Number.NEGATIVE_INFINITY);
  });

  it('order 3: continuation counts in the middle order, raw counts after <bos>', () => {
    // Trigram counts: (<bos> 0 1) 2, (0 1 2) 1, (0 1 0) 1, (<bos> 1 2) 1. Bigram adjusted counts:
    // (<bos> 0) 2 and (<bos> 1) 1 raw; (0 1) 1, (1 2) 2, (1 0) 1 continuation counts.
    const model = tiny(3);
    const p = (context: number[], token: number) => Math.exp(model.logProb(context, token));
    // p(· | 0 1): c = 1, 1, total 2, γ = ½; p(· | 1) as in the bigram model.
    expect(p([0, 1], 2)).toBeCloseTo(29 / 60, 12); // ¼ + ½·28/60
    expect(p([0, 1], 0)).toBeCloseTo(17 / 40, 12); // ¼ + ½·21/60
    expect(p([0, 1], 1)).toBeCloseTo(11 / 120, 12); // ½·11/60
    // p(· | <bos> 0): c(<bos> 0 1) = 2 (D2 = 1), γ = ½; p(1 | 0) = ½ + ½·11/30 = 41/60.
    expect(p([0], 1)).toBeCloseTo(101 / 120, 12);
    expect(p([0], 0)).toBeCloseTo(11 / 120, 12);
    expect(p([0], 2)).toBeCloseTo(8 / 120, 12);
    // A context seen mid-document only through its suffix: (2 1) never occurred, (1) did.
    expect(p([2, 1], 2)).toBeCloseTo(28 / 60, 12);
    // Logits are log-probabilities up to one constant per context.
    const logits = model.logits([0, 1]);
    expect(logits[2] - logits[0]).toBeCloseTo(Math.log(29 / 60 / (17 / 40)), 6);
    expect(logits[3]).toBe(Number.NEGATIVE_INFINITY);
    expect(logits[4]).toBe(Number.NEGATIVE_INFINITY);
  });

  it('matches a naive reference implementation on real text (orders 2–5)', () => {
    const documents = bookTokens(['carroll-alice'], 200);
    const probes = bookTokens(['carroll-alice'], 240).slice(200);
    for (const order of [2, 3, 4, 5]) {
      const model = trainNgram(documents, { order });
      const reference = new ReferenceKneserNey(documents, order);
      let checked = 0;
      for (const document of [...documents.slice(0, 6), ...probes.slice(0, 20)]) {
        for (let i = 0; i < document.length; i++) {
          const context = document.slice(0, i);
          for (const token of [document[i], document[(i * 7) % document.length], 13, 1425]) {
            const expected = reference.prob(context, token);
            const actual = Math.exp(model.logProb(context, token));
            if (expected === 0) expect(actual).toBe(0);
            else expect(Math.abs(actual - expected) / expected).toBeLessThan(1e-9);
            checked++;
          }
        }
      }
      expect(checked).toBeGreaterThan(2000);
    }
  });

  it('sums to 1 over the vocabulary, and softmax(logits) equals exp(logProb), for several contexts', () => {
    const documents = bookTokens(['carroll-alice'], 400);
    const model = trainNgram(documents, { order: 4 });
    const sentence = documents[20];
    const unseen = Array.from({ length: model.vocabSize }, (_, w) => w).find((w) => !model.isKnown(w))!;
    const contexts = [
      [],
      sentence.slice(0, 1),
      sentence.slice(0, 3),
      sentence.slice(0, 12), // seen in training: the highest order applies
      [sentence[5], unseen, sentence[6]],
      [unseen],
      [...documents[50].slice(0, 4), ...documents[60].slice(0, 3)],
    ];
    for (const context of contexts) {
      let total = 0;
      const logits = model.logits(context);
      const q = softmax(logits);
      let worst = 0;
      for (let w = 0; w < model.vocabSize; w++) {
        const p = Math.exp(model.logProb(context, w));
        total += p;
        worst = Math.max(worst, Math.abs(q[w] - p));
      }
      expect(Math.abs(total - 1)).toBeLessThan(1e-6);
      expect(worst).toBeLessThan(1e-6);
    }
  });

  it('gives −Infinity exactly to the tokens never seen in training', () => {
    const documents = bookTokens(['carroll-alice'], 200);
    const seen = new Set(documents.flat());
    const model = trainNgram(documents, { order: 3 });
    expect(model.info.knownTokens).toBe(seen.size);
    for (const context of [[], documents[10].slice(0, 2), documents[30].slice(0, 9), [199_000]]) {
      const logits = model.logits(context);
      let wrong = 0;
      for (let w = 0; w < model.vocabSize; w++) {
        if (seen.has(w) ? !Number.isFinite(logits[w]) : logits[w] !== Number.NEGATIVE_INFINITY) wrong++;
      }
      expect(wrong).toBe(0);
    }
  });

  it('reads a short context as the start of a document and a long one by its last order − 1 tokens', () => {
    const documents = bookTokens(['carroll-alice'], 200);
    const model = trainNgram(documents, { order: 3 });
    const long = documents[40].slice(0, 10);
    const same = (a: Float32Array, b: Float32Array) => a.every((x, i) => Object.is(x, b[i]));
    expect(same(model.logits(long), model.logits([12345, ...long]))).toBe(true);
    expect(same(model.logits(long.slice(-2)), model.logits(long))).toBe(true);
    // One token: read as <bos> t, which differs from the same token after some other token.
    const first = [documents[40][0]];
    expect(same(model.logits(first), model.logits([documents[41][3], ...first]))).toBe(false);
    expect(model.logProb(first, documents[40][1])).toBeGreaterThan(
      model.logProb([99_999, ...first], documents[40][1]),
    );
    const out = new Float32Array(model.vocabSize);
    expect(model.logits(long, out)).toBe(out);
  });

  it('rejects bad orders, token ids and buffers with stable codes', () => {
    const code = (f: () => unknown) => {
      try {
        f();
      } catch (error) {
        expect(error).toBeInstanceOf(NgramError);
        expect((error as Error).message).not.toContain('\n');
        return (error as NgramError).code;
      }
      return 'no error';
    };
    expect(code(() => new NgramTrainer({ order: 1 }))).toBe('E_INVALID_OPTIONS');
    expect(code(() => new NgramTrainer({ order: 6 }))).toBe('E_INVALID_OPTIONS');
    expect(code(() => trainNgram([[0, 5]], { tokenizer: null, vocabSize: 5 }))).toBe('E_TOKEN_RANGE');
    expect(code(() => trainNgram(['text'], { tokenizer: null, vocabSize: 5 }))).toBe('E_NO_TOKENIZER');
    expect(code(() => trainNgram([[]], { tokenizer: null, vocabSize: 5 }))).toBe('E_EMPTY_CORPUS');
    const model = tiny(2);
    expect(code(() => model.logProb([0], 5))).toBe('E_TOKEN_RANGE');
    expect(code(() => model.logits([0, -1]))).toBe('E_TOKEN_RANGE');
    expect(code(() => model.logits([0], new Float32Array(4)))).toBe('E_LOGITS_LENGTH');
    expect(code(() => model.discounts(3))).toBe('E_INVALID_OPTIONS');
  });
});
