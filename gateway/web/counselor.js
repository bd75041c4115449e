// The counselor: caseload, a new person, the person's file (consents,
// diagnostics, referral) and the diagnostic editor with both ratings side by side.
import { get, getAll, getReferentiel, getStructures, levelLabel, domainLabel, patch, post } from './api.js';
import { checkboxes, field, fmtDate, fmtDay, form, h, notice, render, values } from './dom.js';
import * as history from './history.js';
import * as plan from './plan.js';

/** `render` with the children flattened and the empty ones left out (null, false, arrays). */
/** « de Bruno », « d'Ana » : the French elision before a vowel. */
const of = (name) => (/^[aeiouyàâäéèêëîïôöûüù]/i.test(name) ? `d'${name}` : `de ${name}`);

const PURPOSES = [['accompagnement', 'Accompagnement'], ['orientation', 'Orientation vers une autre structure'], ['statistiques', 'Statistiques anonymes']];
const STATUS = { brouillon: 'Brouillon', partage: 'Partagé', remplace: 'Remplacé' };
const REFERRAL = {
  envoyee: 'envoyée', a_l_etude: 'à l\'étude', acceptee: 'acceptée', refusee: 'refusée', expiree: 'expirée', en_cours: 'en cours',
  terminee: 'terminée', abandonnee: 'abandonnée', annulee: 'annulée', declinee_par_la_personne: 'déclinée par la personne',
};

function myStructures(me) {
  return (me.structures || []).filter((s) => s.roles.includes('counselor') || s.roles.includes('structure_admin'));
}

const PAGE = 20;

/** Lowercase, without accents: « Élodie » is found by « elodie ». */
function plain(s) {
  return String(s || '').normalize('NFD').replace(/[\u0300-\u036f]/g, '').toLowerCase().trim();
}

/** Every person the structure follows (pages of 500, at most 5 000). */
async function followed(structureId) {
  const out = await getAll(`/people?structure_id=${encodeURIComponent(structureId)}`, { max: 5000, pageSize: 500 });
  return out.sort((a, b) => plain(`${a.last_name} ${a.first_name}`).localeCompare(plain(`${b.last_name} ${b.first_name}`)));
}

/** A person's latest diagnostic in words: « partagé le 3 nov. 2026 », « brouillon en cours »… */
function lastDiagnostic(d) {
  if (!d) return 'pas encore de diagnostic';
  if (d.status === 'brouillon') return 'brouillon en cours';
  const day = fmtDay(d.shared_at || d.created_at, 'short');
  return d.status === 'partage' ? `partagé le ${day}` : `remplacé (partagé le ${day})`;
}

/** One structure's people: a search by name, then the list by pages of PAGE. */
function peopleList(s, people) {
  const sid = `s-${s.id}`;
  const search = h('input', { id: `${sid}-q`, type: 'search', name: 'q', autocomplete: 'off', 'aria-describedby': `${sid}-count` });
  const count = h('p', { id: `${sid}-count`, class: 'count', 'aria-live': 'polite' });
  const list = h('ul', { class: 'cards people' });
  const pager = h('nav', { class: 'pager', 'aria-label': `Pages de la liste : ${s.name}` });
  let page = 0;
  // Each person's latest diagnostic (or null: none yet), asked once per page shown.
  const known = new Map();
  let timer = 0;
  const fill = () => {
    for (const span of list.querySelectorAll('[data-latest]')) {
      if (known.has(span.dataset.latest)) span.textContent = `Dernier diagnostic : ${lastDiagnostic(known.get(span.dataset.latest))}`;
    }
  };
  const askLatest = async (ids) => {
    const missing = ids.filter((id) => !known.has(id));
    if (missing.length) {
      try {
        const r = await get(`/structures/${encodeURIComponent(s.id)}/latest-diagnostics?person_ids=${missing.join(',')}`);
        for (const x of r.items) known.set(x.person_id, x.latest || null);
      } catch {
        // The list stays usable without this line.
      }
    }
    fill();
  };
  const draw = () => {
    const q = plain(search.value);
    const shown = q ? people.filter((p) => plain(`${p.first_name} ${p.last_name}`).includes(q) || plain(`${p.last_name} ${p.first_name}`).includes(q)) : people;
    const pages = Math.max(1, Math.ceil(shown.length / PAGE));
    page = Math.min(page, pages - 1);
    const slice = shown.slice(page * PAGE, (page + 1) * PAGE);
    count.textContent = q
      ? `${shown.length} personne(s) sur ${people.length} pour « ${search.value.trim()} ».`
      : `${people.length} personne(s) suivie(s).`;
    list.replaceChildren(...slice.map((p) => h('li', { class: 'person' },
      h('a', { href: `#/personnes/${p.id}` }, `${p.first_name} ${p.last_name}`),
      h('span', { class: 'note' }, ` née ou né le ${fmtDay(p.birth_date)}`),
      h('span', { class: 'last-diagnostic', 'data-latest': p.id }),
      h('a', { href: `#/personnes/${p.id}/historique`, class: 'more', 'aria-label': `Historique des diagnostics ${of(`${p.first_name} ${p.last_name}`)}` }, 'Historique'))));
    if (!slice.length) list.replaceChildren(h('li', {}, q ? 'Aucune personne ne correspond à cette recherche.' : 'Personne n\'est encore suivi par cette structure.'));
    clearTimeout(timer);
    if (slice.length) timer = setTimeout(() => askLatest(slice.map((p) => p.id)), q ? 250 : 0);
    pager.replaceChildren();
    if (pages > 1) {
      const go = (to) => () => { page = to; draw(); list.querySelector('a')?.focus(); };
      pager.append(
        h('button', { type: 'button', class: 'secondary', disabled: page === 0, onclick: go(page - 1) }, 'Page précédente'),
        h('span', { class: 'pages' }, `Page ${page + 1} sur ${pages}`),
        h('button', { type: 'button', class: 'secondary', disabled: page >= pages - 1, onclick: go(page + 1) }, 'Page suivante'));
    }
  };
  search.addEventListener('input', () => { page = 0; draw(); });
  draw();
  return h('section', { 'aria-labelledby': sid },
    h('h2', { id: sid }, s.name),
    h('div', { class: 'field search', role: 'search' },
      h('label', { for: `${sid}-q` }, 'Rechercher une personne par son nom ou son prénom'),
      search),
    count, list, pager);
}

export async function caseload(me) {
  const mine = myStructures(me);
  const lists = await Promise.all(mine.map(async (s) => [s, await followed(s.id)]));
  render('Personnes suivies',
    h('p', {}, h('a', { href: '#/personnes/nouvelle', class: 'button' }, 'Inscrire une personne')),
    mine.length ? null : h('p', {}, 'Votre compte n\'est conseiller d\'aucune structure.'),
    lists.map(([s, people]) => peopleList(s, people)));
}

export async function newPerson(me) {
  const mine = myStructures(me);
  const structure = field('Structure qui accompagne', 'structure_id', { options: mine.map((s) => [s.id, s.name]), required: true });
  const first = field('Prénom', 'first_name', { required: true, autocomplete: 'off' });
  const last = field('Nom', 'last_name', { required: true, autocomplete: 'off' });
  const birth = field('Date de naissance', 'birth_date', { type: 'date', required: true, help: 'Au format jour/mois/année.' });
  const commune = field('Code INSEE de la commune', 'commune_insee', { required: true, help: 'Cinq caractères, par exemple 69123 pour Lyon.' });
  const email = field('Adresse e-mail de la personne', 'email', { type: 'email', help: 'Facultatif.' });
  const phone = field('Téléphone', 'phone', { type: 'tel', help: 'Facultatif.' });
  render('Inscrire une personne',
    form('Inscrire une personne', [structure.wrap, first.wrap, last.wrap, birth.wrap, commune.wrap, email.wrap, phone.wrap], 'Inscrire la personne', async (f) => {
      const v = values(f);
      const body = { structure_id: v.structure_id, first_name: v.first_name, last_name: v.last_name, birth_date: v.birth_date, commune_insee: v.commune_insee };
      if (v.email) body.email = v.email;
      if (v.phone) body.phone = v.phone;
      const p = await post('/people', body);
      notice(`${p.first_name} ${p.last_name} est inscrit(e).`);
      location.hash = `#/personnes/${p.id}`;
    }));
}

const pause = (ms) => new Promise((r) => { setTimeout(r, ms); });

/**
 * The person's diagnostics. Just after the registration, the diagnostics service may not
 * know yet that the structure follows the person (404 for a few moments): asked again.
 */
async function diagnosticsOf(id) {
  for (let i = 0; ; i += 1) {
    try {
      return await get(`/people/${id}/diagnostics`);
    } catch (e) {
      if (e.status !== 404 || i >= 15) throw e;
      await pause(200);
    }
  }
}

export async function personPage(me, id) {
  const [p, ref, structures, consents, diagnostics] = await Promise.all([
    get(`/people/${id}`), getReferentiel(), getStructures(),
    get(`/people/${id}/consents?status=active`), diagnosticsOf(id),
  ]);
  const mine = myStructures(me);
  const nameOf = (sid) => structures.find((s) => s.id === sid)?.name || sid;
  const domains = ref.domains.map((d) => [d.id, d.label_fr + (d.sensitive ? ' (donnée sensible)' : '')]);

  const consentForm = form('Recueillir un consentement', [
    field('Structure autorisée', 'grantee_structure_id', { options: structures.map((s) => [s.id, s.name]), value: mine[0]?.id, required: true }).wrap,
    checkboxes('Pour quoi faire', 'purposes', PURPOSES, { checked: ['accompagnement'] }),
    checkboxes('Domaines', 'domains', domains, { help: 'Aucun domaine coché : tous les domaines sauf les données sensibles.' }),
  ], 'Enregistrer le consentement', async (f) => {
    const v = values(f, ['purposes', 'domains']);
    await post(`/people/${id}/consents`, v);
    notice('Le consentement est enregistré.');
    await personPage(me, id);
  });

  const openForm = form('Ouvrir un diagnostic', [
    field('Structure', 'structure_id', { options: mine.map((s) => [s.id, s.name]), required: true }).wrap,
  ], 'Ouvrir un diagnostic', async (f) => {
    const d = await post(`/people/${id}/diagnostics`, values(f));
    notice('Le diagnostic est ouvert.');
    location.hash = `#/diagnostics/${d.id}`;
  });

  const shared = diagnostics.items.find((d) => d.status === 'partage');
  const referForm = form('Orienter la personne', [
    field('Depuis la structure', 'sender_structure_id', { options: mine.map((s) => [s.id, s.name]), required: true }).wrap,
    field('Structure visée', 'target_structure_id', { options: [['', 'Choisissez une structure'], ...structures.map((s) => [s.id, s.name])], required: true }).wrap,
    checkboxes('Domaines concernés', 'domains', domains),
    field('Motif de l\'orientation', 'reason', { multiline: true, required: true }).wrap,
  ], 'Orienter la personne', async (f) => {
    const v = values(f, ['domains']);
    const fields = [];
    if (!v.target_structure_id) fields.push({ field: 'target_structure_id', message: 'Choisissez la structure vers laquelle orienter.' });
    if (!v.domains.length) fields.push({ field: 'domains', message: 'Cochez au moins un domaine.' });
    if (fields.length) throw Object.assign(new Error('Le formulaire est incomplet.'), { fields });
    const r = await post('/referrals', { ...v, person_id: id, diagnostic_id: shared?.id || null });
    notice(`Orientation envoyée à ${nameOf(r.target_structure_id)}.`);
    await personPage(me, id);
  });

  // Sent and received, by each of my structures: one line per referral.
  const seen = new Set();
  const referrals = (await Promise.all(mine.map((s) => get(`/referrals?structure_id=${s.id}&person_id=${id}&page_size=100`)
    .then((r) => r.items, () => [])))).flat()
    .filter((r) => r.person_id === id && !seen.has(r.id) && seen.add(r.id));
  const mineIds = new Set(mine.map((s) => s.id));
  const referralLine = (r) => {
    const sent = mineIds.has(r.sender_structure_id);
    const who = sent ? `Vers ${nameOf(r.target_structure_id)}` : `Depuis ${nameOf(r.sender_structure_id)}`;
    return h('li', {}, h('a', { href: `#/orientations/${r.id}` }, who), ` — ${REFERRAL[r.status] || r.status || ''}, le ${fmtDate(r.sent_at)}`);
  };
  const diagLine = (d) => h('li', {},
    h('a', { href: `#/diagnostics/${d.id}` }, `Diagnostic du ${fmtDate(d.created_at)}`), ` — ${STATUS[d.status] || d.status}`,
    d.status === 'remplace' ? null : [' · ', h('a', { href: `#/diagnostics/${d.id}/plan`, 'aria-label': `Plan d'action du diagnostic du ${fmtDate(d.created_at)}` }, 'Plan d\'action')]);
  render(`${p.first_name} ${p.last_name}`,
    h('p', {}, `Née ou né le ${fmtDay(p.birth_date)} · commune ${p.commune_insee}`, p.email ? ` · ${p.email}` : ''),
    h('ul', { class: 'actions' },
      h('li', {}, h('a', { href: `#/personnes/${id}/historique`, class: 'button' }, 'Historique et comparaison')),
      h('li', {}, h('a', { href: `#/orientations/nouvelle?personne=${encodeURIComponent(id)}`, class: 'button' }, 'Orienter vers un service'))),
    h('section', { 'aria-labelledby': 'h-consents' },
      h('h2', { id: 'h-consents' }, 'Consentements'),
      consents.items.length
        ? h('ul', {}, consents.items.map((c) => h('li', {}, `${nameOf(c.grantee_structure_id)} : ${c.purposes.join(', ')} — ${c.domains.map((d) => domainLabel(ref, d)).join(', ')} (jusqu'au ${c.valid_until})`)))
        : h('p', {}, 'Aucun consentement actif.'),
      h('details', {}, h('summary', {}, 'Recueillir un consentement'), consentForm)),
    h('section', { 'aria-labelledby': 'h-diag' },
      h('h2', { id: 'h-diag' }, 'Diagnostics'),
      diagnostics.items.length
        ? h('ul', {}, diagnostics.items.map(diagLine))
        : h('p', {}, 'Aucun diagnostic pour l\'instant.'),
      openForm),
    h('section', { 'aria-labelledby': 'h-ref' },
      h('h2', { id: 'h-ref' }, 'Orientations'),
      referrals.length
        ? h('ul', {}, referrals.map(referralLine))
        : h('p', {}, 'Aucune orientation pour l\'instant.'),
      referForm));
}

/** Puts the API's `ratings[i].level|note` errors next to their item; answers the leftovers. */
function placeRatingErrors(f, sent, err) {
  const left = [];
  for (const { field: name, message } of err.fields || []) {
    const m = /^ratings\[(\d+)\]\.(level|note)$/.exec(name || '');
    const it = m && sent[Number(m[1])];
    const slot = it && f.querySelector(`[data-item="${CSS.escape(it.item_id)}"] [data-slot="${m[2]}"]`);
    if (!slot) { left.push(message); continue; }
    slot.querySelector('.error').textContent = message;
    slot.querySelector('select, textarea')?.setAttribute('aria-invalid', 'true');
  }
  return left;
}

export async function diagnosticPage(me, id) {
  const [d, ref] = await Promise.all([get(`/diagnostics/${id}?purpose=accompagnement`), getReferentiel()]);
  const draft = d.status === 'brouillon';
  const levels = [['', '— Non coté —'], ...ref.levels.map((l) => [l.code, l.label_fr])];
  const sections = d.domains.map((dom) => {
    const domain = ref.domains.find((x) => x.id === dom.domain_id);
    const label = domain?.label_fr || dom.domain_id;
    if (dom.access !== 'visible') {
      return h('section', { class: 'domain' }, h('h2', {}, label), h('p', {}, 'Domaine non visible : la personne n\'a pas donné son accord.'));
    }
    const rows = (dom.items || []).map((it, n) => {
      const item = domain?.items.find((x) => x.id === it.item_id);
      const itemLabel = item?.label_fr || it.item_id;
      const selId = `lvl-${dom.domain_id}-${n}`;
      const noteId = `note-${dom.domain_id}-${n}`;
      return h('tr', { 'data-item': it.item_id },
        h('th', { scope: 'row' }, itemLabel),
        h('td', { 'data-label': 'Selon la personne' }, levelLabel(ref, it.person_level), it.person_note ? h('span', { class: 'note' }, ` « ${it.person_note} »`) : ''),
        draft
          ? [h('td', { 'data-slot': 'level', 'data-label': 'Selon le conseiller' },
            h('label', { for: selId, class: 'sr-only' }, `Cotation du conseiller : ${itemLabel}`),
            h('select', { id: selId, name: it.item_id, 'data-rating': '', 'aria-describedby': `${selId}-err` }, levels.map(([v, l]) => h('option', { value: v, selected: v === (it.counselor_level || '') }, l))),
            h('p', { class: 'error', id: `${selId}-err` })),
          h('td', { 'data-slot': 'note', 'data-label': 'Note du conseiller' },
            h('label', { for: noteId, class: 'sr-only' }, `Note du conseiller : ${itemLabel}`),
            (() => { const t = h('textarea', { id: noteId, 'data-note': it.item_id, rows: 2, maxlength: 4000, 'aria-describedby': `${noteId}-err` }); t.value = it.counselor_note || ''; return t; })(),
            h('p', { class: 'error', id: `${noteId}-err` }))]
          : [h('td', { 'data-label': 'Selon le conseiller' }, levelLabel(ref, it.counselor_level)),
            h('td', { 'data-label': 'Note du conseiller' }, it.counselor_note ? h('span', { class: 'note' }, it.counselor_note) : '—')]);
    });
    return h('section', { class: 'domain', 'aria-labelledby': `d-${dom.domain_id}` },
      h('h2', { id: `d-${dom.domain_id}` }, label),
      h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': `${label} : les deux regards` }, h('table', { class: 'ratings' },
        h('caption', { class: 'sr-only' }, `${label} : auto-évaluation de la personne, cotation et note du conseiller`),
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Item'), h('th', { scope: 'col' }, 'Selon la personne'), h('th', { scope: 'col' }, 'Selon le conseiller'), h('th', { scope: 'col' }, 'Note du conseiller'))),
        h('tbody', {}, rows))));
  });
  const back = h('p', { class: 'links' },
    h('a', { href: `#/personnes/${d.person_id}` }, 'Revenir au dossier de la personne'),
    d.status === 'remplace' ? null : [' · ', h('a', { href: `#/diagnostics/${id}/plan` }, 'Plan d\'action de ce diagnostic')],
    ' · ', h('a', { href: `#/personnes/${d.person_id}/historique` }, 'Historique et comparaison'));
  const intro = h('p', {}, `Statut : ${STATUS[d.status] || d.status} · référentiel ${d.referentiel_version}. `,
    'Les deux regards sont côte à côte : l\'auto-évaluation de la personne et votre cotation, avec votre note.');
  if (!draft) return render('Diagnostic', back, intro, sections);
  const save = form('Cotations du diagnostic', sections, 'Enregistrer les cotations', async (f) => {
    const ratings = [];
    let missing = false;
    for (const sel of f.querySelectorAll('select[data-rating]')) {
      const note = f.querySelector(`textarea[data-note="${CSS.escape(sel.name)}"]`);
      const text = note.value.trim();
      if (sel.value) ratings.push({ item_id: sel.name, level: sel.value, note: text });
      else if (text) {
        missing = true;
        const slot = sel.closest('td');
        slot.querySelector('.error').textContent = 'Choisissez une cotation pour cet item : une note accompagne une cotation.';
        sel.setAttribute('aria-invalid', 'true');
      }
    }
    if (missing) throw Object.assign(new Error('Une note sans cotation ne peut pas être enregistrée : choisissez la cotation des items signalés.'), { fields: [] });
    if (!ratings.length) throw Object.assign(new Error('Cotez au moins un item avant d\'enregistrer.'), { fields: [] });
    try {
      await patch(`/diagnostics/${id}`, { ratings });
    } catch (e) {
      const left = placeRatingErrors(f, ratings, e);
      if (!e.fields?.length) throw e;
      throw Object.assign(new Error(['Certaines cotations sont à corriger : voyez les messages à côté des items.', ...left].join(' ')), { fields: [] });
    }
    notice(`${ratings.length} cotation(s) enregistrée(s).`);
  });
  const share = h('button', { type: 'button', class: 'secondary', onclick: async () => {
    try {
      await post(`/diagnostics/${id}/share`, {});
      notice('Le diagnostic est partagé.');
      await diagnosticPage(me, id);
    } catch (e) {
      notice(e.message, 'error');
    }
  } }, 'Partager le diagnostic');
  render('Diagnostic', back, intro, save, h('p', {}, 'Une fois les cotations enregistrées, partagez le diagnostic : il ne pourra plus être modifié.'), share);
}

/**
 * `#/personnes`, `#/personnes/nouvelle`, `#/personnes/{id}`, `#/personnes/{id}/historique`,
 * `#/diagnostics/{id}`, `#/diagnostics/{id}/plan`.
 */
export async function route(me, parts, params) {
  if (parts[0] === 'diagnostics' && parts[2] === 'plan') return plan.route(me, parts[1], params);
  if (parts[0] === 'diagnostics') return diagnosticPage(me, parts[1]);
  if (parts[2] === 'historique') return history.route(me, parts[1], params);
  if (parts[1] === 'nouvelle') return newPerson(me);
  if (parts[1]) return personPage(me, parts[1]);
  return caseload(me);
}
