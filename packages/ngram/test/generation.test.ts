import { createScheme, GenerationSession, MasterKey, topKIndices } from '@tracemark/watermark';
import { describe, expect, it } from 'vitest';
import { gutenbergCorpus, o200kBase, trainNgram } from '../src/index';
import { bookTokens } from './support';

const MASTER = MasterKey.parse('0b7e4d2a91c3f58e6a0d17b2c49e3f8a5d6c1e2b7f0a9d8c3b4e5f6a7b8c9d0e');

describe('generation through @tracemark/watermark', () => {
  const model = trainNgram(bookTokens(['austen-emma', 'austen-sense']), { order: 4 });
  const prompts = gutenbergCorpus('heldOut', { books: ['austen-persuasion'] })
    .filter((d) => d.text.length > 200)
    .slice(0, 6)
    .map((d) => o200kBase.encode(d.text).slice(0, 12));

  it('runs GenerationSession on model.logits(session.tokens) unchanged, emitting only known tokens', () => {
    const scheme = createScheme({ scheme: 'kgw', contextWidth: 1, vocabSize: model.vocabSize }, MASTER);
    const out = new Float32Array(model.vocabSize);
    const green = { marked: 0, plain: 0, steps: 0 };
    for (const [i, prompt] of prompts.entries()) {
      for (const watermark of [true, false]) {
        const session = new GenerationSession(scheme, {
          prompt,
          seed: `ngram-${i}`,
          watermark,
          sampling: { topK: 40 },
        });
        for (let step = 0; step < 60; step++) session.next(model.logits(session.tokens, out));
        expect(session.generated).toHaveLength(60);
        expect(session.generated.every((t) => model.isKnown(t))).toBe(true);
        expect(o200kBase.decode(session.tokens).length).toBeGreaterThan(100);
        let greens = 0;
        for (let j = session.promptLength; j < session.tokens.length; j++)
          greens += scheme.score(session.tokens, j);
        if (watermark) {
          expect(session.watermarkedSteps).toBe(60);
          green.marked += greens;
          green.steps += 60;
        } else {
          green.plain += greens;
        }
      }
    }
    // KGW (γ = ¼ by default) raises the green fraction of the model's own text well above the plain text's.
    expect(green.marked / green.steps).toBeGreaterThan(green.plain / green.steps + 0.15);
  });

  it('runs the distortion-free Gumbel-max scheme as well, reproducibly for a seed and key', () => {
    const scheme = createScheme({ scheme: 'gumbel', contextWidth: 4, vocabSize: model.vocabSize }, MASTER);
    const run = () => {
      const session = new GenerationSession(scheme, { prompt: prompts[0], seed: 7, sampling: { topK: 40 } });
      for (let step = 0; step < 40; step++) session.next(model.logits(session.tokens));
      return session.generated;
    };
    const first = run();
    expect(run()).toEqual(first);
    expect(first.every((t) => model.isKnown(t))).toBe(true);
  });

  it('finds the exact top-k candidates without a pass over the vocabulary', () => {
    const ids = new Int32Array(40);
    const top = new Float32Array(40);
    const reference = new Int32Array(40);
    for (const prompt of prompts) {
      for (let cut = 1; cut <= prompt.length; cut += 3) {
        const context = prompt.slice(0, cut);
        const full = model.logits(context);
        const count = model.topCandidates(context, 40, ids, top);
        expect(count).toBe(topKIndices(full, 40, reference));
        // Ties may order differently; the logits, best first, must agree exactly.
        expect(Array.from(top.subarray(0, count))).toEqual(
          Array.from(reference.subarray(0, count), (t) => full[t]),
        );
        for (let i = 0; i < count; i++) expect(full[ids[i]]).toBe(top[i]);
      }
    }
  });

  it('generates from candidate sets with the watermark, as detectable as the full-vocabulary path', () => {
    const scheme = createScheme({ scheme: 'kgw', contextWidth: 1, vocabSize: model.vocabSize }, MASTER);
    const ids = new Int32Array(40);
    const top = new Float32Array(40);
    const session = new GenerationSession(scheme, { prompt: prompts[1], seed: 'candidates' });
    for (let step = 0; step < 200; step++) {
      const count = model.topCandidates(session.tokens, 40, ids, top);
      session.nextFromCandidates(ids, top, count);
    }
    let greens = 0;
    for (let j = session.promptLength; j < session.tokens.length; j++)
      greens += scheme.score(session.tokens, j);
    expect(session.watermarkedSteps).toBe(200);
    expect(greens / 200).toBeGreaterThan(0.45);
  });

  it('writes the logits of the support alone: the full row’s finite entries, in id order', () => {
    const support = model.support;
    expect(model.support).toBe(support);
    const full = new Float32Array(model.vocabSize);
    const compact = new Float32Array(support.length);
    let known = 0;
    for (let t = 0; t < model.vocabSize; t++) if (model.isKnown(t)) known++;
    expect(support.length).toBe(known);
    for (const context of [[], prompts[0], prompts[1].slice(0, 3), [model.vocabSize - 1, 5]]) {
      model.logits(context, full);
      const row = model.supportLogits(context, compact);
      expect(row).toBe(compact);
      let differ = 0;
      let finite = 0;
      for (let j = 0; j < support.length; j++) if (!Object.is(row[j], full[support[j]])) differ++;
      for (const x of full) if (x !== Number.NEGATIVE_INFINITY) finite++;
      expect(differ).toBe(0);
      expect(finite).toBe(support.length);
    }
    for (let j = 1; j < support.length; j++) expect(support[j]).toBeGreaterThan(support[j - 1]);
    expect(model.supportIndex(support[10])).toBe(10);
    const unknown = Array.from({ length: model.vocabSize }, (_, t) => t).find((t) => !model.isKnown(t))!;
    expect(model.supportIndex(unknown)).toBe(-1);
    expect(model.supportLogits([], new Float32Array(support.length + 3)).length).toBe(support.length);
    expect(() => model.supportLogits([], new Float32Array(support.length - 1))).toThrow(/support has/);
    expect(() => model.supportIndex(model.vocabSize)).toThrow(/outside the vocabulary/);
  });
});
