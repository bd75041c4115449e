// Accepting an invitation in headless Chromium (run by tests/tests/system/web.rs): the
// code typed loosely, what it is for, the password's rules told next to the fields, the
// session opened at once; the code can't serve twice. The login page and the invitation's
// pages are checked on a phone too (390 px).
import { checkA11y, expect, fixtures, fitsPhone, launch, logIn, logOut, screenshot, settled, step } from './lib.mjs';

const fx = fixtures();
const { browser, page } = await launch();
const PASSWORD = 'cinq pommes dans le panier';
// Typed as a person would: lower case, in groups, with a dash.
const loose = fx.invitation.code.toLowerCase().replace(/(.{4})/g, '$1 ').trim().replace(' ', '-');

try {
  await step('depuis la page de connexion, le lien vers l\'invitation', async () => {
    await page.goto(`${fx.baseUrl}/`);
    await page.getByRole('heading', { level: 1, name: 'Se connecter' }).waitFor();
    await checkA11y(page, 'connexion');
    await fitsPhone(page, 'connexion', { shot: 'connexion-telephone' });
    await page.getByRole('link', { name: 'Créer mon accès avec ce code' }).click();
    await page.getByRole('heading', { level: 1, name: 'Accepter une invitation' }).waitFor();
    await settled(page, '#/invitation');
    await checkA11y(page, 'invitation, le code');
    await fitsPhone(page, 'invitation, le code');
  });

  await step('un code inconnu est signalé à côté du champ', async () => {
    await page.getByLabel('Code d\'invitation').fill('ZZZZ-ZZZZ');
    await page.getByRole('button', { name: 'Continuer' }).click();
    await settled(page, 'code=ZZZZZZZZ');
    await page.locator('[data-field="code"] .error').filter({ hasText: 'n\'existe pas' }).waitFor();
    expect((await page.getByLabel('Code d\'invitation').inputValue()) === 'ZZZZZZZZ', 'the code typed is kept');
  });

  await step('le bon code, tapé en minuscules et en groupes', async () => {
    await page.getByLabel('Code d\'invitation').fill(loose);
    await page.getByRole('button', { name: 'Continuer' }).click();
    await settled(page, `code=${fx.invitation.code}`);
    await page.getByText(`avec l'adresse ${fx.invitation.email}`).waitFor();
    await page.getByText(fx.structures.a.name, { exact: false }).first().waitFor();
    await checkA11y(page, 'invitation');
    await screenshot(page, 'invitation');
    await fitsPhone(page, 'invitation', { shot: 'invitation-telephone' });
  });

  await step('un mot de passe trop court, puis deux différents : dit à côté des champs', async () => {
    const create = page.getByRole('form', { name: 'Créer mon accès' });
    await create.getByLabel('Choisissez un mot de passe').fill('court');
    await create.getByLabel('Tapez-le une seconde fois').fill('court');
    await create.getByRole('button', { name: 'Créer mon accès' }).click();
    await create.locator('[data-field="password"] .error').filter({ hasText: '12 caractères' }).waitFor();
    await create.getByLabel('Choisissez un mot de passe').fill(PASSWORD);
    await create.getByLabel('Tapez-le une seconde fois').fill(`${PASSWORD}s`);
    await create.getByRole('button', { name: 'Créer mon accès' }).click();
    await create.locator('[data-field="confirmation"] .error').filter({ hasText: 'pas les mêmes' }).waitFor();
    expect((await create.getByLabel('Choisissez un mot de passe').inputValue()) === PASSWORD, 'the password typed is kept');
    await checkA11y(page, 'invitation avec erreurs');
    await fitsPhone(page, 'invitation avec erreurs');
  });

  await step('l\'accès est créé et la session ouverte', async () => {
    const create = page.getByRole('form', { name: 'Créer mon accès' });
    await create.getByLabel('Tapez-le une seconde fois').fill(PASSWORD);
    await create.getByRole('button', { name: 'Créer mon accès' }).click();
    await page.getByRole('heading', { level: 1, name: 'Personnes suivies' }).waitFor();
    await page.getByRole('status').filter({ hasText: 'votre accès est prêt' }).waitFor();
    await logOut(page);
    await logIn(page, { email: fx.invitation.email, password: PASSWORD }, 'Personnes suivies');
    await logOut(page);
  });

  await step('le code ne sert qu\'une fois', async () => {
    await page.goto(`${fx.baseUrl}/#/invitation?code=${fx.invitation.code}`);
    await page.locator('[data-field="code"] .error').filter({ hasText: 'n\'existe pas ou a déjà servi' }).waitFor();
  });
  console.log('invitation: ok');
} finally {
  await browser.close();
}
