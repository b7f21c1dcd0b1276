/**
 * Takes docs/ui.png: drives the UI of a running server (TRACEMARK_URL, default http://127.0.0.1:3000) in
 * Debian's Chromium through all three panels, then saves a full-page screenshot.
 *
 *   pnpm start &   # then, once it listens:
 *   pnpm --filter @tracemark/demo-server screenshot
 */
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const base = process.env.TRACEMARK_URL ?? 'http://127.0.0.1:3000';
const out = process.argv[2] ?? fileURLToPath(new URL('../../../docs/ui.png', import.meta.url));

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu'],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 }, deviceScaleFactor: 1 });
  page.setDefaultTimeout(180_000);
  await page.goto(`${base}/`);
  await page.waitForFunction(
    () => document.getElementById('auth-state')?.textContent === 'UI session (loopback)',
  );
  await page.fill('#max-tokens', '90');
  await page.click('#generate');
  await page.waitForSelector('#verdict-watermarked.hit, #verdict-watermarked.miss');
  await page.waitForSelector('#verdict-plain.hit, #verdict-plain.miss');
  await page.click('button[data-target="out-watermarked"]');
  await page.waitForSelector('#detect-stats[data-log10p]');
  for (const suspect of ['tracemark-student-clean', 'tracemark-student-distilled']) {
    await page.selectOption('#suspect', suspect);
    await page.evaluate(() => {
      delete document.getElementById('distill-progress')!.dataset.state;
    });
    await page.click('#probe');
    await page.waitForSelector('#distill-progress[data-state="done"]');
  }
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: out, fullPage: true });
  console.log(`wrote ${out}`);
} finally {
  await browser.close();
}
