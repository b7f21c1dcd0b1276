import { describe, expect, it } from 'vitest';
import { GreenListCache, SEEN_ONCE_LIMIT } from '../src/interop/greenlist';
import {
  mt19937Blocks,
  PrefixMembershipTable,
  RANDPERM_SMALL_LIMIT,
  RandpermWorkspace,
  TorchGenerator,
  toUint64,
} from '../src/interop/torch-random';
import vectors from './fixtures/interop.json';

/** Σ i · perm[i] mod 2^32, the checksum the vectors record for whole permutations. */
function weightedSum(values: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum = (sum + i * values[i]) % 4294967296;
  return sum;
}

describe('torch CPU generator (MT19937 as torch.Generator().manual_seed seeds it)', () => {
  it.each(vectors.mt19937)('reproduces the first draws for seed $seed', ({ seed, first }) => {
    const generator = new TorchGenerator(seed);
    expect(Array.from({ length: first.length }, () => generator.random())).toEqual(first);
  });

  it('twists the same blocks with WebAssembly SIMD as in plain JavaScript', () => {
    const { scalar, simd } = mt19937Blocks;
    // Node 20 has WebAssembly SIMD, so the fast path is the one the vectors above exercise.
    expect(simd).toBeDefined();
    if (simd === undefined) return;
    for (const start of [0, 1, 0x7fffffff, 0xdeadbeef]) {
      const a = new Int32Array(624);
      let x = start;
      for (let i = 0; i < 624; i++) {
        x = (Math.imul(x, 1664525) + 1013904223) | 0;
        a[i] = x;
      }
      const b = a.slice();
      const outA = new Int32Array(624);
      const outB = new Int32Array(624);
      for (let block = 0; block < 40; block++) {
        scalar(a, outA);
        simd(b, outB);
        expect(b).toEqual(a);
        expect(outB).toEqual(outA);
      }
    }
  });

  it('reads only the low 32 bits of a 64-bit seed', () => {
    const a = new TorchGenerator('4294967303');
    const b = new TorchGenerator(7);
    expect(Array.from({ length: 700 }, () => a.random())).toEqual(
      Array.from({ length: 700 }, () => b.random()),
    );
    expect(new TorchGenerator('18446744073709551615').initialSeed).toBe(2n ** 64n - 1n);
  });

  it('random64 puts the first 32-bit draw in the high word', () => {
    const a = new TorchGenerator(5489);
    const b = new TorchGenerator(5489);
    expect(a.random64()).toBe((BigInt(b.random()) << 32n) | BigInt(b.random()));
  });

  it('rejects seeds outside [0, 2^64 - 1]', () => {
    for (const seed of [-1, 1.5, '18446744073709551616', 'abc', 2 ** 60]) {
      expect(() => new TorchGenerator(seed as number)).toThrow(
        expect.objectContaining({ code: 'E_INVALID_SPEC' }),
      );
    }
    expect(toUint64('18446744073709551615')).toBe(2n ** 64n - 1n);
  });
});

describe('torch.randperm on CPU', () => {
  it.each(vectors.randperm)(
    'matches randperm($n) for seed $seed',
    ({ n, seed, head, weightedSumMod2p32 }) => {
      const perm = new TorchGenerator(seed).randperm(n);
      expect(Array.from(perm.subarray(0, head.length))).toEqual(head);
      expect(weightedSum(perm)).toBe(weightedSumMod2p32);
    },
  );

  it('gives the same prefix through the O(k) lazy shuffle, call after call', () => {
    for (const n of [2, 10, 1000, 50257]) {
      const work = new RandpermWorkspace(n);
      for (const k of [1, Math.floor(n / 4), n - 1, n]) {
        for (const seed of [0, 1, 123456789]) {
          const out = new Int32Array(k);
          const bits = new Uint32Array(Math.ceil(n / 32));
          new TorchGenerator(seed).randpermPrefix(work, k, out, bits);
          const full = new TorchGenerator(seed).randperm(n);
          expect(out).toEqual(full.subarray(0, k));
          let set = 0;
          for (let t = 0; t < n; t++) set += (bits[t >>> 5] >>> (t & 31)) & 1;
          expect(set).toBe(k);
        }
      }
    }
  });

  it('keeps drawing the same stream after a prefix (the generator state advances by k draws)', () => {
    const work = new RandpermWorkspace(100);
    const a = new TorchGenerator(42);
    a.randpermPrefix(work, 30, new Int32Array(30));
    const b = new TorchGenerator(42);
    for (let i = 0; i < 30; i++) b.random();
    expect(a.random()).toBe(b.random());
  });

  it('implements the random64 inside-out branch used from n = 214,748,364 on', () => {
    expect(RANDPERM_SMALL_LIMIT).toBe(214748364);
    // Reference: torch's loop with BigInt arithmetic for random64() % (i + 1).
    const n = 5000;
    const reference = new Int32Array(n);
    const g = new TorchGenerator(99);
    for (let i = 0; i < n; i++) {
      const z = Number(g.random64() % BigInt(i + 1));
      reference[i] = i;
      reference[i] = reference[z];
      reference[z] = i;
    }
    expect(new TorchGenerator(99).randpermInsideOut(n)).toEqual(reference);
  });
});

describe('randperm prefix membership by following one token (randpermPrefixHas)', () => {
  /** Tokens to ask about: both ends of the vocabulary, both sides of k, and a spread in between. */
  function probeTokens(n: number, k: number): number[] {
    const probes = new Set([0, 1, n - 2, n - 1, k - 1, k, k + 1, Math.floor(n / 2)]);
    for (let t = 0; t < n; t += Math.max(1, Math.floor(n / 97))) probes.add(t);
    return [...probes].filter((t) => t >= 0 && t < n);
  }

  it('answers exactly as the first k entries of randperm(n), for every token of small n', () => {
    for (const n of [1, 2, 3, 4, 7, 8, 31, 64, 100]) {
      for (let k = 0; k <= n; k++) {
        const table = new PrefixMembershipTable(n, k);
        for (const seed of [0, 1, 2, 123456789, 4294967295]) {
          const prefix = new Set(new TorchGenerator(seed).randperm(n).subarray(0, k));
          const generator = new TorchGenerator(0);
          for (let t = 0; t < n; t++) {
            expect(generator.seedLow32(seed).randpermPrefixHas(table, t)).toBe(prefix.has(t));
          }
        }
      }
    }
  });

  it('answers exactly for V = 50,257 and V = 128,256 (green lists and legacy complements), many seeds', () => {
    for (const n of [50_257, 128_256]) {
      for (const k of [Math.trunc(n * 0.25), Math.trunc(n * 0.5), n - Math.trunc(n * 0.25), n - 1, n]) {
        const table = new PrefixMembershipTable(n, k);
        const generator = new TorchGenerator(0);
        for (let s = 0; s < 6; s++) {
          // Seeds as hf-kgw lefthash draws them (hashing key × token), low 32 bits.
          const seed = (15_485_863 * (s * 7919 + 11)) % 4294967296;
          const perm = new TorchGenerator(seed).randperm(n);
          const rank = new Int32Array(n);
          for (let i = 0; i < n; i++) rank[perm[i]] = i;
          for (const t of probeTokens(n, k)) {
            expect(generator.seedLow32(seed).randpermPrefixHas(table, t)).toBe(rank[t] < k);
          }
          // Every member of the prefix, including those that land at its last step.
          for (let i = Math.max(0, k - 3); i < k; i++) {
            expect(generator.seedLow32(seed).randpermPrefixHas(table, perm[i])).toBe(true);
          }
        }
      }
    }
  });

  it('continues a stream already drawn from (the part of a block drawn before the walk)', () => {
    const n = 50_257;
    const k = Math.trunc(n * 0.25);
    const table = new PrefixMembershipTable(n, k);
    for (const drawn of [1, 3, 100, 623, 624, 700]) {
      const reference = new TorchGenerator(99);
      for (let d = 0; d < drawn; d++) reference.random();
      const perm = reference.randperm(n);
      for (const t of [perm[0], perm[1], perm[k - 1], perm[k], perm[n - 1], 0, n - 1]) {
        const walker = new TorchGenerator(99);
        for (let d = 0; d < drawn; d++) walker.random();
        expect(walker.randpermPrefixHas(table, t)).toBe(perm.subarray(0, k).includes(t));
      }
    }
  });

  it('is false for ids outside [0, n) and refuses impossible prefixes', () => {
    const table = new PrefixMembershipTable(10, 10);
    const generator = new TorchGenerator(1);
    for (const t of [-1, 10, 11, 2 ** 31]) expect(generator.randpermPrefixHas(table, t)).toBe(false);
    for (const [n, k] of [
      [0, 0],
      [10, 11],
      [10, -1],
      [1.5, 1],
    ]) {
      expect(() => new PrefixMembershipTable(n, k)).toThrow(
        expect.objectContaining({ code: 'E_INVALID_SPEC' }),
      );
    }
  });
});

describe('torch.randint(0, 2, size) on CPU', () => {
  it.each(vectors.randint01)(
    'matches the table for seed $seed',
    ({ seed, size, head, sum, weightedSumMod2p32 }) => {
      const bits = new TorchGenerator(seed).randint(0, 2, size);
      expect(Array.from(bits.subarray(0, head.length))).toEqual(head);
      expect(bits.reduce((a, b) => a + b, 0)).toBe(sum);
      expect(weightedSum(bits)).toBe(weightedSumMod2p32);
    },
  );

  it('refuses ranges where torch versions disagree on 32- or 64-bit draws', () => {
    expect(() => new TorchGenerator(0).randint(0, 2 ** 28, 4)).toThrow(
      expect.objectContaining({ code: 'E_INVALID_SPEC' }),
    );
  });
});

describe('green-list cache', () => {
  it('returns the same bitsets with a tiny cache as with a large one (evictions are exact)', () => {
    const big = new GreenListCache(1000, 250);
    const tiny = new GreenListCache(1000, 250, false, { maxBytes: 200 });
    expect(tiny.capacity).toBe(1);
    for (const seed of [5, 6, 5, 7, 6, 5]) expect(tiny.bits(seed)).toEqual(big.bits(seed));
    expect(tiny.misses).toBe(6);
    expect(big.hits).toBe(3);
  });

  it('answers isGreen by a walk on a first-seen seed, builds the bitset on the second, and agrees with it', () => {
    for (const [vocab, fromEnd] of [
      [128_256, false],
      [128_256, true],
      [50_257, false],
      [1000, true],
    ] as const) {
      const green = Math.trunc(vocab * 0.25);
      const lists = new GreenListCache(vocab, green, fromEnd);
      const reference = new GreenListCache(vocab, green, fromEnd);
      const seeds = [0, 7, 4294967295, 15_485_863 * 50_000, 3_000_000_000];
      const tokens = [
        0,
        1,
        green - 1,
        green,
        vocab - green - 1,
        vocab - green,
        vocab - 2,
        vocab - 1,
        4321 % vocab,
      ];
      for (const seed of seeds) {
        const bits = reference.bits(seed);
        const expected = tokens.map((t) => ((bits[t >>> 5] >>> (t & 31)) & 1) === 1);
        // First question on a seed: walked, nothing cached.
        expect(lists.isGreen(seed, tokens[0])).toBe(expected[0]);
        // The next ones: the bitset is built once, then hit.
        expect(tokens.map((t) => lists.isGreen(seed, t))).toEqual(expected);
        // A fresh cache walks every token: the same answers.
        const walked = tokens.map((t) => new GreenListCache(vocab, green, fromEnd).isGreen(seed, t));
        expect(walked).toEqual(expected);
      }
      expect(lists.walks).toBe(seeds.length);
      expect(lists.misses).toBe(seeds.length);
      expect(lists.hits).toBe(seeds.length * (tokens.length - 1));
      expect(lists.isGreen(seeds[0], vocab)).toBe(false);
    }
  });

  it('forgets first-seen seeds after at most two generations of others (bounded memory)', () => {
    const lists = new GreenListCache(64, 16);
    lists.isGreen(1, 0);
    for (let seed = 2; seed < 2 * SEEN_ONCE_LIMIT + 3; seed++) lists.isGreen(seed, 0);
    const walks = lists.walks;
    lists.isGreen(1, 0);
    expect(lists.walks).toBe(walks + 1);
    expect(lists.misses).toBe(0);
    // A seed seen within the last generation is still remembered: its second question builds the bitset.
    lists.isGreen(2 * SEEN_ONCE_LIMIT + 2, 0);
    expect(lists.misses).toBe(1);
  });

  it('takes the legacy green list from the end of the permutation', () => {
    const legacy = new GreenListCache(500, 100, true);
    expect(legacy.ids(3)).toEqual(new TorchGenerator(3).randperm(500).subarray(400));
  });
});
