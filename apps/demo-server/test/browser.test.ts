import { existsSync } from 'node:fs';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApp, type TestApp } from './helpers';

/** Debian's Chromium (`apt-get install -y chromium`); .ci/run installs it when it is missing. */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

let t: TestApp;
let browser: Browser;
let page: Page;
let url: string;

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `${CHROMIUM} is missing: install it with "apt-get install -y chromium" (or set CHROMIUM_PATH)`,
    );
  }
  t = await startApp();
  url = await t.app.listen({ host: '127.0.0.1', port: 0 });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu'],
  });
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.setDefaultTimeout(30_000);
});
afterAll(async () => {
  await browser?.close();
  await t?.cleanup();
});

describe('the web UI in Chromium', () => {
  it('generates with and without the watermark, then detects and highlights each token', async () => {
    const errors: string[] = [];
    page.on('pageerror', (error) => errors.push(error.message));
    await page.goto(`${url}/`);
    await page.waitForFunction(() => document.getElementById('fingerprint')?.textContent?.startsWith('tm1:'));
    await page.waitForFunction(
      () => document.getElementById('auth-state')?.textContent === 'UI session (loopback)',
    );

    await page.fill('#prompt', 'The Queen turned angrily away from him, and said to the');
    await page.fill('#max-tokens', '60');
    await page.click('#generate');
    await page.waitForSelector('#verdict-watermarked.hit');
    await page.waitForSelector('#verdict-plain.miss');
    expect(await page.textContent('#verdict-watermarked')).toMatch(/p = .*watermarked/);
    const generated = await page.$eval(
      '#out-watermarked',
      (el) => (el as HTMLElement).dataset.generated ?? '',
    );
    expect(generated.length).toBeGreaterThan(40);

    await page.click('button[data-target="out-watermarked"]');
    await page.waitForSelector('#detect-stats .hit');
    const tokens = await page.$$eval('#detect-tokens .tok', (spans) =>
      spans.map((s) => ({
        kind: s.className.replace('tok ', ''),
        counted: (s as HTMLElement).dataset.counted,
        text: s.textContent,
      })),
    );
    const up = tokens.filter((s) => s.kind === 'up').length;
    const down = tokens.filter((s) => s.kind === 'down').length;
    expect(up).toBeGreaterThan(down);
    expect(tokens.some((s) => s.kind === 'skip' && s.counted === 'false')).toBe(true);
    expect(tokens.filter((s) => s.kind !== 'skip').every((s) => s.counted === 'true')).toBe(true);
    expect(await page.textContent('#detect-tokens')).toBe(generated);
    expect(Number(await page.getAttribute('#detect-stats', 'data-log10p'))).toBeLessThan(-3);
    expect(errors).toEqual([]);
  });

  it('probes a student and plots its radioactivity p-value trajectory', async () => {
    await page.selectOption('#suspect', 'tracemark-student-distilled');
    await page.fill('#probe-count', '8');
    await page.fill('#probe-tokens', '32');
    await page.click('#probe');
    await page.waitForSelector('#distill-progress[data-state="done"]');
    const progress = await page.textContent('#distill-progress');
    expect(progress).toMatch(/tracemark-student-distilled: p = /);
    // The control keys ran, and the verdict describes evidence, not a cause.
    expect(progress).toMatch(/Control keys: 50 tested, Kolmogorov-Smirnov p = /);
    expect(progress).toMatch(
      /its outputs carry the watermark, p = |no evidence that its outputs carry the watermark/,
    );
    expect(progress).not.toMatch(/trained on/);
    const path = await page.getAttribute('#plot path[data-model="tracemark-student-distilled"]', 'd');
    expect(path).toMatch(/^M[\d.]+,[\d.]+( L[\d.]+,[\d.]+)+$/);
    expect(await page.textContent('#plot-legend')).toContain('scored tokens');
  });
});
