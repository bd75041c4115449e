// Checks lib.mjs itself on a page the gateway already serves (the API's documentation):
// the browser starts, the page renders, axe runs and finds nothing grave, a screenshot is
// written, the keyboard reaches the skip link, the phone check passes a page that fits and
// names what sticks out of one that does not, and a failing step names itself.
// Run by tests/tests/system/web.rs (`web::lib_mjs_drives_chromium`).

import { existsSync, statSync } from 'node:fs';
import { checkA11y, fitsPhone, fixtures, launch, screenshot, step } from './lib.mjs';

const { baseUrl } = fixtures();
const { browser, page } = await launch();
try {
  await step('the API documentation renders', async () => {
    const r = await page.goto(`${baseUrl}/api/v1/docs`);
    if (r.status() !== 200) throw new Error(`status ${r.status()}`);
    if ((await page.getAttribute('html', 'lang')) !== 'fr') throw new Error('lang is not fr');
    await page.getByRole('heading', { level: 1 }).waitFor();
    await page.locator('details').first().waitFor();
    await page.getByLabel('Filtrer les opérations').fill('login');
  });

  await step('axe finds nothing grave', async () => {
    await checkA11y(page, 'documentation');
    // A second call reuses the injected engine.
    await checkA11y(page, 'documentation, again');
  });

  await step('a full-page screenshot is written', async () => {
    const path = await screenshot(page, 'selfcheck-documentation');
    if (!existsSync(path) || statSync(path).size < 1000) throw new Error(`no PNG at ${path}`);
  });

  await step('the keyboard reaches the skip link', async () => {
    await page.reload();
    await page.keyboard.press('Tab');
    const focused = await page.evaluate(() => document.activeElement?.textContent?.trim());
    if (focused !== 'Aller au contenu') throw new Error(`focus on « ${focused} »`);
  });

  await step('a grave violation is reported by rule and target', async () => {
    await page.setContent('<html><body><img src="x.png"><p style="color:#eee">pâle</p></body></html>');
    let message = '';
    try {
      await checkA11y(page, 'broken page');
    } catch (e) {
      message = e.message;
    }
    for (const want of ['broken page', 'image-alt', 'img', 'html-has-lang']) {
      if (!message.includes(want)) throw new Error(`« ${want} » missing from: ${message}`);
    }
  });

  await step('fitsPhone names what is wider than the phone, and puts the viewport back', async () => {
    await page.setContent('<html lang="fr"><head><title>t</title></head><body><main><h1>Large</h1>'
      + '<div class="too wide" style="width:600px">x</div>'
      + '<div style="overflow-x:auto"><table class="inside"><tr><td style="width:900px">y</td></tr></table></div>'
      + '</main></body></html>');
    let message = '';
    try {
      await fitsPhone(page, 'trop large');
    } catch (e) {
      message = e.message;
    }
    for (const want of ['trop large', 'div.too.wide (600 px wide', 'on a 390 px phone']) {
      if (!message.includes(want)) throw new Error(`« ${want} » missing from: ${message}`);
    }
    if (message.includes('table.inside')) throw new Error(`a table in a scrolling box is not to blame: ${message}`);
    const size = page.viewportSize();
    if (size.width !== 1280) throw new Error(`viewport not put back: ${JSON.stringify(size)}`);
    await page.setContent('<html lang="fr"><head><title>t</title></head><body><main><h1>Étroit</h1>'
      + '<div style="overflow-x:auto" tabindex="0" role="region" aria-label="tableau"><table><tr><td style="width:900px">y</td></tr></table></div>'
      + '</main></body></html>');
    await fitsPhone(page, 'étroit');
  });

  await step('a failing step names itself', async () => {
    let message = '';
    try {
      await step('inner', async () => {
        throw new Error('boom');
      });
    } catch (e) {
      message = e.message;
    }
    if (!message.includes('step « inner » failed: boom')) throw new Error(message);
  });
} finally {
  await browser.close();
}
console.log('selfcheck: every step passed');
