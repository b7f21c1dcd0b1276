import { describe, expect, it } from 'vitest';
import { NgramError, NgramModel, trainNgram } from '../src/index';
import { bookTokens, softmax } from './support';

/** Σ_w p(w | context) over the model's support (every other token has probability 0). */
function total(model: NgramModel, context: number[], support: number[]): number {
  let sum = 0;
  for (const w of support) sum += Math.exp(model.logProb(context, w));
  return sum;
}

describe('count pruning (minCount)', () => {
  const docs = bookTokens(['carroll-alice'], 300);
  const full = trainNgram(docs, { order: 4 });
  const pruned = trainNgram(docs, { order: 4, minCount: 2 });
  const harder = trainNgram(docs, { order: 4, minCount: 3 });
  const support: number[] = [];
  for (let t = 0; t < full.vocabSize; t++) if (full.isKnown(t)) support.push(t);
  // Contexts from the text itself (known at every order) and one the text never has.
  const contexts = [
    docs[3].slice(0, 3),
    docs[10].slice(2, 5),
    docs[40].slice(0, 1),
    [],
    [docs[5][0], 17, 99_999],
  ];

  it('drops the n-grams of orders ≥ 2 seen fewer than minCount times, and keeps every unigram', () => {
    expect(pruned.info.ngrams[0]).toBe(full.info.ngrams[0]);
    for (let d = 1; d < 4; d++) {
      expect(pruned.info.ngrams[d]).toBeLessThan(full.info.ngrams[d]);
      expect(harder.info.ngrams[d]).toBeLessThan(pruned.info.ngrams[d]);
    }
    // The highest order is mostly singletons in 300 paragraphs: pruning at 2 removes most of it.
    expect(pruned.info.ngrams[3]).toBeLessThan(full.info.ngrams[3] / 2);
    expect(trainNgram(docs, { order: 4, minCount: 1 }).toBytes()).toEqual(full.toBytes());
  });

  it('keeps every context normalised over the vocabulary support, and logits consistent with logProb', () => {
    for (const model of [full, pruned, harder]) {
      for (const context of contexts) {
        expect(total(model, context, support)).toBeCloseTo(1, 9);
        const p = softmax(model.logits(context));
        for (const w of support.slice(0, 50))
          expect(p[w]).toBeCloseTo(Math.exp(model.logProb(context, w)), 6);
      }
    }
  });

  it('changes the distribution where a pruned n-gram was the evidence', () => {
    const context = docs[3].slice(0, 3);
    const next = docs[3][3];
    expect(pruned.logProb(context, next)).not.toBeCloseTo(full.logProb(context, next), 6);
  });

  it('writes a model file that reads back to the same model', () => {
    const back = NgramModel.fromBytes(pruned.toBytes());
    expect(back.info.ngrams).toEqual(pruned.info.ngrams);
    const context = docs[10].slice(2, 5);
    expect(back.logProb(context, docs[10][5])).toBe(pruned.logProb(context, docs[10][5]));
  });

  it('refuses a minCount that is not a positive integer', () => {
    for (const minCount of [0, 1.5, -1, Number.NaN])
      expect(() => trainNgram(docs, { order: 3, minCount })).toThrow(NgramError);
  });
});
