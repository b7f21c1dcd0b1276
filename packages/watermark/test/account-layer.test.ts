import { describe, expect, it } from 'vitest';
import {
  AccountLayerKey,
  accountGreenWord,
  accountLayerKey,
  canonicalSpec,
  createScheme,
  type KgwScheme,
  keyedSpec,
  MasterKey,
  seededHash32,
} from '../src/index';

const master = MasterKey.parse('5a'.repeat(32));
const V = 50_000;
const single = { scheme: 'kgw', vocabSize: V, gamma: 0.25, delta: 2, contextWidth: 1 };
const layered = { ...single, accountDelta: 1.5 };
const sequence = [17, 4242, 99];

function biased(scheme: KgwScheme, ids: Int32Array | null = null): Float32Array {
  const logits = new Float32Array(ids === null ? V : ids.length);
  scheme.biasLogits(sequence, logits, ids, logits.length);
  return logits;
}

describe('the account layer', () => {
  it('leaves the organisation key and canonical one-layer spec unchanged', () => {
    expect(canonicalSpec({ ...single, accountDelta: 0 })).toBe(canonicalSpec(single));
    expect(keyedSpec(layered)).toBe(keyedSpec(single));
    const one = createScheme(single, master);
    const two = createScheme(layered, master, { account: 'acct-1' });
    expect(two.keyFingerprint).toBe(one.keyFingerprint);
    for (let i = 1; i < sequence.length; i++) expect(two.score(sequence, i)).toBe(one.score(sequence, i));
  });

  it('adds δ on the organisation green list and accountDelta on the account green list, nothing else', () => {
    const org = createScheme(single, master) as KgwScheme;
    const scheme = createScheme(layered, master, { account: 'acct-1' }) as KgwScheme;
    const layer = scheme.accountLayer;
    expect(layer?.account).toBe('acct-1');
    expect(scheme.account).toBe('acct-1');
    expect(scheme.windowGreen).toBeUndefined();
    expect(scheme.organisationGreen).toBeDefined();
    const logits = biased(scheme);
    let accountGreen = 0;
    for (let t = 0; t < V; t++) {
      const a = layer?.isGreen(sequence, sequence.length, t) ? 1.5 : 0;
      const o = org.isGreen(sequence, sequence.length, t) ? 2 : 0;
      expect(Math.abs(logits[t] - a - o)).toBeLessThan(1e-6);
      accountGreen += a > 0 ? 1 : 0;
    }
    // γ = 1/2: within 5 sd of V/2.
    expect(Math.abs(accountGreen - V / 2)).toBeLessThan(5 * Math.sqrt(V / 4));
    // A candidate subset gets the same bias as the full row.
    const ids = Int32Array.from([3, 40, 41, 77, 1000, 1001, 49_999]);
    const sub = biased(scheme, ids);
    ids.forEach((t, i) => {
      expect(sub[i]).toBe(logits[t]);
    });
    // The green list the layer reports is the one it biases.
    const out = new Uint8Array(ids.length);
    const found = layer?.green(sequence, ids, ids.length, out) ?? -1;
    expect(found).toBe(out.reduce((s, b) => s + b, 0));
    ids.forEach((t, i) => {
      expect(out[i]).toBe(Number(layer?.isGreen(sequence, sequence.length, t)));
    });
  });

  it('gives each account its own green list, independent of the others and of the organisation layer', () => {
    const a = (createScheme(layered, master, { account: 'alice' }) as KgwScheme).accountLayer;
    const b = (createScheme(layered, master, { account: 'bob' }) as KgwScheme).accountLayer;
    const again = (createScheme(layered, master) as KgwScheme).forAccount('alice').accountLayer;
    const org = createScheme(single, master) as KgwScheme;
    let both = 0;
    let withOrg = 0;
    let same = 0;
    const n = 20_000;
    for (let t = 0; t < n; t++) {
      const ga = a?.isGreen(sequence, 2, t) ?? false;
      both += Number(ga === (b?.isGreen(sequence, 2, t) ?? false));
      withOrg += Number(ga && org.isGreen(sequence, 2, t));
      same += Number(ga === (again?.isGreen(sequence, 2, t) ?? true));
    }
    expect(same).toBe(n);
    // Agreement 1/2 and joint green 1/8 (1/2 · 1/4), each within 5 sd.
    expect(Math.abs(both - n / 2)).toBeLessThan(5 * Math.sqrt(n / 4));
    expect(Math.abs(withOrg - n / 8)).toBeLessThan(5 * Math.sqrt((n * 7) / 64));
  });

  it('defines the green word as KGW at γ = 1/2 under the seed XOR the account code', () => {
    const key = accountLayerKey(layered, master);
    const code = key.code('carol');
    expect(code).toEqual(new AccountLayerKey(master, keyedSpec(layered)).code('carol'));
    const prf = key.contextPrf(V, 1, 'left');
    prf.seed(sequence, 2);
    const scheme = createScheme(layered, master, { account: 'carol' }) as KgwScheme;
    for (const t of [5, 777, 31_000]) {
      const word = accountGreenWord(prf.lo, prf.hi, code[0], code[1], t >>> 5);
      expect(word).toBe(seededHash32(prf.lo ^ code[0], prf.hi ^ code[1], (t >>> 5) << 5));
      expect(((word >>> (t & 31)) & 1) === 1).toBe(scheme.accountLayer?.isGreen(sequence, 2, t));
    }
    // A tenant's accounts have other codes.
    expect(accountLayerKey(layered, master, 'org-b').code('carol')).not.toEqual(code);
  });

  it('refuses what it cannot carry, in one line', () => {
    expect(() => createScheme(single, master, { account: 'x' })).toThrow(
      /account layer \(accountDelta > 0\)/,
    );
    expect(() => createScheme({ ...layered, hashing: 'self' }, master)).toThrow(
      /accountDelta needs left hashing/,
    );
    expect(() => createScheme({ ...layered, accountDelta: -1 }, master)).toThrow(/accountDelta must be/);
    for (const bad of ['', 'a\nb', 'x'.repeat(257), 'nul\0']) {
      expect(() => createScheme(layered, master, { account: bad })).toThrow(/account id must be/);
    }
    expect(() => accountLayerKey(single, master)).toThrow(/no account layer/);
    // Without an account a layered scheme embeds the organisation layer alone, as the one-layer scheme does.
    const plain = createScheme(layered, master) as KgwScheme;
    const one = createScheme(single, master) as KgwScheme;
    expect(biased(plain)).toEqual(biased(one));
    expect(plain.windowGreen).toBeDefined();
  });
});
