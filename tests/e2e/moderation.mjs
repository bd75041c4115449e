// Editing one's posts, creating a space and moderating, in headless Chromium (run by
// tests/tests/system/web.rs, test `web::community_moderation_in_the_browser`). Nour (C's
// counselor) moderates « Mobilité dans le Vexin »: she edits her question (a phone number
// refused next to the field, the text kept, then fixed), certifies Sacha's answer that
// Camille reported, hides it with a reason and sees the report and the act in the
// moderation log. Sacha (A's admin, a plain member there) sees her hidden answer marked so
// and no moderation control, edits her answer, and creates a space (a missing name first).
// Nour then restores the answer: the log shows the three entries, newest first. She opens
// the space's members (moderators first, then by name): as its only moderator she cannot
// step down (the refusal said next to the button), so she appoints Sacha, who then has the
// moderation tools and, alone to moderate her own space, cannot leave it. Every new
// page is checked with axe-core, at 390 px, and photographed (`communaute-*`).
import { checkA11y, expect, fitsPhone, fixtures, launch, logIn, logOut, screenshot, settled, step, told } from './lib.mjs';

const fx = fixtures();
const m = fx.moderation;
const QUESTION = 'Aller à un entretien d\'embauche à Gisors sans voiture';
const ANSWER = 'Le transport à la demande du Vexin normand';
const PHONE = '07 81 22 33 44';
const BODY = 'Une personne accompagnée a un entretien à Gisors mardi à 9 h, sans voiture ni bus à cette heure. Existe-t-il un transport à la demande ou un covoiturage solidaire ?';
const HIDE_REASON = 'Horaires de réservation erronés, signalés par une collègue : masquée le temps de vérifier.';
const RESTORE_REASON = 'Horaires vérifiés auprès de la plateforme mobilité : la réponse est juste.';
const REPORT_REASON = 'Les horaires de réservation ont changé';
const SPACE = 'Équipe emploi du Relais';

const { browser, page } = await launch();

/** Opens a page of the client by its address and waits until it is drawn. */
async function open(hash) {
  await page.evaluate((h) => { location.hash = h; }, hash);
  await settled(page, hash.split('?')[0]);
}

const answerItem = () => page.getByRole('list', { name: 'Réponses' }).getByRole('listitem').filter({ hasText: ANSWER });
const logEntries = () => page.getByRole('list', { name: 'Entrées du journal' }).getByRole('listitem');
const memberItems = () => page.getByRole('list', { name: 'Membres de l\'espace' }).getByRole('listitem');

try {
  await step('la modératrice ouvre sa question', async () => {
    await page.goto(`${fx.baseUrl}/`);
    await logIn(page, fx.counselorC, 'Personnes suivies');
    await open('#/communaute');
    await page.getByRole('heading', { level: 1, name: 'Communauté' }).waitFor();
    await page.getByRole('link', { name: 'Modération', exact: true }).waitFor();
    expect((await page.getByRole('link', { name: 'Créer un espace' }).count()) === 0, 'a counselor creates no space');
    await page.getByRole('link', { name: QUESTION }).first().click();
    await page.getByRole('heading', { level: 1, name: QUESTION }).waitFor();
    await settled(page, `#/communaute/questions/${m.question}`);
    expect((await page.locator('#c-q-meta').textContent()).includes(`« ${m.spaceName} »`), 'the space is named');
    expect(!(await page.locator('#c-q-meta').textContent()).includes('modifiée'), 'not edited yet');
  });

  await step('modifier sa question avec un numéro de téléphone : refusé, le texte reste', async () => {
    await page.locator('.question').getByText('Modifier ma question', { exact: true }).click();
    const edit = page.getByRole('form', { name: 'Modifier ma question' });
    expect((await edit.getByLabel('Titre de la question').inputValue()) === QUESTION, 'the title is filled in');
    expect((await edit.getByLabel('Mobilité', { exact: true }).isChecked()), 'the domains are ticked');
    const typed = `${BODY} Elle est joignable au ${PHONE}.`;
    await edit.getByLabel('Détails').fill(typed);
    await edit.getByRole('button', { name: 'Enregistrer les modifications' }).click();
    const error = edit.locator('[data-field="body"] .error');
    await error.filter({ hasText: 'numéro de téléphone' }).waitFor();
    expect((await error.textContent()).includes(PHONE), 'the message quotes what to remove');
    expect((await edit.getByLabel('Détails').inputValue()) === typed, 'the text typed is kept');
    expect((await edit.getByLabel('Détails').getAttribute('aria-invalid')) === 'true', 'the field is marked invalid');
    expect(!(await page.locator('.question .prose').textContent()).includes(PHONE), 'nothing was saved');
    await checkA11y(page, 'question modifiée refusée');
    await screenshot(page, 'communaute-modifier-question');
    await fitsPhone(page, 'modifier sa question');
  });

  await step('retirer le numéro et enregistrer : « modifiée le … »', async () => {
    const edit = page.getByRole('form', { name: 'Modifier ma question' });
    await edit.getByLabel('Détails').fill(BODY);
    await edit.getByRole('button', { name: 'Enregistrer les modifications' }).click();
    await told(page, 'Votre question est modifiée');
    await page.locator('.question .prose').filter({ hasText: 'covoiturage solidaire' }).waitFor();
    await page.locator('#c-q-meta').filter({ hasText: /modifiée le \d/ }).waitFor();
  });

  await step('certifier la réponse', async () => {
    const answer = answerItem();
    await answer.getByRole('button', { name: 'Certifier cette réponse' }).click();
    await told(page, 'La réponse est certifiée');
    await answerItem().getByText('Réponse certifiée par la modération').waitFor();
    await answerItem().getByRole('button', { name: 'Retirer la certification' }).waitFor();
  });

  await step('masquer la réponse : un motif manquant signalé, puis masquée', async () => {
    await answerItem().getByText('Masquer cette réponse', { exact: true }).click();
    const hide = answerItem().getByRole('form', { name: 'Masquer cette réponse' });
    await hide.getByRole('button', { name: 'Masquer', exact: true }).click();
    await hide.locator('[data-field="reason"] .error').filter({ hasText: 'pourquoi vous masquez' }).waitFor();
    await hide.getByLabel('Pourquoi la masquer ?').fill(HIDE_REASON);
    await hide.getByRole('button', { name: 'Masquer', exact: true }).click();
    await told(page, 'La réponse est masquée');
    await answerItem().locator('.marks').getByText('Masquée par la modération').waitFor();
    await answerItem().getByText('Rétablir cette réponse', { exact: true }).waitFor();
    await checkA11y(page, 'question modérée');
    await screenshot(page, 'communaute-moderation-question');
  });

  await step('le journal de modération : l\'acte et le signalement, le plus récent d\'abord', async () => {
    await page.getByRole('navigation', { name: 'Menu principal' }).getByRole('link', { name: 'Communauté' }).click();
    await page.getByRole('heading', { level: 1, name: 'Communauté' }).waitFor();
    await page.getByRole('link', { name: 'Modération', exact: true }).click();
    await page.getByRole('heading', { level: 1, name: 'Modération' }).waitFor();
    await settled(page, '#/communaute/moderation');
    await page.getByText(`Vous modérez : ${m.spaceName}.`).waitFor();
    const entries = logEntries();
    expect((await entries.count()) === 2, `two entries (${await entries.count()})`);
    const [hidden, reported] = [entries.nth(0), entries.nth(1)];
    await hidden.getByText('Masquée', { exact: true }).waitFor();
    await hidden.getByText(HIDE_REASON).waitFor();
    await hidden.getByText(/par vous$/).waitFor();
    await reported.getByText('Signalement', { exact: true }).waitFor();
    await reported.getByText(REPORT_REASON).waitFor();
    await reported.getByText(/par un membre de l'espace$/).waitFor();
    const link = reported.getByRole('link', { name: `Réponse à la question « ${QUESTION} »` });
    expect((await link.getAttribute('href')) === `#/communaute/questions/${m.question}?reponse=${m.answer}`, 'the entry links to the answer');
    await checkA11y(page, 'journal de modération');
    await screenshot(page, 'communaute-moderation');
    await fitsPhone(page, 'journal de modération', { shot: 'communaute-moderation-telephone' });
  });

  await step('l\'autrice de la réponse la voit masquée, sans outil de modération', async () => {
    await logOut(page);
    await logIn(page, fx.admin, 'Personnes suivies');
    await open('#/communaute');
    await page.getByRole('heading', { level: 1, name: 'Communauté' }).waitFor();
    expect((await page.getByRole('link', { name: 'Modération', exact: true }).count()) === 0, 'no moderation link for a plain member');
    await open(`#/communaute/questions/${m.question}`);
    await page.getByRole('heading', { level: 1, name: QUESTION }).waitFor();
    const answer = answerItem();
    await answer.locator('.marks').getByText('Masquée par la modération').waitFor();
    expect((await page.getByRole('button', { name: /Certifier|Retirer la certification/ }).count()) === 0, 'no certify button');
    expect((await page.getByText(/^(Masquer|Rétablir) cette/).count()) === 0, 'no hide or restore control');
  });

  await step('modifier sa réponse : une adresse e-mail refusée, puis enregistrée', async () => {
    await answerItem().getByText('Modifier ma réponse', { exact: true }).click();
    const edit = answerItem().getByRole('form', { name: 'Modifier ma réponse' });
    const first = await edit.getByLabel('Votre réponse').inputValue();
    expect(first.startsWith(ANSWER), 'the answer is filled in');
    const typed = `${first} Écrivez-moi à sacha.relais@example.org pour les inscriptions.`;
    await edit.getByLabel('Votre réponse').fill(typed);
    await edit.getByRole('button', { name: 'Enregistrer ma réponse' }).click();
    await edit.locator('[data-field="body"] .error').filter({ hasText: 'adresse e-mail' }).waitFor();
    expect((await edit.getByLabel('Votre réponse').inputValue()) === typed, 'the answer typed is kept');
    await edit.getByLabel('Votre réponse').fill(`${first} Réservation au numéro vert de l'agglomération.`);
    await edit.getByRole('button', { name: 'Enregistrer ma réponse' }).click();
    await told(page, 'Votre réponse est modifiée');
    await answerItem().getByText('numéro vert de l\'agglomération').waitFor();
    await answerItem().locator('.meta').filter({ hasText: /modifiée le \d/ }).waitFor();
  });

  await step('créer un espace : un nom manquant signalé, puis créé', async () => {
    await open('#/communaute');
    await page.getByRole('region', { name: 'Mes espaces' }).getByRole('link', { name: 'Créer un espace' }).click();
    await page.getByRole('heading', { level: 1, name: 'Créer un espace' }).waitFor();
    await settled(page, '#/communaute/espaces/nouveau');
    const create = page.getByRole('form', { name: 'Créer un espace' });
    const about = 'Les conseillers du Relais : relais d\'information, cas difficiles, entraide.';
    await create.getByLabel('Description').fill(about);
    await create.getByRole('button', { name: 'Créer l\'espace' }).click();
    await create.locator('[data-field="name"] .error').filter({ hasText: 'Donnez un nom' }).waitFor();
    expect((await create.getByLabel('Nom de l\'espace').getAttribute('aria-invalid')) === 'true', 'the name is marked invalid');
    expect((await create.getByLabel('Description').inputValue()) === about, 'the description is kept');
    await checkA11y(page, 'nouvel espace');
    await screenshot(page, 'communaute-nouvel-espace');
    await fitsPhone(page, 'nouvel espace', { shot: 'communaute-nouvel-espace-telephone' });
    await create.getByLabel('Nom de l\'espace').fill(SPACE);
    await create.getByRole('button', { name: 'Créer l\'espace' }).click();
    await told(page, `L'espace « ${SPACE} » est créé`);
    await page.getByRole('heading', { level: 1, name: 'Communauté' }).waitFor();
    const created = page.getByRole('region', { name: 'Mes espaces' }).getByRole('listitem').filter({ hasText: SPACE });
    await created.getByText('Vous modérez').waitFor();
    await created.getByText(about).waitFor();
    await page.getByRole('link', { name: 'Modération', exact: true }).waitFor();
  });

  await step('la modératrice rétablit la réponse ; le journal a les trois entrées', async () => {
    await logOut(page);
    await logIn(page, fx.counselorC, 'Personnes suivies');
    await open(`#/communaute/questions/${m.question}?reponse=${m.answer}`);
    await page.getByRole('heading', { level: 1, name: QUESTION }).waitFor();
    expect(await page.evaluate((id) => document.activeElement?.id === `a-${id}`, m.answer), 'the answer named in the address has the focus');
    await answerItem().getByText('Rétablir cette réponse', { exact: true }).click();
    const restore = answerItem().getByRole('form', { name: 'Rétablir cette réponse' });
    await restore.getByLabel('Pourquoi la rétablir ?').fill(RESTORE_REASON);
    await restore.getByRole('button', { name: 'Rétablir', exact: true }).click();
    await told(page, 'La réponse est rétablie');
    await answerItem().getByText('Masquer cette réponse', { exact: true }).waitFor();
    expect((await answerItem().locator('.marks').getByText('Masquée par la modération').count()) === 0, 'no longer hidden');

    await open('#/communaute/moderation');
    await page.getByRole('heading', { level: 1, name: 'Modération' }).waitFor();
    const entries = logEntries();
    expect((await entries.count()) === 3, `three entries (${await entries.count()})`);
    await entries.nth(0).getByText('Rétablie', { exact: true }).waitFor();
    await entries.nth(0).getByText(RESTORE_REASON).waitFor();
    await entries.nth(1).getByText('Masquée', { exact: true }).waitFor();
    await entries.nth(2).getByText('Signalement', { exact: true }).waitFor();
    await entries.nth(0).getByRole('link', { name: `Réponse à la question « ${QUESTION} »` }).click();
    await page.getByRole('heading', { level: 1, name: QUESTION }).waitFor();
    await settled(page, `#/communaute/questions/${m.question}`);
  });
  await step('les membres de l\'espace : la modératrice d\'abord, puis par nom', async () => {
    await open('#/communaute');
    await page.getByRole('heading', { level: 1, name: 'Communauté' }).waitFor();
    const card = page.getByRole('region', { name: 'Mes espaces' }).getByRole('listitem').filter({ hasText: m.spaceName });
    await card.getByRole('link', { name: `Membres de l'espace ${m.spaceName}` }).click();
    await page.getByRole('heading', { level: 1, name: `Membres de « ${m.spaceName} »` }).waitFor();
    await settled(page, `#/communaute/espaces/${m.space}/membres`);
    const names = await memberItems().locator('.who strong').allTextContents();
    expect(JSON.stringify(names) === JSON.stringify([`${fx.counselorC.name} (vous)`, fx.counselor.name, fx.admin.name]), `moderator first, then by name (${names})`);
    await memberItems().nth(0).getByText('Modération', { exact: true }).waitFor();
    expect((await memberItems().nth(2).getByText('Modération', { exact: true }).count()) === 0, 'Sacha is a plain member');
    await memberItems().nth(1).getByText(/membre depuis le \d/).waitFor();
    await checkA11y(page, 'membres de l\'espace');
  });

  await step('seule modératrice, Nour ne peut pas retirer son rôle : le refus est dit à côté', async () => {
    const mine = memberItems().nth(0);
    await mine.getByRole('button', { name: `Retirer le rôle de modérateur : ${fx.counselorC.name} (vous)` }).click();
    const ask = mine.getByRole('group', { name: /Ne plus modérer/ });
    await ask.getByRole('button', { name: 'Confirmer' }).click();
    const refusal = mine.locator('.error').filter({ hasText: 'Vous êtes la dernière personne qui modère cet espace' });
    await refusal.waitFor();
    expect((await refusal.textContent()).includes('nommez d\'abord un autre membre modérateur'), 'it says what to do first');
    const button = mine.getByRole('button', { name: /^Retirer le rôle de modérateur/ });
    expect((await button.getAttribute('aria-describedby')) === (await refusal.getAttribute('id')), 'the refusal describes the button');
    expect(await button.evaluate((b) => document.activeElement === b), 'the focus is back on the button');
    await mine.getByText('Modération', { exact: true }).waitFor();
    await checkA11y(page, 'dernier modérateur refusé');
    await screenshot(page, 'communaute-membres');
    await fitsPhone(page, 'membres de l\'espace', { shot: 'communaute-membres-telephone' });
  });

  await step('nommer Sacha modératrice, après confirmation', async () => {
    const sacha = memberItems().filter({ hasText: fx.admin.name });
    await sacha.getByRole('button', { name: `Nommer modérateur : ${fx.admin.name}` }).click();
    const ask = sacha.getByRole('group', { name: new RegExp(`Nommer ${fx.admin.name}`) });
    await ask.getByRole('button', { name: 'Annuler' }).click();
    expect(await ask.isHidden(), 'cancelled: nothing asked any more');
    await sacha.getByRole('button', { name: `Nommer modérateur : ${fx.admin.name}` }).click();
    await ask.getByRole('button', { name: 'Confirmer' }).click();
    await told(page, `${fx.admin.name} modère maintenant`);
    await memberItems().nth(1).filter({ hasText: fx.admin.name }).getByText('Modération', { exact: true }).waitFor();
    await memberItems().nth(1).getByRole('button', { name: `Retirer le rôle de modérateur : ${fx.admin.name}` }).waitFor();
  });

  await step('Sacha a maintenant les outils de modération ; seule modératrice de son espace, elle ne peut pas le quitter', async () => {
    await logOut(page);
    await logIn(page, fx.admin, 'Personnes suivies');
    await open(`#/communaute/questions/${m.question}`);
    await page.getByRole('heading', { level: 1, name: QUESTION }).waitFor();
    await answerItem().getByText('Masquer cette réponse', { exact: true }).waitFor();
    await answerItem().getByRole('button', { name: 'Retirer la certification' }).waitFor();
    await open('#/communaute');
    await page.getByRole('link', { name: 'Modération', exact: true }).waitFor();
    const own = page.getByRole('region', { name: 'Mes espaces' }).getByRole('listitem').filter({ hasText: SPACE });
    await own.getByRole('button', { name: `Quitter l'espace ${SPACE}` }).click();
    await told(page, 'dernière personne qui modère cet espace');
    await own.getByText('Vous modérez').waitFor();
  });
  console.log('moderation: ok');
} finally {
  await browser.close();
}
