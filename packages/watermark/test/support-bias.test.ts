import { describe, expect, it } from 'vitest';
import {
  createInteropScheme,
  createRng,
  createScheme,
  type KgwScheme,
  MasterKey,
  type Scheme,
  SupportBiasScheme,
  WatermarkError,
} from '../src/index';

const key = MasterKey.parse('42'.repeat(32));

/** A sorted support of `size` distinct ids in [0, vocab), drawn from a fixed seed. */
function supportOf(vocab: number, size: number, seed = 'support'): Int32Array {
  const rng = createRng(seed);
  const picked = new Set<number>();
  while (picked.size < size) picked.add(Math.floor(rng() * vocab));
  return Int32Array.from(picked).sort();
}

/** Logits that are −∞ outside the support (an n-gram model's row), with some −0 among the finite ones. */
function rowOf(vocab: number, support: Int32Array, seed: string): Float32Array {
  const rng = createRng(seed);
  const logits = new Float32Array(vocab).fill(Number.NEGATIVE_INFINITY);
  for (const t of support) logits[t] = rng() < 0.05 ? -0 : 6 * rng() - 3;
  return logits;
}

function same(a: Float32Array, b: Float32Array): boolean {
  return Buffer.from(a.buffer).equals(Buffer.from(b.buffer));
}

/** Biases one row through each scheme and says whether the float32 bits agree. */
function agrees(plain: Scheme, wrapped: Scheme, support: Int32Array, sequence: number[]): boolean {
  const a = rowOf(plain.vocabSize, support, `row:${sequence.join(',')}`);
  const b = Float32Array.from(a);
  plain.biasLogits!(sequence, a);
  wrapped.biasLogits!(sequence, b);
  return same(a, b);
}

const V = 200_019;
const kgw = { scheme: 'kgw', vocabSize: V, gamma: 0.25, delta: 2, contextWidth: 1 };

describe('SupportBiasScheme', () => {
  it("biases exactly as the scheme's own full-vocabulary call, from the cache too", () => {
    const support = supportOf(V, 31_480);
    const rng = createRng('context');
    const context = Array.from({ length: 12 }, () => support[Math.floor(rng() * 40)]);
    for (const spec of [kgw, { ...kgw, delta: 0 }, { ...kgw, contextWidth: 2, hashing: 'min' }]) {
      const plain = createScheme(spec, key);
      const cached = new SupportBiasScheme(createScheme(spec, key), support);
      for (let end = spec.contextWidth; end <= context.length; end++) {
        for (let round = 0; round < 2; round++) {
          expect(agrees(plain, cached, support, context.slice(0, end))).toBe(true);
        }
      }
      expect(cached.hits).toBeGreaterThan(0);
    }
    const plain = createScheme(kgw, key);
    const cached = new SupportBiasScheme(createScheme(kgw, key), support);
    expect(cached.score(context, 3)).toBe(plain.score(context, 3));
    expect([cached.keyFingerprint, cached.masterFingerprint, cached.tenant, cached.nullLaw]).toEqual([
      plain.keyFingerprint,
      plain.masterFingerprint,
      plain.tenant,
      plain.nullLaw,
    ]);
    // Detection through the wrapper is the inner scheme's: batched scores, and the keys it de-duplicates on.
    const positions = Int32Array.from(context.slice(1).map((_, j) => j + 1));
    const [viaWrapper, viaInner] = [new Float64Array(positions.length), new Float64Array(positions.length)];
    cached.scoreMany?.(Uint32Array.from(context), positions, positions.length, viaWrapper);
    plain.scoreMany?.(Uint32Array.from(context), positions, positions.length, viaInner);
    expect(Array.from(viaWrapper)).toEqual(Array.from(viaInner));
    expect(Array.from(viaInner)).toEqual(Array.from(positions, (i) => plain.score(context, i)));
    const minHash = createScheme({ ...kgw, contextWidth: 3, hashing: 'min' }, key);
    const wrappedMin = new SupportBiasScheme(minHash, support);
    const [a, b] = [new Uint32Array(2), new Uint32Array(2)];
    wrappedMin.inputKey?.(context, 5, a);
    minHash.inputKey?.(context, 5, b);
    expect(wrappedMin.inputKey).toBeDefined();
    expect(Array.from(a)).toEqual(Array.from(b));
    expect(cached.inputKey).toBeUndefined();
  });

  it('applies where the scheme says its green list depends on the window only', () => {
    const applies = (spec: Record<string, unknown>) => SupportBiasScheme.applies(createScheme(spec, key));
    expect(applies(kgw)).toBe(true);
    expect(applies({ ...kgw, contextWidth: 4, hashing: 'min' })).toBe(true);
    expect(applies({ scheme: 'unigram', vocabSize: V })).toBe(true);
    expect(applies({ ...kgw, hashing: 'self' })).toBe(false);
    expect(applies({ scheme: 'gumbel', vocabSize: V })).toBe(false);
    expect(applies({ scheme: 'synthid', vocabSize: V })).toBe(false);
    const self = createScheme({ ...kgw, hashing: 'self' }, key);
    expect(() => new SupportBiasScheme(self, supportOf(V, 100))).toThrow(WatermarkError);
    // A wrapper passes the capability on, so it can itself be wrapped.
    const wrapped = new SupportBiasScheme(createScheme(kgw, key), supportOf(V, 100));
    expect(SupportBiasScheme.applies(wrapped)).toBe(true);
  });

  it('is exact on full and support-only rows whatever the green count modulo 4 (the unrolled update)', () => {
    const support = supportOf(V, 1001);
    const plain = createScheme(kgw, key);
    const cached = new SupportBiasScheme(createScheme(kgw, key), support);
    const remainders = new Set<number>();
    for (let t = 0; t < 24; t++) {
      const window = [support[t * 41]];
      const unbiased = rowOf(V, support, `compact:${t}`);
      const full = Float32Array.from(unbiased);
      const compact = Float32Array.from(support, (id) => unbiased[id]);
      plain.biasLogits!(window, full);
      // Twice: the miss that fills the cache, then the hit.
      for (const round of [0, 1]) {
        const row = Float32Array.from(compact);
        cached.biasLogits!(window, row, support, support.length);
        expect(
          same(
            row,
            Float32Array.from(support, (id) => full[id]),
          ),
        ).toBe(true);
        expect(agrees(plain, cached, support, window)).toBe(true);
        expect(cached.hits).toBe(3 * t + 1 + 2 * round);
      }
      remainders.add(support.filter((id) => full[id] !== unbiased[id]).length % 4);
    }
    expect([...remainders].sort()).toEqual([0, 1, 2, 3]);
  });

  it('is exact for a support too large for 16-bit positions', () => {
    const support = Int32Array.from({ length: 70_000 }, (_, i) => 2 * i);
    const plain = createScheme(kgw, key);
    const cached = new SupportBiasScheme(createScheme(kgw, key), support);
    for (const context of [[5], [77], [5]]) expect(agrees(plain, cached, support, context)).toBe(true);
    expect(cached.hits).toBe(1);
  });

  it('keeps apart windows that one double cannot hold (V = 256,000, h = 3)', () => {
    const vocab = 256_000;
    const spec = { ...kgw, vocabSize: vocab, contextWidth: 3 };
    const first = [vocab - 1, 0, 0];
    const second = [vocab - 1, 0, 1];
    // A base-V number of three ids needs V^3 ≈ 1.7e16 > 2^53: these two round to one double.
    const packed = (window: number[]) => window.reduce((k, t) => k * vocab + t, 0);
    expect(packed(first)).toBe(packed(second));
    const support = supportOf(vocab, 20_000);
    const plain = createScheme(spec, key);
    const cached = new SupportBiasScheme(createScheme(spec, key), support);
    const biased = (scheme: Scheme, window: number[]) => {
      const row = rowOf(vocab, support, 'one row');
      scheme.biasLogits!(window, row);
      return row;
    };
    const viaWrapper = [biased(cached, first), biased(cached, second)];
    expect(cached.misses).toBe(2);
    expect(cached.cached).toBe(2);
    expect(same(viaWrapper[0], viaWrapper[1])).toBe(false);
    expect(same(viaWrapper[0], biased(plain, first))).toBe(true);
    expect(same(viaWrapper[1], biased(plain, second))).toBe(true);
    // From the cache, each window still gets its own list.
    expect(same(biased(cached, second), viaWrapper[1])).toBe(true);
    expect(same(biased(cached, first), viaWrapper[0])).toBe(true);
    expect(cached.hits).toBe(2);
  });

  it('leaves windows with ids outside the vocabulary to the scheme itself', () => {
    const spec = { ...kgw, contextWidth: 2 };
    const cached = new SupportBiasScheme(createScheme(spec, key), supportOf(V, 1000));
    // As a base-V number, [1, V] would read as [2, 0].
    const row = new Float32Array(V);
    expect(() => cached.biasLogits([1, V], row)).toThrow(WatermarkError);
    expect(cached.cached).toBe(0);
  });

  it('is exact for the reference lefthash schemes, and not offered for their self-seeded ones', () => {
    const vocab = 32_000;
    const support = supportOf(vocab, 5_000);
    const specs = [
      { scheme: 'hf-kgw', vocabSize: vocab, contextWidth: 1, seedingScheme: 'lefthash' },
      { scheme: 'lmw-kgw', vocabSize: vocab, seedingScheme: 'lefthash' },
      { scheme: 'lmw-kgw', vocabSize: vocab, seedingScheme: 'ff-position_prf-3-False' },
    ];
    for (const spec of specs) {
      const plain = createInteropScheme(spec);
      const cached = new SupportBiasScheme(createInteropScheme(spec), support);
      for (const context of [
        [5, 17, 4000],
        [9, 9, 9],
        [5, 17, 4000],
      ]) {
        expect(agrees(plain, cached, support, context)).toBe(true);
      }
      expect(cached.hits).toBe(1);
    }
    expect(SupportBiasScheme.applies(createInteropScheme({ ...specs[0], seedingScheme: 'selfhash' }))).toBe(
      false,
    );
    expect(SupportBiasScheme.applies(createInteropScheme({ ...specs[1], seedingScheme: 'selfhash' }))).toBe(
      false,
    );
  });
});

describe('SupportBiasScheme with an account layer', () => {
  const layered = { ...kgw, accountDelta: 1.5 };

  it("biases exactly as the layered scheme's forAccount(account).biasLogits, the cache shared by accounts", () => {
    const support = supportOf(V, 31_480);
    const rng = createRng('account context');
    const context = Array.from({ length: 10 }, () => support[Math.floor(rng() * 40)]);
    const scheme = createScheme(layered, key) as KgwScheme;
    const wrapper = new SupportBiasScheme(createScheme(layered, key), support);
    // Without an account, the organisation layer alone: the one-layer scheme's bias, and windowGreen as before.
    expect(wrapper.accountLayer).toBeUndefined();
    expect(wrapper.windowGreen).toBeDefined();
    const oneLayer = createScheme(kgw, key);
    for (let end = 1; end <= context.length; end++)
      expect(agrees(oneLayer, wrapper, support, context.slice(0, end))).toBe(true);
    const misses = wrapper.misses;
    for (const account of ['acct-a', 'acct-b', 'ü ∂ 🐙']) {
      const plain = scheme.forAccount(account);
      const view = wrapper.forAccount(account);
      expect(view.account).toBe(account);
      expect(view.accountLayer?.delta).toBe(1.5);
      expect(view.windowGreen).toBeUndefined();
      expect(view.organisationGreen).toBe(wrapper.organisationGreen);
      for (let end = 1; end <= context.length; end++) {
        for (let round = 0; round < 2; round++) {
          expect(agrees(plain, view, support, context.slice(0, end))).toBe(true);
        }
      }
      // A view built from a scheme that already carries the account agrees too.
      const direct = new SupportBiasScheme(createScheme(layered, key, { account }), support);
      expect(direct.account).toBe(account);
      expect(agrees(plain, direct, support, context.slice(0, 4))).toBe(true);
      // Detection through a view is the organisation layer's.
      expect(view.score(context, 3)).toBe(oneLayer.score(context, 3));
    }
    // Every window was cached by the account-less pass: the views only hit the shared cache.
    expect(wrapper.misses).toBe(misses);
    expect(wrapper.forAccount('acct-a').hits).toBe(wrapper.hits);
    // Accounts do change the logits (the layer is really on), and forAccount(undefined) drops it.
    const row = (s: Scheme) => {
      const logits = rowOf(V, support, 'one');
      s.biasLogits!(context, logits);
      return logits;
    };
    expect(same(row(wrapper.forAccount('acct-a')), row(wrapper.forAccount('acct-b')))).toBe(false);
    expect(same(row(wrapper.forAccount('acct-a').forAccount(undefined)), row(oneLayer))).toBe(true);
  });

  it('falls back to the layered scheme itself off the cached path, and refuses accounts without a layer', () => {
    const support = supportOf(V, 2_000);
    const scheme = createScheme(layered, key) as KgwScheme;
    const view = new SupportBiasScheme(createScheme(layered, key), support).forAccount('acct-a');
    // A candidate list (ids) is the inner scheme's own call: the same bits.
    const ids = Int32Array.from(support.subarray(0, 300));
    const a = Float32Array.from(ids, (_, i) => (i % 7) - 3);
    const b = Float32Array.from(a);
    scheme.forAccount('acct-a').biasLogits(ids.subarray(0, 3), a, ids, ids.length);
    view.biasLogits(ids.subarray(0, 3), b, ids, ids.length);
    expect(same(a, b)).toBe(true);
    expect(SupportBiasScheme.applies(scheme.forAccount('acct-a'))).toBe(true);
    expect(() => new SupportBiasScheme(createScheme(kgw, key), support).forAccount('acct-a')).toThrow(
      WatermarkError,
    );
    expect(() => view.forAccount('bad\naccount')).toThrow(WatermarkError);
  });
});
