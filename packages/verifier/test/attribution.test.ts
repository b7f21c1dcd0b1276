import {
  createRng,
  createScheme,
  GenerationSession,
  type KgwScheme,
  MasterKey,
  seededHash32,
} from '@tracemark/watermark';
import { describe, expect, it } from 'vitest';
import {
  type AccountGroups,
  accountLayerTest,
  accountSums,
  attributeAccounts,
  binomialCountInterval,
  kolmogorovSmirnovUniform,
  prepareAccounts,
  type SuspectSample,
} from '../src/index';

const V = 50_000;
const master = MasterKey.parse('6b'.repeat(32));
const spec = { scheme: 'kgw', vocabSize: V, gamma: 0.25, delta: 2, contextWidth: 1, accountDelta: 1.5 };
const CANDIDATES_PER_STEP = 48;

/**
 * Samples written for `account` (undefined: the organisation layer alone; null: no watermark) by a toy model whose
 * next-token candidates and logits are a function of the previous token: enough entropy for a watermark to
 * show, and the same model for every account.
 */
function samplesOf(
  account: string | null | undefined,
  count: number,
  length: number,
  seed: string,
): SuspectSample[] {
  const scheme = createScheme(spec, master, account ? { account } : {});
  const ids = new Int32Array(CANDIDATES_PER_STEP);
  const logits = new Float32Array(CANDIDATES_PER_STEP);
  return Array.from({ length: count }, (_, k) => {
    const rng = createRng(`${seed}:${account}:${k}`);
    const prompt = [Math.floor(rng() * V), Math.floor(rng() * V)];
    const session = new GenerationSession(scheme, {
      prompt,
      seed: `${seed}/${account}/${k}`,
      watermark: account !== null,
    });
    for (let i = 0; i < length; i++) {
      const context = createRng(`model:${session.tokens[session.tokens.length - 1]}`);
      for (let c = 0; c < CANDIDATES_PER_STEP; c++) {
        ids[c] = Math.floor(context() * V);
        logits[c] = 2 * Math.sqrt(-2 * Math.log(1 - context())) * Math.cos(2 * Math.PI * context());
      }
      // Fresh tokens now and then, so that contexts keep changing.
      if (rng() < 0.3) ids[0] = Math.floor(rng() * V);
      session.nextFromCandidates(ids, logits);
    }
    return { prompt, output: session.generated };
  });
}

const candidates = (n: number, prefix = 'acct') => Array.from({ length: n }, (_, i) => `${prefix}-${i}`);

describe('attributeAccounts', () => {
  it('traces a mixed leak to its three accounts, and to no other of 2,000 candidates', async () => {
    const accounts = candidates(2000);
    const leak = [
      ...samplesOf('acct-17', 60, 120, 'leak'),
      ...samplesOf('acct-1234', 60, 120, 'leak'),
      ...samplesOf('acct-1999', 60, 120, 'leak'),
      ...samplesOf(null, 180, 120, 'leak'),
      // An account outside the candidate list: its outputs carry the organisation layer, not a candidate's.
      ...samplesOf('stranger', 40, 120, 'leak'),
    ];
    const result = await attributeAccounts(leak, { spec, master, accounts, threads: 1 });
    expect(result.correction).toBe('holm');
    expect(result.candidates).toBe(2000);
    expect(new Set(result.attributed)).toEqual(new Set(['acct-17', 'acct-1234', 'acct-1999']));
    for (const row of result.accounts.slice(0, 3)) {
      expect(row.adjustedPValue).toBeLessThan(1e-3);
      // Most of each account's 60 samples stand out on their own.
      expect(row.samples).toBeGreaterThan(30);
    }
    expect(result.accounts[3].adjustedPValue).toBeGreaterThan(1e-3);
    expect(result.organisation.log10PValue).toBeLessThan(-20);
    expect(result.scored).toBeGreaterThan(30_000);
    // Accounts that wrote nothing look uniform.
    const rest = result.accounts.filter((r) => !r.attributed).map((r) => r.pValue);
    expect(kolmogorovSmirnovUniform(rest).pValue).toBeGreaterThan(1e-3);
    // Sorted by adjusted p-value.
    for (let i = 1; i < result.accounts.length; i++)
      expect(result.accounts[i].log10AdjustedPValue).toBeGreaterThanOrEqual(
        result.accounts[i - 1].log10AdjustedPValue,
      );
  });

  it('scores on worker threads exactly as in one thread', async () => {
    const samples = [...samplesOf('acct-3', 10, 80, 'threads'), ...samplesOf(null, 10, 80, 'threads')];
    const accounts = candidates(300);
    const one = await attributeAccounts(samples, { spec, master, accounts, threads: 1 });
    const two = await attributeAccounts(samples, { spec, master, accounts, threads: 2 });
    expect(two.threads).toBe(2);
    expect(two.accounts).toEqual(one.accounts);
  });

  it('counts each account as its own layer scores it, position by position', async () => {
    const samples = [...samplesOf('acct-5', 8, 100, 'brute'), ...samplesOf('acct-6', 8, 100, 'brute')];
    const accounts = ['acct-5', 'acct-6', 'acct-7'];
    const result = await attributeAccounts(samples, { spec, master, accounts });
    // Brute force: every distinct (previous token, token) of the outputs whose window is not one of its prompt's.
    for (const id of accounts) {
      const layer = (createScheme(spec, master, { account: id }) as KgwScheme).accountLayer;
      const seen = new Set<string>();
      let green = 0;
      for (const sample of samples) {
        const prompt = Array.from(sample.prompt);
        const sequence = [...prompt, ...Array.from(sample.output)];
        const promptWindows = new Set(prompt);
        for (let i = prompt.length; i < sequence.length; i++) {
          const pair = `${sequence[i - 1]},${sequence[i]}`;
          if (seen.has(pair) || promptWindows.has(sequence[i - 1])) continue;
          seen.add(pair);
          green += Number(layer?.isGreen(sequence, i, sequence[i]));
        }
      }
      expect(result.accounts.find((r) => r.id === id)?.green).toBe(green);
    }
  });

  it('tests one account on one set as attribution counts it (accountLayerTest)', async () => {
    const samples = samplesOf('acct-8', 6, 100, 'one');
    const own = accountLayerTest(samples, { spec, master, account: 'acct-8' });
    const other = accountLayerTest(samples, { spec, master, account: 'acct-9' });
    const both = await attributeAccounts(samples, { spec, master, accounts: ['acct-8', 'acct-9'] });
    expect(own.nullLaw).toEqual({ kind: 'bernoulli', p: 0.5 });
    expect(own.scoreSum).toBe(both.accounts.find((r) => r.id === 'acct-8')?.green);
    expect(other.scoreSum).toBe(both.accounts.find((r) => r.id === 'acct-9')?.green);
    expect(own.scored).toBe(both.scored);
    expect(own.log10PValue).toBeLessThan(-6);
    expect(other.pValue).toBeGreaterThan(1e-3);
  });

  it('keeps its hot loop equal to seededHash32', () => {
    const rng = createRng('loop');
    const n = 5000;
    const singles = 3000;
    const word = () => (rng() * 2 ** 32) | 0;
    const lo = Int32Array.from({ length: n }, word);
    const base = Int32Array.from({ length: n }, () => Math.floor(rng() * 6000) << 5);
    const groups: AccountGroups = {
      key: lo.map((l, g) => l ^ base[g]),
      hi: Int32Array.from({ length: n }, word),
      bits: Int32Array.from({ length: n }, (_, g) => (g < singles ? Math.floor(rng() * 32) : word())),
      singles,
    };
    const codes = Int32Array.from({ length: 6 }, word);
    const sums = new Float64Array(3);
    accountSums(groups, codes, 0, 3, sums);
    for (let a = 0; a < 3; a++) {
      let expected = 0;
      for (let g = 0; g < n; g++) {
        const green = seededHash32(lo[g] ^ codes[2 * a], groups.hi[g] ^ codes[2 * a + 1], base[g]);
        const mask = g < singles ? 1 << groups.bits[g] : groups.bits[g];
        for (let b = 0; b < 32; b++) expected += ((green & mask) >>> b) & 1;
      }
      expect(sums[a]).toBe(expected);
    }
  });

  it('holds its family-wise error on 200 clean datasets (other accounts and plain text)', async () => {
    const accounts = prepareAccounts(spec, master, candidates(2000));
    const level = 0.1;
    let rejected = 0;
    const minima: number[] = [];
    for (let d = 0; d < 200; d++) {
      const samples = samplesOf(d % 2 === 0 ? `outsider-${d}` : null, 4, 60, `clean-${d}`);
      const result = await attributeAccounts(samples, { spec, master, accounts, alpha: level, threads: 1 });
      minima.push(result.accounts[0].adjustedPValue);
      if (result.attributed.length > 0) rejected++;
    }
    // Holm controls the family-wise error at `level` under any dependence: the count of datasets with a false
    // attribution stays under the binomial bound for 200 trials at that level (0.999 one-sided).
    const { upper } = binomialCountInterval(200, level, 0.998);
    expect(rejected).toBeLessThanOrEqual(upper);
    expect(minima.every((p) => p > 0)).toBe(true);
  }, 120_000);

  it('refuses bad candidate lists and empty datasets in one line', async () => {
    const samples = samplesOf('acct-1', 2, 20, 'bad');
    await expect(attributeAccounts(samples, { spec, master, accounts: [] })).rejects.toThrow(
      /at least one candidate/,
    );
    await expect(attributeAccounts(samples, { spec, master, accounts: ['a', 'b', 'a'] })).rejects.toThrow(
      /account "a" is listed twice/,
    );
    await expect(
      attributeAccounts(samples, { spec: { ...spec, accountDelta: 0 }, master, accounts: ['a'] }),
    ).rejects.toThrow(/no account layer/);
    await expect(
      attributeAccounts([{ prompt: [1, 2], output: [] }], { spec, master, accounts: ['a'] }),
    ).rejects.toThrow(/no scorable token/);
    const otherKey = prepareAccounts(spec, MasterKey.parse('7c'.repeat(32)), ['a']);
    await expect(attributeAccounts(samples, { spec, master, accounts: otherKey })).rejects.toThrow(
      /made for another key/,
    );
  });
});
