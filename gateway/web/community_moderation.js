// La communauté, suite : modifier ses propres publications (relues comme à la création),
// signaler une publication, créer un espace (administrateurs de structure, opérateurs), et
// la modération (masquer, rétablir avec un motif ; le journal des signalements et des
// décisions des espaces que l'on modère). Les pages et les outils partagés : community.js.
import { get, patch, post } from './api.js';
import { checkboxes, field, fmtDate, form, h, notice, values } from './dom.js';
import {
  BASE, MAX_TITLE, MIN_TITLE, TERRITORY, allSpaces, checkTitle, crumbs, explainRefusal, invalid,
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
    const fields = [];
    checkTitle(v, fields);
    if (!v.body) fields.push({ field: 'body', message: 'Décrivez la situation : vos collègues ont besoin de contexte pour répondre.' });
    if (v.territory_code && !TERRITORY.test(v.territory_code)) {
      fields.push({ field: 'territory_code', message: 'Code inconnu : 2 ou 3 chiffres pour un département (27), 5 pour une commune (27681).' });
    }
    if (fields.length) throw invalid('Le formulaire est incomplet.', fields);
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
