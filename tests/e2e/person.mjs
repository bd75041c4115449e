// The person's space, in headless Chromium (run by tests/tests/system/web.rs,
// `web::person_space_in_the_browser`): Ana reads her diagnostic in plain words and what
// changed, gives her own view on a draft (a bad input first), gives a consent for three
// domains then withdraws ONE (the others stay, after a reload too), downloads a signed
// receipt and her data, reads her referrals and who accessed her file (a line per day
// and person with its count, then the detail access by access); reads her action plan
// (« Mes démarches »: empty, then built by her counselor; the next step on her home,
// late ones said late, done ones after), says herself that the late one is done (it moves
// after, the home's next step moves on, her counselor reads it done) and takes it back;
// on a phone too.
import { readFileSync } from 'node:fs';
import { checkA11y, expect, fitsPhone, fixtures, launch, logIn, screenshot, step, told } from './lib.mjs';

const fx = fixtures();
const { browser, page } = await launch();

/** The file a click downloads, parsed as JSON. */
async function downloaded(click) {
  const [dl] = await Promise.all([page.waitForEvent('download'), click()]);
  const path = await dl.path();
  return { name: dl.suggestedFilename(), json: JSON.parse(readFileSync(path, 'utf8')) };
}

/** An API read with the page's session (to check what the server holds). */
async function api(path) {
  return page.evaluate(async (p) => {
    const r = await fetch(`/api/v1${p}`, { headers: { authorization: `Bearer ${sessionStorage.getItem('eva.token')}` } });
    return r.json();
  }, path);
}

/** The counselor reads Ana's file once more (through the API, as at her desk); waits for it in the log. */
async function counselorReads() {
  const newest = async () => (await api(`/people/${fx.person.id}/access-log?page_size=1`)).items[0]?.id;
  const before = await newest();
  const status = await page.evaluate(async ({ email, password, id }) => {
    const login = await fetch('/api/v1/auth/login', {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email, password }),
    });
    const { access_token: token } = await login.json();
    return (await fetch(`/api/v1/people/${id}`, { headers: { authorization: `Bearer ${token}` } })).status;
  }, { email: fx.counselor.email, password: fx.counselor.password, id: fx.person.id });
  expect(status === 200, `the counselor reads the file: ${status}`);
  await page.waitForFunction(async ({ id, seen }) => {
    const r = await fetch(`/api/v1/people/${id}/access-log?page_size=1`, { headers: { authorization: `Bearer ${sessionStorage.getItem('eva.token')}` } });
    const top = (await r.json()).items[0];
    return top && top.id !== seen && top.actor_role === 'counselor';
  }, { id: fx.person.id, seen: before }, { polling: 100 });
}

/** A day `n` days from today, `YYYY-MM-DD`, in the browser's time. */
const dayFromToday = (n) => page.evaluate((k) => {
  const d = new Date();
  d.setDate(d.getDate() + k);
  const p = (x) => String(x).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
}, n);

/** A day as the person's plan says it: « 12 mars » (with the year when it is not this one). */
const inWords = (iso) => page.evaluate((s) => {
  const [y, m, d] = s.split('-').map(Number);
  const day = new Date(y, m - 1, d);
  const style = { day: 'numeric', month: 'long' };
  if (y !== new Date().getFullYear()) style.year = 'numeric';
  return day.toLocaleDateString('fr-FR', style).replace(/^1 /, '1er ');
}, iso);

/**
 * The counselor builds Ana's plan on her latest shared diagnostic, through the API (as
 * at her desk): two objectives; a past-due action, one given to Ana, one done, one later.
 */
async function counselorBuildsPlan(personUserId) {
  const days = { start: await dayFromToday(-30), late: await dayFromToday(-5), soon: await dayFromToday(12),
    done: await dayFromToday(-20), doneOn: await dayFromToday(-18), mail: await dayFromToday(30), target: await dayFromToday(120) };
  await page.evaluate(async ({ email, password, diagnostic, personUserId, days }) => {
    const login = await fetch('/api/v1/auth/login', {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email, password }),
    });
    const { access_token: token } = await login.json();
    const send = async (method, path, body) => {
      const r = await fetch(`/api/v1${path}`, {
        method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(body),
      });
      const json = await r.json().catch(() => null);
      if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(json)}`);
      return json;
    };
    const permis = await send('POST', `/diagnostics/${diagnostic}/plan/objectives`,
      { domain_id: 'mobilite', title: 'Obtenir le permis B', start_date: days.start, target_date: days.target });
    await send('POST', `/plan/objectives/${permis.id}/actions`, { title: 'Demander l\'aide au permis au Département', planned_date: days.late });
    await send('POST', `/plan/objectives/${permis.id}/actions`,
      { title: 'S\'inscrire au code de la route', planned_date: days.soon, owner_user_id: personUserId });
    const found = await send('POST', `/plan/objectives/${permis.id}/actions`, { title: 'Trouver une auto-école solidaire', planned_date: days.done });
    await send('PATCH', `/plan/actions/${found.id}`, { status: 'realisee', end_date: days.doneOn });
    const online = await send('POST', `/diagnostics/${diagnostic}/plan/objectives`,
      { domain_id: 'numerique', title: 'Faire mes démarches en ligne', start_date: days.start });
    await send('POST', `/plan/objectives/${online.id}/actions`, { title: 'Créer une adresse e-mail', planned_date: days.mail });
  }, { email: fx.counselor.email, password: fx.counselor.password, diagnostic: fx.diagnostics.second, personUserId, days });
  return days;
}

/** The status and end date of an action of Ana's latest plan, as her counselor reads it (through the API). */
async function counselorSees(title) {
  return page.evaluate(async ({ email, password, diagnostic, title }) => {
    const login = await fetch('/api/v1/auth/login', {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email, password }),
    });
    const { access_token: token } = await login.json();
    const r = await fetch(`/api/v1/diagnostics/${diagnostic}/plan`, { headers: { authorization: `Bearer ${token}` } });
    const plan = await r.json();
    const actions = plan.domains.flatMap((d) => d.objectives || []).flatMap((o) => o.actions);
    const a = actions.find((x) => x.title === title);
    return { http: r.status, status: a?.status, end_date: a?.end_date };
  }, { email: fx.counselor.email, password: fx.counselor.password, diagnostic: fx.diagnostics.second, title });
}

async function goHome() {
  await page.getByRole('link', { name: 'Revenir à mon espace' }).first().click();
  await page.getByRole('heading', { level: 1, name: 'Mon espace' }).waitFor();
}

try {
  const c = fx.structures.c.name;
  let labels = {};

  await step('la personne se connecte et arrive dans son espace', async () => {
    await page.goto(`${fx.baseUrl}/`);
    await logIn(page, fx.person, 'Mon espace');
    for (const name of ['Mon diagnostic', 'Mes démarches', 'Mes consentements', 'Mes orientations', 'Qui a consulté mon dossier']) {
      await page.getByRole('link', { name, exact: true }).waitFor();
    }
    const ref = await api('/referentiel');
    labels = Object.fromEntries(ref.domains.map((d) => [d.id, d.label_fr]));
    await checkA11y(page, 'mon espace');
    await screenshot(page, 'personne-accueil');
  });

  await step('mes démarches : sans plan, une phrase simple, et rien sur l\'accueil', async () => {
    expect((await page.getByRole('region', { name: 'Prochaine démarche' }).count()) === 0, 'no next step without a plan');
    await page.getByRole('link', { name: 'Mes démarches', exact: true }).click();
    await page.getByRole('heading', { level: 1, name: 'Mes démarches' }).waitFor();
    await page.getByText('Votre conseiller le construira avec vous').waitFor();
    await page.getByText(/^Le plan de votre dernier diagnostic, du /).waitFor();
    // Two shared diagnostics: the other one's plan is a link away.
    await page.getByRole('link', { name: /^Plan de votre diagnostic du / }).waitFor();
    await checkA11y(page, 'mes démarches, vides');
    await goHome();
  });

  let plan = {};
  await step('mes démarches : la prochaine sur l\'accueil, en retard', async () => {
    const me = await api('/me');
    plan = await counselorBuildsPlan(me.user_id);
    await page.reload();
    await page.getByRole('heading', { level: 1, name: 'Mon espace' }).waitFor();
    const card = page.getByRole('region', { name: 'Prochaine démarche' });
    await card.waitFor();
    const text = await card.textContent();
    expect(text.includes('Demander l\'aide au permis au Département'), `the next step is the oldest open one: ${text}`);
    expect(text.includes('En retard') && text.includes(`c'était à faire avant le ${await inWords(plan.late)}`), `said late, with its date: ${text}`);
    expect(text.includes('Obtenir le permis B'), `its objective: ${text}`);
    await checkA11y(page, 'mon espace, prochaine démarche');
    await card.getByRole('link', { name: 'Voir toutes mes démarches' }).click();
    await page.getByRole('heading', { level: 1, name: 'Mes démarches' }).waitFor();
  });

  await step('mes démarches : objectifs par domaine, dates en mots, le fait après', async () => {
    const domains = page.getByRole('heading', { level: 2 });
    const names = await domains.allTextContents();
    const mob = names.indexOf(labels.mobilite);
    const num = names.indexOf(labels.numerique);
    expect(mob >= 0 && num > mob, `the domain with the late step first: ${names}`);
    const permis = page.getByRole('article', { name: 'Obtenir le permis B' });
    await permis.waitFor();
    expect((await permis.textContent()).includes(`à atteindre d'ici le ${await inWords(plan.target)}`), 'the objective\'s target date in words');
    const steps = permis.getByRole('list', { name: /Les démarches de l'objectif « Obtenir le permis B »/ }).getByRole('listitem');
    const texts = await steps.allTextContents();
    expect(texts.length === 3, `three steps: ${texts}`);
    // What is next first (the late one, then the one to come), what is done after.
    expect(texts[0].includes('Demander l\'aide au permis au Département') && texts[0].includes('En retard')
      && texts[0].includes(`c'était à faire avant le ${await inWords(plan.late)}`), `first, the late one: ${texts[0]}`);
    expect(texts[1].includes('S\'inscrire au code de la route') && texts[1].includes(`à faire avant le ${await inWords(plan.soon)}`)
      && !texts[1].includes('En retard'), `then the one to come: ${texts[1]}`);
    expect(texts[1].includes('Qui s\'en occupe : vous'), `given to Ana: ${texts[1]}`);
    expect(texts[0].includes(`Qui s'en occupe : ${fx.structures.a.name}`), `the other one by A: ${texts[0]}`);
    expect(texts[2].includes('Trouver une auto-école solidaire') && texts[2].includes(`faite le ${await inWords(plan.doneOn)}`)
      && texts[2].includes('Faite'), `last, the done one: ${texts[2]}`);
    expect((await steps.nth(2).getAttribute('class')).includes('action-realisee'), 'the done one is marked');
    const mail = page.getByRole('article', { name: 'Faire mes démarches en ligne' });
    expect((await mail.textContent()).includes(`à faire avant le ${await inWords(plan.mail)}`), 'the other objective\'s step');
    // Her say on the open ones only: done, or started while still to do.
    const buttons = async (i) => steps.nth(i).getByRole('button').allTextContents();
    expect(JSON.stringify(await buttons(0)) === JSON.stringify(['C\'est fait', 'J\'ai commencé']), `the late one: ${await buttons(0)}`);
    expect((await buttons(2)).length === 0, `nothing on the done one: ${await buttons(2)}`);
    await page.getByText('Dites-le ici, avec ses boutons').waitFor();
    await checkA11y(page, 'mes démarches');
    // The first diagnostic's plan, a link away: said which one, and empty.
    await page.getByRole('link', { name: /^Plan de votre diagnostic du / }).click();
    await page.getByText(/^Le plan de votre diagnostic, du /).waitFor();
    await page.getByText('Votre conseiller le construira avec vous').waitFor();
    expect(page.url().endsWith(`/demarches/${fx.diagnostics.first}`), `the first diagnostic's plan: ${page.url()}`);
    await page.getByRole('link', { name: /\(le plus récent\)$/ }).click();
    await page.getByRole('article', { name: 'Obtenir le permis B' }).waitFor();
    await goHome();
  });

  await step('mes démarches : Ana dit elle-même qu\'une démarche est faite, et se reprend', async () => {
    const late = 'Demander l\'aide au permis au Département';
    await page.getByRole('link', { name: 'Mes démarches', exact: true }).click();
    await page.getByRole('heading', { level: 1, name: 'Mes démarches' }).waitFor();
    const list = () => page.getByRole('article', { name: 'Obtenir le permis B' })
      .getByRole('list', { name: /Les démarches de l'objectif « Obtenir le permis B »/ }).getByRole('listitem');
    await list().filter({ hasText: late }).getByRole('button', { name: 'C\'est fait' }).click();
    await told(page, `C'est noté : « ${late} » est faite. Votre conseiller le verra.`);
    const focused = await page.evaluate(() => document.activeElement?.textContent || '');
    expect(focused.includes(late), `the focus stays on the action: ${focused}`);
    // Her counselor reads it done, today.
    const seen = await counselorSees(late);
    expect(seen.http === 200 && seen.status === 'realisee' && /^\d{4}-\d{2}-\d{2}$/.test(seen.end_date || ''), `the counselor sees it done: ${JSON.stringify(seen)}`);
    // It moves after the open one, done, with its day; she may take it back.
    let texts = await list().allTextContents();
    expect(texts.length === 3 && texts[0].includes('S\'inscrire au code de la route'), `the open one first: ${texts}`);
    expect(texts[1].includes(late) && texts[1].includes('Faite') && texts[1].includes(`faite le ${await inWords(seen.end_date)}`)
      && !texts[1].includes('En retard'), `then the one she did: ${texts[1]}`);
    expect((await list().nth(1).getAttribute('class')).includes('action-realisee'), 'marked done');
    expect(JSON.stringify(await list().nth(1).getByRole('button').allTextContents()) === JSON.stringify(['Finalement, pas encore']),
      'she may take it back');
    expect((await list().nth(2).getByRole('button').count()) === 0, 'not the one her counselor marked done');
    await checkA11y(page, 'mes démarches, une démarche faite');
    await screenshot(page, 'personne-demarches');
    await fitsPhone(page, 'Mes démarches', { shot: 'personne-demarches-telephone' });
    // The home's next step moves on.
    await goHome();
    const card = page.getByRole('region', { name: 'Prochaine démarche' });
    await card.waitFor();
    const next = await card.textContent();
    expect(next.includes('S\'inscrire au code de la route') && !next.includes(late), `the next one now: ${next}`);
    // A click by mistake: she takes it back, late again; her counselor reads it to do.
    await card.getByRole('link', { name: 'Voir toutes mes démarches' }).click();
    await page.getByRole('heading', { level: 1, name: 'Mes démarches' }).waitFor();
    await list().filter({ hasText: late }).getByRole('button', { name: 'Finalement, pas encore' }).click();
    await told(page, `C'est noté : « ${late} » n'est pas encore faite. Votre conseiller le verra.`);
    texts = await list().allTextContents();
    expect(texts[0].includes(late) && texts[0].includes('En retard'), `back first, late: ${texts[0]}`);
    const again = await counselorSees(late);
    expect(again.status === 'prevue' && !again.end_date, `the counselor sees it to do: ${JSON.stringify(again)}`);
    await checkA11y(page, 'mes démarches, reprise');
    await goHome();
  });

  await step('mon diagnostic en mots simples, et ce qui a changé', async () => {
    await page.getByRole('link', { name: 'Mon diagnostic', exact: true }).click();
    await page.getByRole('heading', { level: 1, name: 'Mon diagnostic' }).waitFor();
    await page.getByRole('heading', { level: 2, name: /^Ce qui a changé depuis le/ }).waitFor();
    // The second diagnostic: some items improved, one worsened.
    const better = page.getByRole('heading', { level: 3, name: 'Ce qui va mieux' });
    const worse = page.getByRole('heading', { level: 3, name: 'Ce qui est plus difficile' });
    await better.waitFor();
    await worse.waitFor();
    const worseText = await page.locator('.change.worsened').textContent();
    expect(/c'était .*, c'est maintenant .*difficulté/.test(worseText), `a sentence says what worsened: ${worseText}`);
    expect((await page.getByRole('heading', { level: 4, name: /Ce qui vous freine/ }).count()) > 0, 'a domain says what holds back');
    expect((await page.getByRole('heading', { level: 4, name: /Ce qui vous aide/ }).count()) > 0, 'a domain says what helps');
    const history = page.locator('.history li');
    expect((await history.count()) === 2, 'two shared diagnostics in the history');
    await checkA11y(page, 'mon diagnostic');
    await screenshot(page, 'personne-diagnostic');
    // The first one, on its own: nothing to compare it with.
    await history.getByRole('link').first().click();
    await page.getByRole('heading', { level: 1, name: /^Mon diagnostic du / }).waitFor();
    expect((await page.getByRole('heading', { name: /^Ce qui a changé/ }).count()) === 0, 'the first has no previous');
    await goHome();
  });

  await step('mon avis sur le brouillon : une remarque sans réponse est signalée, rien de perdu', async () => {
    await page.getByRole('link', { name: 'Donner mon avis sur ma situation' }).click();
    await page.getByRole('heading', { level: 1, name: 'Mon avis sur ma situation' }).waitFor();
    expect(page.url().includes(fx.diagnostics.draft), 'the draft of the fixtures');
    const note = page.locator('[data-field="note-0"] textarea');
    await page.getByText('Ajouter une remarque').first().click();
    await note.fill('Je fais du covoiturage avec ma sœur.');
    await page.getByRole('button', { name: 'Enregistrer mon avis' }).click();
    await page.locator('[data-field="level-0"] .error').filter({ hasText: 'Choisissez d\'abord une réponse' }).waitFor();
    expect((await page.locator('[data-field="level-0"] select').getAttribute('aria-invalid')) === 'true', 'the answer is marked invalid');
    expect((await note.inputValue()) === 'Je fais du covoiturage avec ma sœur.', 'the note is kept');
    await checkA11y(page, 'mon avis avec erreur');
    await screenshot(page, 'personne-mon-avis-erreur');
  });

  await step('mon avis est enregistré, et retrouvé après rechargement', async () => {
    await page.locator('[data-field="level-0"] select').selectOption('point_d_appui');
    await page.locator('[data-field="level-1"] select').selectOption('frein');
    await page.getByRole('button', { name: 'Enregistrer mon avis' }).click();
    await told(page, 'votre avis est enregistré (2 réponse(s))');
    await page.reload();
    await page.getByRole('heading', { level: 1, name: 'Mon avis sur ma situation' }).waitFor();
    expect((await page.locator('[data-field="level-0"] select').inputValue()) === 'point_d_appui', 'the answer is saved');
    expect((await page.locator('[data-field="note-0"] textarea').inputValue()) === 'Je fais du covoiturage avec ma sœur.', 'the note is saved');
    const d = await api(`/diagnostics/${fx.diagnostics.draft}`);
    const rated = d.domains.flatMap((x) => x.items || []).filter((i) => i.person_level);
    expect(rated.length === 2, `two items rated by the person on the server, got ${rated.length}`);
    await checkA11y(page, 'mon avis');
    await screenshot(page, 'personne-mon-avis');
    await goHome();
  });

  await step('donner mon accord : une erreur à côté du champ, puis trois domaines à une structure', async () => {
    await page.getByRole('link', { name: 'Mes consentements', exact: true }).click();
    await page.getByRole('heading', { level: 1, name: 'Mes consentements' }).waitFor();
    const grant = page.getByRole('form', { name: 'Donner mon accord à une structure' });
    await grant.getByLabel('Structure à qui je donne mon accord').selectOption({ label: c });
    await grant.getByRole('button', { name: 'Donner mon accord' }).click();
    await grant.locator('[data-field="domains"] .error').filter({ hasText: 'Cochez au moins une partie' }).waitFor();
    expect((await grant.getByLabel('Structure à qui je donne mon accord').inputValue()) === fx.structures.c.id, 'the structure chosen is kept');
    for (const d of ['numerique', 'famille', 'logement-hebergement']) {
      await grant.getByLabel(labels[d], { exact: true }).check();
    }
    await grant.getByRole('button', { name: 'Donner mon accord' }).click();
    await told(page, `Votre accord à ${c} est enregistré`);
    const card = page.getByRole('article', { name: c });
    expect((await card.getByRole('button', { name: /^Retirer l'accord pour/ }).count()) === 3, 'three domains for C');
    await checkA11y(page, 'mes consentements');
    await screenshot(page, 'personne-consentements');
  });

  await step('retirer UN domaine : les autres restent, même après rechargement', async () => {
    const card = page.getByRole('article', { name: c });
    const before = (await api(`/people/${fx.person.id}/consents?status=active`)).items.filter((k) => k.grantee_structure_id === fx.structures.c.id);
    expect(before.length === 1 && before[0].domains.length === 3, 'one consent to C with three domains');
    await card.getByRole('button', { name: `Retirer l'accord pour « ${labels.famille} » à ${c}` }).click();
    await told(page, `${c} ne voit plus le domaine « ${labels.famille} »`);
    await page.reload();
    await page.getByRole('heading', { level: 1, name: 'Mes consentements' }).waitFor();
    const after = page.getByRole('article', { name: c });
    await after.getByRole('button', { name: `Retirer l'accord pour « ${labels.numerique} » à ${c}` }).waitFor();
    await after.getByRole('button', { name: `Retirer l'accord pour « ${labels['logement-hebergement']} » à ${c}` }).waitFor();
    expect((await after.getByRole('button', { name: `Retirer l'accord pour « ${labels.famille} » à ${c}` }).count()) === 0, 'famille is gone');
    // On the server: the consent was withdrawn and ONE consent keeps the two others.
    const now = (await api(`/people/${fx.person.id}/consents?status=active`)).items.filter((k) => k.grantee_structure_id === fx.structures.c.id);
    expect(now.length === 1 && now[0].id !== before[0].id, 'one new active consent to C');
    expect(JSON.stringify([...now[0].domains].sort()) === JSON.stringify(['logement-hebergement', 'numerique']), `its domains: ${now[0].domains}`);
    const old = await api(`/consents/${before[0].id}`);
    expect(old.status === 'withdrawn', 'the first consent is withdrawn');
    // Structure A still has its own domains.
    expect((await page.getByRole('article', { name: fx.structures.a.name }).getByRole('button', { name: /^Retirer l'accord pour/ }).count()) > 5, 'A keeps its domains');
  });

  await step('télécharger le reçu signé', async () => {
    const card = page.getByRole('article', { name: c });
    await card.getByText(/^Mes reçus signés/).click();
    const { name, json } = await downloaded(() => card.getByRole('button', { name: /^Télécharger le reçu/ }).first().click());
    expect(name.startsWith('recu-consentement-'), `file name ${name}`);
    expect(typeof json.signature === 'string' && json.signature.includes('..'), 'a detached signature');
    const ids = json.receipt.pii_categories.map((x) => x.id).sort();
    expect(JSON.stringify(ids) === JSON.stringify(['logement-hebergement', 'numerique']), `the receipt's domains: ${ids}`);
    expect(typeof json.receipt.replaces_consent_id === 'string', 'the receipt says which consent it replaces');
    await told(page, 'Le reçu est téléchargé');
  });

  await step('retirer tout mon accord à une structure', async () => {
    const card = page.getByRole('article', { name: c });
    await card.getByRole('button', { name: `Retirer tout mon accord à ${c}` }).click();
    // Asked once more; « Non » keeps everything.
    await card.getByRole('button', { name: 'Non, garder mon accord' }).click();
    await card.getByRole('button', { name: `Retirer tout mon accord à ${c}` }).click();
    await card.getByRole('button', { name: `Oui, retirer tout mon accord à ${c}` }).click();
    await told(page, `Votre accord à ${c} est retiré`);
    await page.reload();
    await page.getByRole('heading', { level: 1, name: 'Mes consentements' }).waitFor();
    await page.getByRole('article', { name: fx.structures.a.name }).waitFor();
    expect((await page.getByRole('article', { name: c }).count()) === 0, `${c} no longer sees anything`);
    const left = (await api(`/people/${fx.person.id}/consents?status=active`)).items.filter((k) => k.grantee_structure_id === fx.structures.c.id);
    expect(left.length === 0, 'no active consent to C on the server');
  });

  await step('les reçus des anciens accords restent téléchargeables', async () => {
    const past = page.getByRole('region', { name: 'Mes anciens accords' });
    await past.getByText(/^Les accords retirés ou arrivés à leur fin/).click();
    const mine = past.getByRole('button', { name: new RegExp(`^Télécharger le reçu de l'ancien accord .* à ${c}`) });
    expect((await mine.count()) >= 2, 'the first consent to C and the one that replaced it');
    const { json } = await downloaded(() => mine.first().click());
    expect(json.receipt && typeof json.signature === 'string', 'a signed receipt');
    await checkA11y(page, 'anciens accords');
    await goHome();
  });

  await step('télécharger toutes mes données', async () => {
    const { name, json } = await downloaded(() => page.getByRole('button', { name: 'Télécharger toutes mes données' }).click());
    expect(name === `eva-export-${fx.person.id}.json`, `file name ${name}`);
    const text = JSON.stringify(json);
    expect(text.includes(fx.person.id), 'the export is about Ana');
    expect(text.includes(fx.person.last_name), 'the export holds her name');
    expect(text.includes(fx.diagnostics.draft), 'the export holds her diagnostics');
    await told(page, 'Vos données sont téléchargées');
  });

  await step('mes orientations et leurs étapes', async () => {
    await page.getByRole('link', { name: 'Mes orientations', exact: true }).click();
    await page.getByRole('heading', { level: 1, name: 'Mes orientations' }).waitFor();
    const r = page.getByRole('article', { name: `Vers ${fx.structures.b.name}` });
    await r.getByText('Envoyée, en attente de réponse').first().waitFor();
    expect((await r.locator('.timeline li').count()) >= 1, 'at least one step');
    await checkA11y(page, 'mes orientations');
    await screenshot(page, 'personne-orientations');
  });

  await step('décliner une orientation : demandé une seconde fois, puis fait', async () => {
    const r = page.getByRole('article', { name: `Vers ${fx.structures.b.name}` });
    await r.getByRole('button', { name: 'Je ne souhaite pas y aller' }).click();
    await r.getByRole('button', { name: 'Non, je garde cette orientation' }).click();
    await r.getByText('Envoyée, en attente de réponse').first().waitFor();
    await r.getByRole('button', { name: 'Je ne souhaite pas y aller' }).click();
    await r.getByLabel('Vous pouvez dire pourquoi (facultatif)').fill('J\'ai trouvé une place dans une autre auto-école, plus près de chez moi.');
    await r.getByRole('button', { name: 'Oui, je décline cette orientation' }).click();
    await told(page, `Vous avez décliné l'orientation vers ${fx.structures.b.name}`);
    const after = page.getByRole('article', { name: `Vers ${fx.structures.b.name}` });
    await after.getByText('Vous l\'avez déclinée').first().waitFor();
    expect((await after.getByRole('button', { name: 'Je ne souhaite pas y aller' }).count()) === 0, 'nothing left to decline');
    const moved = await api(`/referrals/${fx.referrals.toPartner}`);
    expect(moved.status === 'declinee_par_la_personne', `the referral is declined on the server: ${moved.status}`);
    await checkA11y(page, 'orientation déclinée');
    await goHome();
  });

  await step('qui a consulté mon dossier : une ligne par jour, par personne et par action', async () => {
    // A read after all her own actions: the newest line, and not the only page.
    await counselorReads();
    await page.getByRole('link', { name: 'Qui a consulté mon dossier', exact: true }).click();
    await page.getByRole('heading', { level: 1, name: 'Qui a consulté mon dossier', exact: true }).waitFor();
    const summary = page.getByRole('list', { name: /Les accès à votre dossier, par jour/ });
    const lines = summary.getByRole('listitem');
    // The counselor read her file twice (fixtures), then once more: one line, with its count.
    const groups = (await api(`/people/${fx.person.id}/access-log/summary?page_size=500`)).items;
    const reads = groups.filter((g) => g.actor_role === 'counselor' && g.action === 'read' && g.resource_type === 'person');
    expect(reads.length >= 1 && reads.every((g) => g.count >= 1), `the counselor's reads: ${JSON.stringify(reads)}`);
    const top = reads.reduce((a, b) => (b.count > a.count ? b : a));
    expect(top.count >= 3, `three reads in one line: ${JSON.stringify(top)}`);
    const said = `${fx.counselor.name} (${fx.structures.a.name}, conseiller ou conseillère) a consulté votre fiche — ${top.count} fois le `;
    await lines.filter({ hasText: said }).first().waitFor();
    const text = await lines.filter({ hasText: said }).first().textContent();
    expect(/(, de \d{1,2}\sh\s\d\d à \d{1,2}\sh\s\d\d| à \d{1,2}\sh\s\d\d)\./.test(text), `when, in hours: ${text}`);
    expect(text.includes('Pour vous accompagner.'), `why: ${text}`);
    // Fewer lines than accesses; her own actions hidden first.
    const entries = (await api(`/people/${fx.person.id}/access-log?page_size=500`)).items;
    expect(groups.length < entries.length, `grouped: ${groups.length} lines for ${entries.length} accesses`);
    expect((await lines.filter({ hasText: /^Vous / }).count()) === 0, 'her own actions hidden');
    const others = await lines.count();
    expect((await page.getByRole('button', { name: 'Voir plus' }).isHidden()) === (groups.length <= 50), 'more only when there is more');
    await checkA11y(page, 'journal des accès, par jour');
    await screenshot(page, 'personne-journal');
    await page.getByLabel('Ne pas afficher mes propres actions').uncheck();
    await lines.filter({ hasText: /^Vous avez / }).first().waitFor();
    expect((await lines.count()) > others, 'her own actions shown too');
    await page.getByLabel('Ne pas afficher mes propres actions').check();
    expect((await lines.count()) === others, 'and hidden again');
  });

  await step('le détail, accès par accès, avec « voir plus »', async () => {
    await page.getByRole('link', { name: 'Voir le détail', exact: true }).click();
    await page.getByRole('heading', { level: 1, name: 'Qui a consulté mon dossier, accès par accès' }).waitFor();
    const log = page.getByRole('table', { name: /accès à votre dossier/ });
    const rows = log.locator('tbody tr');
    // Her own actions hidden first: A's reads of her file show, the newest first (more to see).
    expect((await log.getByRole('cell', { name: new RegExp(fx.structures.a.name) }).count()) > 0, 'A\'s reads are listed');
    expect((await log.getByRole('cell', { name: 'Vous', exact: true }).count()) === 0, 'her own actions hidden');
    await page.getByRole('button', { name: 'Voir plus' }).waitFor();
    const others = await rows.count();
    await checkA11y(page, 'journal des accès, détail');
    await screenshot(page, 'personne-journal-detail');
    await page.getByLabel('Ne pas afficher mes propres actions').uncheck();
    await log.getByRole('cell', { name: 'Vous', exact: true }).first().waitFor();
    const first = await rows.count();
    expect(first > others, `her own actions shown too (${first} > ${others})`);
    // Each consent listed is a read of the file: well over 50 by now, by pages of 50.
    const total = (await api(`/people/${fx.person.id}/access-log?page_size=500`)).items.length;
    expect(total > 50, `more than one page of accesses (${total})`);
    const more = page.getByRole('button', { name: 'Voir plus' });
    await more.click();
    await page.waitForFunction((n) => document.querySelectorAll('table.access-log tbody tr').length > n, first);
    const ids = await api(`/people/${fx.person.id}/access-log?page_size=500`);
    expect((await rows.count()) <= ids.items.length, 'no access shown twice');
    await checkA11y(page, 'journal des accès, tout affiché');
    await page.getByRole('link', { name: 'Voir le résumé par jour' }).click();
    await page.getByRole('list', { name: /Les accès à votre dossier, par jour/ }).waitFor();
  });

  await step('sur un téléphone (390 px)', async () => {
    for (const [href, h1, name] of [
      ['#/mon-espace', 'Mon espace', 'personne-telephone-accueil'],
      ['#/mon-espace/consentements', 'Mes consentements', 'personne-telephone-consentements'],
      ['#/mon-espace/diagnostic', 'Mon diagnostic', 'personne-telephone-diagnostic'],
      ['#/mon-espace/demarches', 'Mes démarches', null],
      ['#/mon-espace/acces', 'Qui a consulté mon dossier', 'personne-telephone-journal'],
      ['#/mon-espace/acces/detail', 'Qui a consulté mon dossier, accès par accès', null],
    ]) {
      await page.goto(`${fx.baseUrl}/${href}`);
      await page.getByRole('heading', { level: 1, name: h1, exact: true }).waitFor();
      await fitsPhone(page, h1, { shot: name ?? undefined });
    }
  });
  console.log('person: ok');
} finally {
  await browser.close();
}
