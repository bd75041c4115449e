// The person's own space (`#/mon-espace/…`), in plain words and for a phone first:
// my diagnostic and what changed, my own view on a draft, my consents (give, withdraw
// one domain or everything, signed receipts), my referrals, who read my file, my data.
import { ApiError, download, get, getAll, getReferentiel, getStructures, domainLabel, levelLabel, post } from './api.js';
import { checkboxes, field, fmtDate, fmtDay, form, h, notice, render, values } from './dom.js';
import { nextStep, route as myPlan } from './person_plan.js';

const HOME = '#/mon-espace';

// ---------------------------------------------------------------- words

/** What a level means, said to the person. */
const LEVEL_WORDS = {
  point_d_appui: 'une force, un point d\'appui',
  sans_impact: 'sans effet sur votre recherche',
  frein: 'une difficulté (un frein)',
  frein_majeur: 'une grosse difficulté (un frein important)',
  non_aborde: 'pas encore abordé',
};
const levelWords = (ref, code) => LEVEL_WORDS[code] || levelLabel(ref, code);

const PURPOSES = [
  ['accompagnement', 'Pour m\'accompagner dans mon parcours'],
  ['orientation', 'Pour m\'orienter vers cette structure'],
  ['statistiques', 'Pour des statistiques anonymes'],
];
const purposeWords = (p) => ({ accompagnement: 'vous accompagner', orientation: 'vous orienter', statistiques: 'des statistiques anonymes' }[p] || p);

const ACTIONS = { read: 'a consulté', write: 'a enregistré ou modifié', export: 'a exporté', erase: 'a effacé' };
const RESOURCES = {
  person: 'votre fiche', diagnostic: 'un diagnostic', consent: 'un consentement', referral: 'une orientation',
  accompaniment: 'un accompagnement', action_plan: 'votre plan d\'action', export: 'vos données', share_code: 'un code de partage',
  sealed: 'des notes protégées (chiffrées)', person_account: 'votre compte', statistics_objection: 'votre choix sur les statistiques',
};

const STATUS_WORDS = {
  envoyee: 'Envoyée, en attente de réponse', a_l_etude: 'En cours d\'étude par la structure', acceptee: 'Acceptée',
  refusee: 'Refusée', expiree: 'Sans réponse à temps (expirée)', en_cours: 'En cours', terminee: 'Terminée',
  abandonnee: 'Abandonnée', annulee: 'Annulée', declinee_par_la_personne: 'Vous l\'avez déclinée',
};
const statusWords = (s) => STATUS_WORDS[s] || s || 'inconnu';
/** Why a structure said no, said to the person. */
const REFUSAL_WORDS = {
  beneficiaire_injoignable: 'la structure n\'a pas réussi à vous joindre',
  freins_peripheriques: 'd\'autres difficultés sont à régler d\'abord',
  session_complete: 'il n\'y avait plus de place',
  doublon: 'la même demande avait déjà été faite',
  hors_criteres: 'les conditions pour y entrer ne sont pas remplies',
  autre: 'une autre raison, que votre conseiller peut vous expliquer',
};
/** Before the work starts, the person may say she does not want to go. */
const DECLINABLE = ['envoyee', 'a_l_etude', 'acceptee'];

const EVOLUTION = {
  improved: 'Ce qui va mieux',
  worsened: 'Ce qui est plus difficile',
  newly_addressed: 'Ce qui a été abordé pour la première fois',
};

// ---------------------------------------------------------------- helpers

async function context() {
  const [ref, structures] = await Promise.all([
    getReferentiel().catch(() => ({ domains: [], levels: [] })),
    getStructures().catch(() => []),
  ]);
  const nameOf = (sid) => structures.find((s) => s.id === sid)?.name || 'une structure';
  const itemOf = (id) => {
    for (const d of ref.domains) {
      const it = (d.items || []).find((i) => i.id === id);
      if (it) return it;
    }
    return null;
  };
  const itemLabel = (id) => itemOf(id)?.label_fr || id;
  return { ref, structures, nameOf, itemLabel, itemOf };
}

const back = () => h('p', { class: 'back' }, h('a', { href: HOME }, '← Revenir à mon espace'));
const day = (s) => fmtDay(s, 'long');
const when = (d) => d.shared_at || d.created_at;

/** Runs an action of a button; its error is told, the button is usable again. */
function act(button, fn) {
  return async () => {
    button.disabled = true;
    try { await fn(); } catch (e) { notice(e.message || 'Une erreur est survenue.', 'error'); } finally { button.disabled = false; }
  };
}
/** A button; with `short`, that text is shown and `label` is its full name (it starts with it). */
function button(label, cls, fn, short) {
  const b = h('button', { type: 'button', class: cls, 'aria-label': short ? label : null });
  b.textContent = short || label;
  b.addEventListener('click', act(b, fn));
  return b;
}

// ---------------------------------------------------------------- home

async function home(me) {
  const id = me.person_id;
  const diagnostics = await get(`/people/${id}/diagnostics?page_size=50`).catch(() => ({ items: [] }));
  const draft = diagnostics.items.find((d) => d.status === 'brouillon');
  const exportButton = button('Télécharger toutes mes données', 'secondary', async () => {
    // The export is answered to a POST: read as JSON, saved as a file here.
    const data = await post(`/people/${id}/export`);
    const a = h('a', { href: URL.createObjectURL(new Blob([JSON.stringify(data, null, 2)], { type: 'application/json' })), download: `eva-export-${id}.json` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
    notice('Vos données sont téléchargées : un fichier « eva-export » au format JSON.');
  });
  const entry = (href, title, text) => h('li', { class: 'entry' }, h('a', { href }, title), h('p', {}, text));
  render('Mon espace',
    h('p', {}, `Bonjour ${me.display_name || ''}. Ici, vous voyez ce que votre dossier dit de vous, et vous décidez qui peut le lire.`),
    draft ? h('p', { class: 'callout' }, 'Un diagnostic est en préparation avec votre conseiller. ',
      h('a', { href: `${HOME}/mon-avis/${draft.id}` }, 'Donner mon avis sur ma situation')) : null,
    await nextStep(me, diagnostics.items),
    h('nav', { 'aria-label': 'Mon espace' }, h('ul', { class: 'entries' },
      entry(`${HOME}/diagnostic`, 'Mon diagnostic', 'Vos points d\'appui, vos difficultés, et ce qui a changé.'),
      entry(`${HOME}/demarches`, 'Mes démarches', 'Votre plan d\'action : ce qu\'il y a à faire, pour quand, et qui s\'en occupe.'),
      entry(`${HOME}/consentements`, 'Mes consentements', 'Qui peut voir quoi dans votre dossier. Vous pouvez retirer votre accord à tout moment.'),
      entry(`${HOME}/orientations`, 'Mes orientations', 'Les structures vers lesquelles on vous a orienté, et où en est chaque demande.'),
      entry(`${HOME}/acces`, 'Qui a consulté mon dossier', 'Chaque lecture de votre dossier est notée : qui, quand, quoi.'))),
    h('section', { 'aria-labelledby': 'h-data' },
      h('h2', { id: 'h-data' }, 'Mes données'),
      h('p', {}, 'Vous pouvez récupérer tout ce que EVA garde sur vous, dans un fichier à conserver.'),
      exportButton));
}

// ---------------------------------------------------------------- diagnostic

/** A diagnostic in plain words: per domain, what helps and what holds back. */
function plainDiagnostic(c, d) {
  const domains = d.domains.filter((x) => x.access === 'visible' && (x.items || []).some((i) => i.counselor_level || i.person_level));
  if (!domains.length) return h('p', {}, 'Rien n\'a encore été noté dans ce diagnostic.');
  return domains.map((dom) => {
    const items = dom.items || [];
    const pick = (levels) => items.filter((i) => levels.includes(i.counselor_level));
    const supports = pick(['point_d_appui']);
    const brakes = pick(['frein', 'frein_majeur']);
    const yours = items.filter((i) => i.person_level);
    const idh = `dom-${d.id}-${dom.domain_id}`;
    return h('section', { class: 'domain card', 'aria-labelledby': idh },
      h('h3', { id: idh }, domainLabel(c.ref, dom.domain_id)),
      supports.length ? h('div', { class: 'support' }, h('h4', {}, 'Ce qui vous aide (points d\'appui)'),
        h('ul', {}, supports.map((i) => h('li', {}, c.itemLabel(i.item_id))))) : null,
      brakes.length ? h('div', { class: 'brake' }, h('h4', {}, 'Ce qui vous freine (freins)'),
        h('ul', {}, brakes.map((i) => h('li', {}, c.itemLabel(i.item_id), i.counselor_level === 'frein_majeur' ? ' — une grosse difficulté' : '')))) : null,
      !supports.length && !brakes.length ? h('p', {}, 'Rien de particulier : sans effet sur votre recherche.') : null,
      yours.length ? h('div', { class: 'yours' }, h('h4', {}, 'Ce que vous en avez dit'),
        h('ul', {}, yours.map((i) => h('li', {}, `${c.itemLabel(i.item_id)} : ${levelWords(c.ref, i.person_level)}`, i.person_note ? ` — « ${i.person_note} »` : '')))) : null);
  });
}

/** What moved between two diagnostics, in sentences. */
function plainChanges(c, cmp, from) {
  const groups = Object.entries(EVOLUTION).map(([code, title]) => {
    const items = cmp.items.filter((i) => i.access === 'visible' && i.counselor_evolution === code);
    if (!items.length) return null;
    return h('div', { class: `change ${code}` }, h('h3', {}, title),
      h('ul', {}, items.map((i) => h('li', {},
        h('strong', {}, c.itemLabel(i.item_id)), ` (${domainLabel(c.ref, i.domain_id)}) : `,
        i.from_counselor_level && code !== 'newly_addressed'
          ? `c'était ${levelWords(c.ref, i.from_counselor_level)}, c'est maintenant ${levelWords(c.ref, i.to_counselor_level)}.`
          : `c'est ${levelWords(c.ref, i.to_counselor_level)}.`))));
  }).filter(Boolean);
  return h('section', { 'aria-labelledby': 'h-changes' },
    h('h2', { id: 'h-changes' }, `Ce qui a changé depuis le ${day(when(from))}`),
    groups.length ? groups : h('p', {}, 'Rien n\'a changé entre ces deux diagnostics.'));
}

async function diagnostic(me, which) {
  const c = await context();
  const list = (await get(`/people/${me.person_id}/diagnostics?page_size=100&purpose=accompagnement`)).items;
  const shared = list.filter((d) => d.status === 'partage' || d.status === 'remplace')
    .sort((a, b) => String(when(b)).localeCompare(String(when(a))));
  const draft = list.find((d) => d.status === 'brouillon');
  const invite = draft ? h('p', { class: 'callout' }, 'Un nouveau diagnostic est en préparation. ',
    h('a', { href: `${HOME}/mon-avis/${draft.id}` }, 'Donner mon avis sur ma situation')) : null;
  if (!shared.length) {
    return render('Mon diagnostic', back(), invite,
      h('p', {}, 'Votre conseiller ne vous a pas encore partagé de diagnostic. Il apparaîtra ici dès qu\'il sera partagé.'));
  }
  const index = which ? shared.findIndex((d) => d.id === which) : 0;
  if (index < 0) throw new ApiError(404, { detail: 'Ce diagnostic est introuvable.' });
  const current = shared[index];
  const previous = shared[index + 1];
  const [d, cmp] = await Promise.all([
    get(`/diagnostics/${current.id}?purpose=accompagnement`),
    previous ? get(`/diagnostics/compare?from=${previous.id}&to=${current.id}&purpose=accompagnement`) : null,
  ]);
  render(index === 0 ? 'Mon diagnostic' : `Mon diagnostic du ${day(when(current))}`, back(), invite,
    h('p', { class: 'lead' }, index === 0 ? 'Votre dernier diagnostic, ' : 'Ce diagnostic, ',
      `fait avec ${c.nameOf(current.structure_id)} et partagé le ${day(when(current))}.`,
      ' Un « point d\'appui » est une force sur laquelle vous pouvez compter ; un « frein » est une difficulté à lever.'),
    previous ? plainChanges(c, cmp, previous) : null,
    h('section', { 'aria-labelledby': 'h-detail' },
      h('h2', { id: 'h-detail' }, 'Domaine par domaine'),
      plainDiagnostic(c, d)),
    h('section', { 'aria-labelledby': 'h-history' },
      h('h2', { id: 'h-history' }, 'Mes diagnostics'),
      h('ol', { class: 'history' }, shared.map((s) => h('li', {},
        s.id === current.id
          ? h('span', { 'aria-current': 'page' }, `Le ${day(when(s))} — ${c.nameOf(s.structure_id)} (affiché)`)
          : h('a', { href: `${HOME}/diagnostic/${s.id}` }, `Le ${day(when(s))} — ${c.nameOf(s.structure_id)}`))))));
}

// ---------------------------------------------------------------- self-rating

async function selfRating(me, id) {
  const c = await context();
  const d = await get(`/diagnostics/${id}?purpose=accompagnement`);
  if (d.person_id !== me.person_id) throw new ApiError(404, { detail: 'Ce diagnostic est introuvable.' });
  if (d.status !== 'brouillon') {
    return render('Mon avis sur ma situation', back(),
      h('p', {}, 'Ce diagnostic est déjà partagé : vous ne pouvez plus le modifier. ', h('a', { href: `${HOME}/diagnostic/${id}` }, 'Le voir')));
  }
  const levels = ['point_d_appui', 'sans_impact', 'frein', 'frein_majeur', 'non_aborde'];
  const rows = []; // { n, item_id }
  const fieldsets = d.domains.filter((x) => x.access === 'visible').map((dom) => {
    const refDomain = c.ref.domains.find((x) => x.id === dom.domain_id);
    const items = (refDomain?.items || []).map((i) => ({ id: i.id, label: i.label_fr, help: i.help_fr }));
    if (!items.length) return null;
    const byId = Object.fromEntries((dom.items || []).map((i) => [i.item_id, i]));
    const answered = items.filter((it) => byId[it.id]?.person_level).length;
    const label = domainLabel(c.ref, dom.domain_id);
    // One domain open at a time keeps the page short on a phone; nothing typed is lost when closed.
    return h('details', { class: 'self-domain', open: rows.length === 0 },
      h('summary', {}, `${label} — ${answered} réponse(s) sur ${items.length}`),
      h('fieldset', {}, h('legend', { class: 'sr-only' }, label),
        items.map((it) => {
          const n = rows.length;
          rows.push({ n, item_id: it.id });
          const mine = byId[it.id] || {};
          const lvl = field(`${it.label} : pour vous, c'est…`, `level-${n}`, {
            options: [['', 'Je ne sais pas / je préfère ne pas répondre'], ...levels.map((l) => [l, levelWords(c.ref, l)])],
            value: mine.person_level || '',
          });
          const note = field(`Votre remarque sur « ${it.label} » (facultatif)`, `note-${n}`, { multiline: true, value: mine.person_note || '' });
          return h('div', { class: 'self-item' }, lvl.wrap,
            h('details', { class: 'self-note', open: Boolean(mine.person_note) }, h('summary', {}, 'Ajouter une remarque'), note.wrap));
        })));
  }).filter(Boolean);
  /** Opens the closed parts that hold a field in error, so that it shows and takes the focus. */
  const reveal = (el) => (e) => {
    for (const x of e.fields || []) {
      for (let d = el.querySelector(`[data-field="${CSS.escape(x.field)}"]`)?.closest('details'); d; d = d.parentElement?.closest('details')) d.open = true;
    }
    throw e;
  };
  const f = form('Mon avis sur ma situation', fieldsets, 'Enregistrer mon avis', (el) => submit(el).catch(reveal(el)));
  async function submit(el) {
    const v = values(el);
    const ratings = [];
    const fields = [];
    for (const r of rows) {
      const level = v[`level-${r.n}`] || '';
      const note = v[`note-${r.n}`] || '';
      if (!level && note) fields.push({ field: `level-${r.n}`, message: 'Choisissez d\'abord une réponse : votre remarque est gardée, elle sera enregistrée avec.' });
      else if (note.length > 4000) fields.push({ field: `note-${r.n}`, message: `Votre remarque est trop longue (${note.length} caractères) : 4000 au plus.` });
      else if (level) ratings.push({ n: r.n, item_id: r.item_id, level, note: note || undefined });
    }
    if (fields.length) throw Object.assign(new Error('Le formulaire contient des erreurs.'), { fields });
    if (!ratings.length) {
      throw Object.assign(new Error('Répondez au moins à une question.'), { fields: [{ field: `level-${rows[0]?.n ?? 0}`, message: 'Choisissez une réponse pour au moins une question.' }] });
    }
    try {
      await post(`/diagnostics/${id}/self-rating`, { ratings: ratings.map(({ item_id, level, note }) => ({ item_id, level, note })) });
    } catch (e) {
      // `ratings[i].level` → the field of the i-th answer sent.
      e.fields = (e.fields || []).map((x) => {
        const m = /^ratings\[(\d+)\]\.(level|note|item_id)/.exec(x.field || '');
        if (!m || !ratings[Number(m[1])]) return x;
        return { field: `${m[2] === 'note' ? 'note' : 'level'}-${ratings[Number(m[1])].n}`, message: x.message };
      });
      throw e;
    }
    notice(`Merci, votre avis est enregistré (${ratings.length} réponse(s)). Votre conseiller le verra à côté du sien.`);
  }
  return render('Mon avis sur ma situation', back(),
    h('p', { class: 'lead' }, `Votre conseiller prépare un diagnostic avec ${c.nameOf(d.structure_id)}. Dites, pour chaque point, comment vous voyez les choses. Vous pouvez ne répondre qu'à une partie, et revenir plus tard.`),
    fieldsets.length ? f : h('p', {}, 'Il n\'y a rien à remplir pour le moment.'));
}

// ---------------------------------------------------------------- consents

/** « Retirer tout » asks once more, in the page, before it acts. */
function confirmAll(name, fn) {
  const ask = h('button', { type: 'button', class: 'danger' }, `Retirer tout mon accord à ${name}`);
  const box = h('div', { class: 'confirm', role: 'group', 'aria-label': `Confirmer : retirer tout mon accord à ${name}` });
  const wrap = h('div', {}, ask, box);
  const close = () => { box.replaceChildren(); ask.hidden = false; ask.focus(); };
  ask.addEventListener('click', () => {
    ask.hidden = true;
    const yes = button(`Oui, retirer tout mon accord à ${name}`, 'danger', fn);
    box.replaceChildren(
      h('p', {}, `${name} ne verra plus rien de votre dossier. Vous pourrez redonner votre accord plus tard.`),
      yes, ' ', h('button', { type: 'button', class: 'secondary', onclick: close }, 'Non, garder mon accord'));
    yes.focus();
  });
  return wrap;
}

async function consents(me) {
  const c = await context();
  const id = me.person_id;
  const active = (await getAll(`/people/${id}/consents?status=active`)).filter((x) => x.status === 'active');
  const byStructure = new Map();
  for (const k of active) {
    if (!byStructure.has(k.grantee_structure_id)) byStructure.set(k.grantee_structure_id, []);
    byStructure.get(k.grantee_structure_id).push(k);
  }
  const again = async () => { await consents(me); };

  async function withdrawDomain(sid, domain) {
    const covering = byStructure.get(sid).filter((k) => k.domains.includes(domain));
    // One call per consent: the server withdraws this domain only, atomically.
    for (const k of covering) await post(`/consents/${k.id}/withdraw`, { domains: [domain] });
    // A page out of date (another tab changed the consents) may have missed one: check.
    const still = (await getAll(`/people/${id}/consents?status=active`))
      .some((k) => k.status === 'active' && k.grantee_structure_id === sid && k.domains.includes(domain));
    await again();
    if (still) notice(`Votre page n'était plus à jour : ${c.nameOf(sid)} voit encore « ${domainLabel(c.ref, domain)} ». Cliquez de nouveau sur « Retirer ».`, 'warn');
    else notice(`${c.nameOf(sid)} ne voit plus le domaine « ${domainLabel(c.ref, domain)} ».`);
  }
  async function withdrawAll(sid) {
    for (const k of byStructure.get(sid)) await post(`/consents/${k.id}/withdraw`, {});
    await again();
    notice(`Votre accord à ${c.nameOf(sid)} est retiré : elle ne voit plus rien de votre dossier.`);
  }

  const cards = [...byStructure.entries()].map(([sid, list]) => {
    const name = c.nameOf(sid);
    const domains = c.ref.domains.map((d) => d.id).filter((d) => list.some((k) => k.domains.includes(d)));
    for (const k of list) for (const d of k.domains) if (!domains.includes(d)) domains.push(d);
    const hid = `s-${sid}`;
    return h('article', { class: 'card consent', 'aria-labelledby': hid },
      h('h3', { id: hid }, name),
      h('p', {}, `${name} peut voir ces parties de votre dossier :`),
      h('ul', { class: 'domains' }, domains.map((d) => {
        const purposes = [...new Set(list.filter((k) => k.domains.includes(d)).flatMap((k) => k.purposes))];
        return h('li', {},
          h('div', { class: 'what' },
            h('span', { class: 'domain-name' }, domainLabel(c.ref, d)),
            h('span', { class: 'purposes' }, `Pour ${purposes.map(purposeWords).join(' et ')}`)),
          button(`Retirer l'accord pour « ${domainLabel(c.ref, d)} » à ${name}`, 'secondary', () => withdrawDomain(sid, d), 'Retirer'));
      })),
      h('details', {}, h('summary', {}, `Mes reçus signés (${list.length})`),
        h('ul', { class: 'receipts' }, list.map((k) => h('li', {},
          `Accord du ${day(k.granted_at)}, valable jusqu'au ${day(k.valid_until)} : ${k.domains.map((d) => domainLabel(c.ref, d)).join(', ')}. `,
          button(`Télécharger le reçu du ${day(k.granted_at)} (${k.domains.map((d) => domainLabel(c.ref, d)).join(', ')})`, 'link', async () => {
            await download(`/consents/${k.id}/receipt`, `recu-consentement-${k.id}.json`, 'application/json');
            notice('Le reçu est téléchargé.');
          }, 'Télécharger le reçu'))))),
      confirmAll(name, () => withdrawAll(sid)));
  });

  // Giving a new consent.
  const choices = c.structures.map((s) => [s.id, s.name]);
  const structure = field('Structure à qui je donne mon accord', 'grantee_structure_id', {
    required: true, options: [['', 'Choisissez une structure'], ...choices],
  });
  const domains = checkboxes('Les parties de mon dossier qu\'elle pourra voir', 'domains',
    c.ref.domains.map((d) => [d.id, d.sensitive ? `${d.label_fr} (information sensible)` : d.label_fr]),
    { help: 'Cochez au moins une partie. Les informations sensibles (santé, justice) ne sont partagées que si vous les cochez.' });
  const purposes = checkboxes('Pour quoi faire', 'purposes', PURPOSES, { checked: ['accompagnement'], help: 'Cochez au moins une raison.' });
  const until = field('Jusqu\'à quelle date (facultatif)', 'valid_until', { type: 'date', help: 'Sans date, votre accord dure un an. Au plus trois ans.' });
  const grant = form('Donner mon accord à une structure', [structure.wrap, domains, purposes, until.wrap], 'Donner mon accord', async (f) => {
    const v = values(f, ['domains', 'purposes']);
    const fields = [];
    if (!v.grantee_structure_id) fields.push({ field: 'grantee_structure_id', message: 'Choisissez la structure à qui vous donnez votre accord.' });
    if (!v.domains.length) fields.push({ field: 'domains', message: 'Cochez au moins une partie de votre dossier.' });
    if (!v.purposes.length) fields.push({ field: 'purposes', message: 'Cochez au moins une raison.' });
    if (fields.length) throw Object.assign(new Error('Le formulaire est incomplet.'), { fields });
    await post(`/people/${id}/consents`, {
      grantee_structure_id: v.grantee_structure_id, domains: v.domains, purposes: v.purposes,
      valid_until: v.valid_until || undefined,
    });
    await again();
    notice(`Votre accord à ${c.nameOf(v.grantee_structure_id)} est enregistré. Votre reçu signé est dans « Mes reçus signés ».`);
  });

  // Accords ended (withdrawn or expired): their signed receipts stay downloadable.
  const ended = (await Promise.all(['withdrawn', 'expired'].map((st) => getAll(`/people/${id}/consents?status=${st}`, { max: 200 }))))
    .flat().sort((a, b) => String(b.withdrawn_at || b.valid_until).localeCompare(String(a.withdrawn_at || a.valid_until)));
  const past = ended.length ? h('section', { 'aria-labelledby': 'h-past' },
    h('h2', { id: 'h-past' }, 'Mes anciens accords'),
    h('details', {}, h('summary', {}, `Les accords retirés ou arrivés à leur fin (${ended.length})`),
      h('ul', { class: 'receipts' }, ended.map((k) => h('li', {},
        `${c.nameOf(k.grantee_structure_id)} : ${k.domains.map((d) => domainLabel(c.ref, d)).join(', ')}, accord du ${day(k.granted_at)}, `,
        k.status === 'withdrawn' ? `retiré le ${day(k.withdrawn_at)}. ` : `arrivé à sa fin le ${day(k.valid_until)}. `,
        button(`Télécharger le reçu de l'ancien accord du ${day(k.granted_at)} à ${c.nameOf(k.grantee_structure_id)} (${k.domains.map((d) => domainLabel(c.ref, d)).join(', ')})`, 'link', async () => {
          await download(`/consents/${k.id}/receipt`, `recu-consentement-${k.id}.json`, 'application/json');
          notice('Le reçu est téléchargé.');
        }, 'Télécharger le reçu')))))) : null;

  render('Mes consentements', back(),
    h('p', { class: 'lead' }, 'Vous choisissez qui voit quoi dans votre dossier. Vous pouvez retirer votre accord à tout moment, pour une partie ou pour tout : cela prend effet tout de suite.'),
    h('section', { 'aria-labelledby': 'h-active' },
      h('h2', { id: 'h-active' }, 'Qui peut voir mon dossier'),
      cards.length ? cards : h('p', {}, 'Aucune structure ne peut voir votre dossier pour le moment.')),
    past,
    h('section', { 'aria-labelledby': 'h-grant' },
      h('h2', { id: 'h-grant' }, 'Donner mon accord à une structure'),
      grant));
}

// ---------------------------------------------------------------- referrals

async function referrals(me) {
  const c = await context();
  const list = await getAll(`/referrals?person_id=${me.person_id}`, { max: 200 });
  const steps = await Promise.all(list.map((r) => get(`/referrals/${r.id}/transitions?page_size=100`).then((p) => p.items).catch(() => [])));
  render('Mes orientations', back(),
    h('p', { class: 'lead' }, 'Quand votre conseiller vous oriente vers une autre structure, vous suivez ici où en est la demande.'),
    list.length ? h('div', { class: 'referrals' }, list.map((r, i) => {
      const hid = `r-${r.id}`;
      return h('article', { class: 'card referral', 'aria-labelledby': hid },
        h('h2', { id: hid }, `Vers ${c.nameOf(r.target_structure_id)}`),
        h('p', {}, h('strong', {}, 'Où en est la demande : '), statusWords(r.status)),
        h('p', {}, `Envoyée par ${c.nameOf(r.sender_structure_id)} le ${day(r.sent_at)}`,
          r.domains.length ? `, pour : ${r.domains.map((d) => domainLabel(c.ref, d)).join(', ')}.` : '.'),
        r.refusal_reason ? h('p', {}, `Raison du refus : ${REFUSAL_WORDS[r.refusal_reason] || r.refusal_reason}.`) : null,
        DECLINABLE.includes(r.status) ? decline(me, r, c.nameOf(r.target_structure_id)) : null,
        h('h3', {}, 'Les étapes'),
        h('ol', { class: 'timeline' }, steps[i].length
          ? steps[i].map((t) => h('li', {}, h('time', { datetime: t.occurred_at }, fmtDate(t.occurred_at)), ' — ', statusWords(t.to_status),
            t.actor_structure_id ? ` (${c.nameOf(t.actor_structure_id)})` : ''))
          : h('li', {}, h('time', { datetime: r.sent_at }, fmtDate(r.sent_at)), ' — ', statusWords('envoyee'))));
    })) : h('p', {}, 'Vous n\'avez pas d\'orientation pour le moment.'));
}

/** « Je ne souhaite pas y aller »: asked once more, with an optional word of why. */
function decline(me, r, target) {
  const open = h('button', { type: 'button', class: 'secondary' }, 'Je ne souhaite pas y aller');
  const box = h('div', { class: 'confirm' });
  open.addEventListener('click', () => {
    open.hidden = true;
    const why = field('Vous pouvez dire pourquoi (facultatif)', 'note', { multiline: true, help: `${target} et votre conseiller le liront.` });
    const f = form(`Décliner l'orientation vers ${target}`, [why.wrap], 'Oui, je décline cette orientation', async (el) => {
      const { note } = values(el);
      if (note && note.length > 2000) {
        throw Object.assign(new Error('Le texte est trop long.'), { fields: [{ field: 'note', message: `2 000 caractères au plus (il y en a ${note.length}).` }] });
      }
      await post(`/referrals/${r.id}/transitions`, { to_status: 'declinee_par_la_personne', note: note || null });
      await referrals(me);
      notice(`Vous avez décliné l'orientation vers ${target}. Votre conseiller en est informé.`);
    });
    box.replaceChildren(h('p', {}, `${target} ne vous attendra plus. Vous pourrez en reparler avec votre conseiller.`), f,
      h('button', { type: 'button', class: 'link', onclick: () => { box.replaceChildren(); open.hidden = false; open.focus(); } }, 'Non, je garde cette orientation'));
    why.input.focus();
  });
  return h('div', {}, open, box);
}

// ---------------------------------------------------------------- access log

const mine = (a) => a.actor_role === 'person';
const ACTIONS_YOU = { read: 'avez consulté', write: 'avez enregistré ou modifié', export: 'avez exporté', erase: 'avez effacé' };
/** What was accessed, said as the person's own (a line may cover several of them). */
const YOUR = {
  person: 'votre fiche', diagnostic: 'votre diagnostic', consent: 'vos consentements', referral: 'vos orientations',
  accompaniment: 'votre accompagnement', action_plan: 'votre plan d\'action', export: 'vos données',
  share_code: 'un code de partage', sealed: 'des notes protégées (chiffrées)', person_account: 'votre compte',
  statistics_objection: 'votre choix sur les statistiques',
};
const ROLE_WORDS = {
  counselor: 'conseiller ou conseillère', structure_admin: 'responsable de la structure', partner: 'partenaire',
  analyst: 'analyste', operator: 'équipe technique d\'EVA',
};
const WHY = {
  accompagnement: 'vous accompagner', orientation: 'vous orienter', statistiques: 'des statistiques anonymes',
  droits_de_la_personne: 'vos droits (par exemple télécharger vos données)', exploitation: 'le fonctionnement d\'EVA',
};

/** Who acted, in words: « Marie Durand (Asso Évreux, conseiller ou conseillère) ». */
function whoDid(a) {
  if (mine(a)) return 'Vous';
  const name = a.actor_display_name || (a.actor_user_id ? 'Un professionnel' : 'EVA (automatique)');
  const about = [a.actor_structure_name, ROLE_WORDS[a.actor_role]].filter(Boolean).join(', ');
  return about ? `${name} (${about})` : name;
}
/** 9 h 05, in the browser's time (no-break spaces: one piece on a narrow screen). */
const hour = (d) => `${d.getHours()}\u00a0h\u00a0${String(d.getMinutes()).padStart(2, '0')}`;
/** 12 mars (and the year when it is not this one). */
function dayMonth(d) {
  const style = { day: 'numeric', month: 'long' };
  if (d.getFullYear() !== new Date().getFullYear()) style.year = 'numeric';
  return d.toLocaleDateString('fr-FR', style).replace(/^1 /, '1er ').replace(/ /g, '\u00a0');
}
/** « 3 fois le 12 mars, de 9 h 05 à 16 h 40 », « le 12 mars à 9 h 05 ». */
function howOften(g) {
  const [a, b] = [new Date(g.first_at), new Date(g.last_at)];
  const times = g.count > 1 ? `${g.count} fois ` : '';
  if (dayMonth(a) !== dayMonth(b)) return `${times}du ${dayMonth(a)} à ${hour(a)} au ${dayMonth(b)} à ${hour(b)}`;
  if (hour(a) === hour(b)) return `${times}le ${dayMonth(a)} à ${hour(a)}`;
  return `${times}le ${dayMonth(a)}, de ${hour(a)} à ${hour(b)}`;
}

/**
 * Pages of 50 from `path`: `fetch(want)` reads until `want` more items pass `keep`
 * (own actions hidden), or the end (20 pages at most per click).
 */
function pager(path, keep) {
  const seen = [];
  let token = '';
  return {
    seen,
    shown: () => seen.filter(keep),
    more: () => Boolean(token),
    async fetch(want) {
      const before = seen.filter(keep).length;
      let pages = 0;
      do {
        const page = await get(`${path}?page_size=50${token ? `&page_token=${encodeURIComponent(token)}` : ''}`);
        seen.push(...page.items);
        token = page.next_page_token || '';
        pages += 1;
      } while (token && seen.filter(keep).length - before < want && pages < 20);
    },
  };
}

/**
 * Who read my file: by default one line per day, person, action and reason (the
 * server groups them), « Voir le détail » for each access one by one.
 */
async function accessLog(me, detail) {
  const c = await context();
  const id = me.person_id;
  const title = detail ? 'Qui a consulté mon dossier, accès par accès' : 'Qui a consulté mon dossier';
  const hideMine = h('input', { type: 'checkbox', id: 'hide-mine', checked: true });
  const p = pager(`/people/${id}/access-log${detail ? '' : '/summary'}`, (a) => !(hideMine.checked && mine(a)));
  await p.fetch(1);
  const other = detail
    ? h('a', { href: `${HOME}/acces` }, 'Voir le résumé par jour')
    : h('a', { href: `${HOME}/acces/detail` }, 'Voir le détail');
  if (!p.seen.length) {
    return render(title, back(), h('p', {}, 'Personne n\'a encore consulté votre dossier.'));
  }
  const domains = (a) => (a.domains || []).map((d) => domainLabel(c.ref, d)).join(', ');
  const nobody = 'Personne d\'autre que vous n\'a consulté votre dossier pour le moment.';
  const row = (a) => h('tr', { class: mine(a) ? 'mine' : null },
    h('td', {}, fmtDate(a.occurred_at)),
    h('td', {}, whoDid(a)),
    h('td', {}, `${ACTIONS[a.action] || a.action} ${RESOURCES[a.resource_type] || a.resource_type}`),
    h('td', {}, domains(a) || '—'));
  const line = (g) => {
    const why = [WHY[g.purpose] && `Pour ${WHY[g.purpose]}.`, domains(g) && `Parties du dossier : ${domains(g)}.`].filter(Boolean);
    return h('li', { class: mine(g) ? 'mine' : null },
      h('p', {}, `${whoDid(g)} ${(mine(g) ? ACTIONS_YOU : ACTIONS)[g.action] || g.action} ${YOUR[g.resource_type] || RESOURCES[g.resource_type] || g.resource_type} — `,
        h('strong', {}, howOften(g)), '.'),
      why.length ? h('p', { class: 'why' }, why.join(' ')) : null);
  };
  const body = detail ? h('tbody') : h('ul', { class: 'access-summary', 'aria-labelledby': 'h-summary' });
  const count = h('p', { class: 'count', 'aria-live': 'polite' });
  const more = h('button', { type: 'button', class: 'secondary access-more' }, 'Voir plus');
  const draw = () => {
    const lines = p.shown();
    const none = detail ? h('tr', {}, h('td', { colspan: 4 }, nobody)) : h('li', {}, nobody);
    body.replaceChildren(...(lines.length ? lines.map(detail ? row : line) : [none]));
    more.hidden = !p.more();
    const what = detail ? 'accès affichés' : `ligne${lines.length > 1 ? 's' : ''} affichée${lines.length > 1 ? 's' : ''}`;
    count.textContent = `${lines.length} ${what}${p.more() ? '' : ' : c\'est tout'}.`;
  };
  more.addEventListener('click', act(more, async () => { await p.fetch(50); draw(); }));
  hideMine.addEventListener('change', () => draw());
  draw();
  return render(title, back(),
    h('p', { class: 'lead' }, 'Chaque fois que quelqu\'un lit ou modifie votre dossier, c\'est noté ici. Si un accès vous semble anormal, parlez-en à votre conseiller.'),
    h('p', { class: 'view-switch' }, other,
      detail ? ' : une ligne par jour, par personne et par action.' : ' : chaque accès, un par un, avec son heure.'),
    h('p', { class: 'check' }, hideMine, h('label', { for: 'hide-mine' }, 'Ne pas afficher mes propres actions')),
    detail
      ? h('div', { class: 'table-wrap' }, h('table', { class: 'access-log' },
        h('caption', {}, 'Les accès à votre dossier, les plus récents d\'abord'),
        h('thead', {}, h('tr', {}, ['Quand', 'Qui', 'Quoi', 'Parties du dossier'].map((t) => h('th', { scope: 'col' }, t)))),
        body))
      : [h('h2', { id: 'h-summary' }, 'Les accès à votre dossier, par jour, les plus récents d\'abord'), body],
    count, more);
}

// ---------------------------------------------------------------- routes

/**
 * `#/mon-espace` (home), `/diagnostic[/{id}]`, `/demarches[/{id}]`, `/mon-avis/{draft}`, `/consentements`,
 * `/orientations`, `/acces` (the summary by day), `/acces/detail` (each access).
 */
export async function route(me, parts = []) {
  if (!me.person_id) {
    return render('Mon espace', h('p', {}, 'Cet espace est celui des personnes accompagnées : votre compte n\'y est pas relié.'));
  }
  switch (parts[1]) {
    case 'diagnostic': return diagnostic(me, parts[2]);
    case 'demarches': return myPlan(me, parts[2]);
    case 'mon-avis': return selfRating(me, parts[2]);
    case 'consentements': return consents(me);
    case 'orientations': return referrals(me);
    case 'acces': return accessLog(me, parts[2] === 'detail');
    default: return home(me);
  }
}
