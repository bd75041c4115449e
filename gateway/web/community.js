// La communauté des conseillers : les espaces (rejoindre, quitter), les questions et leurs
// réponses (votes, réponse acceptée, réponses certifiées, suivre, signaler), poser une
// question (le texte est relu par le serveur : pas de données sur les personnes
// accompagnées), la recherche, et la bibliothèque de fiches solutions (avis « ça a marché »).
// Modifier ses publications, créer un espace et modérer : community_moderation.js ; la
// bibliothèque de fiches solutions : community_solutions.js.
import { domainLabel, get, getReferentiel, post, del } from './api.js';
import { checkboxes, field, fmtDate, form, h, notice, render, showErrors, values } from './dom.js';
import {
  editAnswer, editQuestion, edited, mayCreateSpace, membersPage, moderateBox, moderationPage, newSpace, reportBox,
} from './community_moderation.js';
import { library, publish, solution } from './community_solutions.js';

/** Une page de la communauté : ses styles ne s'appliquent qu'à l'intérieur de `.community`. */
export const page = (title, ...children) => render(title, h('div', { class: 'community' }, children));

export const BASE = '#/communaute';
const KIND = { territory: 'Territoire', theme: 'Thème', structure: 'Ma structure' };
const HIT = { question: 'Question', answer: 'Réponse', solution: 'Fiche solution' };
const FOUND = {
  email: 'une adresse e-mail',
  phone: 'un numéro de téléphone',
  nir: 'un numéro de sécurité sociale',
  person_name: 'le nom d\'une personne que votre structure accompagne',
};
/** Le début de chaque message de la relecture (pour l'effacer quand le texte est corrigé). */
const SCREENED = 'Ce texte contient';
export const MIN_TITLE = 5;
export const MAX_TITLE = 200;
/** Un code de département (27, 2A), de commune (27681) ou d'EPCI (9 chiffres). */
export const TERRITORY = /^(\d{2,3}|2[AB]|\d{5}|2[AB]\d{3}|\d{9})$/i;

export async function route(me, parts, params) {
  const [, a, b] = parts;
  if (!a) return home(me, params);
  if (a === 'questions' && b === 'nouvelle') return ask(me, params);
  if (a === 'questions' && b) return question(me, b, params);
  if (a === 'espaces' && b === 'nouveau') return newSpace(me, await getReferentiel());
  if (a === 'espaces' && b && parts[3] === 'membres') return membersPage(me, b, params);
  if (a === 'moderation') return moderationPage(me, params);
  if (a === 'questions') return home(me, params);
  if (a === 'recherche') return search(me, params);
  if (a === 'solutions' && b === 'nouvelle') return publish(me);
  if (a === 'solutions' && b) return solution(me, b);
  if (a === 'solutions') return library(me, params);
  location.replace(BASE);
  return undefined;
}

// ---------------------------------------------------------------------------
// Petits outils
// ---------------------------------------------------------------------------

/** « Votre question », « Question d'une ou un collègue » : les noms ne sont pas montrés. */
export const byWho = (me, userId, mine, other) => {
  if (!userId) return `${other} (compte supprimé)`;
  return userId === me.user_id ? mine : `${other} d'une ou un collègue`;
};

/** Le fil d'Ariane de la communauté. */
export function crumbs(...items) {
  const all = [['Communauté', BASE], ...items];
  return h('nav', { class: 'crumbs', 'aria-label': 'Fil d\'Ariane' },
    h('ol', {}, all.map(([label, href], i) => h('li', {},
      i === all.length - 1 && !href ? h('span', { 'aria-current': 'page' }, label) : h('a', { href }, label)))));
}

/** Un texte long, paragraphes gardés (CSS pre-line, pas de HTML). */
export const prose = (text) => h('div', { class: 'prose' }, text);

export function tags(ref, domains) {
  if (!domains?.length) return null;
  return h('ul', { class: 'tags', 'aria-label': 'Domaines' }, domains.map((d) => h('li', {}, domainLabel(ref, d))));
}

/** Sans accents, en minuscules : pour retrouver les mots cherchés dans un extrait. */
const fold = (s) => s.normalize('NFD').replace(/[\u0300-\u036f]/g, '').toLowerCase();

/**
 * L'extrait, avec les mots cherchés en <mark> : l'API rend un extrait en texte brut autour
 * du premier mot trouvé ; on y repère les mots de la recherche (accents et pluriels à part).
 */
function highlight(text, q) {
  const stems = fold(q).split(/[^a-z0-9]+/).filter((w) => w.length >= 3)
    .map((w) => w.replace(/(aux|eaux|s|x|e|es)$/, '')).filter((w) => w.length >= 2);
  if (!stems.length) return [text];
  const out = [];
  for (const piece of text.split(/(\s+)/)) {
    const word = fold(piece).replace(/[^a-z0-9]/g, '');
    out.push(word && stems.some((s) => word.startsWith(s)) ? h('mark', {}, piece) : piece);
  }
  return out;
}

/** Les caractères [start, end[ d'un texte (positions en caractères Unicode). */
const chars = (text, start, end) => Array.from(text).slice(start, end).join('');

/** Ce que la relecture a trouvé dans un champ, en mots simples, avec quoi retirer. */
function explain(findings, text) {
  const what = [];
  for (const f of findings) {
    const label = FOUND[f.kind] || 'une donnée personnelle';
    const piece = text ? chars(text, f.start, f.end) : '';
    const part = piece ? `${label} (« ${piece} »)` : label;
    if (!what.includes(part)) what.push(part);
  }
  return `${SCREENED} ${what.join(', ')}. Retirez-le, ou remplacez-le par des mots neutres comme « la personne » : on ne publie rien qui permette de reconnaître une personne accompagnée. Le reste de votre texte est gardé.`;
}

/** Relit `texts` ({ title, body }) sans rien publier : les trouvailles par champ. */
async function screen(texts) {
  const r = await post('/community/screen', { fields: { title: texts.title || '', body: texts.body || '' } });
  const by = {};
  for (const f of r.findings || []) (by[f.field] ||= []).push(f);
  return by;
}

/**
 * Un refus de la relecture (409 avec `errors`) : chaque champ reçoit une explication qui
 * dit quoi retirer. Les autres erreurs passent telles quelles.
 */
export async function explainRefusal(err, texts) {
  if (err.status !== 409 || !err.fields?.length) throw err;
  let found = {};
  try { found = await screen(texts); } catch { found = {}; }
  err.fields = err.fields.map(({ field: name, message }) => {
    const f = found[name];
    if (f?.length) return { field: name, message: explain(f, texts[name]) };
    // Sans la relecture détaillée : le message du serveur, en phrase complète.
    const said = String(message).replace(/^contient /, '');
    return { field: name, message: `${SCREENED} ${said.replace(/ : anonymisez.*$/, '')}. Retirez-le avant de publier ; le reste de votre texte est gardé.` };
  });
  err.message = 'Votre texte n\'a pas été publié : il semble contenir des données personnelles d\'une personne accompagnée.';
  throw err;
}

/**
 * Relecture pendant la frappe (au repos depuis 0,8 s) : le message s'affiche à côté du champ
 * concerné et s'efface quand le texte est corrigé. Facultative : si elle échoue, rien ne bloque.
 */
export function screenWhileTyping(f, names) {
  let timer = null;
  let asked = 0;
  const run = async () => {
    const mine = ++asked;
    const texts = {};
    for (const n of names) texts[n] = f.elements[n]?.value || '';
    if (!names.some((n) => texts[n].trim())) return;
    let found;
    try { found = await screen(texts); } catch { return; }
    if (mine !== asked) return;
    for (const n of names) {
      const wrap = f.querySelector(`[data-field="${n}"]`);
      const err = wrap?.querySelector('.error');
      const input = f.elements[n];
      if (!err || !input) continue;
      if (found[n]?.length) {
        err.textContent = explain(found[n], texts[n]);
        input.setAttribute('aria-invalid', 'true');
      } else if (err.textContent.startsWith(SCREENED)) {
        // Only the relecture's own message goes away; « donnez un titre » stays until sent.
        err.textContent = '';
        input.removeAttribute('aria-invalid');
      }
    }
  };
  for (const n of names) {
    const wrap = f.querySelector(`[data-field="${n}"]`);
    wrap?.querySelector('.error')?.setAttribute('aria-live', 'polite');
    f.elements[n]?.addEventListener('input', () => {
      clearTimeout(timer);
      timer = setTimeout(run, 800);
    });
  }
  f.addEventListener('submit', () => { clearTimeout(timer); asked++; }, true);
}

/** Une erreur de formulaire montrée à côté des champs. */
export const invalid = (message, fields) => Object.assign(new Error(message), { fields });

export function checkTitle(v, fields) {
  const n = Array.from(v.title || '').length;
  if (!n) fields.push({ field: 'title', message: 'Donnez un titre : la question ou la solution en une phrase.' });
  else if (n < MIN_TITLE) fields.push({ field: 'title', message: `Le titre est trop court : au moins ${MIN_TITLE} caractères.` });
  else if (n > MAX_TITLE) fields.push({ field: 'title', message: `Le titre est trop long : ${MAX_TITLE} caractères au plus (il en a ${n}).` });
}

/** A question as asked or edited: title, details, territory; what is wrong said by field. */
export function checkQuestion(v) {
  const fields = [];
  checkTitle(v, fields);
  if (!v.body) fields.push({ field: 'body', message: 'Décrivez la situation : vos collègues ont besoin de contexte pour répondre.' });
  if (v.territory_code && !TERRITORY.test(v.territory_code)) {
    fields.push({ field: 'territory_code', message: 'Code inconnu : 2 ou 3 chiffres pour un département (27), 5 pour une commune (27681).' });
  }
  if (fields.length) throw invalid('Le formulaire est incomplet.', fields);
}

/** Un bouton qui agit, se désactive pendant l'appel et dit l'erreur dans la zone de message. */
export function action(label, run, attrs = {}) {
  const b = h('button', { type: 'button', ...attrs }, label);
  b.addEventListener('click', async () => {
    b.disabled = true;
    try {
      await run(b);
    } catch (e) {
      notice(e.message || 'Une erreur est survenue.', 'error');
    } finally {
      if (b.isConnected) b.disabled = false;
    }
  });
  return b;
}

export async function allSpaces() {
  return (await get('/community/spaces?page_size=200')).items;
}

// ---------------------------------------------------------------------------
// Accueil
// ---------------------------------------------------------------------------

const TABS = [
  ['recentes', 'Dernières questions', ''],
  ['sans-reponse', 'Sans réponse', '&unanswered=true'],
  ['suivies', 'Que je suis', '&followed=true'],
];

const KINDS = [['', 'Tout'], ['question', 'Questions'], ['answer', 'Réponses'], ['solution', 'Fiches solutions']];

/** La recherche ; sur la page de recherche (`kind` donné), aussi le choix du type de contenu. */
function searchForm(q = '', kind) {
  const input = field('Chercher dans les questions, les réponses et les fiches', 'q', {
    type: 'search', value: q, help: 'Des mots, par exemple : permis RSA, garde d\'enfants.',
  });
  const type = kind === undefined ? null : field('Type de contenu', 'type', { options: KINDS, value: kind });
  const f = form('Chercher dans la communauté', [input.wrap, type?.wrap], 'Chercher', async (fm) => {
    const v = values(fm);
    if (Array.from(v.q || '').length < 2) throw invalid('Rien à chercher.', [{ field: 'q', message: 'Écrivez au moins un mot de deux lettres.' }]);
    location.hash = `${BASE}/recherche?q=${encodeURIComponent(v.q)}${v.type ? `&type=${v.type}` : ''}`;
  });
  f.setAttribute('role', 'search');
  f.classList.add('search');
  return f;
}

/** « Suite » : la page suivante d'une liste, par l'adresse (le jeton de l'API dans `suite`). */
export function more(params, token, label) {
  if (!token) return null;
  const p = new URLSearchParams(params);
  p.set('suite', token);
  const path = location.hash.split('?')[0];
  return h('p', { class: 'more' }, h('a', { href: `${path}?${p}` }, label));
}

// ---------------------------------------------------------------------------
// Le point du mois (qualité de vie au travail, anonyme)
// ---------------------------------------------------------------------------

const CHECKIN = [
  ['workload', 'Ma charge de travail ce mois-ci', ['Légère', 'Raisonnable', 'Soutenue', 'Lourde', 'Débordante']],
  ['isolation', 'Je me suis senti(e) seul(e) face aux situations', ['Jamais', 'Rarement', 'Parfois', 'Souvent', 'Tout le temps']],
  ['support', 'Le soutien de mes collègues et de mon équipe', ['Aucun', 'Faible', 'Moyen', 'Bon', 'Très bon']],
];

/** Un groupe de 5 boutons radio, de 1 à 5, avec sa place pour l'erreur. */
function scale(name, legend, labels) {
  const err = `c-${name}-err`;
  return h('fieldset', { class: 'field scale', 'data-field': name, 'aria-describedby': err },
    h('legend', {}, legend),
    h('div', { class: 'scale-choices' }, labels.map((label, i) => {
      const id = `c-${name}-${i + 1}`;
      return h('div', { class: 'check' },
        h('input', { type: 'radio', id, name, value: String(i + 1) }),
        h('label', { for: id }, `${i + 1} — ${label}`));
    })),
    h('p', { class: 'error', id: err }));
}

function checkin() {
  const box = h('details', { class: 'checkin' },
    h('summary', {}, 'Le point du mois : comment allez-vous ? (anonyme)'));
  const f = form('Le point du mois', [
    h('p', { class: 'help' }, 'Trois questions, une fois par mois. Vos réponses partent sans votre nom ni celui de votre structure : seules des moyennes par département sont publiées, pour améliorer les conditions de travail des conseillers.'),
    CHECKIN.map(([name, legend, labels]) => scale(name, legend, labels)),
  ], 'Envoyer mes réponses', async (fm) => {
    const v = values(fm);
    const missing = CHECKIN.filter(([name]) => !v[name])
      .map(([name]) => ({ field: name, message: 'Choisissez une réponse de 1 à 5.' }));
    if (missing.length) throw invalid('Il manque des réponses.', missing);
    let r;
    try {
      r = await post('/community/checkins', { workload: Number(v.workload), isolation: Number(v.isolation), support: Number(v.support) });
    } catch (e) {
      if (e.status === 409) e.message = 'Vous avez déjà répondu ce mois-ci : rendez-vous le mois prochain.';
      throw e;
    }
    const [y, m] = String(r.month || '').split('-');
    const month = y && m ? new Date(Number(y), Number(m) - 1, 1).toLocaleDateString('fr-FR', { month: 'long', year: 'numeric' }) : 'ce mois-ci';
    fm.replaceWith(h('p', { class: 'done' }, `Merci : vos réponses pour ${month} sont enregistrées, sans votre nom.`));
    notice('Merci : vos réponses anonymes sont enregistrées.');
  });
  box.append(f);
  return box;
}

async function home(me, params) {
  const tab = TABS.find(([k]) => k === params.get('vue')) || TABS[0];
  const [ref, spaces, questions, sheets] = await Promise.all([
    getReferentiel(), allSpaces(),
    get(`/community/questions?page_size=20${tab[2]}${params.get('suite') ? `&page_token=${encodeURIComponent(params.get('suite'))}` : ''}`),
    get('/community/solutions?page_size=3'),
  ]);
  const spaceName = (id) => spaces.find((s) => s.id === id)?.name || 'un espace';
  const mine = spaces.filter((s) => s.my_role);
  const others = spaces.filter((s) => !s.my_role);
  const moderates = mine.some((s) => s.my_role === 'moderator');

  const spaceItem = (s) => h('li', { class: 'space' },
    h('div', {},
      h('strong', {}, s.name),
      ' ', h('span', { class: 'kind' }, KIND[s.kind] || ''),
      s.my_role === 'moderator' ? h('span', { class: 'badge' }, 'Vous modérez') : null,
      s.description ? h('p', { class: 'note' }, s.description) : null,
      s.my_role ? h('p', { class: 'links' }, h('a', { href: `${BASE}/espaces/${s.id}/membres`, 'aria-label': `Membres de l'espace ${s.name}` }, 'Membres')) : null),
    s.my_role
      ? action(`Quitter l'espace ${s.name}`, async () => {
        await post(`/community/spaces/${s.id}/leave`);
        notice(`Vous avez quitté l'espace « ${s.name} ».`);
        await home(me, params);
      }, { class: 'secondary' })
      : action(`Rejoindre l'espace ${s.name}`, async () => {
        await post(`/community/spaces/${s.id}/join`);
        notice(`Vous avez rejoint l'espace « ${s.name} ».`);
        await home(me, params);
      }));

  const questionItem = (q) => h('li', { class: 'question-card' },
    h('h3', {}, h('a', { href: `${BASE}/questions/${q.id}` }, q.title)),
    h('p', { class: 'meta' },
      `${spaceName(q.space_id)} · ${fmtDate(q.created_at)} · `,
      q.answer_count === 0
        ? h('span', { class: 'badge open' }, 'Sans réponse')
        : `${q.answer_count} réponse${q.answer_count > 1 ? 's' : ''}`,
      q.accepted_answer_id ? h('span', { class: 'badge ok' }, 'Résolue') : null,
      q.followed ? h('span', { class: 'badge' }, 'Suivie') : null,
      q.status === 'hidden' ? h('span', { class: 'badge hidden' }, 'Masquée par la modération') : null),
    tags(ref, q.domains));

  page('Communauté',
    h('p', { class: 'lead' }, 'Entre conseillers : posez vos questions, partagez ce qui a marché, retrouvez les solutions de vos collègues. Ne publiez jamais ce qui permettrait de reconnaître une personne accompagnée.'),
    h('p', { class: 'actions' },
      h('a', { class: 'button', href: `${BASE}/questions/nouvelle` }, 'Poser une question'),
      h('a', { class: 'button secondary', href: `${BASE}/solutions` }, 'Bibliothèque de solutions'),
      moderates ? h('a', { class: 'button secondary', href: `${BASE}/moderation` }, 'Modération') : null),
    searchForm(),
    h('section', { 'aria-labelledby': 'c-questions' },
      h('h2', { id: 'c-questions' }, 'Questions'),
      h('nav', { class: 'tabs', 'aria-label': 'Quelles questions montrer' },
        h('ul', {}, TABS.map(([k, label]) => h('li', {},
          h('a', { href: `${BASE}?vue=${k}`, 'aria-current': k === tab[0] ? 'page' : null }, label))))),
      questions.items.length
        ? [h('ul', { class: 'cards questions', 'aria-label': tab[1] }, questions.items.map(questionItem)),
          more(params, questions.next_page_token, 'Questions plus anciennes')]
        : h('p', {}, tab[0] === 'suivies' ? 'Vous ne suivez aucune question.' : tab[0] === 'sans-reponse' ? 'Toutes les questions ont au moins une réponse.' : 'Aucune question pour l\'instant dans vos espaces.')),
    h('section', { 'aria-labelledby': 'c-spaces' },
      h('h2', { id: 'c-spaces' }, 'Mes espaces'),
      mine.length
        ? h('ul', { class: 'cards spaces' }, mine.map(spaceItem))
        : h('p', {}, 'Vous n\'êtes membre d\'aucun espace : rejoignez-en un pour y poser des questions.'),
      others.length ? h('h3', {}, 'Autres espaces') : null,
      others.length ? h('ul', { class: 'cards spaces' }, others.map(spaceItem)) : null,
      mayCreateSpace(me) ? h('p', { class: 'actions' }, h('a', { class: 'button secondary', href: `${BASE}/espaces/nouveau` }, 'Créer un espace')) : null),
    h('section', { 'aria-labelledby': 'c-solutions' },
      h('h2', { id: 'c-solutions' }, 'Solutions les plus utiles'),
      sheets.items.length
        ? h('ul', { class: 'cards' }, sheets.items.map((s) => h('li', {},
          h('a', { href: `${BASE}/solutions/${s.id}` }, s.title), ' ',
          h('span', { class: 'note' }, `— a marché ${s.worked_count} fois`))))
        : h('p', {}, 'Aucune fiche pour l\'instant.'),
      h('p', {}, h('a', { href: `${BASE}/solutions` }, 'Toute la bibliothèque de solutions'))),
    h('section', { 'aria-labelledby': 'c-checkin' },
      h('h2', { id: 'c-checkin' }, 'Et vous, comment ça va ?'),
      checkin()));
}

// ---------------------------------------------------------------------------
// Une question
// ---------------------------------------------------------------------------

async function question(me, id, params) {
  const [ref, q, answers, spaces] = await Promise.all([
    getReferentiel(), get(`/community/questions/${id}`),
    get(`/community/questions/${id}/answers?page_size=200`), allSpaces(),
  ]);
  const space = spaces.find((s) => s.id === q.space_id);
  const moderator = space?.my_role === 'moderator';
  const member = Boolean(space?.my_role);
  const asker = q.author_user_id === me.user_id;
  const list = h('ol', { class: 'answers', 'aria-label': 'Réponses' });
  const count = h('h2', { id: 'c-answers' });
  const hint = h('p', { class: 'note hint' });

  const follow = () => action(q.followed ? 'Ne plus suivre cette question' : 'Suivre cette question', async () => {
    const nq = q.followed ? await del(`/community/questions/${id}/follow`) : await post(`/community/questions/${id}/follow`);
    q.followed = nq.followed;
    notice(q.followed ? 'Vous suivez cette question : vous serez prévenu(e) des nouvelles réponses.' : 'Vous ne suivez plus cette question.');
    const b = follow();
    followSlot.replaceChildren(b);
    b.focus();
  }, { class: 'secondary' });
  const followSlot = h('p', { class: 'follow' }, follow());

  /** Redessine les réponses ; `focusId` : la réponse qui garde le focus. */
  function drawAnswers(items, focusId) {
    const n = items.length;
    count.textContent = n ? `${n} réponse${n > 1 ? 's' : ''}` : 'Pas encore de réponse';
    hint.textContent = asker && items.some((a) => a.status !== 'hidden') && !q.accepted_answer_id
      ? 'Une réponse vous a aidé ? Acceptez-la : vos collègues sauront qu\'elle a marché.' : '';
    list.replaceChildren(...items.map((a) => {
      const marks = [
        a.accepted ? h('span', { class: 'badge ok' }, '✓ Réponse acceptée par l\'auteur de la question') : null,
        a.certified ? h('span', { class: 'badge certified' }, 'Réponse certifiée par la modération') : null,
        a.status === 'hidden' ? h('span', { class: 'badge hidden' }, 'Masquée par la modération') : null,
      ];
      const votes = h('p', { class: 'votes' }, `${a.vote_count} vote${a.vote_count > 1 ? 's' : ''}`, a.voted ? ' — dont le vôtre' : '');
      const mineAnswer = a.author_user_id === me.user_id;
      // A hidden answer is shown to its author and the moderators only: no vote, no choice.
      const shown = a.status !== 'hidden';
      const buttons = [
        shown && !a.voted && !mineAnswer ? action('Cette réponse m\'aide (voter)', async () => {
          try {
            await post(`/community/answers/${a.id}/votes`);
          } catch (e) {
            if (e.status === 409) e.message = 'Vous avez déjà voté pour cette réponse.';
            throw e;
          }
          notice('Merci : votre vote est compté.');
          await reload(a.id);
        }, { class: 'secondary', 'aria-describedby': `a-${a.id}-by` }) : null,
        shown && asker && !a.accepted ? action('Accepter cette réponse', async () => {
          await post(`/community/answers/${a.id}/accept`);
          notice('Réponse acceptée : la question est marquée résolue.');
          await reload(a.id);
        }, { 'aria-describedby': `a-${a.id}-by` }) : null,
        moderator ? action(a.certified ? 'Retirer la certification' : 'Certifier cette réponse', async () => {
          await post(`/community/answers/${a.id}/certify`, { certified: !a.certified });
          notice(a.certified ? 'La certification est retirée.' : 'La réponse est certifiée.');
          await reload(a.id);
        }, { class: 'secondary', 'aria-describedby': `a-${a.id}-by` }) : null,
      ];
      return h('li', { class: `answer${a.accepted ? ' accepted' : ''}${a.certified ? ' certified' : ''}${a.status === 'hidden' ? ' hidden-post' : ''}`, id: `a-${a.id}`, tabindex: '-1' },
        h('p', { class: 'meta', id: `a-${a.id}-by` }, `${byWho(me, a.author_user_id, 'Votre réponse', 'Réponse')}, ${fmtDate(a.created_at)}`, edited(a)),
        h('p', { class: 'marks' }, marks),
        prose(a.body),
        votes,
        h('div', { class: 'answer-actions' }, buttons),
        mineAnswer ? editAnswer(a, () => reload(a.id)) : null,
        moderator ? moderateBox('answer', a, () => reload(a.id)) : null,
        mineAnswer || moderator ? null : reportBox('answer', a.id, 'cette réponse'));
    }));
    if (focusId) document.getElementById(`a-${focusId}`)?.focus();
  }

  async function reload(focusId) {
    const [nq, r] = await Promise.all([get(`/community/questions/${id}`), get(`/community/questions/${id}/answers?page_size=200`)]);
    Object.assign(q, nq);
    status.replaceChildren(...questionStatus().filter(Boolean));
    drawAnswers(r.items, focusId);
  }

  const questionStatus = () => [
    q.accepted_answer_id ? h('span', { class: 'badge ok' }, 'Résolue') : h('span', { class: 'badge open' }, q.answer_count ? 'En attente d\'une réponse acceptée' : 'Sans réponse'),
    q.status === 'hidden' ? h('span', { class: 'badge hidden' }, 'Masquée par la modération') : null,
  ];
  const status = h('p', { class: 'marks' }, questionStatus());

  const body = field('Votre réponse', 'body', {
    multiline: true, required: true,
    help: 'Partagez ce que vous savez : dispositif, contact, démarche. Sans nom, téléphone, e-mail ni numéro de sécurité sociale d\'une personne accompagnée.',
  });
  body.input.rows = 6;
  const answerForm = member && q.status !== 'hidden'
    ? form('Répondre à la question', [body.wrap], 'Publier ma réponse', async (f) => {
      const v = values(f);
      if (!v.body) throw invalid('La réponse est vide.', [{ field: 'body', message: 'Écrivez votre réponse avant de la publier.' }]);
      let a;
      try {
        a = await post(`/community/questions/${id}/answers`, { body: v.body });
      } catch (e) {
        await explainRefusal(e, { body: v.body });
      }
      f.reset();
      notice('Votre réponse est publiée.');
      await reload(a.id);
    })
    : h('p', {}, space ? `Rejoignez l'espace « ${space.name} » pour répondre.` : 'Vous ne pouvez pas répondre dans cet espace.');
  if (answerForm.tagName === 'FORM') screenWhileTyping(answerForm, ['body']);

  page(q.title,
    crumbs(['Question', null]),
    h('article', { class: `question${q.status === 'hidden' ? ' hidden-post' : ''}`, 'aria-labelledby': 'c-q-meta' },
      h('p', { class: 'meta', id: 'c-q-meta' }, `${byWho(me, q.author_user_id, 'Votre question', 'Question')}, dans l'espace « ${space?.name || '—'} », ${fmtDate(q.created_at)}`, edited(q)),
      status,
      tags(ref, q.domains),
      prose(q.body),
      followSlot,
      asker ? editQuestion(q, ref, () => question(me, id)) : null,
      moderator ? moderateBox('question', q, () => question(me, id)) : null,
      asker || moderator ? null : reportBox('question', q.id, 'cette question')),
    h('section', { 'aria-labelledby': 'c-answers' },
      count,
      hint,
      list),
    h('section', { 'aria-labelledby': 'c-reply' },
      h('h2', { id: 'c-reply' }, 'Répondre'),
      answerForm));
  // From the moderation log: the answer named in the address gets the focus.
  const shown = params?.get('reponse');
  drawAnswers(answers.items, answers.items.some((a) => a.id === shown) ? shown : undefined);
}

// ---------------------------------------------------------------------------
// Poser une question
// ---------------------------------------------------------------------------

async function ask(me, params) {
  const [ref, spaces] = await Promise.all([getReferentiel(), allSpaces()]);
  const mine = spaces.filter((s) => s.my_role);
  if (!mine.length) {
    return page('Poser une question', crumbs(['Poser une question', null]),
      h('p', {}, 'Pour poser une question, rejoignez d\'abord un espace (votre territoire ou un thème).'),
      h('p', {}, h('a', { href: BASE }, 'Choisir un espace')));
  }
  const space = field('Espace', 'space_id', {
    required: true, value: params.get('espace') || mine[0].id,
    options: mine.map((s) => [s.id, `${s.name} (${(KIND[s.kind] || '').toLowerCase()})`]),
    help: 'Les membres de cet espace verront votre question.',
  });
  const title = field('Titre de la question', 'title', {
    required: true, autocomplete: 'off',
    help: `Votre question en une phrase (${MIN_TITLE} à ${MAX_TITLE} caractères).`,
  });
  const body = field('Détails', 'body', {
    multiline: true, required: true,
    help: 'La situation, sans rien qui permette de reconnaître la personne : pas de nom, de téléphone, d\'e-mail ni de numéro de sécurité sociale. Écrivez « la personne », « un homme de 45 ans »…',
  });
  body.input.rows = 8;
  const domains = checkboxes('Domaines concernés', 'domains', ref.domains.map((d) => [d.id, d.label_fr]), {
    help: 'Facultatif : aide vos collègues à trouver la question.',
  });
  const territory = field('Territoire', 'territory_code', {
    autocomplete: 'off', help: 'Facultatif : code du département (27) ou de la commune (27681).',
  });
  const f = form('Poser une question', [space.wrap, title.wrap, body.wrap, domains, territory.wrap], 'Publier la question', async (fm) => {
    const v = values(fm, ['domains']);
    checkQuestion(v);
    const payload = { space_id: v.space_id, title: v.title, body: v.body, domains: v.domains };
    if (v.territory_code) payload.territory_code = v.territory_code;
    let q;
    try {
      q = await post('/community/questions', payload);
    } catch (e) {
      await explainRefusal(e, { title: v.title, body: v.body });
    }
    notice('Votre question est publiée. Vous serez prévenu(e) des réponses.');
    location.hash = `${BASE}/questions/${q.id}`;
  });
  screenWhileTyping(f, ['title', 'body']);
  return page('Poser une question', crumbs(['Poser une question', null]),
    h('p', {}, 'Vos collègues des autres structures vous répondent. Le texte est relu avant publication : ce qui ressemble à des données personnelles d\'une personne accompagnée est refusé.'),
    f);
}

// ---------------------------------------------------------------------------
// Recherche
// ---------------------------------------------------------------------------

async function search(me, params) {
  const q = (params.get('q') || '').trim();
  const kind = KINDS.some(([k]) => k === params.get('type')) ? params.get('type') : '';
  const f = searchForm(q, kind);
  if (!q) return page('Chercher dans la communauté', crumbs(['Recherche', null]), f);
  let hits;
  let next;
  try {
    const qs = new URLSearchParams({ q, page_size: '30' });
    if (kind) qs.set('kind', kind);
    if (params.get('suite')) qs.set('page_token', params.get('suite'));
    ({ items: hits, next_page_token: next } = await get(`/community/search?${qs}`));
  } catch (e) {
    if (e.status !== 400) throw e;
    page('Chercher dans la communauté', crumbs(['Recherche', null]), f);
    showErrors(f, { message: e.message, fields: [{ field: 'q', message: e.fields[0]?.message ? `${e.fields[0].message} : précisez votre recherche.` : 'Précisez votre recherche : au moins un mot de deux lettres.' }] });
    return undefined;
  }
  const link = (hit) => (hit.content?.kind === 'solution'
    ? `${BASE}/solutions/${hit.content.content_id}`
    : `${BASE}/questions/${hit.question_id || hit.content?.content_id}`);
  return page('Chercher dans la communauté', crumbs(['Recherche', null]), f,
    h('section', { 'aria-labelledby': 'c-hits' },
      h('h2', { id: 'c-hits' }, !hits.length ? `Aucun résultat pour « ${q} »` : next || params.get('suite') ? `Résultats pour « ${q} »` : `${hits.length} résultat${hits.length > 1 ? 's' : ''} pour « ${q} »`),
      hits.length
        ? h('ol', { class: 'cards hits' }, hits.map((hit) => h('li', {},
          h('p', { class: 'kind' }, HIT[hit.content?.kind] || 'Contenu'),
          h('h3', {}, h('a', { href: link(hit) }, highlight(hit.title, q))),
          h('p', { class: 'snippet' }, highlight(hit.snippet, q)))))
        : h('p', {}, 'Essayez d\'autres mots, ou ', h('a', { href: `${BASE}/questions/nouvelle` }, 'posez la question à vos collègues'), '.'),
      more(params, next, 'Résultats suivants')));
}
