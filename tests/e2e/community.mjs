// The community, in headless Chromium (run by tests/tests/system/web.rs, test
// `web::community_in_the_browser`): A's counselor opens the community, votes for and
// accepts the answer C's counselor gave to her question, asks a question whose text holds
// a phone number (refused, said next to the field, text kept), fixes and posts it, finds it
// with the search, says a solution sheet worked, publishes a sheet (a missing field
// first) and edits it (a phone number refused next to the field, the text kept). Every main page is checked with axe-core and photographed (`communaute-*`).
import { checkA11y, expect, fitsPhone, fixtures, launch, logIn, screenshot, settled, step, told } from './lib.mjs';

const fx = fixtures();
const QUESTION = 'Financer le permis de conduire au RSA';
const SHEET = 'Aide au permis du Département';
const ASKED = 'Garde d\'enfants en horaires décalés à Vernon';
const PHONE = '06 12 34 56 78';
const BODY_START = 'Une personne accompagnée commence un emploi en horaires décalés (6 h – 14 h) et cherche une crèche ou une assistante maternelle.';
const WORDS = 'horaires décalés crèche';
const NEW_SHEET = 'Covoiturage solidaire du Vexin';

const { browser, page } = await launch();

/** Opens a page of the client by its address and waits until it is drawn. */
async function open(hash) {
  await page.evaluate((h) => { location.hash = h; }, hash);
  await settled(page, hash.split('?')[0]);
}

try {
  await step('le conseiller ouvre la communauté', async () => {
    await page.goto(`${fx.baseUrl}/`);
    await logIn(page, fx.counselor, 'Personnes suivies');
    await page.getByRole('navigation', { name: 'Menu principal' }).getByRole('link', { name: 'Communauté' }).click();
    await page.getByRole('heading', { level: 1, name: 'Communauté' }).waitFor();
    await settled(page, '#/communaute');
    const questions = page.getByRole('list', { name: 'Dernières questions' });
    await questions.getByRole('link', { name: QUESTION }).waitFor();
    expect(await questions.getByRole('listitem').filter({ hasText: QUESTION }).getByText('1 réponse').isVisible(), 'the answer count on the question');
    const spaces = page.getByRole('region', { name: 'Mes espaces' });
    await spaces.getByRole('button', { name: 'Quitter l\'espace Eure' }).waitFor();
    await page.getByRole('link', { name: 'Poser une question' }).waitFor();
    await page.getByRole('region', { name: 'Solutions les plus utiles' }).getByRole('link', { name: SHEET }).waitFor();
    await checkA11y(page, 'communauté');
    await screenshot(page, 'communaute-accueil');
  });

  await step('l\'onglet « Sans réponse » ne montre pas la question déjà répondue', async () => {
    await page.getByRole('link', { name: 'Sans réponse', exact: true }).click();
    await settled(page, 'vue=sans-reponse');
    await page.getByText('Toutes les questions ont au moins une réponse.').waitFor();
    expect((await page.getByRole('link', { name: QUESTION }).count()) === 0, 'the answered question is not listed');
    await page.getByRole('link', { name: 'Dernières questions' }).click();
    await settled(page, 'vue=recentes');
  });

  await step('sur un téléphone (390 px)', async () => {
    await fitsPhone(page, 'communauté', { shot: 'communaute-telephone' });
  });

  await step('le point du mois : une réponse manquante signalée, puis envoyé', async () => {
    await page.getByText('Le point du mois : comment allez-vous ? (anonyme)').click();
    const checkin = page.getByRole('form', { name: 'Le point du mois' });
    await checkin.getByRole('group', { name: 'Ma charge de travail ce mois-ci' }).getByLabel('4 — Lourde').check();
    await checkin.getByRole('group', { name: 'Le soutien de mes collègues' }).getByLabel('4 — Bon').check();
    await checkin.getByRole('button', { name: 'Envoyer mes réponses' }).click();
    await checkin.locator('[data-field="isolation"] .error').filter({ hasText: 'Choisissez une réponse' }).waitFor();
    expect(await checkin.getByLabel('4 — Lourde').isChecked(), 'the answers given are kept');
    await checkin.getByLabel('3 — Parfois').check();
    await checkin.getByRole('button', { name: 'Envoyer mes réponses' }).click();
    await told(page, 'réponses anonymes sont enregistrées');
    await page.getByText(/Merci : vos réponses pour .* sont enregistrées/).waitFor();
  });

  await step('ouvrir la question, voter pour la réponse et l\'accepter', async () => {
    await page.getByRole('link', { name: QUESTION }).click();
    await page.getByRole('heading', { level: 1, name: QUESTION }).waitFor();
    await settled(page, '#/communaute/questions/');
    expect(page.url().endsWith(`#/communaute/questions/${fx.community.question}`), 'the question of the fixtures');
    const answers = page.getByRole('list', { name: 'Réponses' });
    const answer = answers.getByRole('listitem').filter({ hasText: 'Le Département finance' });
    await answer.waitFor();
    await answer.getByText('0 vote').waitFor();
    await answer.getByRole('button', { name: 'Cette réponse m\'aide (voter)' }).click();
    await told(page, 'votre vote est compté');
    await answer.getByText('1 vote — dont le vôtre').waitFor();
    expect((await answer.getByRole('button', { name: /voter/ }).count()) === 0, 'no second vote offered');

    await answer.getByRole('button', { name: 'Accepter cette réponse' }).click();
    await told(page, 'Réponse acceptée');
    await answer.getByText('Réponse acceptée par l\'auteur de la question').waitFor();
    await page.locator('.question').getByText('Résolue', { exact: true }).waitFor();
    expect((await answer.getByRole('button', { name: 'Accepter cette réponse' }).count()) === 0, 'accepted once');
  });

  await step('suivre puis ne plus suivre la question', async () => {
    const toggle = page.getByRole('button', { name: /suivre cette question$/ });
    const before = await toggle.textContent();
    await toggle.click();
    const after = before === 'Suivre cette question' ? 'Ne plus suivre cette question' : 'Suivre cette question';
    await page.getByRole('button', { name: after, exact: true }).waitFor();
    await told(page, after === 'Suivre cette question' ? 'ne suivez plus' : 'Vous suivez cette question');
    await checkA11y(page, 'question');
    await screenshot(page, 'communaute-question');
  });

  await step('répondre avec une adresse e-mail : refusé ; signaler une réponse', async () => {
    const reply = page.getByRole('form', { name: 'Répondre à la question' });
    const typed = 'Contactez directement la personne : ana.lindqvist@example.org, elle connaît le dispositif.';
    await reply.getByLabel('Votre réponse').fill(typed);
    await reply.getByRole('button', { name: 'Publier ma réponse' }).click();
    await reply.locator('[data-field="body"] .error').filter({ hasText: 'adresse e-mail' }).waitFor();
    expect((await reply.getByLabel('Votre réponse').inputValue()) === typed, 'the answer typed is kept');
    expect((await page.getByRole('list', { name: 'Réponses' }).getByRole('listitem').count()) === 1, 'nothing was posted');

    const answer = page.getByRole('list', { name: 'Réponses' }).getByRole('listitem').first();
    await answer.getByText('Signaler cette réponse').click();
    const report = answer.getByRole('form', { name: 'Signaler cette réponse' });
    await report.getByRole('button', { name: 'Envoyer le signalement' }).click();
    await report.locator('[data-field="reason"] .error').filter({ hasText: 'ce qui pose problème' }).waitFor();
    await report.getByLabel('Pourquoi signalez-vous ce contenu ?').fill('Le montant cité semble dépassé, à vérifier par la modération.');
    await report.getByRole('button', { name: 'Envoyer le signalement' }).click();
    await told(page, 'signalement est transmis');
  });

  await step('poser une question avec un numéro de téléphone : refusée, le texte reste', async () => {
    await page.getByRole('link', { name: 'Communauté' }).first().click();
    await page.getByRole('heading', { level: 1, name: 'Communauté' }).waitFor();
    await page.getByRole('link', { name: 'Poser une question' }).click();
    await page.getByRole('heading', { level: 1, name: 'Poser une question' }).waitFor();
    const ask = page.getByRole('form', { name: 'Poser une question' });
    // A title too short first: the message says so, nothing is sent.
    await ask.getByLabel('Titre de la question').fill('Aide');
    await ask.getByRole('button', { name: 'Publier la question' }).click();
    await ask.locator('[data-field="title"] .error').filter({ hasText: 'trop court' }).waitFor();
    await ask.locator('[data-field="body"] .error').filter({ hasText: 'Décrivez la situation' }).waitFor();

    const typed = `${BODY_START} Elle est joignable au ${PHONE} le matin.`;
    await ask.getByLabel('Titre de la question').fill(ASKED);
    await ask.getByLabel('Détails').fill(typed);
    await ask.getByLabel('Contraintes familiales, garde d\'enfants').check();
    await ask.getByRole('button', { name: 'Publier la question' }).click();
    const error = ask.locator('[data-field="body"] .error');
    await error.filter({ hasText: 'numéro de téléphone' }).waitFor();
    const said = await error.textContent();
    expect(said.includes(PHONE), `the message quotes what to remove: ${said}`);
    expect(said.includes('Retirez'), 'the message says what to do');
    expect((await ask.getByLabel('Détails').inputValue()) === typed, 'the text typed is kept');
    expect((await ask.getByLabel('Titre de la question').inputValue()) === ASKED, 'the title is kept');
    expect((await ask.getByLabel('Détails').getAttribute('aria-invalid')) === 'true', 'the field is marked invalid');
    await ask.getByRole('alert').filter({ hasText: 'corrigez les champs signalés' }).waitFor();
    expect(page.url().endsWith('#/communaute/questions/nouvelle'), 'still on the form');
    await checkA11y(page, 'question refusée');
    await screenshot(page, 'communaute-question-refusee');
  });

  await step('retirer le numéro et publier', async () => {
    const ask = page.getByRole('form', { name: 'Poser une question' });
    await ask.getByLabel('Détails').fill(`${BODY_START} Elle peut être jointe par sa conseillère.`);
    // The check while typing clears the message once the number is gone.
    await ask.locator('[data-field="body"] .error').filter({ hasText: 'téléphone' }).waitFor({ state: 'hidden' });
    await ask.getByRole('button', { name: 'Publier la question' }).click();
    await page.getByRole('heading', { level: 1, name: ASKED }).waitFor();
    await told(page, 'Votre question est publiée');
    await page.getByText('Pas encore de réponse').waitFor();
  });

  await step('la recherche trouve la question, les mots en évidence', async () => {
    // A wrong search first: the message is next to the field.
    await open('#/communaute/recherche');
    const search = page.getByRole('search');
    await search.getByLabel('Chercher dans les questions').fill('a');
    await search.getByRole('button', { name: 'Chercher' }).click();
    await search.locator('[data-field="q"] .error').filter({ hasText: 'deux lettres' }).waitFor();
    // Through the form; the index may lag behind the post: the same search again, a
    // bounded number of times (a new address each time, so the page is drawn again).
    await search.getByLabel('Chercher dans les questions').fill(WORDS);
    await search.getByRole('button', { name: 'Chercher' }).click();
    for (let attempt = 1; ; attempt++) {
      await settled(page, 'recherche?q=');
      await page.getByRole('heading', { level: 2, name: /résultat/ }).waitFor();
      if ((await page.getByRole('link', { name: ASKED }).count()) > 0) break;
      expect(attempt < 10, 'the new question is found within 10 searches');
      await page.waitForTimeout(200 * attempt);
      await open(`#/communaute/recherche?q=${encodeURIComponent(WORDS)}&essai=${attempt}`);
    }
    const hit = page.getByRole('listitem').filter({ has: page.getByRole('link', { name: ASKED }) });
    await hit.waitFor();
    expect((await hit.locator('mark').count()) >= 2, 'the words searched are highlighted');
    expect((await hit.getByText('Question', { exact: true }).count()) === 1, 'the kind of the hit');
    await checkA11y(page, 'recherche');
    await screenshot(page, 'communaute-recherche');
    // Only the solution sheets: the question is no longer among the results.
    await page.getByRole('search').getByLabel('Type de contenu').selectOption({ label: 'Fiches solutions' });
    await page.getByRole('search').getByRole('button', { name: 'Chercher' }).click();
    await settled(page, 'type=solution');
    await page.getByRole('heading', { level: 2, name: /résultat/i }).waitFor();
    expect((await page.getByRole('link', { name: ASKED }).count()) === 0, 'no question among the sheets');
    expect((await page.getByRole('search').getByLabel('Type de contenu').inputValue()) === 'solution', 'the choice is kept');
  });

  await step('la fiche solution : « ça a marché »', async () => {
    await open('#/communaute/solutions');
    await page.getByRole('heading', { level: 1, name: 'Bibliothèque de solutions' }).waitFor();
    await page.getByRole('link', { name: SHEET }).waitFor();
    await checkA11y(page, 'bibliothèque de solutions');
    await screenshot(page, 'communaute-solutions');
    await page.getByRole('link', { name: SHEET }).click();
    await page.getByRole('heading', { level: 1, name: SHEET }).waitFor();
    expect(page.url().endsWith(`#/communaute/solutions/${fx.community.solution}`), 'the sheet of the fixtures');
    await page.getByText('Utilisée 0 fois, a marché 0 fois').waitFor();
    await page.getByRole('button', { name: 'Ça a marché' }).click();
    await told(page, 'ça a marché');
    await page.getByText('Utilisée 1 fois, a marché 1 fois').waitFor();
    await checkA11y(page, 'fiche solution');
    await screenshot(page, 'communaute-fiche');
  });

  await step('publier une fiche : un champ manquant signalé, puis publiée', async () => {
    await open('#/communaute/solutions');
    await page.getByRole('link', { name: 'Publier une fiche' }).click();
    await page.getByRole('heading', { level: 1, name: 'Publier une fiche solution' }).waitFor();
    const sheet = page.getByRole('form', { name: 'Publier une fiche solution' });
    const text = 'Des trajets domicile-travail à petit prix avec des bénévoles, sur inscription auprès de la mairie. Utile pour les horaires décalés.';
    await sheet.getByLabel('Titre de la fiche').fill(NEW_SHEET);
    await sheet.getByLabel('La solution').fill(text);
    await sheet.getByRole('button', { name: 'Publier la fiche' }).click();
    await sheet.locator('[data-field="domains"] .error').filter({ hasText: 'au moins un domaine' }).waitFor();
    expect((await sheet.getByLabel('Titre de la fiche').inputValue()) === NEW_SHEET, 'the title is kept');
    expect((await sheet.getByLabel('La solution').inputValue()) === text, 'the text is kept');
    await checkA11y(page, 'fiche avec erreur');
    await screenshot(page, 'communaute-fiche-erreur');
    await sheet.getByLabel('Mobilité', { exact: true }).check();
    await sheet.getByLabel('Territoires').fill('27');
    await sheet.getByRole('button', { name: 'Publier la fiche' }).click();
    await page.getByRole('heading', { level: 1, name: NEW_SHEET }).waitFor();
    await told(page, 'fiche est publiée');
    await page.getByText('Utilisée 0 fois, a marché 0 fois').waitFor();
  });

  await step('modifier sa fiche : un numéro de téléphone refusé à côté du champ, puis enregistrée', async () => {
    await page.locator('.community').getByText('Modifier ma fiche', { exact: true }).click();
    const edit = page.getByRole('form', { name: 'Modifier ma fiche' });
    expect((await edit.getByLabel('Titre de la fiche').inputValue()) === NEW_SHEET, 'the title is filled in');
    expect(await edit.getByLabel('Mobilité', { exact: true }).isChecked(), 'the domains are ticked');
    expect((await edit.getByLabel('Territoires').inputValue()) === '27', 'the territories are filled in');
    const first = await edit.getByLabel('La solution').inputValue();
    const typed = `${first} Inscription auprès de Mme Roux au ${PHONE}.`;
    await edit.getByLabel('La solution').fill(typed);
    await edit.getByRole('button', { name: 'Enregistrer la fiche' }).click();
    const error = edit.locator('[data-field="body"] .error').filter({ hasText: 'numéro de téléphone' });
    await error.waitFor();
    expect((await edit.getByLabel('La solution').inputValue()) === typed, 'the text typed is kept');
    expect((await edit.getByLabel('La solution').getAttribute('aria-invalid')) === 'true', 'the field is marked invalid');
    await checkA11y(page, 'fiche modifiée refusée');
    await fitsPhone(page, 'modifier sa fiche');
    await edit.getByLabel('La solution').fill(`${first} Inscription à l'accueil de la mairie.`);
    await edit.getByRole('button', { name: 'Enregistrer la fiche' }).click();
    await told(page, 'Votre fiche est modifiée');
    await page.locator('.sheet').getByText('Inscription à l\'accueil de la mairie.', { exact: false }).waitFor();
    await page.locator('#c-s-meta').filter({ hasText: /modifiée le \d/ }).waitFor();
  });
  console.log('community: ok');
} finally {
  await browser.close();
}
