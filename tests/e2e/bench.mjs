// How heavy and how fast the web client's first page is, in headless Chromium:
// bytes on the wire and time until the page is drawn (app.js marks `main`), for a
// first visit with gzip, the same without it (the baseline: what the files weigh as
// written), and a return visit (the browser revalidates: 304s).
//
//   node tests/e2e/bench.mjs http://127.0.0.1:8080 [rounds]
//
// Against a running EVA (`make up`). Prints medians and the ratios to the baseline.
import { chromium } from 'playwright-core';
import { CHROMIUM } from './lib.mjs';

const base = process.argv[2] || 'http://127.0.0.1:8080';
const rounds = Number(process.argv[3] || 15);

const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu'] });

/** One visit: { bytes, ms, files } with the context's cache as it is. */
async function visit(page) {
  const t0 = Date.now();
  await page.goto(`${base}/`);
  await page.waitForFunction(() => document.getElementById('main')?.getAttribute('aria-busy') === 'false', null, { polling: 10 });
  const ms = Date.now() - t0;
  const { bytes, files } = await page.evaluate(() => {
    const entries = [...performance.getEntriesByType('navigation'), ...performance.getEntriesByType('resource')];
    return { bytes: entries.reduce((n, e) => n + (e.transferSize || 0), 0), files: entries.length };
  });
  return { bytes, ms, files };
}

async function measure(label, headers, warm) {
  const runs = [];
  for (let i = 0; i < rounds; i += 1) {
    const context = await browser.newContext({ extraHTTPHeaders: headers });
    const page = await context.newPage();
    if (warm) await visit(page);
    runs.push(await visit(page));
    await context.close();
  }
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const out = { label, bytes: median(runs.map((r) => r.bytes)), ms: median(runs.map((r) => r.ms)), files: runs[0].files };
  return out;
}

try {
  const plain = await measure('first visit, no compression (baseline)', { 'accept-encoding': 'identity' }, false);
  const gzip = await measure('first visit, gzip', {}, false);
  const back = await measure('return visit (304 revalidation), gzip', {}, true);
  console.log(`web client: ${base}, ${rounds} rounds each, medians`);
  for (const r of [plain, gzip, back]) {
    console.log(`  ${r.label.padEnd(42)} ${String(r.bytes).padStart(8)} bytes  ${String(r.ms).padStart(5)} ms  ${r.files} files  bytes ×${(r.bytes / plain.bytes).toFixed(2)}  time ×${(r.ms / plain.ms).toFixed(2)}`);
  }
} finally {
  await browser.close();
}
