import { describe, expect, it } from 'vitest';
import { GreenListCache } from '../src/interop/greenlist';
import {
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

  it('takes the legacy green list from the end of the permutation', () => {
    const legacy = new GreenListCache(500, 100, true);
    expect(legacy.ids(3)).toEqual(new TorchGenerator(3).randperm(500).subarray(400));
  });
});
