import {
  createScheme,
  GenerationSession,
  KeySet64,
  MasterKey,
  type Scheme,
  windowKey,
} from '@tracemark/watermark';
import { describe, expect, it } from 'vitest';
import {
  binomialUpperTail,
  type DetectOptions,
  detectText,
  detectTokens,
  gammaUpperTail,
  type TokenEntry,
  type Tokenizer,
  TokenTable,
  VerifierError,
  windowStep,
} from '../src/index';
import {
  markPositions,
  promptWindows,
  SKIP_REASONS,
  STATUS_COUNTED,
  STATUS_DUPLICATE,
  STATUS_EOS,
  STATUS_PROMPT_WINDOW,
  scorePositions,
} from '../src/tape';

const key = MasterKey.parse('11'.repeat(32));
const V = 5000;

function watermarked(spec: Record<string, unknown>, length: number, seed = 'w'): number[] {
  const scheme = createScheme({ ...spec, vocabSize: V }, key);
  const session = new GenerationSession(scheme, { prompt: [1, 2, 3, 4], seed });
  for (let i = 0; i < length; i++) {
    const logits = new Float32Array(V);
    const last = session.tokens[session.tokens.length - 1];
    for (let t = 0; t < V; t++) logits[t] = 4 * Math.sin(t * 0.37 + last * 1.3);
    session.next(logits);
  }
  return session.tokens;
}

describe('detectTokens', () => {
  it('reports the exact tail of its null law, with counts', () => {
    const scheme = createScheme({ scheme: 'kgw', vocabSize: V }, key);
    const ids = watermarked({ scheme: 'kgw' }, 200);
    const result = detectTokens(ids, { scheme });
    expect(result.tokens).toBe(204);
    expect(result.scored).toBeLessThanOrEqual(203);
    const green = Array.from(result.perToken).filter((t) => t.counted && t.score === 1).length;
    expect(result.scoreSum).toBe(green);
    const tail = binomialUpperTail(
      green,
      result.scored,
      scheme.nullLaw.kind === 'bernoulli' ? scheme.nullLaw.p : 0,
    );
    expect(result.log10PValue).toBeCloseTo(tail.log10p, 10);
    expect(result.log10PValue).toBeLessThan(-20);
    expect(result.zScore).toBeGreaterThan(5);
    expect(result.keyFingerprint).toBe(scheme.keyFingerprint);
    expect(result.perToken.at(0)).toMatchObject({ index: 0, counted: false, reason: 'context', score: null });

    const gumbel = createScheme({ scheme: 'gumbel', vocabSize: V, contextWidth: 2 }, key);
    const g = detectTokens(watermarked({ scheme: 'gumbel', contextWidth: 2 }, 100), { scheme: gumbel });
    expect(g.log10PValue).toBeCloseTo(gammaUpperTail(g.scoreSum, g.scored).log10p, 10);
  });

  it('scores each (window, token) pair once by default', () => {
    const scheme = createScheme({ scheme: 'kgw', vocabSize: V }, key);
    const sentence = [10, 20, 30, 40, 50];
    const ids = Array.from({ length: 50 }, () => sentence).flat();
    const pair = detectTokens(ids, { scheme });
    expect(pair.tokens).toBe(250);
    expect(pair.scored).toBe(5); // 10→20, 20→30, 30→40, 40→50, 50→10
    expect(Array.from(pair.perToken).filter((t) => t.reason === 'duplicate')).toHaveLength(244);
    const none = detectTokens(ids, { scheme, dedup: 'none' });
    expect(none.scored).toBe(249);
    const context = detectTokens([1, 2, 1, 3, 1, 2], { scheme, dedup: 'context' });
    expect(context.scored).toBe(3); // contexts 1, 2 and 3; the later tokens after 1 are duplicates
  });

  it('drops windows that occur in the prompt, and everything from the end-of-sequence token on', () => {
    const scheme = createScheme({ scheme: 'kgw', vocabSize: V, contextWidth: 2 }, key);
    const ids = [5, 6, 7, 8, 9, 1, 2, 3];
    const result = detectTokens(ids, { scheme, prompt: [100, 6, 7, 101], eosTokenId: 1 });
    const reasons = Array.from(result.perToken, (t) => t.reason ?? 'counted');
    expect(reasons).toEqual([
      'context',
      'context',
      'counted',
      'prompt-window',
      'counted',
      'eos',
      'eos',
      'eos',
    ]);
    expect(result.scored).toBe(2);
    const unigram = createScheme({ scheme: 'unigram', vocabSize: V }, key);
    const u = detectTokens([4, 5, 6, 4], { scheme: unigram, prompt: [5] });
    expect(Array.from(u.perToken, (t) => t.reason ?? 'counted')).toEqual([
      'counted',
      'prompt-window',
      'counted',
      'duplicate',
    ]);
  });

  it('tests several keys at once with Holm-adjusted p-values', () => {
    const ids = watermarked({ scheme: 'kgw' }, 150);
    const schemes = [
      createScheme({ scheme: 'kgw', vocabSize: V }, MasterKey.parse('22'.repeat(32))),
      createScheme({ scheme: 'kgw', vocabSize: V }, key),
      createScheme({ scheme: 'kgw', vocabSize: V }, key, { tenant: 'other' }),
    ];
    const results = detectTokens(ids, { schemes });
    expect(results).toHaveLength(3);
    expect(results[1].log10PValue).toBeLessThan(-15);
    expect(results[1].adjustedLog10PValue).toBeCloseTo(results[1].log10PValue + Math.log10(3), 10);
    expect(results[0].adjustedPValue).toBeGreaterThanOrEqual(results[0].pValue);
    expect(results[2].tenant).toBe('other');
    for (const r of results) expect(r.adjustedPValue).toBeLessThanOrEqual(1);
  });

  it('finds the best window and corrects for the windows tried', () => {
    const scheme = createScheme({ scheme: 'kgw', vocabSize: V }, key);
    const result = detectTokens(watermarked({ scheme: 'kgw' }, 300), { scheme, window: { sizes: [32, 64] } });
    const w = result.bestWindow;
    expect(w).not.toBeNull();
    if (w === null) return;
    // Starts on the grid of windowStep (4 for 32 tokens, 8 for 64), checked by brute force.
    const m = result.scored;
    expect([windowStep(32), windowStep(64)]).toEqual([4, 8]);
    expect(w.windowsTried).toBe(Math.floor((m - 32) / 4) + 1 + Math.floor((m - 64) / 8) + 1);
    expect(w.correctedLog10PValue).toBeCloseTo(w.log10PValue + Math.log10(w.windowsTried), 10);
    expect([32, 64]).toContain(w.scored);
    const counted = Array.from(result.perToken).filter((e) => e.counted);
    let best = Number.POSITIVE_INFINITY;
    for (const size of [32, 64]) {
      for (let from = 0; from + size <= m; from += windowStep(size)) {
        const sum = counted.slice(from, from + size).reduce((a, e) => a + (e.score ?? 0), 0);
        best = Math.min(best, binomialUpperTail(sum, size, 0.25).log10p);
      }
    }
    expect(w.log10PValue).toBeCloseTo(best, 10);
    expect(counted.filter((e) => e.index >= w.start && e.index < w.end)).toHaveLength(w.scored);
    expect(detectTokens([1, 2, 3], { scheme }).bestWindow).toBeNull();
  });

  it('rejects bad options and out-of-vocabulary ids with one clear line', () => {
    const scheme = createScheme({ scheme: 'kgw', vocabSize: V }, key);
    expect(() => detectTokens([1, 2], { scheme, dedup: 'all' as never })).toThrow(
      /dedup must be "pair", "context" or "none"/,
    );
    expect(() => detectTokens([1, V + 3], { scheme })).toThrow(VerifierError);
    expect(() => detectTokens([1, V + 3], { scheme })).toThrow(
      `token id ${V + 3} at position 1 is outside the scheme's vocabulary (vocabSize ${V})`,
    );
    expect(() => detectTokens([1, 2], { schemes: [] })).toThrow(/non-empty array/);
    expect(() => detectTokens([1, 2, 3], { scheme, window: { sizes: [0] } })).toThrow(/window sizes/);
  });
});

describe('de-duplication follows the PRF input', () => {
  // Windows (1000 + i, 7) all share the token 7; under MinHash or SelfHash the token that wins the window
  // decides the seed, so many different windows give the very same score for the 8 that follows.
  const ids = Array.from({ length: 200 }, (_, i) => [1000 + i, 7, 8]).flat();

  it.each([
    { scheme: 'kgw', hashing: 'min', contextWidth: 2 },
    { scheme: 'kgw', hashing: 'self', contextWidth: 2 },
    { scheme: 'gumbel', hashing: 'min', contextWidth: 2 },
  ])('$scheme/$hashing: repeated PRF inputs count once, and clean keys stay calibrated', (spec) => {
    let detections = 0;
    for (let tenant = 0; tenant < 200; tenant++) {
      const scheme = createScheme({ ...spec, vocabSize: V }, key, { tenant: `t${tenant}` });
      const result = detectTokens(ids, { scheme, perToken: false, window: false });
      if (result.pValue <= 1e-3) detections++;
    }
    // 200 tests at α = 1e-3: more than 3 detections has probability below 6e-5 for a calibrated test.
    expect(detections).toBeLessThanOrEqual(3);
  });

  it('keys a MinHash position by (winning window token, token), and counts each key once', () => {
    const scheme = createScheme({ scheme: 'kgw', hashing: 'min', contextWidth: 2, vocabSize: V }, key);
    const got = new Uint32Array(2);
    const candidate = new Uint32Array(2);
    const distinct = new Set<string>();
    for (let i = 2; i < ids.length; i++) {
      scheme.inputKey?.(ids, i, got);
      const matches = [ids[i - 2], ids[i - 1]].some((winner) => {
        windowKey([winner, ids[i]], 0, 2, candidate);
        return candidate[0] === got[0] && candidate[1] === got[1];
      });
      expect(matches).toBe(true);
      distinct.add(`${got[0]}:${got[1]}`);
    }
    expect(detectTokens(ids, { scheme }).scored).toBe(distinct.size);
    expect(distinct.size).toBeLessThan(ids.length - 2);
  });
});

/**
 * The per-token entries as detectTokens built them before the columnar table: one object per token, the
 * scores of duplicates and prompt windows computed up front. The reference the table must reproduce.
 */
function referenceEntries(input: ArrayLike<number>, scheme: Scheme, options: DetectOptions): TokenEntry[] {
  const n = input.length;
  const ids = new Uint32Array(n);
  let end = n;
  for (let i = 0; i < n; i++) {
    if (input[i] === options.eosTokenId) {
      end = i;
      break;
    }
    ids[i] = input[i];
  }
  const status = new Uint8Array(n);
  status.fill(STATUS_EOS, end, n);
  const dedup = options.dedup ?? 'pair';
  const rule = {
    dedup,
    promptKeys: promptWindows(options.prompt, scheme.contextWidth),
    seen: dedup === 'none' ? null : new KeySet64(),
  };
  const counted = new Int32Array(n);
  const skipped = { context: 0, duplicate: 0, promptWindow: 0, filtered: 0 };
  const m = markPositions(ids, 0, end, scheme, rule, counted, status, skipped);
  const countedScores = new Float64Array(m);
  scorePositions(scheme, ids, counted, m, countedScores);
  const others = new Int32Array(n);
  let o = 0;
  for (let i = 0; i < n; i++)
    if (status[i] === STATUS_DUPLICATE || status[i] === STATUS_PROMPT_WINDOW) others[o++] = i;
  const otherScores = new Float64Array(o);
  scorePositions(scheme, ids, others, o, otherScores);
  const entries: TokenEntry[] = new Array(n);
  let j = 0;
  o = 0;
  for (let i = 0; i < n; i++) {
    const code = status[i];
    let score: number | null = null;
    if (code === STATUS_COUNTED) score = countedScores[j++];
    else if (code === STATUS_DUPLICATE || code === STATUS_PROMPT_WINDOW) score = otherScores[o++];
    entries[i] = {
      index: i,
      tokenId: input[i],
      start: options.offsets ? options.offsets.starts[i] : 0,
      end: options.offsets ? options.offsets.ends[i] : 0,
      score,
      counted: code === STATUS_COUNTED,
      reason: code === STATUS_COUNTED ? undefined : SKIP_REASONS[code - 1],
    };
  }
  return entries;
}

describe('the per-token table', () => {
  // Short context at the start, a repeated sentence (duplicates), a window of the prompt, an end of sequence
  // and ids after it that are no token at all (-100, as padding often is).
  const sentence = [10, 20, 30, 40, 50, 60];
  const ids = [7, 8, ...sentence, 100, 6, 7, 101, ...sentence, ...sentence, 3, 11, 12, 1, 44, -100, 2.5];
  const prompt = [99, 100, 6, 7, 98];
  const eosTokenId = 1;
  const specs = [
    { scheme: 'kgw', contextWidth: 2 },
    { scheme: 'kgw', contextWidth: 2, hashing: 'min' },
    { scheme: 'gumbel', contextWidth: 1 },
    { scheme: 'synthid', contextWidth: 2 },
    { scheme: 'unigram' },
  ];

  it.each(specs)('$scheme h=$contextWidth: entries equal the per-object construction', (spec) => {
    const scheme = createScheme({ ...spec, vocabSize: V }, key);
    for (const dedup of ['pair', 'context', 'none'] as const) {
      const options = { prompt, eosTokenId, dedup };
      const result = detectTokens(ids, { scheme, ...options });
      const reference = referenceEntries(ids, scheme, options);
      const reasons = new Set(reference.map((e) => e.reason));
      if (dedup !== 'none') expect(reasons).toContain('duplicate');
      for (const reason of ['prompt-window', 'eos', undefined]) expect(reasons).toContain(reason);
      if (scheme.contextWidth > 0) expect(reasons).toContain('context');
      expect(result.perToken.length).toBe(ids.length);
      // Slices read before the scores column score only their own tokens.
      for (const [from, to] of [
        [0, 4],
        [5, 17],
        [13, ids.length],
      ]) {
        expect(detectTokens(ids, { scheme, ...options }).perToken.slice(from, to)).toStrictEqual(
          reference.slice(from, to),
        );
      }
      expect(Array.from(result.perToken)).toStrictEqual(reference);
      expect(result.perToken.slice()).toStrictEqual(reference);
      expect(JSON.stringify(result.perToken)).toBe(JSON.stringify(reference));
      for (let i = 0; i < ids.length; i++) {
        expect(result.perToken.at(i)).toStrictEqual(reference[i]);
        expect(Object.is(result.perToken.tokenIds[i], ids[i])).toBe(true);
        expect(result.perToken.scores[i]).toBe(reference[i].score ?? Number.NaN);
      }
    }
  });

  it('keeps the ids and offsets it was given, whatever the caller does to them afterwards', () => {
    const scheme = createScheme({ scheme: 'kgw', vocabSize: V }, key);
    const tokens = Uint32Array.from([...sentence, ...sentence, ...sentence]);
    const offsets = { starts: tokens.map((_, i) => 2 * i), ends: tokens.map((_, i) => 2 * i + 2) };
    const reference = referenceEntries(tokens, scheme, { offsets });
    const result = detectTokens(tokens, { scheme, offsets });
    tokens.fill(4);
    offsets.starts.fill(0);
    expect(Array.from(result.perToken)).toStrictEqual(reference);
    expect(result.bestWindow).toBeNull();
  });

  it('slices with the bounds of an array, and refuses an index outside it in one line', () => {
    const scheme = createScheme({ scheme: 'kgw', vocabSize: V }, key);
    const table = detectTokens(ids, { scheme, prompt, eosTokenId }).perToken;
    const all = table.toJSON();
    for (const [from, to] of [
      [0, 5],
      [3, 3],
      [-4, undefined],
      [5, -2],
      [-100, 100],
      [9, 2],
    ] as const) {
      expect(table.slice(from, to)).toStrictEqual(all.slice(from, to));
    }
    for (const index of [-1, ids.length, 1.5]) {
      expect(() => table.at(index)).toThrow(VerifierError);
      expect(() => table.at(index)).toThrow(
        `token index ${index} is outside the table of ${ids.length} tokens`,
      );
    }
  });

  it('is empty with perToken: false, and equal in every other field', () => {
    const scheme = createScheme({ scheme: 'kgw', vocabSize: V }, key);
    const off = detectTokens(ids, { scheme, prompt, eosTokenId, perToken: false });
    const on = detectTokens(ids, { scheme, prompt, eosTokenId });
    expect(off.perToken).toBeInstanceOf(TokenTable);
    expect(off.perToken.length).toBe(0);
    expect(JSON.stringify(off.perToken)).toBe('[]');
    const { perToken: _off, ...offFields } = off;
    const { perToken: _on, ...onFields } = on;
    expect(offFields).toStrictEqual(onFields);
  });

  it('gives each of several keys its own table over the same ids', () => {
    const schemes = [
      createScheme({ scheme: 'kgw', vocabSize: V }, key),
      createScheme({ scheme: 'gumbel', vocabSize: V }, key, { tenant: 'other' }),
    ];
    const results = detectTokens(ids, { schemes, prompt, eosTokenId });
    results.forEach((result, k) => {
      expect(Array.from(result.perToken)).toStrictEqual(
        referenceEntries(ids, schemes[k], { prompt, eosTokenId }),
      );
    });
  });

  it('refuses offsets that do not give each token a start and an end', () => {
    const scheme = createScheme({ scheme: 'kgw', vocabSize: V }, key);
    expect(() => detectTokens([1, 2, 3], { scheme, offsets: { starts: [0, 1], ends: [1, 2] } })).toThrow(
      'offsets must have one start and one end for each of the 3 tokens',
    );
    expect(() =>
      detectTokens([1, 2, 3], { scheme, offsets: { starts: [0, 1, -2], ends: [1, 2, 3] } }),
    ).toThrow(VerifierError);
  });

  it('carries the offsets of text detection', () => {
    // One token per character: ids are the character codes, offsets the characters' own.
    const tokenizer: Tokenizer = {
      id: 'custom:chars',
      vocabSize: 128,
      encode: (text) => ({
        ids: Uint32Array.from(text, (c) => c.charCodeAt(0)),
        starts: Uint32Array.from(text, (_, i) => i),
        ends: Uint32Array.from(text, (_, i) => i + 1),
      }),
      decode: (tokens) => String.fromCharCode(...Array.from(tokens)),
    };
    const text = 'the cat sat on the mat; the cat sat on the mat.';
    const scheme = createScheme({ scheme: 'kgw', vocabSize: 128 }, key);
    const result = detectText(text, { tokenizer, scheme, prompt: 'a mat' });
    const encoding = tokenizer.encode(text);
    const options = { prompt: Array.from('a mat', (c) => c.charCodeAt(0)), offsets: encoding };
    expect(Array.from(result.perToken)).toStrictEqual(referenceEntries(encoding.ids, scheme, options));
    expect(Array.from(result.perToken, (e) => text.slice(e.start, e.end)).join('')).toBe(text);
  });
});
