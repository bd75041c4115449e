// What every browser journey needs: the fixtures made by the Rust test
// (tests/tests/system/web.rs), a headless Chromium, an accessibility check (axe-core,
// WCAG 2.1 A and AA), a phone check (fitsPhone: 390 px, nothing sticking out, axe again),
// screenshots, and named steps whose failure says where it happened.
// Run by web.rs as `node tests/e2e/<file>.mjs`; `npm ci --prefix tests/e2e` installs the
// two dependencies (scripts/ensure-tools.sh does it).

import { mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const require = createRequire(import.meta.url);

/** The browser: Debian's chromium (scripts/ensure-tools.sh installs it). */
export const CHROMIUM = process.env.EVA_CHROMIUM || '/usr/bin/chromium';

/** Where screenshots go: EVA_E2E_SCREENSHOTS, else a folder in the temp dir. */
export const SCREENSHOTS = process.env.EVA_E2E_SCREENSHOTS || join(tmpdir(), 'eva-e2e-screenshots');

/** The WCAG levels checked: 2.0 and 2.1, A and AA. */
const AXE_TAGS = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'];

let axeSource;
let current; // the page of the last launch(), for a screenshot when a step fails
const problems = []; // console errors and page errors, shown when a step fails

/** The fixtures: EVA_E2E parsed (baseUrl, counselor, person, analyst, structures). */
export function fixtures() {
  const raw = process.env.EVA_E2E;
  if (!raw) throw new Error('EVA_E2E is not set: run through tests/tests/system/web.rs');
  return JSON.parse(raw);
}

/** A headless Chromium with a fresh context (1280×800, fr-FR): `{ browser, context, page }`. */
export async function launch() {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  const context = await browser.newContext({
    viewport: { width: 1280, height: 800 },
    locale: 'fr-FR',
  });
  context.setDefaultTimeout(15_000);
  const page = await context.newPage();
  page.on('console', (m) => {
    // Failed loads are told with their address by the 'response' handler below.
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) {
      problems.push(`console: ${m.text()}`);
    }
  });
  page.on('response', (r) => {
    if (r.status() >= 400) problems.push(`${r.status()} ${r.request().method()} ${r.url()}`);
  });
  page.on('requestfailed', (r) => {
    problems.push(`failed ${r.method()} ${r.url()}: ${r.failure()?.errorText ?? ''}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  current = page;
  return { browser, context, page };
}

/**
 * Runs axe-core on the page as it is (WCAG 2.1 A and AA); throws listing rule id and
 * targets for every violation of impact `serious` or `critical`. Answers the violations
 * of lesser impact, which are only logged.
 */
export async function checkA11y(page, name) {
  axeSource ??= readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
  // Evaluated through the DevTools protocol, not a <script> tag: a page whose
  // Content-Security-Policy forbids inline scripts is checked as it is served.
  const loaded = await page.evaluate(() => typeof window.axe !== 'undefined');
  if (!loaded) await page.evaluate(axeSource);
  const violations = await page.evaluate(async (tags) => {
    const r = await window.axe.run(document, {
      runOnly: { type: 'tag', values: tags },
      resultTypes: ['violations'],
    });
    return r.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      targets: v.nodes.map((n) => n.target.join(' ')),
    }));
  }, AXE_TAGS);
  const grave = violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  const minor = violations.filter((v) => !grave.includes(v));
  for (const v of minor) {
    console.log(`  a11y (${name}): ${v.impact} ${v.id}: ${v.targets.join(', ')}`);
  }
  if (grave.length > 0) {
    const lines = grave.map((v) => `  ${v.impact} ${v.id} (${v.help}): ${v.targets.join(', ')}`);
    throw new Error(`accessibility of « ${name} »: ${grave.length} violation(s)\n${lines.join('\n')}`);
  }
  console.log(`  a11y (${name}): no serious or critical violation`);
  return minor;
}

/** A full-page PNG, `<name>.png` in the screenshots folder; answers its path. */
export async function screenshot(page, name) {
  mkdirSync(SCREENSHOTS, { recursive: true });
  const path = join(SCREENSHOTS, `${name}.png`);
  // A full-page picture would show the sticky message bar across the middle of the
  // page: it is laid out in the flow (at the bottom) for the picture only.
  const moved = await page.evaluate(() => {
    const n = document.getElementById('notice');
    if (!n) return false;
    n.style.position = 'static';
    return true;
  }).catch(() => false);
  await page.screenshot({ path, fullPage: true });
  if (moved) await page.evaluate(() => { document.getElementById('notice').style.position = ''; }).catch(() => {});
  console.log(`  screenshot: ${path}`);
  return path;
}

/**
 * Runs one named step: logs it, and on failure rethrows with the step's name, the
 * page's address, the console errors seen so far, and a screenshot of the page
 * (in the temp dir, never among the committed screenshots).
 */
export async function step(name, fn) {
  console.log(`step: ${name}`);
  const started = Date.now();
  try {
    const out = await fn();
    console.log(`  ok (${Date.now() - started} ms)`);
    return out;
  } catch (e) {
    let where = '';
    if (current && !current.isClosed()) {
      where = `\n  at ${current.url()}`;
      try {
        const dir = join(tmpdir(), 'eva-e2e-failures');
        mkdirSync(dir, { recursive: true });
        const path = join(dir, `${name.replace(/[^\p{L}\p{N}]+/gu, '-')}.png`);
        await current.screenshot({ path, fullPage: true });
        where += `\n  screenshot: ${path}`;
      } catch {
        // The page may be gone; the message matters more.
      }
    }
    const seen = problems.length ? `\n  browser said:\n    ${problems.join('\n    ')}` : '';
    const err = new Error(`step « ${name} » failed: ${e?.message ?? e}${where}${seen}`);
    err.cause = e;
    throw err;
  }
}

/** Waits until the text shows in the live region (the messages for everyone). */
export async function told(page, text) {
  await page.getByRole('status').filter({ hasText: text }).waitFor();
}

/** Throws `expected: what` unless `cond`. */
export function expect(cond, what) {
  if (!cond) throw new Error(`expected: ${what}`);
}

/** Logs in on the login page as `who` ({ email, password }); waits for the h1 `heading`. */
export async function logIn(page, who, heading) {
  await page.getByLabel('Adresse e-mail').fill(who.email);
  await page.getByLabel('Mot de passe').fill(who.password);
  await page.getByRole('button', { name: 'Se connecter' }).click();
  await page.getByRole('heading', { level: 1, name: heading }).waitFor();
}

/** Logs out through the menu; waits for the login page. */
export async function logOut(page) {
  await page.getByRole('button', { name: 'Se déconnecter' }).click();
  await page.getByRole('heading', { level: 1, name: 'Se connecter' }).waitFor();
}

/**
 * Waits until the client has drawn the page of its current address (app.js marks
 * `main` busy while a page loads), and, with `part`, until the address holds it.
 */
export async function settled(page, part = '') {
  await page.waitForFunction((p) => {
    const main = document.getElementById('main');
    return location.hash.includes(p) && main.getAttribute('aria-busy') === 'false'
      && main.dataset.rendered === (location.hash || '#/');
  }, part);
}

/** The phone checked: an iPhone 12-14 sized screen, in CSS pixels. */
export const PHONE = { width: 390, height: 844 };

/**
 * Checks the page as it is on a phone (390×844): nothing wider than the screen (no
 * sideways scrolling; a failure names the widest elements that stick out: tag, class,
 * width), and axe finds nothing grave (`<label> sur téléphone`). With `shot`, a
 * screenshot named so is taken at that width. The viewport is put back afterwards,
 * even when the check fails.
 */
export async function fitsPhone(page, label, { shot } = {}) {
  const before = page.viewportSize();
  await page.setViewportSize(PHONE);
  try {
    // The client's pages are drawn (app.js marks `main`); any other page is checked as it is.
    if (await page.locator('main#main[data-rendered]').count()) await settled(page);
    // Two frames: the new width laid out and painted before anything is measured.
    await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
    const { width, offenders } = await page.evaluate((max) => {
      const clipped = (el) => {
        for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
          const o = getComputedStyle(p).overflowX;
          if (o !== 'visible') return true;
        }
        return false;
      };
      const out = [];
      const sticks = (el) => el.getBoundingClientRect().right > max + 0.5;
      for (const el of document.body.querySelectorAll('*')) {
        const r = el.getBoundingClientRect();
        if (r.width === 0 || !sticks(el) || clipped(el)) continue;
        const cls = typeof el.getAttribute('class') === 'string' ? el.getAttribute('class') : '';
        // First the elements that break out of a parent that fits: the cause, not its containers.
        const cause = !el.parentElement || el.parentElement === document.body || !sticks(el.parentElement);
        out.push({ tag: el.tagName.toLowerCase(), cls: cls.trim(), width: Math.round(r.width), right: Math.round(r.right), cause });
      }
      out.sort((a, b) => (b.cause - a.cause) || (b.width - a.width));
      return { width: document.documentElement.scrollWidth, offenders: out.slice(0, 6) };
    }, PHONE.width);
    if (width > PHONE.width) {
      const list = offenders.map((o) => `${o.tag}${o.cls ? `.${o.cls.split(/\s+/).join('.')}` : ''} (${o.width} px wide, right edge at ${o.right} px)`);
      throw new Error(`« ${label} » is ${width} px wide on a ${PHONE.width} px phone; widest elements sticking out: ${list.join(', ') || 'none found'}`);
    }
    await checkA11y(page, `${label} sur téléphone`);
    if (shot) await screenshot(page, shot);
  } finally {
    if (before) await page.setViewportSize(before);
  }
}
