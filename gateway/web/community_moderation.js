// La communauté, suite : modifier ses propres publications (relues comme à la création),
// signaler une publication, créer un espace (administrateurs de structure, opérateurs), et
// la modération (masquer, rétablir avec un motif ; le journal des signalements et des
// décisions des espaces que l'on modère), et les membres d'un espace (un modérateur en
// nomme un autre ; le dernier ne peut pas partir). Pages et outils partagés : community.js.
import { get, patch, post } from './api.js';
import { checkboxes, field, fmtDate, fmtDay, form, h, notice, values } from './dom.js';
import {
  BASE, MAX_TITLE, MIN_TITLE, TERRITORY, allSpaces, checkQuestion, checkTitle, crumbs, explainRefusal, invalid,
  more, page, screenWhileTyping,
} from './community.js';

/** « modifiée le … » quand l'auteur a modifié la publication après l'avoir publiée. */
export function edited(p) {
  if (!p.updated_at || !p.created_at || p.updated_at === p.created_at) return null;
  return h('span', { class: 'edited' }, ` · modifiée le ${fmtDate(p.updated_at)}`);
}

/** Un volet « Modifier … » qui s'ouvre sur un formulaire ; replié, rien n'est perdu. */
const editBox = (summary, f) => h('details', { class: 'edit' }, h('summary', {}, summary), f);

/**
 * « Modifier ma question » : titre, détails, domaines, territoire, relus comme à la
 * création ; un refus est dit à côté du champ et le texte reste. `saved(q)` redessine.
 */
export function editQuestion(q, ref, saved) {
  const title = field('Titre de la question', 'title', {
    required: true, autocomplete: 'off', value: q.title,
    help: `Votre question en une phrase (${MIN_TITLE} à ${MAX_TITLE} caractères).`,
  });
  const body = field('Détails', 'body', {
    multiline: true, required: true, value: q.body,
    help: 'Sans rien qui permette de reconnaître la personne : pas de nom, de téléphone, d\'e-mail ni de numéro de sécurité sociale.',
  });
  body.input.rows = 8;
  const domains = checkboxes('Domaines concernés', 'domains', ref.domains.map((d) => [d.id, d.label_fr]), {
    checked: q.domains || [], help: 'Facultatif : aide vos collègues à trouver la question.',
  });
  const territory = field('Territoire', 'territory_code', {
    autocomplete: 'off', value: q.territory_code || '',
    help: 'Facultatif : code du département (27) ou de la commune (27681). Vide : aucun.',
  });
  const f = form('Modifier ma question', [title.wrap, body.wrap, domains, territory.wrap], 'Enregistrer les modifications', async (fm) => {
    const v = values(fm, ['domains']);
    checkQuestion(v);
    let nq;
    try {
      nq = await patch(`/community/questions/${q.id}`, {
        title: v.title, body: v.body, domains: v.domains, territory_code: v.territory_code || '',
      });
    } catch (e) {
      await explainRefusal(e, { title: v.title, body: v.body });
    }
    notice('Votre question est modifiée.');
    await saved(nq);
  });
  screenWhileTyping(f, ['title', 'body']);
  return editBox('Modifier ma question', f);
}

/** « Modifier ma réponse » : le texte, relu comme à la création. */
export function editAnswer(a, saved) {
  const body = field('Votre réponse', 'body', {
    multiline: true, required: true, value: a.body,
    help: 'Sans nom, téléphone, e-mail ni numéro de sécurité sociale d\'une personne accompagnée.',
  });
  body.input.rows = 6;
  const f = form('Modifier ma réponse', [body.wrap], 'Enregistrer ma réponse', async (fm) => {
    const v = values(fm);
    if (!v.body) throw invalid('La réponse est vide.', [{ field: 'body', message: 'Écrivez votre réponse avant de l\'enregistrer.' }]);
    let na;
    try {
      na = await patch(`/community/answers/${a.id}`, { body: v.body });
    } catch (e) {
      await explainRefusal(e, { body: v.body });
    }
    notice('Votre réponse est modifiée.');
    await saved(na);
  });
  screenWhileTyping(f, ['body']);
  return editBox('Modifier ma réponse', f);
}

/** Les champs d'une fiche solution (publier, modifier), remplis de la fiche `s` s'il y en a une. */
export function sheetFields(ref, s = {}) {
  const title = field('Titre de la fiche', 'title', {
    required: true, autocomplete: 'off', value: s.title,
    help: `Le dispositif ou l'astuce en quelques mots (${MIN_TITLE} à ${MAX_TITLE} caractères).`,
  });
  const body = field('La solution', 'body', {
    multiline: true, required: true, value: s.body,
    help: 'Pour qui, comment y accéder, qui contacter, ce qu\'il faut savoir. Aucune donnée sur une personne accompagnée.',
  });
  body.input.rows = 8;
  const domains = checkboxes('Domaines concernés', 'domains', ref.domains.map((d) => [d.id, d.label_fr]), {
    checked: s.domains || [], help: 'Au moins un : la fiche est rangée sous ces domaines.',
  });
  const territories = field('Territoires', 'territory_codes', {
    autocomplete: 'off', value: (s.territory_codes || []).join(', '),
    help: 'Facultatif : codes de départements ou de communes séparés par des virgules (27, 76540). Vide : partout.',
  });
  const from = field('Valable à partir du', 'valid_from', { type: 'date', value: s.valid_from || '', help: 'Facultatif.' });
  const until = field('Valable jusqu\'au', 'valid_until', { type: 'date', value: s.valid_until || '', help: 'Facultatif : après cette date, la fiche est rangée parmi les expirées.' });
  return [title.wrap, body.wrap, domains, territories.wrap, from.wrap, until.wrap];
}

/** Ce que le formulaire d'une fiche envoie, vérifié dans la page d'abord (les champs en faute nommés). */
export function sheetPayload(v) {
  const fields = [];
  checkTitle(v, fields);
  if (!v.body) fields.push({ field: 'body', message: 'Décrivez la solution : pour qui, comment, qui contacter.' });
  if (!v.domains.length) fields.push({ field: 'domains', message: 'Cochez au moins un domaine.' });
  const codes = (v.territory_codes || '').split(/[\s,;]+/).filter(Boolean);
  const bad = codes.filter((c) => !TERRITORY.test(c));
  if (bad.length) fields.push({ field: 'territory_codes', message: `Code inconnu : ${bad.join(', ')}. Écrivez 2 ou 3 chiffres pour un département (27), 5 pour une commune (27681).` });
  if (v.valid_from && v.valid_until && v.valid_until < v.valid_from) fields.push({ field: 'valid_until', message: 'La fin de validité est avant son début : corrigez l\'une des deux dates.' });
  if (fields.length) throw invalid('Le formulaire est incomplet.', fields);
  const payload = { title: v.title, body: v.body, domains: v.domains, territory_codes: codes };
  if (v.valid_from) payload.valid_from = v.valid_from;
  if (v.valid_until) payload.valid_until = v.valid_until;
  return payload;
}

/**
 * « Modifier ma fiche » (son auteur seulement) : les mêmes champs qu'à la publication,
 * relus de même ; les freins et le service de l'annuaire liés restent. `saved(s)` redessine.
 */
export function editSolution(s, ref, saved) {
  const f = form('Modifier ma fiche', sheetFields(ref, s), 'Enregistrer la fiche', async (fm) => {
    const v = values(fm, ['domains']);
    const payload = { ...sheetPayload(v), item_ids: s.item_ids || [] };
    if (s.directory_service_id) payload.directory_service_id = s.directory_service_id;
    let ns;
    try {
      ns = await patch(`/community/solutions/${s.id}`, payload);
    } catch (e) {
      await explainRefusal(e, { title: v.title, body: v.body });
    }
    notice('Votre fiche est modifiée.');
    await saved(ns);
  });
  screenWhileTyping(f, ['title', 'body']);
  return editBox('Modifier ma fiche', f);
}

/** « Signaler un abus » : un motif, envoyé à la modération. */
export function reportBox(kind, id, what) {
  const reason = field('Pourquoi signalez-vous ce contenu ?', 'reason', {
    multiline: true, required: true,
    help: 'Par exemple : données personnelles d\'une personne, propos blessants, publicité. Les modérateurs de l\'espace le liront.',
  });
  const box = h('details', { class: 'report' }, h('summary', {}, `Signaler ${what}`));
  box.append(form(`Signaler ${what}`, [reason.wrap], 'Envoyer le signalement', async (f) => {
    const v = values(f);
    if (!v.reason) throw invalid('Le motif manque.', [{ field: 'reason', message: 'Dites en quelques mots ce qui pose problème.' }]);
    try {
      await post('/community/reports', { content_kind: kind, content_id: id, reason: v.reason });
    } catch (e) {
      if (e.status === 409) e.message = 'Vous avez déjà signalé ce contenu : les modérateurs l\'ont reçu.';
      throw e;
    }
    box.open = false;
    f.reset();
    notice('Merci : votre signalement est transmis aux modérateurs.');
  }));
  return box;
}

const WHAT = { question: ['cette question', 'La question'], answer: ['cette réponse', 'La réponse'], solution: ['cette fiche', 'La fiche'] };

/**
 * Pour les modérateurs : « Masquer » (ou « Rétablir ») une publication, avec un motif que
 * le journal de modération garde. `done()` redessine.
 */
export function moderateBox(kind, p, done) {
  const hide = p.status !== 'hidden';
  const [it, It] = WHAT[kind];
  const label = `${hide ? 'Masquer' : 'Rétablir'} ${it}`;
  const reason = field(hide ? 'Pourquoi la masquer ?' : 'Pourquoi la rétablir ?', 'reason', {
    multiline: true, required: true,
    help: hide
      ? 'Le motif reste dans le journal de modération. Les membres ne la verront plus ; son auteur et les modérateurs, si.'
      : 'Le motif reste dans le journal de modération. Les membres de l\'espace la verront de nouveau.',
  });
  const box = h('details', { class: `moderate${hide ? '' : ' restore'}` }, h('summary', {}, label));
  box.append(form(label, [reason.wrap], hide ? 'Masquer' : 'Rétablir', async (f) => {
    const v = values(f);
    if (!v.reason) throw invalid('Le motif manque.', [{ field: 'reason', message: `Dites en quelques mots pourquoi vous ${hide ? 'masquez' : 'rétablissez'} ${it}.` }]);
    await post('/community/moderation', { content_kind: kind, content_id: p.id, action: hide ? 'hide' : 'restore', reason: v.reason });
    notice(hide ? `${It} est masquée : seuls son auteur et les modérateurs la voient.` : `${It} est rétablie : les membres de l'espace la voient de nouveau.`);
    await done();
  }));
  return box;
}

// ---------------------------------------------------------------------------
// Créer un espace
// ---------------------------------------------------------------------------

/** Les structures que l'on administre (un espace privé par structure). */
const adminOf = (me) => (me.structures || []).filter((s) => (s.roles || []).includes('structure_admin'));
const operator = (me) => (me.roles || []).includes('operator');

/** Qui peut créer un espace : un opérateur (territoire, thème), un administrateur (sa structure). */
export const mayCreateSpace = (me) => operator(me) || adminOf(me).length > 0;

export async function newSpace(me, ref) {
  const title = 'Créer un espace';
  const here = crumbs(['Créer un espace', null]);
  if (!mayCreateSpace(me)) {
    return page(title, here, h('p', {}, 'Les espaces sont créés par les administrateurs des structures (l\'espace privé de leur structure) et par les opérateurs (territoires, thèmes).'));
  }
  const kinds = [
    ...(adminOf(me).length ? [['structure', 'Espace privé de ma structure']] : []),
    ...(operator(me) ? [['territory', 'Territoire'], ['theme', 'Thème']] : []),
  ];
  const name = field('Nom de l\'espace', 'name', {
    required: true, autocomplete: 'off', help: 'Par exemple : « Équipe emploi de Vernon » (200 caractères au plus).',
  });
  const description = field('Description', 'description', {
    multiline: true, help: 'Facultatif : à quoi sert l\'espace, qui y est bienvenu.',
  });
  const kind = field('Type d\'espace', 'kind', { required: true, options: kinds, value: kinds[0][0] });
  const structures = adminOf(me).map((s) => [s.id, s.name]);
  const structure = field('Structure', 'structure_id', {
    required: true, options: structures, value: structures[0]?.[0],
    help: 'Seuls les membres de cette structure verront l\'espace.',
  });
  const territory = field('Territoire', 'territory_code', {
    autocomplete: 'off', help: 'Code du département (27) ou de la commune (27681).',
  });
  const domain = field('Domaine', 'domain_id', { options: (ref?.domains || []).map((d) => [d.id, d.label_fr]) });
  const parts = { structure: structure.wrap, territory: territory.wrap, theme: domain.wrap };
  const show = (k) => { for (const [key, wrap] of Object.entries(parts)) wrap.hidden = key !== k; };
  kind.input.addEventListener('change', () => show(kind.input.value));
  show(kinds[0][0]);
  const f = form('Créer un espace', [name.wrap, description.wrap, kind.wrap, structure.wrap, territory.wrap, domain.wrap], 'Créer l\'espace', async (fm) => {
    const v = values(fm);
    const fields = [];
    const n = Array.from(v.name || '').length;
    if (!n) fields.push({ field: 'name', message: 'Donnez un nom à l\'espace : c\'est ce que les membres verront dans la liste.' });
    else if (n > 200) fields.push({ field: 'name', message: `Le nom est trop long : 200 caractères au plus (il en a ${n}).` });
    if (v.kind === 'territory' && !TERRITORY.test(v.territory_code || '')) {
      fields.push({ field: 'territory_code', message: 'Indiquez un code : 2 ou 3 chiffres pour un département (27), 5 pour une commune (27681).' });
    }
    if (fields.length) throw invalid('Le formulaire est incomplet.', fields);
    const payload = { name: v.name, kind: v.kind };
    if (v.description) payload.description = v.description;
    if (v.kind === 'structure') payload.structure_id = v.structure_id;
    if (v.kind === 'territory') payload.territory_code = v.territory_code;
    if (v.kind === 'theme') payload.domain_id = v.domain_id;
    const s = await post('/community/spaces', payload);
    notice(`L'espace « ${s.name} » est créé : vous en êtes le modérateur.`);
    location.hash = BASE;
  });
  return page(title, here,
    h('p', {}, 'Un lieu d\'échange entre conseillers. Vous en serez le premier modérateur : vous pourrez masquer une publication et certifier les bonnes réponses.'),
    f);
}

// ---------------------------------------------------------------------------
// Le journal de modération
// ---------------------------------------------------------------------------

const ACT = {
  report: ['Signalement', 'open'],
  hide: ['Masquée', 'hidden'],
  restore: ['Rétablie', 'ok'],
};

/** L'adresse d'une publication du journal : la question (et la réponse), ou la fiche. */
function postLink(e) {
  if (e.content_kind === 'solution') return `${BASE}/solutions/${e.content_id}`;
  if (!e.question_id) return null;
  return e.content_kind === 'answer'
    ? `${BASE}/questions/${e.question_id}?reponse=${e.content_id}`
    : `${BASE}/questions/${e.question_id}`;
}

/** Les titres des questions et des fiches du journal (une lecture par publication). */
async function titles(entries) {
  const out = new Map();
  const wanted = new Map();
  for (const e of entries) {
    if (e.content_kind === 'solution') wanted.set(e.content_id, `/community/solutions/${e.content_id}`);
    else if (e.question_id) wanted.set(e.question_id, `/community/questions/${e.question_id}`);
  }
  await Promise.all([...wanted].map(async ([id, path]) => {
    try { out.set(id, (await get(path)).title); } catch { /* gone: the entry says so */ }
  }));
  return out;
}

function entryItem(me, e, named) {
  const [act, tone] = ACT[e.action] || ['Décision', ''];
  const key = e.content_kind === 'solution' ? e.content_id : e.question_id;
  const title = named.get(key);
  const what = e.content_kind === 'answer' ? 'Réponse à la question' : e.content_kind === 'solution' ? 'Fiche' : 'Question';
  const href = postLink(e);
  const who = e.actor_user_id === me.user_id ? 'par vous'
    : e.action === 'report' ? 'par un membre de l\'espace' : 'par un modérateur';
  const target = title ? `${what} « ${title} »` : `${what} (supprimée ou introuvable)`;
  return h('li', { class: `entry ${e.action || ''}` },
    h('p', { class: 'marks' }, h('span', { class: `badge ${tone}` }, act), h('span', { class: 'meta' }, `${fmtDate(e.occurred_at)}, ${who}`)),
    h('p', { class: 'target' }, href && title ? h('a', { href }, target) : target),
    e.reason ? h('p', { class: 'reason' }, h('span', { class: 'label' }, 'Motif : '), e.reason) : null);
}

export async function moderationPage(me, params) {
  const title = 'Modération';
  const here = crumbs(['Modération', null]);
  const spaces = (await allSpaces()).filter((s) => s.my_role === 'moderator');
  if (!spaces.length && !operator(me)) {
    return page(title, here, h('p', {}, 'Vous ne modérez aucun espace. Les modérateurs d\'un espace voient ici ses signalements et leurs décisions.'));
  }
  const qs = new URLSearchParams({ page_size: '20' });
  if (params.get('suite')) qs.set('page_token', params.get('suite'));
  const log = await get(`/community/moderation-log?${qs}`);
  const named = await titles(log.items);
  return page(title, here,
    h('p', {}, 'Les signalements des membres et les décisions des modérateurs, les plus récents d\'abord. Ouvrez une publication pour la masquer, la rétablir ou certifier une réponse.'),
    spaces.length ? h('p', { class: 'note' }, `Vous modérez : ${spaces.map((s) => s.name).join(', ')}.`) : null,
    h('section', { 'aria-labelledby': 'c-log' },
      h('h2', { id: 'c-log' }, 'Journal de modération'),
      log.items.length
        ? h('ol', { class: 'cards log', 'aria-label': 'Entrées du journal' }, log.items.map((e) => entryItem(me, e, named)))
        : h('p', {}, params.get('suite') ? 'Plus d\'entrée plus ancienne.' : 'Aucun signalement ni décision pour l\'instant.'),
      more(params, log.next_page_token, 'Entrées plus anciennes')));
}

// ---------------------------------------------------------------------------
// Les membres d'un espace
// ---------------------------------------------------------------------------

/** Qui change les rôles : les modérateurs de l'espace, un opérateur, l'administrateur d'une structure pour son espace privé. */
const managesRoles = (me, space) => space.my_role === 'moderator' || operator(me)
  || (space.kind === 'structure' && adminOf(me).some((s) => s.id === space.structure_id));

/** Le nom d'un membre, « vous » compris. */
function memberName(me, m) {
  const name = m.display_name || 'Nom pas encore connu';
  return m.user_id === me.user_id ? `${name} (vous)` : name;
}

/**
 * « Nommer modérateur » ou « Retirer le rôle de modérateur » pour un membre : une
 * confirmation d'abord, puis le changement ; un refus (le dernier modérateur) est dit à
 * côté du bouton. `done()` redessine.
 */
function roleAction(me, space, m, done) {
  const promote = m.role !== 'moderator';
  const self = m.user_id === me.user_id;
  const name = m.display_name || 'ce membre';
  const label = promote ? 'Nommer modérateur' : 'Retirer le rôle de modérateur';
  const key = `m-${m.user_id}`;
  const error = h('p', { class: 'error', id: `${key}-error`, hidden: true });
  const button = h('button', { type: 'button', class: promote ? '' : 'secondary', 'aria-label': `${label} : ${memberName(me, m)}` }, label);
  const question = promote
    ? `Nommer ${name} modératrice ou modérateur de « ${space.name} » ? Cette personne pourra masquer, rétablir et certifier les publications, et changer les rôles des membres.`
    : self
      ? `Ne plus modérer « ${space.name} » ? Vous resterez membre, sans les outils de modération.`
      : `Retirer à ${name} le rôle de modérateur de « ${space.name} » ? Cette personne restera membre.`;
  const confirm = h('button', { type: 'button' }, 'Confirmer');
  const cancel = h('button', { type: 'button', class: 'secondary' }, 'Annuler');
  const box = h('div', { class: 'confirm', role: 'group', 'aria-labelledby': `${key}-q`, hidden: true },
    h('p', { id: `${key}-q` }, question), h('p', { class: 'actions' }, confirm, cancel));
  const fail = (text) => {
    error.textContent = text;
    error.hidden = false;
    button.setAttribute('aria-describedby', error.id);
    box.hidden = true;
    button.hidden = false;
    button.focus();
  };
  button.addEventListener('click', () => {
    error.hidden = true;
    button.removeAttribute('aria-describedby');
    button.hidden = true;
    box.hidden = false;
    confirm.focus();
  });
  cancel.addEventListener('click', () => {
    box.hidden = true;
    button.hidden = false;
    button.focus();
  });
  confirm.addEventListener('click', async () => {
    confirm.disabled = true;
    try {
      await patch(`/community/spaces/${space.id}/members/${m.user_id}`, { role: promote ? 'moderator' : 'member' });
    } catch (e) {
      confirm.disabled = false;
      if (e.status === 409) {
        fail(self
          ? 'Vous êtes la dernière personne qui modère cet espace : nommez d\'abord un autre membre modérateur, puis retirez votre rôle.'
          : `${name} est la dernière personne qui modère cet espace : nommez d'abord un autre membre modérateur.`);
      } else {
        fail(e.message || 'Le rôle n\'a pas pu être changé.');
      }
      return;
    }
    notice(promote ? `${name} modère maintenant « ${space.name} ».` : self ? `Vous ne modérez plus « ${space.name} ».` : `${name} n'est plus modérateur de « ${space.name} ».`);
    await done();
  });
  return h('div', { class: 'role-action' }, button, box, error);
}

function memberItem(me, space, m, manage, done) {
  const moderator = m.role === 'moderator';
  return h('li', { class: `member${moderator ? ' moderator' : ''}` },
    h('p', { class: 'who' }, h('strong', {}, memberName(me, m)),
      moderator ? h('span', { class: 'badge' }, 'Modération') : null),
    h('p', { class: 'meta' }, [m.structure_name, m.joined_at ? `membre depuis le ${fmtDay(m.joined_at, 'short')}` : null].filter(Boolean).join(' · ')),
    manage ? roleAction(me, space, m, done) : null);
}

/** « Membres » d'un espace : les modérateurs d'abord, puis par nom. */
export async function membersPage(me, id, params) {
  const space = await get(`/community/spaces/${id}`);
  const title = `Membres de « ${space.name} »`;
  const here = crumbs([`Membres de « ${space.name} »`, null]);
  const manage = managesRoles(me, space);
  if (!space.my_role && !manage) {
    return page(title, here, h('p', {}, 'Rejoignez cet espace pour voir qui en fait partie.'), h('p', {}, h('a', { href: BASE }, 'Retour aux espaces')));
  }
  const qs = new URLSearchParams({ page_size: '50' });
  if (params.get('suite')) qs.set('page_token', params.get('suite'));
  const list = await get(`/community/spaces/${id}/members?${qs}`);
  const done = () => membersPage(me, id, params);
  return page(title, here,
    h('p', {}, manage
      ? 'Les modérateurs d\'abord, puis par nom. Vous pouvez nommer d\'autres modérateurs : un espace garde toujours au moins une personne qui le modère.'
      : 'Les modérateurs d\'abord, puis par nom. Les modérateurs masquent, rétablissent et certifient les publications.'),
    h('section', { 'aria-labelledby': 'c-members' },
      h('h2', { id: 'c-members' }, 'Membres'),
      list.items.length
        ? h('ul', { class: 'cards members', 'aria-label': 'Membres de l\'espace' }, list.items.map((m) => memberItem(me, space, m, manage, done)))
        : h('p', {}, 'Personne n\'a encore rejoint cet espace.'),
      more(params, list.next_page_token, 'Membres suivants')));
}
