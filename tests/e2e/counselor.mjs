// The counselor's tools in headless Chromium (run by tests/tests/system/web.rs,
// `web::counselor_tools_in_the_browser`): the caseload (each person's last diagnostic) and
// its filter, the diagnostic editor's notes, the history of Ana's diagnostics (a chart per
// domain, the same figures in tables, two diagnostics compared; her own ratings, then both
// views side by side and where they differ), the action plan (errors
// next to the fields, an objective, an action done), the notifications (badge, list, mark
// read, live count), and the way there with the keyboard alone (the menu, a person, the
// skip link). Every page is checked on a phone too (390 px).
import { checkA11y, expect, fixtures, fitsPhone, launch, logIn, logOut, screenshot, settled, step, told } from './lib.mjs';

const fx = fixtures();
const ana = `${fx.person.first_name} ${fx.person.last_name}`;
/** « d'Ana Lindqvist » (the client elides before a vowel). */
const ofAna = `d'${ana}`;
const { browser, page } = await launch();

/** The unread count the menu's link shows (its data-unread), once it equals `n` when given. */
async function badgeCount(n) {
  const link = page.locator('#nav a.notif-link');
  await link.waitFor();
  if (n !== undefined) {
    await page.waitForFunction((want) => document.querySelector('#nav a.notif-link')?.dataset.unread === String(want), n);
  }
  return Number(await link.getAttribute('data-unread'));
}

/** Logs in through the API: the access token of `who`. */
async function apiToken(who) {
  const r = await fetch(`${fx.baseUrl}/api/v1/auth/login`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: who.email, password: who.password }),
  });
  expect(r.ok, `${who.email} logs in through the API (${r.status})`);
  return (await r.json()).access_token;
}

/** What has the focus: tag, text or label, whether it shows a visible focus style. */
async function focused() {
  return page.evaluate(() => {
    const el = document.activeElement;
    const cs = getComputedStyle(el);
    const ring = (cs.outlineStyle !== 'none' && parseFloat(cs.outlineWidth) > 0) || cs.boxShadow !== 'none';
    return {
      tag: el.tagName.toLowerCase(),
      text: (el.getAttribute('aria-label') || el.textContent || '').trim(),
      inMain: Boolean(el.closest('#main')),
      skip: el.classList.contains('skip'),
      visible: el.matches(':focus-visible') && ring,
    };
  });
}

/** Presses `key` (Tab or Shift+Tab) until `want(focused)` holds, at most `max` times. */
async function tabUntil(key, want, what, max = 60) {
  for (let i = 0; i < max; i += 1) {
    await page.keyboard.press(key);
    const f = await focused();
    if (want(f)) return f;
  }
  throw new Error(`${key} ${max} times never reached ${what} (focus on ${JSON.stringify(await focused())})`);
}

/** The focus is on the page's h1, named `name`. */
async function focusOnH1(name) {
  const f = await focused();
  expect(f.tag === 'h1' && f.inMain && f.text === name, `the focus on the h1 « ${name} » (${JSON.stringify(f)})`);
}

// More people than a page of the list (20): A registers 21 more, all after Ana in the order of names.
const MORE = [['Louis', 'Martin'], ['Emma', 'Moreau'], ['Hugo', 'Morel'], ['Chloé', 'Nicolas'], ['Jules', 'Noël'],
  ['Rose', 'Olivier'], ['Léo', 'Perrin'], ['Zoé', 'Petit'], ['Inès', 'Picard'], ['Paul', 'Renard'], ['Lucie', 'Robin'],
  ['Tom', 'Roche'], ['Nina', 'Roux'], ['Théo', 'Simon'], ['Alice', 'Schmitt'], ['Jean', 'Texier'], ['Louise', 'Thomas'],
  ['Marc', 'Vidal'], ['Sarah', 'Vincent'], ['Yann', 'Weber'], ['Lou', 'Zimmer']];

try {
  await step('la structure suit plus de personnes qu\'une page de la liste', async () => {
    const t = await apiToken(fx.counselor);
    for (const [first, last] of MORE) {
      const r = await fetch(`${fx.baseUrl}/api/v1/people`, {
        method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${t}` },
        body: JSON.stringify({ structure_id: fx.structures.a.id, first_name: first, last_name: last, birth_date: '1990-02-03', commune_insee: '27229' }),
      });
      expect(r.status === 201, `${first} ${last} is registered (${r.status})`);
    }
  });

  await step('le conseiller se connecte : la liste des personnes suivies', async () => {
    await page.goto(`${fx.baseUrl}/`);
    await logIn(page, fx.counselor, 'Personnes suivies');
    await page.getByRole('heading', { level: 2, name: fx.structures.a.name }).waitFor();
    await page.getByRole('link', { name: ana, exact: true }).waitFor();
    // Ana's card shows her last diagnostic (the fixtures' open draft), asked once for the page.
    const card = page.locator('ul.people > li', { has: page.getByRole('link', { name: ana, exact: true }) });
    await card.getByText('Dernier diagnostic : brouillon en cours', { exact: true }).waitFor();
    await checkA11y(page, 'liste des personnes suivies');
    await screenshot(page, 'conseiller-liste');
    await fitsPhone(page, 'liste des personnes suivies', { shot: 'conseiller-liste-telephone' });
  });

  await step('la liste par pages de 20', async () => {
    const people = page.locator('ul.people > li');
    expect((await people.count()) === 20, `20 people on the first page (${await people.count()})`);
    await page.getByText('22 personne(s) suivie(s).').waitFor();
    await page.getByText('Page 1 sur 2').waitFor();
    await page.getByRole('button', { name: 'Page suivante' }).click();
    await page.getByText('Page 2 sur 2').waitFor();
    expect((await people.count()) === 2, 'the last two on the second page');
    await page.getByRole('link', { name: 'Lou Zimmer', exact: true }).waitFor();
    expect(await page.getByRole('button', { name: 'Page suivante' }).isDisabled(), 'no page after the last');
    await page.getByRole('button', { name: 'Page précédente' }).click();
    await page.getByText('Page 1 sur 2').waitFor();
  });

  await step('filtrer la liste par nom', async () => {
    const search = page.getByLabel('Rechercher une personne par son nom ou son prénom').first();
    await search.fill('zzzz');
    await page.getByText('Aucune personne ne correspond à cette recherche.').waitFor();
    expect((await page.getByRole('link', { name: ana, exact: true }).count()) === 0, 'Ana hidden by a name that is not hers');
    await search.fill('lindqv');
    await page.getByRole('link', { name: ana, exact: true }).waitFor();
    await page.getByText(/personne\(s\) sur \d+ pour « lindqv »/).waitFor();
    await search.fill('ANA');
    await page.getByRole('link', { name: ana, exact: true }).waitFor();
    expect((await page.locator('ul.people > li').count()) === 1, 'only Ana for « ANA »');
    await search.fill('zimmer');
    await page.getByRole('link', { name: 'Lou Zimmer', exact: true }).waitFor();
    expect((await page.getByText(/^Page \d sur/).count()) === 0, 'one page of results: no pager');
    await search.fill('');
    await page.getByText('Page 1 sur 2').waitFor();
  });

  await step('le badge du menu montre au moins une notification non lue', async () => {
    const n = await badgeCount();
    expect(n >= 1, `at least one unread notification (badge says ${n})`);
    await page.getByRole('link', { name: /^Notifications, \d+ non lues?$/ }).waitFor();
    const seen = await page.locator('#nav a.notif-link .count').textContent();
    expect(seen === `${n} non lue${n > 1 ? 's' : ''}`, `the count is seen (« ${seen} »)`);
  });

  await step('au clavier seul : le menu, la liste, le dossier d\'Ana', async () => {
    await page.goto(`${fx.baseUrl}/#/notifications`);
    await page.getByRole('heading', { level: 1, name: 'Notifications' }).waitFor();
    await settled(page, '#/notifications');
    await focusOnH1('Notifications');
    // Back up to the menu, then Enter on « Personnes suivies ».
    const menu = await tabUntil('Shift+Tab', (f) => f.tag === 'a' && f.text === 'Personnes suivies', 'the menu\'s « Personnes suivies »', 20);
    expect(menu.visible, 'the focused menu link shows a focus ring (:focus-visible, outline or shadow)');
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { level: 1, name: 'Personnes suivies' }).waitFor();
    await settled(page, '#/personnes');
    await focusOnH1('Personnes suivies');
    // Down the page to Ana's card, then Enter.
    const card = await tabUntil('Tab', (f) => f.tag === 'a' && f.text === ana, `the link « ${ana} »`);
    expect(card.visible, 'the focused card link shows a focus ring');
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { level: 1, name: ana }).waitFor();
    await settled(page, `#/personnes/${fx.person.id}`);
    await focusOnH1(ana);
  });

  await step('le lien « Aller au contenu » mène au contenu de la page, sans la quitter', async () => {
    const here = page.url();
    const skip = await tabUntil('Shift+Tab', (f) => f.skip, 'the skip link', 20);
    expect(skip.text === 'Aller au contenu' && skip.visible, `the skip link, with a focus ring (${JSON.stringify(skip)})`);
    const box = await page.locator('a.skip').boundingBox();
    expect(box && box.x >= 0 && box.y >= 0, `the focused skip link is on screen (${JSON.stringify(box)})`);
    await page.keyboard.press('Enter');
    await focusOnH1(ana);
    expect(page.url() === here, `the address stays (${page.url()})`);
    await settled(page, `#/personnes/${fx.person.id}`);
    // And the next Tab goes on inside the page, not back to the banner.
    await page.keyboard.press('Tab');
    expect((await focused()).inMain, 'Tab after the skip link stays in the content');
  });

  await step('le dossier d\'Ana', async () => {
    await checkA11y(page, 'dossier de la personne');
    await fitsPhone(page, 'dossier de la personne', { shot: 'conseiller-dossier-telephone' });
  });

  await step('l\'historique d\'Ana : un graphique par domaine, les chiffres en tableau', async () => {
    await page.goto(`${fx.baseUrl}/#/personnes`);
    await page.getByRole('link', { name: `Historique des diagnostics ${ofAna}` }).click();
    await page.getByRole('heading', { level: 1, name: `Historique ${ofAna}` }).waitFor();
    const charts = page.locator('svg[role="img"]');
    await charts.first().waitFor();
    const n = await charts.count();
    expect(n >= 3, `a chart per rated domain (${n})`);
    for (let i = 0; i < n; i += 1) {
      const title = await charts.nth(i).locator('title').textContent();
      expect(title.includes('diagnostics partagés'), `chart ${i} has a title`);
      expect((await charts.nth(i).locator('rect').count()) > 0, `chart ${i} has bars`);
    }
    const mobility = page.getByRole('table', { name: /^Mobilité : les chiffres du graphique/ });
    await mobility.waitFor();
    expect((await mobility.getByRole('row').count()) === 3, 'a header row and a row per shared diagnostic (2)');
    await fitsPhone(page, 'historique');
  });

  await step('comparer le premier et le second diagnostic', async () => {
    const cmp = page.getByRole('form', { name: 'Comparer deux diagnostics' });
    await cmp.getByLabel('Diagnostic de départ').selectOption(fx.diagnostics.first);
    await cmp.getByLabel('Diagnostic d\'arrivée').selectOption(fx.diagnostics.second);
    await cmp.getByRole('button', { name: 'Comparer' }).click();
    await settled(page, `de=${fx.diagnostics.first}`);
    await page.getByRole('heading', { level: 2, name: /^Du diagnostic n° 1 .* au diagnostic n° 2/ }).waitFor();
    const improved = await page.locator('td .evo-improved').count();
    const worsened = await page.locator('td .evo-worsened').count();
    expect(improved >= 1, `items improved (${improved})`);
    expect(worsened === 1, `one item worsened (${worsened})`);
    await page.getByText('S\'est aggravé').first().waitFor();
    await page.getByText(/\d amélioré\(s\), \d sans changement, \d aggravé\(s\)\./).first().waitFor();
    await checkA11y(page, 'historique et comparaison');
    await screenshot(page, 'conseiller-historique');
    await fitsPhone(page, 'historique et comparaison', { shot: 'conseiller-historique-telephone' });
  });

  await step('les deux regards : la cotation de la personne, puis les deux côte à côte', async () => {
    // Ana rates herself on the latest shared diagnostic (her own action, through the API):
    // in mobility, the opposite of the counselor's « frein » (two levels apart) and the same
    // as her « point d'appui »; against the counselor's « frein important » elsewhere.
    const token = await apiToken(fx.person);
    const api = async (path, init = {}) => {
      const r = await fetch(`${fx.baseUrl}/api/v1${path}`, { ...init, headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` } });
      expect(r.ok, `${init.method || 'GET'} ${path} (${r.status})`);
      return r.json();
    };
    const ref = await api('/referentiel');
    const second = await api(`/diagnostics/${fx.diagnostics.second}?purpose=accompagnement`);
    const rated = (domainId, level) => second.domains.find((d) => d.domain_id === domainId)?.items?.find((i) => i.counselor_level === level);
    const permit = rated('mobilite', 'frein');
    const alike = rated('mobilite', 'point_d_appui');
    const heavy = second.domains.filter((d) => d.domain_id !== 'mobilite').flatMap((d) => (d.items || []).map((i) => ({ ...i, domain: d.domain_id })))
      .find((i) => i.counselor_level === 'frein_majeur');
    expect(permit && alike && heavy, 'the fixtures rate a « frein » and a « point d\'appui » in mobility, a « frein majeur » elsewhere');
    await api(`/diagnostics/${fx.diagnostics.second}/self-rating`, {
      method: 'POST',
      body: JSON.stringify({ ratings: [permit, alike, heavy].map((i) => ({ item_id: i.item_id, level: 'point_d_appui' })) }),
    });
    const level = (code) => ref.levels.find((l) => l.code === code).label_fr;
    const item = (id) => ref.domains.flatMap((d) => d.items).find((i) => i.id === id).label_fr;
    const heavyDomain = ref.domains.find((d) => d.id === heavy.domain).label_fr;

    await page.goto(`${fx.baseUrl}/#/personnes/${fx.person.id}/historique`);
    await settled(page, '/historique');
    const views = page.getByRole('group', { name: 'Cotations :' });
    expect(await views.getByRole('radio', { name: 'du conseiller' }).isChecked(), 'the counselor\'s view first');
    /** A table's figures: for each row, its header and each column's figure. */
    const figures = (table) => table.evaluate((t) => {
      const heads = [...t.querySelectorAll('thead th')].map((th) => th.textContent.trim());
      return [...t.querySelectorAll('tbody tr')].map((tr) => ({
        row: tr.querySelector('th').textContent.trim(),
        ...Object.fromEntries([...tr.querySelectorAll('td')].map((td, i) => [heads[i + 1], td.textContent.trim()])),
      }));
    });

    // Hers alone: the choice is kept in the address, and a reload keeps it.
    await views.getByRole('radio', { name: 'de la personne' }).check();
    await settled(page, 'vue=personne');
    const hers = page.getByRole('table', { name: /^Mobilité : les chiffres du graphique .*selon la personne\)$/ });
    await hers.waitFor();
    let rows = await figures(hers);
    expect(rows.length === 2, `a row per shared diagnostic (${rows.length})`);
    expect(rows[1][level('point_d_appui')] === '2' && rows[1][level('frein')] === '0', `her two « point d'appui » in the second (${JSON.stringify(rows[1])})`);
    expect(Number(rows[0]['Non coté par la personne']) >= 2 && rows[0][level('point_d_appui')] === '0',
      `the first diagnostic's items counted as « non coté par la personne » (${JSON.stringify(rows[0])})`);
    await page.reload();
    await settled(page, 'vue=personne');
    expect(await page.getByRole('radio', { name: 'de la personne' }).isChecked(), 'a reload keeps her view');
    await page.getByRole('table', { name: /^Mobilité : les chiffres du graphique .*selon la personne\)$/ }).waitFor();

    // Both, with the keyboard: the arrow moves to « les deux », the focus stays on the choice.
    await page.getByRole('radio', { name: 'de la personne' }).focus();
    await page.keyboard.press('ArrowRight');
    await settled(page, 'vue=deux');
    expect(await page.getByRole('radio', { name: 'les deux' }).isChecked(), '« les deux » chosen with the arrow key');
    expect(await page.evaluate(() => document.activeElement?.id === 'vue-deux'), 'the focus stays on the choice');
    const key = page.getByRole('list', { name: 'Légende des graphiques' });
    await key.getByText('la cotation du conseiller').waitFor();
    await key.getByText('la cotation de la personne').waitFor();
    const both = page.getByRole('table', { name: /^Mobilité : les chiffres du graphique .*selon le conseiller et selon la personne\)$/ });
    rows = await figures(both);
    expect(rows.length === 4, `two rows per shared diagnostic (${rows.length})`);
    const [mine, theirs] = [rows[2], rows[3]];
    expect(mine.row.endsWith('selon le conseiller') && mine[level('frein')] === '1' && mine[level('point_d_appui')] === '1', `the counselor's figures (${JSON.stringify(mine)})`);
    expect(theirs.row.endsWith('selon la personne') && theirs[level('frein')] === '0' && theirs[level('point_d_appui')] === '2', `the person's figures (${JSON.stringify(theirs)})`);
    const drawing = page.locator('svg[aria-labelledby="hist-title-mobilite"]');
    expect((await drawing.locator('text.rater').allTextContents()).join(',') === 'Conseiller,Personne,Conseiller,Personne', 'each bar named in the drawing');
    expect((await drawing.locator('rect.by-person').count()) >= 1, 'the person\'s bars are drawn');
    expect((await drawing.locator('desc').textContent()).includes('selon la personne'), 'the drawing\'s description gives her figures');

    // The reading of the latest diagnostic, per domain.
    const mobility = page.locator('section.history', { has: page.getByRole('heading', { level: 3, name: 'Mobilité', exact: true }) });
    await mobility.getByText('vous êtes d\'accord sur 1 des 2 item(s) cotés par vous deux.').waitFor();
    await mobility.getByText(`Vous voyez « ${level('frein')} » là où la personne voit « ${level('point_d_appui')} » : ${item(permit.item_id)}.`).waitFor();
    const other = page.locator('section.history', { has: page.getByRole('heading', { level: 3, name: heavyDomain, exact: true }) });
    await other.getByText(`Vous voyez « ${level('frein_majeur')} » là où la personne voit « ${level('point_d_appui')} » : ${item(heavy.item_id)}.`).waitFor();
    expect((await mobility.getByText(item(alike.item_id)).count()) === 0, 'an item both see alike is not called a difference');
    await page.getByText('la personne n\'a coté aucun item de ce domaine').first().waitFor();
    await checkA11y(page, 'historique, les deux regards');
    await screenshot(page, 'conseiller-historique-deux-regards');
    await fitsPhone(page, 'historique, les deux regards', { shot: 'conseiller-historique-deux-regards-telephone' });
  });

  await step('le diagnostic : une note sans cotation est signalée, puis enregistrée', async () => {
    await page.goto(`${fx.baseUrl}/#/diagnostics/${fx.diagnostics.draft}`);
    await page.getByRole('heading', { level: 1, name: 'Diagnostic' }).waitFor();
    await page.getByRole('link', { name: 'Plan d\'action de ce diagnostic' }).waitFor();
    const note = page.getByLabel(/^Note du conseiller/).first();
    const rating = page.getByLabel(/^Cotation du conseiller/).first();
    await rating.selectOption('');
    await note.fill('Permis en cours, code obtenu en 2019.');
    await page.getByRole('button', { name: 'Enregistrer les cotations' }).click();
    await page.locator('td[data-slot="level"] .error').filter({ hasText: 'Choisissez une cotation' }).first().waitFor();
    expect((await note.inputValue()) === 'Permis en cours, code obtenu en 2019.', 'the note typed is kept');
    await rating.selectOption('frein');
    await page.getByRole('button', { name: 'Enregistrer les cotations' }).click();
    await told(page, 'cotation(s) enregistrée(s)');
    await page.reload();
    await page.getByRole('heading', { level: 1, name: 'Diagnostic' }).waitFor();
    expect((await page.getByLabel(/^Note du conseiller/).first().inputValue()) === 'Permis en cours, code obtenu en 2019.', 'the note is saved');
    await checkA11y(page, 'diagnostic avec notes');
    await screenshot(page, 'conseiller-diagnostic-notes');
    await fitsPhone(page, 'diagnostic avec notes', { shot: 'conseiller-diagnostic-telephone' });
  });

  await step('le plan d\'action : un objectif sans titre est signalé, rien de perdu', async () => {
    await page.goto(`${fx.baseUrl}/#/diagnostics/${fx.diagnostics.second}/plan`);
    await page.getByRole('heading', { level: 1, name: 'Plan d\'action' }).waitFor();
    const f = page.getByRole('form', { name: 'Fixer un objectif' });
    await f.getByLabel('Domaine').selectOption({ label: 'Mobilité' });
    await f.getByLabel('Échéance').fill('2099-06-30');
    await f.getByRole('button', { name: 'Fixer l\'objectif' }).click();
    await f.locator('[data-field="title"] .error').filter({ hasText: 'Écrivez l\'objectif' }).waitFor();
    expect((await f.getByLabel(/^Objectif/).getAttribute('aria-invalid')) === 'true', 'the title is marked invalid');
    expect((await f.getByLabel('Échéance').inputValue()) === '2099-06-30', 'the target date is kept');
    expect((await f.getByLabel('Domaine').inputValue()) === 'mobilite', 'the domain is kept');
    await checkA11y(page, 'plan avec erreur');
    await fitsPhone(page, 'plan avec erreur');
  });

  await step('fixer l\'objectif, ajouter une action, la marquer faite', async () => {
    const f = page.getByRole('form', { name: 'Fixer un objectif' });
    await f.getByLabel(/^Objectif/).fill('Obtenir le permis B');
    await f.getByRole('button', { name: 'Fixer l\'objectif' }).click();
    await told(page, 'L\'objectif « Obtenir le permis B » est fixé');
    const objective = page.getByRole('article', { name: 'Obtenir le permis B' });
    await objective.getByText('échéance le 30/06/2099').waitFor();
    await objective.getByText('Aucune action pour l\'instant.').waitFor();

    const add = page.getByRole('form', { name: 'Ajouter une action à « Obtenir le permis B »' });
    await add.getByRole('button', { name: 'Ajouter l\'action' }).click();
    await add.locator('[data-field="title"] .error').filter({ hasText: 'Écrivez un titre' }).waitFor();
    await add.getByLabel(/^Nouvelle action/).fill('S\'inscrire à l\'auto-école solidaire');
    await add.getByLabel('Date prévue').fill('2099-01-15');
    await add.getByRole('button', { name: 'Ajouter l\'action' }).click();
    await told(page, 'est ajoutée');
    const action = objective.getByRole('listitem').filter({ hasText: 'S\'inscrire à l\'auto-école solidaire' });
    await action.getByText('prévue le 15/01/2099').waitFor();

    await action.getByRole('button', { name: 'Marquer comme faite : S\'inscrire à l\'auto-école solidaire' }).click();
    await told(page, 'est faite');
    const done = page.getByRole('article', { name: 'Obtenir le permis B' }).getByRole('listitem').filter({ hasText: 'S\'inscrire à l\'auto-école solidaire' });
    await done.getByText('Faite', { exact: true }).waitFor();
    await done.getByText(/faite le \d{2}\/\d{2}\/\d{4}/).waitFor();
    expect((await done.getByRole('button').count()) === 0, 'a done action has no more buttons');
    await checkA11y(page, 'plan d\'action');
    await screenshot(page, 'conseiller-plan');
    await fitsPhone(page, 'plan d\'action', { shot: 'conseiller-plan-telephone' });
  });

  await step('les notifications : la liste, chacune menant à son contenu', async () => {
    expect((await badgeCount()) >= 1, 'still unread');
    await page.locator('#nav a.notif-link').click();
    await page.getByRole('heading', { level: 1, name: 'Notifications' }).waitFor();
    const link = page.locator(`a[href="#/communaute/questions/${fx.community.question}"]`).first();
    await link.waitFor();
    expect((await link.textContent()).includes('Financer le permis'), 'the notification names its question');
    await page.locator('li.notification.unread').filter({ hasText: 'Non lue' }).first().waitFor();
    await checkA11y(page, 'notifications');
    await screenshot(page, 'conseiller-notifications');
    await fitsPhone(page, 'notifications', { shot: 'conseiller-notifications-telephone' });
  });

  await step('tout marquer comme lu : le badge revient à zéro', async () => {
    await page.getByRole('button', { name: 'Tout marquer comme lu' }).click();
    await told(page, 'Toutes les notifications sont marquées comme lues');
    await page.getByText('Aucune notification non lue.').waitFor();
    await badgeCount(0);
    await page.getByRole('link', { name: 'Notifications', exact: true }).waitFor();
    expect((await page.locator('#nav a.notif-link .count').count()) === 0, 'no count in the menu');
    expect((await page.locator('li.notification.unread').count()) === 0, 'nothing unread in the list');
    expect((await page.locator('li.notification.read').count()) >= 1, 'the notification is listed as read');
  });

  await step('les préférences de notification', async () => {
    const f = page.getByRole('form', { name: 'Préférences de notification' });
    await f.getByLabel('Nouvelle fiche solution').selectOption('daily_digest');
    await f.getByLabel('Mobilité', { exact: true }).check();
    await f.getByRole('button', { name: 'Enregistrer mes préférences' }).click();
    await told(page, 'Vos préférences sont enregistrées');
    await page.reload();
    await page.getByRole('heading', { level: 1, name: 'Notifications' }).waitFor();
    const again = page.getByRole('form', { name: 'Préférences de notification' });
    expect((await again.getByLabel('Nouvelle fiche solution').inputValue()) === 'daily_digest', 'the frequency is kept');
    expect(await again.getByLabel('Mobilité', { exact: true }).isChecked(), 'the followed domain is kept');
  });

  await step('une nouvelle réponse arrive : le badge et la liste se mettent à jour sans recharger', async () => {
    await badgeCount(0);
    // A choice not saved yet must survive the list's redraw.
    const prefs = page.getByRole('form', { name: 'Préférences de notification' });
    await prefs.getByLabel('Nouvelle fiche solution').selectOption('never');
    // The counselor of C answers again, through the API.
    const t = await apiToken(fx.counselorC);
    const answer = await fetch(`${fx.baseUrl}/api/v1/community/questions/${fx.community.question}/answers`, {
      method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${t}` },
      body: JSON.stringify({ body: 'Pensez aussi à l\'aide de Pôle emploi pour le permis, cumulable avec celle du Département.' }),
    });
    expect(answer.status === 201, `the answer is published (${answer.status})`);
    await badgeCount(1);
    await page.getByRole('link', { name: 'Notifications, 1 non lue' }).waitFor();
    await page.getByText('1 notification non lue.').waitFor();
    await page.getByRole('button', { name: /^Marquer comme lue/ }).first().waitFor();
    expect((await prefs.getByLabel('Nouvelle fiche solution').inputValue()) === 'never', 'the unsaved choice is kept');
    await logOut(page);
  });
  console.log('counselor: ok');
} finally {
  await browser.close();
}
