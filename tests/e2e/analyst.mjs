// The analyst's dashboard in headless Chromium (run by tests/tests/system/web.rs):
// choose an indicator, a period and a dimension; a wrong period is told next to its
// field; the address keeps the choices; the figures download as CSV and JSON. The
// dashboard, its chart and its table are checked on a phone too (390 px).
import { readFileSync } from 'node:fs';
import { checkA11y, expect, fixtures, fitsPhone, launch, logIn, screenshot, settled, step, told } from './lib.mjs';

const fx = fixtures();
const { browser, page } = await launch();
const pick = () => page.getByRole('form', { name: 'Choisir les chiffres' });

try {
  await step('l\'analyste arrive sur le tableau de bord', async () => {
    await page.goto(`${fx.baseUrl}/`);
    await logIn(page, fx.analyst, 'Statistiques');
    await page.locator('svg[role="img"]').waitFor();
    await checkA11y(page, 'tableau de bord');
    await fitsPhone(page, 'tableau de bord');
  });

  await step('choisir l\'indicateur des structures, détaillé par type', async () => {
    await pick().getByLabel('Indicateur').selectOption('structures');
    await pick().getByRole('button', { name: 'Afficher' }).click();
    await settled(page, 'indicateur=structures');
    await pick().getByLabel('Type de structure').waitFor();
    await pick().getByLabel('Type de structure').check();
    await pick().getByRole('button', { name: 'Afficher' }).click();
    await settled(page, 'par=structure_kind');
    const table = page.getByRole('table', { name: /les chiffres du graphique/ });
    await page.getByText('Voir les chiffres en tableau').click();
    await table.getByRole('columnheader', { name: 'Type de structure' }).waitFor();
    const rows = await table.getByRole('row').allTextContents();
    expect(rows.some((r) => r.includes('association')), `a row for the associations: ${rows.join(' | ')}`);
    expect((await page.locator('svg[role="img"] rect').count()) === rows.length - 1, 'one bar per row of the table');
    await checkA11y(page, 'statistiques détaillées');
    await screenshot(page, 'analyste-detail');
    await fitsPhone(page, 'statistiques détaillées (graphique et tableau)', { shot: 'analyste-detail-telephone' });
  });

  await step('une période à l\'envers est signalée à côté du champ, les choix restent', async () => {
    await pick().getByLabel('Du mois').fill('2026-10');
    await pick().getByLabel('Au mois').fill('2026-01');
    await pick().getByRole('button', { name: 'Afficher' }).click();
    const error = pick().locator('.error:not(:empty)').first();
    await error.waitFor();
    console.log(`  told: ${await error.textContent()}`);
    expect((await pick().getByLabel('Du mois').inputValue()) === '2026-10', 'the start month is kept');
    expect(await pick().getByLabel('Type de structure').isChecked(), 'the dimension stays checked');
    expect(!page.url().includes('du=2026-10'), 'the address keeps the last good choices');
    await fitsPhone(page, 'période à l\'envers');
  });

  await step('les chiffres se téléchargent en CSV et en JSON', async () => {
    await pick().getByLabel('Du mois').fill('');
    await pick().getByLabel('Au mois').fill('');
    await pick().getByRole('button', { name: 'Afficher' }).click();
    await settled(page);
    let [file] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Télécharger en CSV' }).click()]);
    const csv = readFileSync(await file.path(), 'utf8');
    expect(file.suggestedFilename().endsWith('.csv'), `a .csv file: ${file.suggestedFilename()}`);
    expect(csv.split('\n')[0].includes('structure_kind'), `the CSV has the dimension's column: ${csv.slice(0, 200)}`);
    await told(page, 'est téléchargé');
    [file] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Télécharger en JSON' }).click()]);
    const json = JSON.parse(readFileSync(await file.path(), 'utf8'));
    expect(JSON.stringify(json).includes('association'), 'the JSON holds the figures');
  });

  await step('le lien garde les choix', async () => {
    const url = page.url();
    await page.goto(`${fx.baseUrl}/`);
    await settled(page, '#/statistiques');
    await page.goto(url);
    await settled(page, 'par=structure_kind');
    expect(await pick().getByLabel('Type de structure').isChecked(), 'the dimension comes back from the address');
  });
  console.log('analyst: ok');
} finally {
  await browser.close();
}
