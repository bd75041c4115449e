// The web client's first journey, in headless Chromium (run by tests/tests/system/web.rs):
// a counselor registers a person, records a diagnostic, shares it and refers the
// person; a person withdraws consent for one domain and reads who accessed the file;
// an analyst sees a chart. Every main page is checked with axe-core and photographed, the
// counselor's and the analyst's on a phone too (390 px).
import { checkA11y, expect, fixtures, fitsPhone, launch, logIn, logOut, screenshot, step, told } from './lib.mjs';

const fx = fixtures();
const { browser, page } = await launch();
try {
  await step('la page de connexion', async () => {
    await page.goto(`${fx.baseUrl}/`);
    await page.getByRole('heading', { level: 1, name: 'Se connecter' }).waitFor();
    expect((await page.getAttribute('html', 'lang')) === 'fr', 'lang="fr"');
    await checkA11y(page, 'connexion');
    await screenshot(page, 'connexion');
  });

  await step('un mauvais mot de passe est signalé, l\'adresse reste', async () => {
    await page.getByLabel('Adresse e-mail').fill(fx.counselor.email);
    await page.getByLabel('Mot de passe').fill('pas-le-bon-mot-de-passe');
    await page.getByRole('button', { name: 'Se connecter' }).click();
    await page.getByRole('alert').filter({ hasText: 'incorrect' }).waitFor();
    expect((await page.getByLabel('Adresse e-mail').inputValue()) === fx.counselor.email, 'the e-mail typed is kept');
  });

  await step('le conseiller se connecte', async () => {
    await logIn(page, fx.counselor, 'Personnes suivies');
    await checkA11y(page, 'personnes suivies');
    await screenshot(page, 'conseiller-personnes');
  });

  await step('inscrire une personne : une erreur à côté du champ, rien de perdu', async () => {
    await page.getByRole('link', { name: 'Inscrire une personne' }).click();
    await page.getByRole('heading', { level: 1, name: 'Inscrire une personne' }).waitFor();
    await page.getByLabel('Prénom').fill('Camille');
    await page.getByLabel(/^Nom/).fill('Martin');
    await page.getByLabel('Date de naissance').fill('1990-04-12');
    await page.getByLabel('Code INSEE de la commune').fill('691');
    await page.getByRole('button', { name: 'Inscrire la personne' }).click();
    const commune = page.locator('[data-field="commune_insee"] .error');
    await commune.filter({ hasText: '5 caractères' }).waitFor();
    expect((await page.getByLabel('Code INSEE de la commune').getAttribute('aria-invalid')) === 'true', 'the field is marked invalid');
    expect((await page.getByLabel('Prénom').inputValue()) === 'Camille', 'the first name is kept');
    expect((await page.getByLabel('Date de naissance').inputValue()) === '1990-04-12', 'the birth date is kept');
    await checkA11y(page, 'inscription avec erreur');
    await screenshot(page, 'inscription-erreur');
    await fitsPhone(page, 'inscription avec erreur');
  });

  await step('inscrire la personne', async () => {
    await page.getByLabel('Code INSEE de la commune').fill('69123');
    await page.getByRole('button', { name: 'Inscrire la personne' }).click();
    await page.getByRole('heading', { level: 1, name: 'Camille Martin' }).waitFor();
    await told(page, 'est inscrit');
  });

  await step('recueillir ses consentements (accompagnement, orientation vers B)', async () => {
    let consent = page.getByRole('form', { name: 'Recueillir un consentement' });
    await page.getByText('Recueillir un consentement', { exact: true }).click();
    await consent.getByLabel('Structure autorisée').selectOption({ label: fx.structures.a.name });
    await consent.getByRole('button', { name: 'Enregistrer le consentement' }).click();
    await told(page, 'consentement est enregistré');
    await page.getByRole('listitem').filter({ hasText: fx.structures.a.name }).first().waitFor();

    await page.getByText('Recueillir un consentement', { exact: true }).click();
    consent = page.getByRole('form', { name: 'Recueillir un consentement' });
    await consent.getByLabel('Structure autorisée').selectOption({ label: fx.structures.b.name });
    await consent.getByLabel('Accompagnement', { exact: true }).uncheck();
    await consent.getByLabel('Orientation vers une autre structure').check();
    await consent.getByRole('button', { name: 'Enregistrer le consentement' }).click();
    await page.getByRole('listitem').filter({ hasText: `${fx.structures.b.name} : orientation` }).waitFor();
    await checkA11y(page, 'dossier de la personne');
    await screenshot(page, 'conseiller-dossier');
    await fitsPhone(page, 'dossier de la personne');
  });

  await step('ouvrir et coter un diagnostic, les deux regards côte à côte', async () => {
    await page.getByRole('button', { name: 'Ouvrir un diagnostic' }).click();
    await page.getByRole('heading', { level: 1, name: 'Diagnostic' }).waitFor();
    await page.getByRole('columnheader', { name: 'Selon la personne' }).first().waitFor();
    await page.getByRole('columnheader', { name: 'Selon le conseiller' }).first().waitFor();
    const ratings = page.getByLabel(/^Cotation du conseiller/);
    expect((await ratings.count()) > 3, 'items to rate');
    await ratings.nth(0).selectOption('frein_majeur');
    await ratings.nth(1).selectOption('frein');
    await ratings.nth(2).selectOption('point_d_appui');
    await page.getByRole('button', { name: 'Enregistrer les cotations' }).click();
    await told(page, '3 cotation(s) enregistrée(s)');
    await checkA11y(page, 'diagnostic');
    await screenshot(page, 'conseiller-diagnostic');
    await fitsPhone(page, 'diagnostic');
  });

  await step('partager le diagnostic', async () => {
    await page.getByRole('button', { name: 'Partager le diagnostic' }).click();
    await told(page, 'diagnostic est partagé');
    await page.getByText('Statut : Partagé').waitFor();
  });

  await step('orienter la personne : erreurs signalées, puis envoi', async () => {
    await page.getByRole('link', { name: 'Revenir au dossier de la personne' }).click();
    await page.getByRole('heading', { level: 1, name: 'Camille Martin' }).waitFor();
    const refer = page.getByRole('form', { name: 'Orienter la personne' });
    await refer.getByLabel('Motif de l\'orientation').fill('Recherche d\'un logement stable avant la reprise d\'emploi.');
    await refer.getByRole('button', { name: 'Orienter la personne' }).click();
    await refer.locator('[data-field="target_structure_id"] .error').filter({ hasText: 'Choisissez' }).waitFor();
    expect((await refer.getByLabel('Motif de l\'orientation').inputValue()).startsWith('Recherche'), 'the reason is kept');
    await refer.getByLabel('Structure visée').selectOption({ label: fx.structures.b.name });
    await refer.getByLabel('Mobilité', { exact: true }).check();
    await refer.getByRole('button', { name: 'Orienter la personne' }).click();
    await told(page, `Orientation envoyée à ${fx.structures.b.name}`);
    await page.getByRole('listitem').filter({ hasText: `Vers ${fx.structures.b.name}` }).first().waitFor();
    await screenshot(page, 'conseiller-orientation');
    await logOut(page);
  });

  await step('la personne se connecte', async () => {
    await logIn(page, fx.person, 'Mon espace');
    await page.getByRole('link', { name: 'Mes consentements', exact: true }).waitFor();
    await checkA11y(page, 'mon espace');
    await screenshot(page, 'personne-espace');
  });

  await step('la personne retire son accord pour un domaine', async () => {
    await page.getByRole('link', { name: 'Mes consentements', exact: true }).click();
    await page.getByRole('heading', { level: 1, name: 'Mes consentements' }).waitFor();
    const a = page.getByRole('article', { name: fx.structures.a.name });
    const withdraw = a.getByRole('button', { name: /^Retirer l'accord pour/ });
    const before = await withdraw.count();
    expect(before > 1, 'a structure seeing several domains');
    const name = await withdraw.first().getAttribute('aria-label');
    const domain = name.match(/« (.*) »/)[1];
    await withdraw.first().click();
    await told(page, `ne voit plus le domaine « ${domain} »`);
    // The page is drawn again without that domain.
    await a.getByRole('button', { name, exact: true }).waitFor({ state: 'detached' });
    expect((await withdraw.count()) === before - 1, 'one domain less');
  });

  await step('la personne voit qui a consulté son dossier', async () => {
    await page.getByRole('link', { name: 'Revenir à mon espace' }).click();
    await page.getByRole('link', { name: 'Qui a consulté mon dossier', exact: true }).click();
    // A line per day, person and action (person.js); A's counselor read the file.
    const log = page.getByRole('list', { name: /Les accès à votre dossier/ });
    await log.getByRole('listitem').filter({ hasText: fx.structures.a.name }).first().waitFor();
    await checkA11y(page, 'journal des accès');
    await screenshot(page, 'personne-acces');
    await logOut(page);
  });

  await step('l\'analyste voit un graphique', async () => {
    await logIn(page, fx.analyst, 'Statistiques');
    const chart = page.locator('svg[role="img"]');
    await chart.waitFor();
    expect((await chart.locator('rect').count()) > 0, 'bars in the chart');
    await checkA11y(page, 'statistiques');
    await screenshot(page, 'analyste-statistiques');
  });

  await step('sur un téléphone', async () => {
    await fitsPhone(page, 'statistiques', { shot: 'analyste-telephone' });
  });
  console.log('journey: ok');
} finally {
  await browser.close();
}
