// Referrals in headless Chromium (run by tests/tests/system/web.rs, test
// `web::referrals_in_the_browser`): A's counselor reads the inbox (C's referral of Bruno
// Keita first, to do), refuses it without a reason (error next to the field), accepts it,
// finds the referral sent to B, and refers Ana through the suggested services (a missing
// consent told next to the domains first); B's partner accepts a referral, starts it,
// records its outcome, writes a message, and reads every step in the timeline. Every page
// is checked on a phone too (390 px).
import { checkA11y, expect, fixtures, fitsPhone, launch, logIn, logOut, screenshot, settled, step, told } from './lib.mjs';

const fx = fixtures();
const { browser, page } = await launch();
const refLink = (id) => page.locator(`a[href="#/orientations/${id}"]`);
const facts = () => page.locator('dl.ref-facts');
let created = null;
try {
  await step('le conseiller ouvre les orientations', async () => {
    await page.goto(`${fx.baseUrl}/`);
    await logIn(page, fx.counselor, 'Personnes suivies');
    // The names come with the lists (include=person_name), not one request per card.
    const asked = [];
    const note = (req) => asked.push(new URL(req.url()));
    page.on('request', note);
    await page.getByRole('link', { name: 'Orientations', exact: true }).click();
    await page.getByRole('heading', { level: 1, name: 'Orientations' }).waitFor();
    await settled(page, '#/orientations');
    await page.locator('section.ref-received li.ref-card').first().waitFor();
    page.off('request', note);
    const lists = asked.filter((u) => u.pathname === '/api/v1/referrals');
    const single = asked.filter((u) => /^\/api\/v1\/referrals\/[^/]+$/.test(u.pathname));
    expect(lists.length > 0 && lists.every((u) => u.searchParams.get('include') === 'person_name'), `the lists ask for the names (${lists.map(String).join(' ')})`);
    expect(single.length === 0, `no referral read one by one (${single.map(String).join(' ')})`);
  });

  await step('reçues : Bruno Keita, de C, à traiter en premier', async () => {
    const a = page.locator('section.ref-structure').filter({ has: page.getByRole('heading', { level: 2, name: fx.structures.a.name }) });
    const received = a.locator('section.ref-received li.ref-card');
    await received.first().waitFor();
    const first = received.first();
    expect((await first.locator('a').getAttribute('href')) === `#/orientations/${fx.referrals.toA}`, 'C\'s referral comes first');
    const text = await first.innerText();
    expect(text.includes('Bruno Keita'), `the person's name shows (${text})`);
    expect(text.includes(`De : ${fx.structures.c.name}`), 'the sender shows');
    expect(text.includes('À traiter'), 'it is marked to do');
    expect(text.includes('Envoyée le'), 'its date shows');
    const sent = a.locator('section.ref-sent li.ref-card').filter({ has: refLink(fx.referrals.toPartner) });
    expect((await sent.innerText()).includes(`Vers : ${fx.structures.b.name}`), 'the referral sent to B shows in the outbox');
    await checkA11y(page, 'orientations');
    await screenshot(page, 'orientations-liste');
  });

  await step('la liste sur un téléphone (390 px)', async () => {
    await fitsPhone(page, 'orientations reçues et envoyées', { shot: 'orientations-liste-telephone' });
  });

  await step('le filtre « À traiter »', async () => {
    await page.getByLabel('Afficher').selectOption('a_traiter');
    await page.getByRole('button', { name: 'Filtrer' }).click();
    await settled(page, 'etat=a_traiter');
    await refLink(fx.referrals.toA).waitFor();
    expect(await page.locator('section.ref-sent').getByText('Aucune orientation dans cet état.').isVisible(), 'the sent referral is not to do for A');
  });

  await step('refuser sans motif : l\'erreur est à côté du champ', async () => {
    await refLink(fx.referrals.toA).click();
    await page.getByRole('heading', { level: 1, name: 'Orientation de Bruno Keita' }).waitFor();
    const refuse = page.getByRole('form', { name: 'Refuser l\'orientation' });
    await refuse.getByLabel('Précisions').fill('Nous n\'avons pas de place avant janvier.');
    await refuse.getByRole('button', { name: 'Refuser l\'orientation' }).click();
    await refuse.locator('[data-field="refusal_reason"] .error').filter({ hasText: 'Choisissez le motif' }).waitFor();
    expect((await refuse.getByLabel('Motif du refus').getAttribute('aria-invalid')) === 'true', 'the field is marked invalid');
    expect((await refuse.getByLabel('Précisions').inputValue()).startsWith('Nous n\'avons'), 'the note typed is kept');
    expect((await facts().innerText()).includes('Envoyée'), 'nothing moved');
    await checkA11y(page, 'orientation reçue (refus incomplet)');
    await screenshot(page, 'orientations-detail-refus-erreur');
    await fitsPhone(page, 'orientation reçue (refus incomplet)');
  });

  await step('accepter l\'orientation : le nouvel état s\'affiche', async () => {
    await page.getByRole('button', { name: 'Accepter l\'orientation' }).click();
    await told(page, 'L\'orientation est acceptée.');
    await facts().locator('.ref-status').filter({ hasText: 'Acceptée' }).waitFor();
    const steps = await page.locator('ol.ref-timeline li').allInnerTexts();
    expect(steps.length === 2 && steps[1].startsWith('Orientation acceptée') && steps[1].includes(`vous (${fx.structures.a.name})`), `the timeline tells the acceptance (${steps.join(' | ')})`);
    await page.getByRole('button', { name: 'Démarrer l\'accompagnement' }).waitFor();
    await checkA11y(page, 'orientation acceptée');
    await screenshot(page, 'orientations-detail');
    await fitsPhone(page, 'orientation acceptée', { shot: 'orientations-detail-telephone' });
  });

  await step('orienter Ana par les services suggérés : l\'accord manquant est signalé', async () => {
    await page.goto(`${fx.baseUrl}/#/personnes/${fx.person.id}`);
    await page.getByRole('heading', { level: 1, name: 'Ana Lindqvist' }).waitFor();
    await page.getByRole('link', { name: 'Orienter vers un service' }).click();
    await page.getByRole('heading', { level: 1, name: 'Orienter Ana Lindqvist' }).waitFor();
    const f = page.getByRole('form', { name: 'Orienter la personne' });
    await f.getByLabel('Mobilité', { exact: true }).check();
    const permis = f.locator(`input[type="radio"][value="${fx.services.permis}"]`);
    await permis.waitFor();
    const card = f.locator('.ref-service').filter({ has: page.locator(`input[value="${fx.services.permis}"]`) });
    const text = await card.innerText();
    expect(text.includes('Permis de conduire solidaire') && text.includes(fx.structures.b.name) && text.includes('Vernon') && text.includes('Pourquoi'),
      `the suggestion says what, who, where and why (${text})`);
    await checkA11y(page, 'nouvelle orientation (suggestions)');
    await screenshot(page, 'orientations-nouvelle');
    await fitsPhone(page, 'nouvelle orientation (suggestions)', { shot: 'orientations-nouvelle-telephone' });
    await permis.check();
    expect((await f.getByLabel('Structure visée').inputValue()) === fx.structures.b.id, 'choosing the service fills the target structure');
    await f.getByLabel(/^Logement/).check();
    await f.getByLabel('Motif de l\'orientation').fill('Ana prépare le permis B pour un emploi à 20 km ; elle cherche aussi un logement plus près.');
    await f.getByRole('button', { name: 'Envoyer l\'orientation' }).click();
    await f.locator('[data-field="domains"] .error').filter({ hasText: 'n\'a pas donné son accord' }).waitFor();
    const err = await f.locator('[data-field="domains"] .error').innerText();
    expect(err.includes('Logement') && err.includes(fx.structures.b.name), `the error names the domain and the structure (${err})`);
    expect((await f.getByLabel('Motif de l\'orientation').inputValue()).startsWith('Ana prépare'), 'the reason is kept');
    expect(await permis.isChecked(), 'the service chosen is kept');
    await checkA11y(page, 'nouvelle orientation (erreur)');
    await screenshot(page, 'orientations-nouvelle-erreur');
    await fitsPhone(page, 'nouvelle orientation (erreur)');
  });

  await step('l\'orientation part sans le domaine refusé', async () => {
    const f = page.getByRole('form', { name: 'Orienter la personne' });
    await f.getByLabel(/^Logement/).uncheck();
    await f.locator(`input[type="radio"][value="${fx.services.permis}"]`).waitFor();
    expect(await f.locator(`input[type="radio"][value="${fx.services.permis}"]`).isChecked(), 'the service stays chosen');
    await f.getByRole('button', { name: 'Envoyer l\'orientation' }).click();
    await told(page, `Orientation envoyée à ${fx.structures.b.name}`);
    await page.getByRole('heading', { level: 1, name: 'Orientation de Ana Lindqvist' }).waitFor();
    await settled(page, '#/orientations/');
    created = page.url().split('#/orientations/')[1];
    const t = await facts().innerText();
    expect(t.includes('Permis de conduire solidaire') && t.includes('Envoyée'), `the new referral names its service (${t})`);
    await page.getByRole('button', { name: 'Annuler l\'orientation' }).click();
    await page.getByRole('button', { name: 'Confirmer : annuler l\'orientation' }).waitFor();
    await page.getByText('L\'annulation est définitive').waitFor();
    expect((await facts().innerText()).includes('Envoyée'), 'a first click cancels nothing');
    await checkA11y(page, 'orientation envoyée');
    await screenshot(page, 'orientations-envoyee');
    await fitsPhone(page, 'orientation envoyée');
    await logOut(page);
  });

  await step('le partenaire voit les orientations reçues par B', async () => {
    await logIn(page, fx.partner, 'Orientations');
    await settled(page, '#/orientations');
    await refLink(fx.referrals.toPartner).waitFor();
    await refLink(created).waitFor();
    expect(await page.locator('section.ref-sent').count() === 0, 'a partner has no outbox');
    expect((await page.locator('section.ref-received li.ref-card').first().innerText()).includes('À traiter'), 'to do first');
    await checkA11y(page, 'partenaire : orientations reçues');
    await screenshot(page, 'partenaire-orientations');
    await fitsPhone(page, 'partenaire : orientations reçues');
  });

  await step('le partenaire ouvre l\'orientation : diagnostic transmis, puis l\'accepte', async () => {
    await refLink(fx.referrals.toPartner).click();
    await page.getByRole('heading', { level: 1, name: /^Orientation/ }).waitFor();
    const diag = page.locator('section').filter({ has: page.getByRole('heading', { level: 2, name: 'Diagnostic transmis' }) });
    await diag.getByRole('heading', { level: 3, name: 'Mobilité' }).waitFor();
    await checkA11y(page, 'partenaire : une orientation');
    await screenshot(page, 'partenaire-orientation');
    await fitsPhone(page, 'partenaire : une orientation', { shot: 'partenaire-orientation-telephone' });
    await page.getByRole('button', { name: 'Accepter l\'orientation' }).click();
    await told(page, 'L\'orientation est acceptée.');
    await facts().locator('.ref-status').filter({ hasText: 'Acceptée' }).waitFor();
  });

  await step('démarrer puis enregistrer le résultat (erreur d\'abord)', async () => {
    await page.getByRole('button', { name: 'Démarrer l\'accompagnement' }).click();
    await told(page, 'L\'accompagnement a démarré.');
    await facts().locator('.ref-status').filter({ hasText: 'Accompagnement en cours' }).waitFor();
    const outcome = page.getByRole('form', { name: 'Enregistrer le résultat' });
    await outcome.getByLabel('Commentaire').fill('Code obtenu, permis obtenu au premier passage.');
    await outcome.getByRole('button', { name: 'Enregistrer le résultat' }).click();
    await outcome.locator('[data-field="to_status"] .error').filter({ hasText: 'Choisissez le résultat' }).waitFor();
    expect((await outcome.getByLabel('Commentaire').inputValue()).startsWith('Code obtenu'), 'the comment is kept');
    await outcome.getByLabel('Accompagnement terminé').check();
    await outcome.getByRole('button', { name: 'Enregistrer le résultat' }).click();
    await told(page, 'Le résultat est enregistré');
    await facts().locator('.ref-status').filter({ hasText: 'Terminée' }).waitFor();
    await page.getByText('Cette orientation est close').waitFor();
  });

  await step('écrire un message', async () => {
    const write = page.getByRole('form', { name: 'Écrire un message' });
    await write.getByRole('button', { name: 'Envoyer le message' }).click();
    await write.locator('[data-field="body"] .error').filter({ hasText: 'Écrivez votre message' }).waitFor();
    await write.getByLabel(/^Votre message/).fill('Ana a obtenu son permis : merci pour l\'orientation !');
    await write.getByRole('button', { name: 'Envoyer le message' }).click();
    await told(page, 'Votre message est envoyé.');
    const m = page.locator('ol.ref-messages li').filter({ hasText: 'Ana a obtenu son permis' });
    await m.waitFor();
    expect((await m.innerText()).includes(`vous (${fx.structures.b.name})`), 'the message says who wrote it');
  });

  await step('la chronologie montre chaque étape', async () => {
    const steps = await page.locator('ol.ref-timeline li').allInnerTexts();
    const want = ['Orientation envoyée', 'Orientation acceptée', 'Accompagnement démarré', 'Accompagnement terminé'];
    expect(steps.length === want.length && want.every((w, i) => steps[i].startsWith(w) && steps[i].includes(' — le ')), `each step, in order, with its date (${steps.join(' | ')})`);
    expect(steps[0].includes(fx.structures.a.name), 'the sending structure is named');
    expect(steps.slice(1).every((s) => s.includes(`vous (${fx.structures.b.name})`)), 'the partner\'s steps are its own');
    expect(steps[3].includes('permis obtenu'), 'the outcome\'s comment shows');
    await checkA11y(page, 'partenaire : orientation terminée');
    await screenshot(page, 'partenaire-orientation-terminee');
    await fitsPhone(page, 'partenaire : orientation terminée');
  });
  console.log('referrals: ok');
} finally {
  await browser.close();
}
