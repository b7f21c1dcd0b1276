import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bytesToHex } from '@noble/hashes/utils.js';
import {
  checkEvidence,
  type EvidenceBundle,
  escapeHtml,
  holmAdjustLog10,
  kolmogorovSmirnovUniform,
  loadTokenizer,
  radioactivityTest,
  sha256Hex,
  writeKeyFile,
} from '@tracemark/verifier';
import { createRng, createScheme, GenerationSession, MasterKey } from '@tracemark/watermark';
import { beforeAll, describe, expect, it } from 'vitest';
import { expectOneLineError, tracemark, wordModel } from './support/cli';

const CHROMIUM = process.env.TRACEMARK_CHROMIUM ?? '/usr/bin/chromium';
const dir = mkdtempSync(join(tmpdir(), 'tracemark-report-'));
const keyFile = join(dir, 'owner.key');
const otherKeyFile = join(dir, 'other.key');
const SPEC = { scheme: 'kgw', vocabSize: 200019, gamma: 0.25, delta: 2, contextWidth: 1 };
const HOSTILE = '<script>alert("x")</script> & "quoted" \'single\' <img src=x onerror=alert(1)>';

/** Generated ids from a synthetic model over the o200k vocabulary (200,019 ids), with the tenant's watermark. */
function generate(key: MasterKey, tenant: string, words: number[], seed: string, length: number): number[] {
  const scheme = createScheme(SPEC, key, { tenant });
  const session = new GenerationSession(scheme, { prompt: [words[0]], seed });
  const ids = new Int32Array(64);
  const logits = new Float32Array(64);
  for (let i = 0; i < length; i++) {
    const rng = createRng(`model:${session.tokens[session.tokens.length - 1]}`);
    for (let k = 0; k < 64; k++) {
      ids[k] = words[Math.floor(rng() * words.length)];
      logits[k] = 4 * (rng() - 0.5);
    }
    session.nextFromCandidates(ids, logits);
  }
  return session.generated;
}

let key: MasterKey;
let texts: string[];
let verify: Record<string, unknown>;
const verifyFile = join(dir, 'verify.json');
const out = join(dir, 'out');

beforeAll(async () => {
  key = MasterKey.parse('24'.repeat(32));
  writeKeyFile(keyFile, key);
  writeKeyFile(otherKeyFile, MasterKey.parse('25'.repeat(32)));
  const tokenizer = await loadTokenizer('o200k_base');
  const words = wordModel(tokenizer);
  const outputs = ['s1', 's2', 's3', 's4'].map((seed) => generate(key, 'acme', words, seed, 250));
  texts = outputs.map((ids) => tokenizer.decode(ids));
  texts[1] = `${HOSTILE} ${texts[1]}`;
  // A verify result as `tracemark verify --json` reports one: the tape of outputs tested for each tenant,
  // Holm across tenants, and controls from keys that never watermarked anything.
  const samples = outputs.map((output) => ({ prompt: [words[0]], output }));
  const tenants = ['acme', 'globex', 'initech'].map((tenant) =>
    radioactivityTest(samples, { scheme: createScheme(SPEC, key, { tenant }) }),
  );
  const adjusted = holmAdjustLog10(tenants.map((t) => t.log10PValue));
  const controls = Array.from(
    { length: 24 },
    (_, i) =>
      radioactivityTest(samples, {
        scheme: createScheme(SPEC, MasterKey.parse((0x40 + i).toString(16).repeat(32))),
      }).pValue,
  );
  const best = tenants[0];
  verify = {
    pValue: best.pValue,
    log10PValue: best.log10PValue,
    seen: best.seen,
    scored: best.scored,
    controls: { pValues: controls, ks: kolmogorovSmirnovUniform(controls) },
    tenants: tenants.map((t, i) => ({
      id: t.tenant,
      pValue: t.pValue,
      log10PValue: t.log10PValue,
      adjustedPValue: 10 ** adjusted[i],
      adjustedLog10PValue: adjusted[i],
    })),
    trajectory: best.trajectory,
    spec: SPEC,
    keyFingerprint: key.fingerprint,
    tokenizer: 'o200k_base',
    responses: { count: texts.length, sha256: texts.map(sha256Hex) },
    samples: texts.map((text, i) => ({ id: `response ${i + 1} ${i === 1 ? HOSTILE : ''}`, text })),
    model: 'suspect-7b',
    unknownField: { nested: true },
  };
  writeFileSync(verifyFile, JSON.stringify(verify));
  const made = tracemark([
    'report',
    '--in',
    verifyFile,
    '--key-file',
    keyFile,
    '--out',
    out,
    '--label',
    `Audit ${HOSTILE}`,
  ]);
  expect(made.code, made.stderr).toBe(0);
  expect(made.stdout).toMatch(
    /^wrote .*bundle\.json \(signed by tm1:[0-9a-f]{16}\) and .*report\.html \(3 samples highlighted\)\n$/,
  );
});

function bundle(): EvidenceBundle {
  return JSON.parse(readFileSync(join(out, 'bundle.json'), 'utf8'));
}

function check(value: unknown, keyPath = keyFile) {
  const path = join(dir, `check-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(path, typeof value === 'string' ? value : JSON.stringify(value));
  return tracemark(['report', '--check', path, '--key-file', keyPath]);
}

describe('tracemark report: the signed evidence bundle', () => {
  it('holds the evidence, and --check accepts it (exit 0)', () => {
    const { body, signature } = bundle();
    expect(body).toMatchObject({
      format: 'tracemark-evidence/v1',
      tool: { name: 'tracemark' },
      spec: SPEC,
      keyFingerprint: key.fingerprint,
      masterFingerprint: key.fingerprint,
      tokenizer: 'o200k_base',
      counts: { responses: 4, seen: verify.seen, scored: verify.scored },
      pValue: verify.pValue,
      log10PValue: verify.log10PValue,
      detected: true,
      trajectory: verify.trajectory,
      responses: verify.responses,
    });
    expect(body.controls.pValues).toHaveLength(24);
    expect(body.tenants?.map((t) => t.id)).toEqual(['acme', 'globex', 'initech']);
    expect(body.samples?.map((s) => s.sha256)).toEqual(texts.slice(0, 3).map(sha256Hex));
    expect(body.samples?.[0].log10PValue).toBeLessThan(-10);
    expect(Date.parse(body.createdAt)).toBeGreaterThan(Date.now() - 600_000);
    expect(body).not.toHaveProperty('unknownField');
    expect(signature.value).toMatch(/^[0-9a-f]{64}$/);
    const run = check(bundle());
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^valid: .* is signed by tm1:[0-9a-f]{16} \(created .*; p-value .*\)\n$/);
  });

  it.each([
    [
      'a p-value',
      (b: EvidenceBundle) => {
        b.body.pValue = 0.5;
      },
      'pValue',
    ],
    [
      'a response hash',
      (b: EvidenceBundle) => {
        b.body.responses.sha256[2] = sha256Hex('forged');
      },
      'responses.sha256',
    ],
    [
      'the spec',
      (b: EvidenceBundle) => {
        b.body.spec.gamma = 0.5;
      },
      'spec.gamma',
    ],
  ])('fails --check with exit 1 when %s changes, naming the field', (_what, tamper, field) => {
    const altered = bundle();
    tamper(altered);
    const run = check(altered);
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(
      new RegExp(`^INVALID: .*altered since signing: changed ${field.replace('.', '\\.')}\\n$`),
    );
  });

  it('detects every other alteration: any field, an added or removed field, the signature block', () => {
    const alterations: [string, (b: EvidenceBundle) => void, RegExp][] = [
      [
        'controls',
        (b) => {
          b.body.controls.pValues[0] = 0.999;
        },
        /changed controls\.pValues/,
      ],
      ['trajectory', (b) => void b.body.trajectory.pop(), /changed trajectory/],
      [
        'a tenant',
        (b) => {
          b.body.tenants![1].adjustedPValue = 1e-9;
        },
        /changed tenants/,
      ],
      [
        'createdAt',
        (b) => {
          b.body.createdAt = '2020-01-01T00:00:00.000Z';
        },
        /changed createdAt/,
      ],
      [
        'a count',
        (b) => {
          b.body.counts.scored += 1;
        },
        /changed counts\.scored/,
      ],
      ['an added field', (b) => void Object.assign(b.body, { note: 'x' }), /added note/],
      ['a removed field', (b) => void delete (b.body as { label?: string }).label, /removed label/],
      [
        'the signature',
        (b) => {
          b.signature.value = '0'.repeat(64);
        },
        /signature does not match/,
      ],
      [
        'a field digest',
        (b) => {
          b.signature.fields.pValue = '0'.repeat(32);
        },
        /signature block was altered/,
      ],
    ];
    for (const [what, tamper, reason] of alterations) {
      const altered = bundle();
      tamper(altered);
      const result = checkEvidence(JSON.parse(JSON.stringify(altered)), key);
      expect(result.valid, what).toBe(false);
      expect(result.reason, what).toMatch(reason);
    }
    expect(checkEvidence(bundle(), key).valid).toBe(true);
  });

  it('fails --check with exit 1 under another key', () => {
    const run = check(bundle(), otherKeyFile);
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(
      /^INVALID: .*signed by tm1:[0-9a-f]{16}, not by the given key tm1:[0-9a-f]{16}\n$/,
    );
  });

  it.each([
    ['not JSON', '{"format":', /is not valid JSON/],
    ['not a bundle', { hello: 1 }, /is not a tracemark evidence bundle/],
    ['no signature', { format: 'tracemark-evidence/v1', body: {} }, /the bundle has no "signature" object/],
  ])('rejects a malformed bundle (%s) with one line and exit code 2', (_what, value, message) => {
    expectOneLineError(check(value), message);
  });

  it('writes no key material into the bundle or the report', () => {
    const written =
      readFileSync(join(out, 'bundle.json'), 'utf8') + readFileSync(join(out, 'report.html'), 'utf8');
    for (const secret of [
      key.exportHex(),
      key.exportBase64(),
      bytesToHex(key.deriveBytes('report-signature', '')),
    ]) {
      expect(written.toLowerCase()).not.toContain(secret.toLowerCase());
    }
  });
});

describe('tracemark report: input', () => {
  it('names a missing required field of the verify result in one line (exit 2)', () => {
    const { responses: _, ...partial } = verify;
    const file = join(dir, 'partial.json');
    writeFileSync(file, JSON.stringify(partial));
    expectOneLineError(
      tracemark(['report', '--in', file, '--key-file', keyFile, '--out', join(dir, 'x')]),
      /partial\.json: field "responses" is missing or not an object \{ count, sha256 \}/,
    );
    writeFileSync(file, JSON.stringify({ ...verify, trajectory: [{ scored: 'ten' }] }));
    expectOneLineError(
      tracemark(['report', '--in', file, '--key-file', keyFile, '--out', join(dir, 'x')]),
      /field "trajectory\[0\]\.scored" is missing or not a finite number/,
    );
  });

  it('refuses a verify result made with another key, and reads samples from --samples', () => {
    expectOneLineError(
      tracemark(['report', '--in', verifyFile, '--key-file', otherKeyFile, '--out', join(dir, 'y')]),
      /names key tm1:[0-9a-f]{16}, which is not derived from the given key/,
    );
    const { samples: _, ...bare } = verify;
    const file = join(dir, 'bare.json');
    writeFileSync(file, JSON.stringify(bare));
    const samplesFile = join(dir, 'samples.jsonl');
    writeFileSync(samplesFile, `${JSON.stringify({ id: 'from file', body: texts[3] })}\n`);
    const target = join(dir, 'from-samples');
    const args = ['--in', file, '--key-file', keyFile, '--out', target, '--samples', samplesFile];
    const run = tracemark(['report', ...args, '--text-field', 'body']);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/\(1 sample highlighted\)/);
    expect(readFileSync(join(target, 'report.html'), 'utf8')).toContain('<h3>from file <small>250 tokens');
  });
});

describe('the HTML report', () => {
  it('escapes every text and carries no script or external resource', () => {
    const html = readFileSync(join(out, 'report.html'), 'utf8');
    expect(html).not.toMatch(/<script|<img|<link|@import|url\(|https?:\/\/(?!www\.w3\.org\/2000\/svg)/i);
    expect(html).toContain(escapeHtml(HOSTILE));
    expect(html).toContain(`<title>Audit ${escapeHtml(HOSTILE)}</title>`);
    expect(html).toContain("default-src 'none'");
    expect(escapeHtml(`<a href="x" title='y'>&</a>`)).toBe(
      '&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;&lt;/a&gt;',
    );
  });

  it.skipIf(!existsSync(CHROMIUM))(
    'renders in headless Chromium: charts, table, samples, no errors, no requests',
    async () => {
      const { chromium } = await import('playwright-core');
      const browser = await chromium.launch({
        executablePath: CHROMIUM,
        args: ['--headless', '--no-sandbox', '--disable-gpu'],
      });
      try {
        const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
        const problems: string[] = [];
        const requests: string[] = [];
        page.on('console', (message) => {
          if (message.type() === 'error' || message.type() === 'warning') problems.push(message.text());
        });
        page.on('pageerror', (error) => problems.push(String(error)));
        page.on('request', (request) => requests.push(request.url()));
        const url = `file://${join(out, 'report.html')}`;
        await page.goto(url);
        expect(problems).toEqual([]);
        expect(requests).toEqual([url]);
        for (const id of ['trajectory', 'controls']) {
          const box = await page.locator(`svg#${id}`).boundingBox();
          expect(box?.width, id).toBeGreaterThan(100);
          expect(box?.height, id).toBeGreaterThan(100);
        }
        expect(await page.locator('svg#trajectory circle').count()).toBe(
          (verify.trajectory as unknown[]).length,
        );
        expect(await page.locator('svg#controls circle').count()).toBe(24);
        // Rows are ordered by p-value: the owner's tenant first, the two absent ones in either order.
        const rows = await page.locator('#attribution tbody tr').allTextContents();
        expect(rows).toHaveLength(3);
        expect(rows[0]).toMatch(/^acme.*(?<!not )detected$/);
        expect(rows.slice(1).sort()).toEqual([
          expect.stringMatching(/^globex.*not detected$/),
          expect.stringMatching(/^initech.*not detected$/),
        ]);
        expect(await page.locator('.sample').count()).toBe(3);
        expect(await page.locator('.tokens .g').count()).toBeGreaterThan(300);
        expect(await page.locator('h1').textContent()).toBe(`Audit ${HOSTILE}`);
        const screenshot = process.env.TRACEMARK_REPORT_SCREENSHOT ?? join(dir, 'report.png');
        await page.screenshot({ path: screenshot, fullPage: true });
        expect(readFileSync(screenshot).length).toBeGreaterThan(10_000);
      } finally {
        await browser.close();
      }
    },
  );
});
