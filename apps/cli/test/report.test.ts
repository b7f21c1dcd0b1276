import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bytesToHex } from '@noble/hashes/utils.js';
import {
  checkEvidence,
  type EvidenceBody,
  type EvidenceBundle,
  escapeHtml,
  evidenceBody,
  formatPValue,
  holmAdjustLog10,
  kolmogorovSmirnovUniform,
  loadTokenizer,
  parseVerifySummary,
  radioactivityTest,
  sha256Hex,
  signEvidence,
  writeKeyFile,
} from '@tracemark/verifier';
import { createScheme, MasterKey } from '@tracemark/watermark';
import { beforeAll, describe, expect, it } from 'vitest';
import { expectOneLineError, tracemark } from './support/cli';
import { wordModel, wordModelIds } from './support/word-model';

const CHROMIUM = process.env.TRACEMARK_CHROMIUM ?? '/usr/bin/chromium';
const dir = mkdtempSync(join(tmpdir(), 'tracemark-report-'));
const keyFile = join(dir, 'owner.key');
const otherKeyFile = join(dir, 'other.key');
const SPEC = { scheme: 'kgw', vocabSize: 200019, gamma: 0.25, delta: 2, contextWidth: 1 };
const HOSTILE = '<script>alert("x")</script> & "quoted" \'single\' <img src=x onerror=alert(1)>';
const ANYTIME_LOG10P = -7.25;

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
  const outputs = ['s1', 's2', 's3', 's4'].map((seed) =>
    wordModelIds(createScheme(SPEC, key, { tenant: 'acme' }), words, seed, 250),
  );
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
    // Probing stopped on the e-process: the verdict cites its anytime-valid p, larger than the exact one.
    stoppedBySequentialTest: true,
    sequential: { log10AnytimePValue: ANYTIME_LOG10P },
    verdict: {
      detected: true,
      pValueCited: 10 ** ANYTIME_LOG10P,
      log10PValueCited: ANYTIME_LOG10P,
      basis: 'anytime',
      controlsPassed: true,
      text: 'watermark detected',
    },
    suspect: {
      requestedModel: 'suspect-7b',
      reportedModels: { 'suspect-7b-0613': 3, [HOSTILE]: 1 },
      endpoints: ['https://auditor:sk-live-secret@api.example.com/v1?key=sk-query-secret'],
      probeDates: { first: '2026-11-30T08:00:00.000Z', last: '2026-11-30T08:05:00.000Z' },
      responses: texts.length,
      tokens: { seen: best.seen, scored: best.scored },
    },
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
  // The evidence is the owner's alone, like the evidence store and the key file.
  for (const name of ['bundle.json', 'report.html'])
    expect(statSync(join(out, name)).mode & 0o777).toBe(0o600);
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
      format: 'tracemark-evidence/v2',
      tool: { name: 'tracemark' },
      spec: SPEC,
      keyFingerprint: key.fingerprint,
      masterFingerprint: key.fingerprint,
      tokenizer: 'o200k_base',
      counts: { responses: 4, seen: verify.seen, scored: verify.scored },
      pValue: verify.pValue,
      log10PValue: verify.log10PValue,
      verdict: {
        basis: 'anytime',
        pValueCited: 10 ** ANYTIME_LOG10P,
        log10PValueCited: ANYTIME_LOG10P,
        controlsPassed: true,
        detected: true,
      },
      suspect: {
        requestedModel: 'suspect-7b',
        reportedModels: { 'suspect-7b-0613': 3, [HOSTILE]: 1 },
        // The endpoint without its credentials.
        endpoints: ['https://api.example.com/v1'],
        probeDates: { first: '2026-11-30T08:00:00.000Z', last: '2026-11-30T08:05:00.000Z' },
        responses: 4,
        tokens: { seen: verify.seen, scored: verify.scored },
      },
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
    expect(run.stdout).toMatch(
      /^valid: .* is signed by tm1:[0-9a-f]{16} \(created .*; anytime-valid p-value 5\.62e-8\)\n$/,
    );
    expect(JSON.stringify(bundle())).not.toContain('secret');
  });

  it('still checks a v1 bundle, and cites the fixed p of a verify result without a verdict', () => {
    const { verdict: _, suspect: __, ...v2 } = bundle().body;
    const v1Body = { ...v2, format: 'tracemark-evidence/v1', detected: true };
    const v1 = { ...signEvidence(v1Body as unknown as EvidenceBody, key), format: 'tracemark-evidence/v1' };
    expect(checkEvidence(v1, key).valid).toBe(true);
    const run = check(v1);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/; p-value \S+\)\n$/);
    const { verdict: ___, stoppedBySequentialTest: ____, suspect: _____, ...legacy } = verify;
    expect(parseVerifySummary(legacy, 'old.json').verdict).toEqual({
      basis: 'fixed',
      pValueCited: verify.pValue,
      log10PValueCited: verify.log10PValue,
      controlsPassed: true,
    });
    // An older verify object after a sequential stop cites its e-process, and its failed controls count.
    const stopped = parseVerifySummary(
      {
        ...legacy,
        stoppedBySequentialTest: true,
        controls: { ...(verify.controls as object), passed: false },
      },
      'old.json',
    );
    expect(stopped.verdict).toEqual({
      basis: 'anytime',
      pValueCited: 10 ** ANYTIME_LOG10P,
      log10PValueCited: ANYTIME_LOG10P,
      controlsPassed: false,
    });
    expect(evidenceBody(stopped, key, { toolVersion: '0', alpha: 1e-3 }).verdict.detected).toBe(false);
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

  it('says which mode produced the evidence: closed by default, reading mode signed into the bundle', () => {
    expect(readFileSync(join(out, 'report.html'), 'utf8')).toContain('<span id="mode">closed mode</span>');
    expect(bundle().body).not.toHaveProperty('mode');
    const file = join(dir, 'read.json');
    const readOut = join(dir, 'read-out');
    writeFileSync(file, JSON.stringify({ ...verify, mode: 'read' }));
    const made = tracemark(['report', '--in', file, '--key-file', keyFile, '--out', readOut]);
    expect(made.code, made.stderr).toBe(0);
    const read = JSON.parse(readFileSync(join(readOut, 'bundle.json'), 'utf8')) as EvidenceBundle;
    expect(read.body.mode).toBe('read');
    const html = readFileSync(join(readOut, 'report.html'), 'utf8');
    expect(html).toContain('<span id="mode">reading mode</span>');
    expect(html).toContain("a suspect model's predictions carry");
    expect(check(read).code).toBe(0);
    writeFileSync(file, JSON.stringify({ ...verify, mode: 'open' }));
    expectOneLineError(
      tracemark(['report', '--in', file, '--key-file', keyFile, '--out', join(dir, 'x')]),
      /read\.json: field "mode" is missing or not "closed" or "read"/,
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
    // The suspect's endpoint is shown as text; no other URL appears.
    expect(html).not.toMatch(
      /<script|<img|<link|@import|url\(|https?:\/\/(?!www\.w3\.org\/2000\/svg|api\.example\.com\/v1<\/code>)/i,
    );
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
        // The headline cites the verdict's p-value and names the suspect, where and when it was probed.
        expect(await page.locator('#verdict').textContent()).toBe('watermark detected');
        expect(await page.locator('#p-cited').textContent()).toBe(
          formatPValue(10 ** ANYTIME_LOG10P, ANYTIME_LOG10P),
        );
        const facts = Object.fromEntries(
          await page
            .locator('dl.facts dt')
            .evaluateAll((dts) => dts.map((dt) => [dt.textContent, dt.nextElementSibling?.textContent])),
        );
        expect(facts['p-value']).toMatch(/^5\.62e-8 \(log10 -7\.250\) anytime-valid/);
        expect(facts['fixed-size p']).toBe(
          `${formatPValue(verify.pValue as number, verify.log10PValue as number)}, not cited: optimistic after a sequential stop`,
        );
        expect(facts.suspect).toBe(
          `suspect-7b-0613 ×3, ${HOSTILE} ×1 (as the endpoint reported it; requested suspect-7b)`,
        );
        expect(facts.endpoint).toBe('https://api.example.com/v1');
        expect(facts.probed).toBe('2026-11-30T08:00:00.000Z to 2026-11-30T08:05:00.000Z');
        expect(facts.responses).toMatch(/^4 stored responses/);
        expect(facts.tokens).toBe(
          `${(verify.scored as number).toLocaleString('en')} scored of ${(verify.seen as number).toLocaleString('en')} seen`,
        );
        const screenshot = process.env.TRACEMARK_REPORT_SCREENSHOT ?? join(dir, 'report.png');
        await page.screenshot({ path: screenshot, fullPage: true });
        expect(readFileSync(screenshot).length).toBeGreaterThan(10_000);
      } finally {
        await browser.close();
      }
    },
  );
});
