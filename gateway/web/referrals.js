// Orientations (referrals), for counselors and partners:
// - `#/orientations`: for each of my structures, the referrals received (« à traiter »
//   first) and sent (counseling structures only), with a status filter;
// - `#/orientations/<id>`: one referral — what it says, its steps (who, when), the
//   consented part of the diagnostic, the messages, and the moves allowed for me now;
// - `#/orientations/nouvelle?personne=<id>`: the referral form, with the directory's
//   services suggested for the domains chosen.
// What the API withholds (a person's name, the reason) stays withheld: it is said so.
import { domainLabel, get, getReferentiel, getStructures, levelLabel, post } from './api.js';
import { checkboxes, field, fmtDate, form, h, notice, render, values } from './dom.js';

const BASE = '#/orientations';

/** Statuses in plain words (feminine: « l'orientation est … »). */
const STATUS = {
  envoyee: 'Envoyée', a_l_etude: 'À l\'étude', acceptee: 'Acceptée', refusee: 'Refusée',
  expiree: 'Expirée (sans réponse)', en_cours: 'Accompagnement en cours', terminee: 'Terminée',
  abandonnee: 'Abandonnée', annulee: 'Annulée', declinee_par_la_personne: 'Déclinée par la personne',
};
/** What a step did, told in the timeline. */
const STEP = {
  envoyee: 'Orientation envoyée', a_l_etude: 'Mise à l\'étude', acceptee: 'Orientation acceptée',
  refusee: 'Orientation refusée', expiree: 'Expirée faute de réponse', en_cours: 'Accompagnement démarré',
  terminee: 'Accompagnement terminé', abandonnee: 'Accompagnement abandonné', annulee: 'Orientation annulée',
  declinee_par_la_personne: 'La personne a décliné',
};
/** The notice after a move. */
const DONE = {
  a_l_etude: 'L\'orientation est mise à l\'étude.', acceptee: 'L\'orientation est acceptée.',
  refusee: 'L\'orientation est refusée.', en_cours: 'L\'accompagnement a démarré.',
  terminee: 'Le résultat est enregistré : accompagnement terminé.',
  abandonnee: 'Le résultat est enregistré : accompagnement abandonné.',
  annulee: 'L\'orientation est annulée.', declinee_par_la_personne: 'C\'est noté : la personne a décliné l\'orientation.',
};
const REASONS = [
  ['beneficiaire_injoignable', 'La personne est injoignable'],
  ['freins_peripheriques', 'D\'autres difficultés doivent être levées d\'abord'],
  ['session_complete', 'La session est complète'],
  ['doublon', 'Orientation en double'],
  ['hors_criteres', 'La personne ne remplit pas les conditions'],
  ['autre', 'Autre motif (à préciser)'],
];
const reasonLabel = (c) => REASONS.find(([v]) => v === c)?.[1] || c;
/** Received and still needing the receiver: first in the inbox, in this order. */
const TO_DO = ['envoyee', 'a_l_etude', 'acceptee', 'en_cours'];
const FINAL = ['refusee', 'expiree', 'terminee', 'abandonnee', 'annulee', 'declinee_par_la_personne'];
const SENDER_ROLES = ['counselor', 'structure_admin'];
const RECEIVER_ROLES = ['counselor', 'structure_admin', 'partner'];

export async function route(me, parts, params) {
  const [, a] = parts;
  if (!a) return inbox(me, params);
  if (a === 'nouvelle') return create(me, params);
  return detail(me, a);
}

// ---------------------------------------------------------------------------
// Small tools

/** Structures' names (the directory; my own structures when it cannot be read). */
async function namer(me) {
  let all = [];
  try { all = await getStructures(); } catch { all = []; }
  const byId = new Map([...(me.structures || []), ...all].map((s) => [s.id, s.name]));
  return (id) => byId.get(id) || 'une structure';
}

const receives = (s) => s.roles.some((r) => RECEIVER_ROLES.includes(r));
const sends = (s) => s.roles.some((r) => SENDER_ROLES.includes(r));

function badge(status) {
  return h('span', { class: `ref-status st-${status || 'inconnu'}` }, STATUS[status] || status || 'État inconnu');
}

/** The person's name when the API gives it; else a sentence saying why it is missing. */
function personName(r) {
  const c = r?.person_contact;
  return c ? `${c.first_name} ${c.last_name}`.trim() : null;
}

/** An error for `form()`: the message next to each field. */
function invalid(fields, message = 'Le formulaire est incomplet.') {
  return Object.assign(new Error(message), { fields });
}

/** `field()` with a plain first option (« choisissez ») the API never receives. */
function select(label, name, options, { required = false, help, value, empty } = {}) {
  return field(label, name, { options: empty ? [['', empty], ...options] : options, required, help, value });
}

// ---------------------------------------------------------------------------
// #/orientations: received and sent, for each of my structures

const MAX_LISTED = 50;

/**
 * One page of a structure's referrals, each with the person's name where their consent
 * lets us read it (`include=person_name`: the API decides, and writes each name read in
 * the person's access log — so ask only for the cards shown).
 */
function listed(s, direction, status, size) {
  const only = status ? `&status=${encodeURIComponent(status)}` : '';
  return get(`/referrals?structure_id=${encodeURIComponent(s.id)}&direction=${direction}&page_size=${size}${only}&include=person_name`)
    .then((p) => p.items);
}

/** « À traiter »: the received referrals in each state to do, in that order, never more than shown. */
async function toDo(s) {
  const out = [];
  for (const status of TO_DO) {
    if (out.length >= MAX_LISTED) break;
    out.push(...await listed(s, 'received', status, MAX_LISTED - out.length));
  }
  return out;
}

async function inbox(me, params) {
  const [nameOf, ref] = await Promise.all([namer(me), getReferentiel()]);
  REF = ref;
  const wanted = params.get('etat') || '';
  const mine = (me.structures || []).filter((s) => receives(s) || sends(s));
  if (!mine.length) {
    return render('Orientations', h('p', {}, 'Votre compte n\'agit pour aucune structure qui oriente ou reçoit des personnes.'));
  }
  const toDoOnly = wanted === 'a_traiter';
  const lists = await Promise.all(mine.map(async (s) => {
    const read = (direction) => (toDoOnly ? toDo(s) : listed(s, direction, wanted, MAX_LISTED)).catch(() => null);
    const [received, sent] = await Promise.all([
      receives(s) ? read('received') : Promise.resolve(undefined),
      // A sender only waits: nothing sent is to do.
      sends(s) ? (toDoOnly ? Promise.resolve([]) : read('sent')) : Promise.resolve(undefined),
    ]);
    return { s, received, sent };
  }));
  // « À traiter »: what waits for my structure, as receiver (a sender only waits).
  const keep = (r) => wanted !== 'a_traiter' || TO_DO.includes(r.status);
  const rank = (r) => (TO_DO.includes(r.status) ? TO_DO.indexOf(r.status) : TO_DO.length);
  for (const l of lists) {
    if (l.received) l.received = l.received.filter(keep).sort((x, y) => rank(x) - rank(y) || String(y.sent_at).localeCompare(String(x.sent_at)));
    if (l.sent) l.sent = l.sent.filter((r) => wanted !== 'a_traiter' && keep(r)).sort((x, y) => String(y.sent_at).localeCompare(String(x.sent_at)));
  }

  const filter = h('form', { class: 'ref-filter', 'aria-label': 'Filtrer les orientations', onsubmit: (e) => {
    e.preventDefault();
    const v = new FormData(e.target).get('etat');
    location.hash = v ? `${BASE}?etat=${encodeURIComponent(v)}` : BASE;
  } },
  select('Afficher', 'etat', [['', 'Toutes les orientations'], ['a_traiter', 'À traiter'],
    ...Object.entries(STATUS)], { value: wanted }).wrap,
  h('button', { type: 'submit', class: 'secondary' }, 'Filtrer'));

  const line = (r, way) => {
    const name = personName(r);
    const other = way === 'received' ? `De : ${nameOf(r.sender_structure_id)}` : `Vers : ${nameOf(r.target_structure_id)}`;
    const todo = way === 'received' && TO_DO.includes(r.status);
    return h('li', { class: `ref-card${todo ? ' todo' : ''}` },
      h('p', { class: 'ref-title' },
        h('a', { href: `${BASE}/${encodeURIComponent(r.id)}` }, name || 'Personne (nom non communiqué)'),
        ' ', badge(r.status), todo ? h('span', { class: 'ref-todo' }, 'À traiter') : null),
      h('p', { class: 'ref-meta' }, other, ' · ', r.domains.map((d) => domainLabel(REF, d)).join(', ')),
      h('p', { class: 'ref-meta' }, `Envoyée le ${fmtDate(r.sent_at)}`,
        r.updated_at && r.updated_at !== r.sent_at ? ` · mise à jour le ${fmtDate(r.updated_at)}` : '',
        ['envoyee', 'a_l_etude'].includes(r.status) && r.expires_at ? ` · réponse attendue avant le ${fmtDate(r.expires_at)}` : ''),
      name ? null : h('p', { class: 'note' }, 'Le nom de la personne ne vous est pas communiqué : son accord ne le permet pas.'));
  };
  const block = (items, way, s) => {
    const title = way === 'received' ? 'Reçues' : 'Envoyées';
    const id = `h-${way}-${s.id}`;
    let body;
    if (items === null) body = h('p', { class: 'form-status' }, 'Cette liste n\'a pas pu être lue. Rechargez la page pour réessayer.');
    else if (!items.length) body = h('p', {}, wanted ? 'Aucune orientation dans cet état.' : (way === 'received' ? 'Aucune orientation reçue.' : 'Aucune orientation envoyée.'));
    else body = h('ul', { class: 'ref-list' }, items.map((r) => line(r, way)));
    const count = items?.length ? ` (${items.length}${items.length >= MAX_LISTED ? ' les plus récentes' : ''})` : '';
    return h('section', { 'aria-labelledby': id, class: `ref-box ref-${way}` }, h('h3', { id }, title + count), body);
  };

  return render('Orientations',
    h('div', { class: 'referrals' },
      h('p', {}, 'Les orientations reçues par vos structures (les orientations à traiter d\'abord) et celles qu\'elles ont envoyées. Pour orienter une personne, ouvrez son dossier dans « Personnes suivies ».'),
      filter,
      lists.map(({ s, received, sent }) => h('section', { 'aria-labelledby': `h-s-${s.id}`, class: 'ref-structure' },
        h('h2', { id: `h-s-${s.id}` }, s.name),
        received === undefined ? null : block(received, 'received', s),
        sent === undefined ? null : block(sent, 'sent', s)))));
}

/** The référentiel, read once per page (for labels). */
let REF = { domains: [], levels: [] };

// ---------------------------------------------------------------------------
// #/orientations/<id>: one referral

async function detail(me, id) {
  const [r, ref, nameOf] = await Promise.all([get(`/referrals/${encodeURIComponent(id)}`), getReferentiel(), namer(me)]);
  REF = ref;
  const [steps, messages, diagnostic, service] = await Promise.all([
    get(`/referrals/${r.id}/transitions?page_size=100`).then((p) => p.items, () => null),
    get(`/referrals/${r.id}/messages?page_size=100`).then((p) => p.items, () => null),
    r.diagnostic_id ? get(`/referrals/${r.id}/diagnostic`).catch(() => null) : Promise.resolve(null),
    r.target_service_id ? get(`/services/${r.target_service_id}`).catch(() => null) : Promise.resolve(null),
  ]);
  const memberOf = (sid, roles) => (me.structures || []).some((s) => s.id === sid && s.roles.some((x) => roles.includes(x)));
  // As the referrals service seats the caller: the receiver first.
  const side = memberOf(r.target_structure_id, RECEIVER_ROLES) ? 'receiver'
    : memberOf(r.sender_structure_id, SENDER_ROLES) ? 'sender' : 'reader';
  const name = personName(r);
  const who = (userId, structureId) => (userId && userId === me.user_id ? `vous (${nameOf(structureId)})` : nameOf(structureId));
  const reload = async (text) => { notice(text); await detail(me, r.id); };

  const facts = [
    ['État', badge(r.status)],
    ['Personne', name || h('span', { class: 'note' }, 'Nom non communiqué : l\'accord de la personne ne le permet pas.')],
    name && r.person_contact.phone ? ['Téléphone', r.person_contact.phone] : null,
    name && r.person_contact.email ? ['E-mail', r.person_contact.email] : null,
    ['De', nameOf(r.sender_structure_id)],
    ['Vers', nameOf(r.target_structure_id) + (service ? ` — service « ${service.name} »` : '')],
    ['Domaines', r.domains.map((d) => domainLabel(ref, d)).join(', ')],
    ['Motif', r.reason || h('span', { class: 'note' }, 'Le motif ne vous est pas communiqué : l\'accord de la personne ne le permet pas.')],
    ['Envoyée le', fmtDate(r.sent_at)],
    r.first_answered_at ? ['Première réponse le', fmtDate(r.first_answered_at)] : null,
    ['envoyee', 'a_l_etude'].includes(r.status) && r.expires_at ? ['Réponse attendue avant le', fmtDate(r.expires_at)] : null,
    r.refusal_reason ? ['Motif du refus', reasonLabel(r.refusal_reason)] : null,
    r.closed_at ? ['Close le', fmtDate(r.closed_at)] : null,
  ].filter(Boolean);

  render(name ? `Orientation de ${name}` : 'Orientation',
    h('div', { class: 'referrals' },
      h('p', {}, h('a', { href: BASE }, 'Revenir aux orientations')),
      h('dl', { class: 'ref-facts' }, facts.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])),
      actions(r, side, reload),
      timeline(steps, who),
      diagnosticPart(r, diagnostic, ref),
      thread(r, messages, who, reload)));
}

/** Moves that close the referral for good: a second click confirms them. */
const CONFIRM = {
  annulee: 'L\'annulation est définitive : la structure visée en sera informée. Cliquez de nouveau pour confirmer.',
  declinee_par_la_personne: 'Cela clôt l\'orientation pour de bon. Cliquez de nouveau pour confirmer.',
};

/** One move as a button in its own form (its errors shown there). */
function move(r, to, label, reload, kind) {
  let armed = !CONFIRM[to];
  const f = form(label, [], label, async () => {
    if (!armed) {
      armed = true;
      const button = f.querySelector('button[type="submit"]');
      button.textContent = `Confirmer : ${label.charAt(0).toLowerCase()}${label.slice(1)}`;
      f.querySelector('.form-status').textContent = CONFIRM[to];
      return;
    }
    await post(`/referrals/${r.id}/transitions`, { to_status: to });
    await reload(DONE[to]);
  });
  if (kind) f.querySelector('button[type="submit"]').classList.add(kind);
  f.classList.add('ref-move');
  return f;
}

function actions(r, side, reload) {
  const id = 'h-actions';
  const section = (...children) => h('section', { 'aria-labelledby': id, class: 'ref-actions' }, h('h2', { id }, 'Que faire maintenant ?'), children);
  const beforeStart = ['envoyee', 'a_l_etude', 'acceptee'].includes(r.status);
  if (FINAL.includes(r.status)) return section(h('p', {}, 'Cette orientation est close : plus aucune étape n\'est possible.'));
  if (side === 'sender') {
    return section(
      beforeStart
        ? [h('p', {}, 'La structure qui reçoit l\'orientation décide. Vous pouvez encore l\'annuler.'),
          move(r, 'annulee', 'Annuler l\'orientation', reload, 'danger'),
          move(r, 'declinee_par_la_personne', 'La personne a décliné', reload, 'secondary')]
        : h('p', {}, 'L\'accompagnement est en cours chez la structure qui a reçu l\'orientation.'));
  }
  if (side !== 'receiver') return section(h('p', {}, 'Vous ne pouvez que lire cette orientation.'));

  const out = [];
  if (['envoyee', 'a_l_etude'].includes(r.status)) {
    out.push(h('p', {}, 'Acceptez ou refusez cette orientation. Un refus dit pourquoi : la structure qui oriente le lira.'));
    const buttons = h('div', { class: 'ref-buttons' }, move(r, 'acceptee', 'Accepter l\'orientation', reload));
    if (r.status === 'envoyee') buttons.append(move(r, 'a_l_etude', 'Mettre à l\'étude', reload, 'secondary'));
    out.push(buttons);
    const reason = select('Motif du refus', 'refusal_reason', REASONS, { required: true, empty: 'Choisissez un motif' });
    const note = field('Précisions', 'note', { multiline: true, help: 'Obligatoire pour « Autre motif ». Restez factuel : la structure qui oriente lira ce texte.' });
    out.push(h('h3', {}, 'Refuser'),
      form('Refuser l\'orientation', [reason.wrap, note.wrap], 'Refuser l\'orientation', async (f) => {
        const v = values(f);
        const fields = [];
        if (!v.refusal_reason) fields.push({ field: 'refusal_reason', message: 'Choisissez le motif du refus dans la liste.' });
        if (v.refusal_reason === 'autre' && !v.note) fields.push({ field: 'note', message: 'Expliquez en quelques mots le motif « autre ».' });
        if (fields.length) throw invalid(fields);
        await post(`/referrals/${r.id}/transitions`, { to_status: 'refusee', refusal_reason: v.refusal_reason, note: v.note || null });
        await reload(DONE.refusee);
      }));
    out[out.length - 1].querySelector('button[type="submit"]').classList.add('danger');
  }
  if (r.status === 'acceptee') {
    out.push(h('p', {}, 'Vous avez accepté l\'orientation. Quand l\'accompagnement commence, dites-le ici.'),
      move(r, 'en_cours', 'Démarrer l\'accompagnement', reload));
  }
  if (r.status === 'en_cours') {
    const outcome = checkOne('Résultat', 'to_status', [['terminee', 'Accompagnement terminé'], ['abandonnee', 'Accompagnement abandonné (la personne ne vient plus)']]);
    const note = field('Commentaire', 'note', { multiline: true, help: 'Facultatif. Par exemple : « permis obtenu », « a trouvé une autre solution ».' });
    out.push(h('p', {}, 'L\'accompagnement est en cours. À la fin, enregistrez son résultat.'),
      form('Enregistrer le résultat', [outcome, note.wrap], 'Enregistrer le résultat', async (f) => {
        const v = values(f);
        if (!v.to_status) throw invalid([{ field: 'to_status', message: 'Choisissez le résultat : terminé ou abandonné.' }]);
        await post(`/referrals/${r.id}/transitions`, { to_status: v.to_status, note: v.note || null });
        await reload(DONE[v.to_status]);
      }));
  }
  if (beforeStart) {
    out.push(h('p', { class: 'note' }, 'La personne ne souhaite plus cette orientation ?'),
      move(r, 'declinee_par_la_personne', 'La personne a décliné', reload, 'secondary'));
  }
  return section(out);
}

/** A group of radio buttons in a fieldset, with its error slot (`data-field`). */
function checkOne(legend, name, choices, { help, checked } = {}) {
  const errId = `${name}-err-${Math.random().toString(36).slice(2, 8)}`;
  return h('fieldset', { class: 'field radios', 'data-field': name, 'aria-describedby': errId },
    h('legend', {}, legend, h('span', { class: 'req' }, ' (obligatoire)')),
    help ? h('p', { class: 'help' }, help) : null,
    choices.map(([v, l]) => {
      const id = `${name}-${v}-${Math.random().toString(36).slice(2, 8)}`;
      return h('div', { class: 'check' }, h('input', { type: 'radio', id, name, value: v, checked: v === checked }), h('label', { for: id }, l));
    }),
    h('p', { class: 'error', id: errId }));
}

function timeline(steps, who) {
  const id = 'h-steps';
  let body;
  if (steps === null) body = h('p', { class: 'form-status' }, 'Les étapes n\'ont pas pu être lues.');
  else {
    const ordered = [...steps].sort((a, b) => String(a.occurred_at).localeCompare(String(b.occurred_at)));
    body = h('ol', { class: 'ref-timeline' }, ordered.map((t) => h('li', {},
      h('p', {}, h('strong', {}, STEP[t.to_status] || t.to_status), ` — le ${fmtDate(t.occurred_at)}`,
        t.actor_structure_id ? `, par ${who(t.actor_user_id, t.actor_structure_id)}` : ', automatiquement'),
      t.refusal_reason ? h('p', {}, `Motif : ${reasonLabel(t.refusal_reason)}`) : null,
      t.note ? h('p', { class: 'ref-note' }, t.note) : null)));
  }
  return h('section', { 'aria-labelledby': id }, h('h2', { id }, 'Étapes'), body);
}

function diagnosticPart(r, d, ref) {
  const id = 'h-diag';
  const section = (...c) => h('section', { 'aria-labelledby': id }, h('h2', { id }, 'Diagnostic transmis'), c);
  if (!r.diagnostic_id) return section(h('p', {}, 'Aucun diagnostic n\'accompagne cette orientation.'));
  if (!d) return section(h('p', {}, 'Le diagnostic transmis n\'a pas pu être lu.'));
  if (!d.domains.length) return section(h('p', {}, 'Aucune partie du diagnostic n\'a été transmise : la personne n\'a pas donné son accord pour ces domaines.'));
  const itemLabel = (dom, itemId) => ref.domains.find((x) => x.id === dom)?.items.find((i) => i.id === itemId)?.label_fr || itemId;
  return section(
    h('p', {}, `Diagnostic du ${fmtDate(d.taken_at)} : seulement les domaines que la personne a accepté de partager.`),
    d.domains.map((dom) => h('div', { class: 'card' },
      h('h3', {}, domainLabel(ref, dom.domain_id)),
      dom.access !== 'visible'
        ? h('p', { class: 'note' }, dom.message || 'Ce domaine n\'est plus partagé : la personne a retiré son accord.')
        : h('ul', {}, (dom.content?.items || []).map((i) => h('li', {},
          `${itemLabel(dom.domain_id, i.item_id)} : ${i.counselor_level || i.person_level ? levelLabel(ref, i.counselor_level || i.person_level) : 'pas noté'}`,
          i.counselor_level && i.person_level && i.person_level !== i.counselor_level ? ` (selon la personne : ${levelLabel(ref, i.person_level)})` : '',
          i.counselor_note ? h('span', { class: 'note' }, ` — ${i.counselor_note}`) : null,
          i.person_note ? h('span', { class: 'note' }, ` — la personne : ${i.person_note}`) : null))))));
}

function thread(r, messages, who, reload) {
  const id = 'h-messages';
  const body = field('Votre message', 'body', { multiline: true, required: true, help: 'Lu par les deux structures. N\'y mettez que ce qui est utile à l\'orientation.' });
  const write = form('Écrire un message', [body.wrap], 'Envoyer le message', async (f) => {
    const v = values(f);
    if (!v.body) throw invalid([{ field: 'body', message: 'Écrivez votre message avant de l\'envoyer.' }]);
    await post(`/referrals/${r.id}/messages`, { body: v.body });
    await reload('Votre message est envoyé.');
  });
  let list;
  if (messages === null) list = h('p', { class: 'form-status' }, 'Les messages n\'ont pas pu être lus.');
  else if (!messages.length) list = h('p', {}, 'Aucun message pour l\'instant.');
  else {
    list = h('ol', { class: 'ref-messages' }, [...messages]
      .sort((a, b) => String(a.posted_at).localeCompare(String(b.posted_at)))
      .map((m) => h('li', {},
        h('p', { class: 'ref-meta' }, `${who(m.author_user_id, m.author_structure_id)}, le ${fmtDate(m.posted_at)}`),
        h('p', { class: 'ref-note' }, m.body))));
  }
  return h('section', { 'aria-labelledby': id }, h('h2', { id }, 'Messages'), list, write);
}

// ---------------------------------------------------------------------------
// #/orientations/nouvelle?personne=<id>: the referral form with suggested services

/**
 * A data·inclusion thématique in the référentiel's words: the items it stands for
 * (« Permis de conduire »), else its code made readable (`mobilite--preparer-un-permis`
 * → « preparer un permis »).
 */
function themeLabel(code) {
  const items = REF.domains.flatMap((d) => d.items || []).filter((i) => (i.data_inclusion_thematiques || []).includes(code));
  if (items.length) return items.map((i) => `« ${i.label_fr} »`).join(', ');
  const [, rest] = String(code).split('--');
  return `« ${(rest || code).replace(/-/g, ' ')} »`;
}

async function create(me, params) {
  const personId = params.get('personne');
  if (!personId) {
    return render('Orienter une personne', h('p', {}, 'Ouvrez d\'abord le dossier de la personne dans ', h('a', { href: '#/personnes' }, 'Personnes suivies'), ', puis « Orienter vers un service ».'));
  }
  const [p, ref, nameOf, structures, diagnostics] = await Promise.all([
    get(`/people/${encodeURIComponent(personId)}`), getReferentiel(), namer(me),
    getStructures().catch(() => []), get(`/people/${encodeURIComponent(personId)}/diagnostics`).then((d) => d.items, () => []),
  ]);
  REF = ref;
  const mine = (me.structures || []).filter(sends);
  const name = `${p.first_name} ${p.last_name}`;
  if (!mine.length) return render(`Orienter ${name}`, h('p', {}, 'Seuls les conseillers et les responsables d\'une structure peuvent orienter une personne.'));
  const shared = [...diagnostics].filter((d) => d.status === 'partage')
    .sort((a, b) => String(b.shared_at || b.created_at).localeCompare(String(a.shared_at || a.created_at)))[0];

  const mineIds = new Set(mine.map((s) => s.id));
  const targets = structures.filter((s) => !mineIds.has(s.id)).map((s) => [s.id, s.name]);
  const sender = select('Depuis la structure', 'sender_structure_id', mine.map((s) => [s.id, s.name]), { required: true });
  const domains = checkboxes('Besoins concernés', 'domains', ref.domains.map((d) => [d.id, d.label_fr + (d.sensitive ? ' (donnée sensible)' : '')]),
    { help: 'Cochez un ou plusieurs domaines : les services qui y répondent s\'affichent plus bas.' });
  const found = h('p', { class: 'help', 'aria-live': 'polite' }, 'Cochez un domaine pour voir les services suggérés.');
  const choices = h('div', { class: 'ref-services' });
  const services = h('fieldset', { class: 'field', 'data-field': 'target_service_id' },
    h('legend', {}, 'Services suggérés'), found, choices, h('p', { class: 'error' }));
  const target = select('Structure visée', 'target_structure_id', targets, { required: true, empty: 'Choisissez une structure',
    help: 'Remplie quand vous choisissez un service ; vous pouvez aussi choisir une structure sans service.' });
  const reason = field('Motif de l\'orientation', 'reason', { multiline: true, required: true,
    help: 'Pourquoi cette orientation, en quelques phrases. La structure visée le lira si la personne l\'accepte.' });

  // Suggestions: the shared diagnostic's barriers first, then the directory's services of
  // the domains chosen (a domain without barrier still has services).
  let suggested = null;
  const byService = new Map();
  const thematiques = (d) => {
    const dom = ref.domains.find((x) => x.id === d);
    return [...new Set([...(dom?.data_inclusion_thematiques || []), ...(dom?.items || []).flatMap((i) => i.data_inclusion_thematiques || [])])];
  };
  let asked = 0;
  async function refresh() {
    const chosen = [...domains.querySelectorAll('input:checked')].map((i) => i.value);
    const keep = choices.querySelector('input:checked')?.value;
    const mineNow = ++asked;
    if (!chosen.length) {
      choices.replaceChildren();
      found.textContent = 'Cochez un domaine pour voir les services suggérés.';
      return;
    }
    found.textContent = 'Recherche des services…';
    if (shared && suggested === null) {
      suggested = await get(`/services/suggestions?diagnostic_id=${shared.id}&page_size=100`).then((x) => x.items, () => []);
    }
    const rows = [];
    for (const s of suggested || []) {
      const doms = s.domains.filter((d) => chosen.includes(d));
      if (!s.service || !doms.length) continue;
      rows.push({ service: s.service, why: `Répond à un frein noté au diagnostic (${doms.map((d) => domainLabel(ref, d)).join(', ')}) : ${s.matched_thematiques.map(themeLabel).join(', ')}.` });
    }
    const themes = [...new Set(chosen.flatMap(thematiques))];
    const more = themes.length
      ? await get(`/services?thematiques=${encodeURIComponent(themes.join(','))}&page_size=50`).then((x) => x.items, () => [])
      : [];
    if (mineNow !== asked) return; // a later choice is being answered
    const seen = new Set(rows.map((x) => x.service.id));
    for (const s of more) {
      if (seen.has(s.id)) continue;
      const doms = chosen.filter((d) => s.thematiques.some((t) => thematiques(d).includes(t) || t === d));
      rows.push({ service: s, why: `Service du domaine ${doms.map((d) => domainLabel(ref, d)).join(', ') || 'choisi'} : ${s.thematiques.map(themeLabel).join(', ')}.` });
    }
    for (const x of rows) byService.set(x.service.id, x.service);
    found.textContent = rows.length
      ? `${rows.length} service(s) correspond(ent) aux besoins cochés${shared ? ', les réponses au diagnostic d\'abord' : ''}.`
      : 'Aucun service de l\'annuaire ne correspond à ces besoins. Choisissez directement une structure ci-dessous.';
    choices.replaceChildren(...rows.map(({ service: s, why }) => {
      const id = `svc-${s.id}`;
      const place = [s.commune, s.postal_code].filter(Boolean).join(' ');
      const info = [
        place || null,
        s.available_places != null ? `${s.available_places} place(s) disponible(s)` : null,
      ].filter(Boolean).join(' · ');
      const whyId = `${id}-why`;
      if (!s.structure_id) {
        return h('div', { class: 'ref-service off' },
          h('p', { class: 'ref-title' }, s.name),
          h('p', { class: 'ref-meta', id: whyId }, info, info ? h('br') : null, `Pourquoi : ${why}`),
          h('p', { class: 'note' }, `Ce service n'est pas sur EVA : contactez-le directement${s.phone ? ` au ${s.phone}` : ''}${s.email ? ` ou à ${s.email}` : ''}.`));
      }
      return h('div', { class: 'ref-service' },
        h('div', { class: 'check' },
          h('input', { type: 'radio', id, name: 'target_service_id', value: s.id, checked: s.id === keep, 'aria-describedby': whyId }),
          h('label', { for: id }, h('strong', {}, s.name), ` — ${nameOf(s.structure_id)}`)),
        h('p', { class: 'ref-meta', id: whyId }, info, info ? h('br') : null, `Pourquoi : ${why}`));
    }));
  }
  domains.addEventListener('change', () => { refresh().catch(() => { found.textContent = 'Les services n\'ont pas pu être lus : réessayez en cochant de nouveau.'; }); });
  // Choosing a service fills the target structure; another structure unchooses the service.
  choices.addEventListener('change', (e) => {
    const s = byService.get(e.target.value);
    if (s?.structure_id) {
      target.input.value = s.structure_id;
      if (target.input.value !== s.structure_id) {
        target.input.append(h('option', { value: s.structure_id }, nameOf(s.structure_id)));
        target.input.value = s.structure_id;
      }
    }
  });
  target.input.addEventListener('change', () => {
    const on = choices.querySelector('input:checked');
    if (on && byService.get(on.value)?.structure_id !== target.input.value) on.checked = false;
  });

  const f = form('Orienter la personne', [sender.wrap, domains, services, target.wrap, reason.wrap], 'Envoyer l\'orientation', async (fm) => {
    const v = values(fm, ['domains']);
    const fields = [];
    if (!v.domains.length) fields.push({ field: 'domains', message: 'Cochez au moins un besoin concerné.' });
    if (!v.target_structure_id) fields.push({ field: 'target_structure_id', message: 'Choisissez un service suggéré ou la structure vers laquelle orienter.' });
    if (!v.reason) fields.push({ field: 'reason', message: 'Dites en quelques phrases pourquoi vous orientez la personne.' });
    if (fields.length) throw invalid(fields);
    let r;
    try {
      r = await post('/referrals', {
        person_id: p.id, sender_structure_id: v.sender_structure_id, target_structure_id: v.target_structure_id,
        target_service_id: v.target_service_id || null, domains: v.domains, reason: v.reason, diagnostic_id: shared?.id || null,
      });
    } catch (e) {
      throw plain(e, { person: p.first_name, target: nameOf(v.target_structure_id), ref });
    }
    notice(`Orientation envoyée à ${nameOf(r.target_structure_id)}.`);
    location.hash = `${BASE}/${r.id}`;
  });

  return render(`Orienter ${name}`,
    h('div', { class: 'referrals' },
      h('p', {}, h('a', { href: `#/personnes/${encodeURIComponent(p.id)}` }, `Revenir au dossier de ${name}`)),
      h('p', {}, shared
        ? `Le diagnostic partagé du ${fmtDate(shared.shared_at || shared.created_at)} accompagne l'orientation : seuls les domaines que ${p.first_name} a accepté de partager avec la structure visée lui sont transmis.`
        : `${p.first_name} n'a pas de diagnostic partagé : l'orientation partira sans diagnostic.`),
      f));
}

/** The API's refusals of a new referral, in plain words, next to the field at fault. */
function plain(e, { person, target, ref }) {
  if (e.fields?.length) return e;
  const msg = e.message || '';
  if (e.status === 409 && /accord|consent/i.test(msg)) {
    const m = /pour : (.+?) ;/.exec(msg);
    const which = m ? m[1].split(',').map((d) => domainLabel(ref, d.trim())).join(', ') : 'ces besoins';
    return invalid([{ field: 'domains', message: `${person} n'a pas donné son accord pour être orientée vers ${target} pour : ${which}. Recueillez son consentement (« Orientation vers une autre structure ») dans son dossier, ou décochez ce besoin.` }],
      'L\'orientation n\'est pas partie : il manque l\'accord de la personne.');
  }
  if (e.status === 409 && /accompagne/.test(msg)) {
    return invalid([{ field: 'sender_structure_id', message: 'Cette structure n\'accompagne pas la personne : choisissez celle qui la suit.' }], 'L\'orientation n\'est pas partie.');
  }
  if (e.status === 403) {
    return invalid([{ field: 'sender_structure_id', message: 'Vous n\'agissez pas pour cette structure : choisissez la vôtre.' }], 'L\'orientation n\'est pas partie.');
  }
  return e;
}
