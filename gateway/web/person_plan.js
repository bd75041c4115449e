// « Mes démarches » (`#/mon-espace/demarches[/{diagnostic}]`): the person's action plan,
// said to her. The objectives agreed with her counselor, domain by domain; each action
// with what it is, for when (« en retard » when past and not done, against today in the
// browser) and who does it; what is next first, what is done after, marked. She is the
// actor of her path: on each open action of an objective in progress she says « C'est
// fait » (or « J'ai commencé »), and takes a done one back the same day (« Finalement, pas
// encore », on the ones she marked in this visit); UpdateAction lets her change the status
// only, her counselor sees it. Titles, dates and who does it stay with the counselor.
// Also the « Prochaine démarche » card of her home page (`nextStep`).
import { ApiError, domainLabel, get, getReferentiel, getStructures, patch } from './api.js';
import { h, notice, render } from './dom.js';

const HOME = '#/mon-espace';
const PAGE = `${HOME}/demarches`;

/** Where an action is, said to the person (the counselor's plan says Prévue, En cours, Faite, Annulée). */
const ACTION_WORDS = { prevue: 'À faire', en_cours: 'En cours', realisee: 'Faite', annulee: 'Annulée' };
const OPEN = ['prevue', 'en_cours'];
const isOpen = (a) => OPEN.includes(a.status);

/** Today, `YYYY-MM-DD`, in the browser's time. */
function today() {
  const d = new Date();
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
}

/** `2026-03-12` → « 12 mars » (« 1er », and the year when it is not this one). */
function dayWords(s) {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(s || '');
  if (!m) return s || '';
  const d = new Date(Number(m[1]), Number(m[2]) - 1, Number(m[3]));
  const style = { day: 'numeric', month: 'long' };
  if (d.getFullYear() !== new Date().getFullYear()) style.year = 'numeric';
  return d.toLocaleDateString('fr-FR', style).replace(/^1 /, '1er ');
}

/** `2026-03-12` or a moment → « 12 mars 2026 ». */
function longDay(s) {
  const only = /^(\d{4})-(\d{2})-(\d{2})$/.exec(s || '');
  const d = only ? new Date(Number(only[1]), Number(only[2]) - 1, Number(only[3])) : new Date(s);
  if (Number.isNaN(d.getTime())) return s || '';
  return d.toLocaleDateString('fr-FR', { dateStyle: 'long' }).replace(/^1 /, '1er ');
}

/** The actions she marked done in this visit, with their status before: she may take them back. */
const markedByHer = new Map();

/** Why her change did not go through, in plain words. */
function failure(e) {
  if (!(e instanceof ApiError)) return 'La connexion a été perdue : votre changement n\'est pas noté. Réessayez dans un moment.';
  if (e.status === 409) return 'Cette démarche a changé entre-temps : rechargez la page pour voir où elle en est.';
  if (e.status === 404) return 'Cette démarche n\'est plus dans votre plan : rechargez la page.';
  if (e.status === 403) return 'Vous ne pouvez pas changer cette démarche : voyez-le avec votre conseiller.';
  return 'Votre changement n\'a pas pu être noté. Réessayez dans un moment.';
}

/** What the live region says once her change is noted. */
const NOTED = {
  realisee: (t) => `C'est noté : « ${t} » est faite. Votre conseiller le verra.`,
  en_cours: (t) => `C'est noté : « ${t} » est commencée. Votre conseiller le verra.`,
  back: (t) => `C'est noté : « ${t} » n'est pas encore faite. Votre conseiller le verra.`,
};

/**
 * Her buttons on one action: « C'est fait » and « J'ai commencé » while it is open, « Finalement,
 * pas encore » on a done one she marked; an error said next to them. `redraw()` draws the page
 * again once the server has it.
 */
function herButtons(a, redraw) {
  const choices = [];
  if (isOpen(a)) {
    choices.push(['realisee', 'C\'est fait']);
    if (a.status === 'prevue') choices.push(['en_cours', 'J\'ai commencé']);
  } else if (a.status === 'realisee' && markedByHer.has(a.id)) {
    choices.push([markedByHer.get(a.id), 'Finalement, pas encore']);
  }
  if (!choices.length) return null;
  const errId = `my-act-err-${a.id}`;
  const err = h('p', { class: 'error', id: errId, 'aria-live': 'polite' });
  const buttons = choices.map(([status, label]) => h('button', {
    type: 'button', class: status === 'realisee' ? null : 'secondary', 'aria-describedby': `my-act-${a.id} ${errId}`,
    onclick: async (ev) => {
      const all = ev.currentTarget.parentElement.querySelectorAll('button');
      all.forEach((b) => { b.disabled = true; });
      err.textContent = '';
      try {
        await patch(`/plan/actions/${a.id}`, { status });
      } catch (e) {
        all.forEach((b) => { b.disabled = false; });
        err.textContent = failure(e);
        return;
      }
      const back = a.status === 'realisee';
      if (status === 'realisee') markedByHer.set(a.id, a.status);
      else markedByHer.delete(a.id);
      await redraw(a.id, NOTED[back ? 'back' : status](a.title));
    },
  }, label));
  return h('div', { class: 'my-action-buttons' }, h('div', { class: 'buttons' }, buttons), err);
}

const late = (a, now) => isOpen(a) && Boolean(a.planned_date) && a.planned_date < now;

/** For when, in words: « à faire avant le 12 mars », « c'était prévu pour le 2 mars », « faite le 3 mars ». */
function timing(a, now) {
  if (a.status === 'realisee') return a.end_date ? `faite le ${dayWords(a.end_date)}` : 'faite';
  if (a.status === 'annulee') return a.end_date ? `annulée le ${dayWords(a.end_date)}, elle n'est plus à faire` : 'elle n\'est plus à faire';
  if (!a.planned_date) return 'pas encore de date';
  if (a.planned_date < now) return `c'était à faire avant le ${dayWords(a.planned_date)}`;
  if (a.planned_date === now) return 'à faire aujourd\'hui';
  return `à faire avant le ${dayWords(a.planned_date)}`;
}

/** Open ones first by date (the undated after), then the done ones (newest first), then the cancelled. */
function byNext(a, b) {
  const rank = (x) => (isOpen(x) ? 0 : x.status === 'realisee' ? 1 : 2);
  if (rank(a) !== rank(b)) return rank(a) - rank(b);
  if (rank(a) === 0) return (a.planned_date || '9999').localeCompare(b.planned_date || '9999');
  return (b.end_date || '').localeCompare(a.end_date || '');
}

/** The first date still to come (or past due) in a list of actions; '9999' if none. */
const nextDate = (actions) => actions.filter(isOpen).map((a) => a.planned_date || '9998').sort()[0] || '9999';

/** Who does it: « vous », or the structure that carries it. */
function who(me, nameOf, a) {
  if (a.owner_user_id && a.owner_user_id === me.user_id) return 'vous';
  return a.owner_structure_id ? nameOf(a.owner_structure_id) : null;
}

/** The person's shared diagnostics, the newest first. */
async function sharedDiagnostics(me, list) {
  const items = list || (await get(`/people/${me.person_id}/diagnostics?page_size=100&purpose=accompagnement`)).items;
  const when = (d) => String(d.shared_at || d.created_at || '');
  return items.filter((d) => d.status === 'partage' || d.status === 'remplace').sort((a, b) => when(b).localeCompare(when(a)));
}

/** Every action of a plan with its objective, the open ones of open objectives first by date. */
function openActions(plan) {
  const out = [];
  for (const dom of plan.domains) {
    for (const o of dom.objectives || []) {
      if (o.status !== 'en_cours') continue;
      for (const a of o.actions) if (isOpen(a)) out.push({ a, o, domain: dom.domain_id });
    }
  }
  return out.sort((x, y) => byNext(x.a, y.a));
}

/** One action, said to the person (late only while its objective is in progress). */
function actionItem(me, nameOf, a, now, ongoing, redraw) {
  const isLate = ongoing && late(a, now);
  const doer = who(me, nameOf, a);
  return h('li', { class: `action action-${a.status}${isLate ? ' action-late' : ''}` },
    h('p', { class: 'action-title', id: `my-act-${a.id}`, tabindex: '-1' }, a.status === 'realisee' ? h('span', { class: 'done-mark', 'aria-hidden': 'true' }, '✓ ') : null,
      h('strong', {}, a.title)),
    h('p', { class: 'action-state' },
      isLate ? h('span', { class: 'status late' }, 'En retard') : h('span', { class: `status status-${a.status}` }, ACTION_WORDS[a.status] || a.status),
      ` · ${timing(a, now)}`),
    doer ? h('p', { class: 'action-who' }, `Qui s'en occupe : ${doer}`) : null,
    a.referral_id ? h('p', {}, h('a', { href: `${HOME}/orientations` }, 'Voir l\'orientation liée à cette démarche')) : null,
    ongoing ? herButtons(a, redraw) : null);
}

/** One objective and its actions, what is next first. */
function objectiveCard(me, nameOf, o, now, redraw) {
  const state = o.status === 'realise' ? `Objectif atteint${o.end_date ? ` le ${dayWords(o.end_date)}` : ''}.`
    : o.status === 'abandonne' ? `Objectif abandonné${o.end_date ? ` le ${dayWords(o.end_date)}` : ''}.`
      : `Objectif en cours${o.target_date ? `, à atteindre d'ici le ${dayWords(o.target_date)}` : ''}.`;
  const actions = [...o.actions].sort(byNext);
  const hid = `my-obj-${o.id}`;
  return h('article', { class: `objective objective-${o.status}`, 'aria-labelledby': hid },
    h('h3', { id: hid }, o.title),
    h('p', {}, state),
    actions.length
      ? h('ul', { class: 'actions-list', 'aria-label': `Les démarches de l'objectif « ${o.title} »` }, actions.map((a) => actionItem(me, nameOf, a, now, o.status === 'en_cours', redraw)))
      : h('p', { class: 'note' }, 'Pas encore de démarche pour cet objectif : vous les choisirez avec votre conseiller.'));
}

/** `#/mon-espace/demarches[/{diagnostic}]`. */
export async function route(me, which) {
  const [shared, ref, structures] = await Promise.all([
    sharedDiagnostics(me),
    getReferentiel().catch(() => ({ domains: [] })),
    getStructures().catch(() => []),
  ]);
  const nameOf = (sid) => structures.find((s) => s.id === sid)?.name || 'une structure qui vous accompagne';
  const back = h('p', { class: 'back' }, h('a', { href: HOME }, '← Revenir à mon espace'));
  if (!shared.length) {
    return render('Mes démarches', back,
      h('p', { class: 'lead' }, 'Vous n\'avez pas encore de diagnostic partagé. Ensuite, votre conseiller construira avec vous votre plan : les démarches à faire, qui s\'en occupe et pour quand. Il s\'affichera ici.'));
  }
  const index = which ? shared.findIndex((d) => d.id === which) : 0;
  if (index < 0) throw new ApiError(404, { detail: 'Ce diagnostic est introuvable.' });
  const d = shared[index];
  const plan = await get(`/diagnostics/${d.id}/plan?purpose=accompagnement`);
  const now = today();
  // « du 12 mars 2026 », with the hour when two diagnostics were shared the same day.
  const on = (x) => longDay(x.shared_at || x.created_at);
  const hour = (x) => new Date(x.shared_at || x.created_at).toLocaleTimeString('fr-FR', { hour: 'numeric', minute: '2-digit' }).replace(':', '\u00a0h\u00a0');
  const dayOf = (x) => (shared.some((y) => y.id !== x.id && on(y) === on(x)) ? `${on(x)} à ${hour(x)}` : on(x));
  const dated = `${index === 0 ? 'Le plan de votre dernier diagnostic' : 'Le plan de votre diagnostic'}, du ${dayOf(d)}, fait avec ${nameOf(d.structure_id)}.`;

  const visible = plan.domains.filter((x) => x.access === 'visible' && x.objectives?.length);
  const withheld = plan.domains.filter((x) => x.access === 'withheld');
  // What is next first: the domains whose next action comes soonest, then the others in the référentiel's order.
  const order = (x) => ref.domains.findIndex((r) => r.id === x.domain_id);
  const soonest = (x) => nextDate(x.objectives.filter((o) => o.status === 'en_cours').flatMap((o) => o.actions));
  const domains = [...visible].sort((x, y) => soonest(x).localeCompare(soonest(y)) || order(x) - order(y));
  const objectives = (x) => [...x.objectives].sort((p, q) => Number(p.status !== 'en_cours') - Number(q.status !== 'en_cours')
    || nextDate(p.actions).localeCompare(nextDate(q.actions)));
  const others = shared.filter((s) => s.id !== d.id);
  // After her change: the page drawn again in place, the news said, the focus on the action.
  const redraw = async (actionId, said) => {
    const main = document.getElementById('main');
    main.setAttribute('aria-busy', 'true');
    try {
      await route(me, which);
    } finally {
      main.setAttribute('aria-busy', 'false');
    }
    notice(said);
    document.getElementById(`my-act-${actionId}`)?.focus();
  };
  return render('Mes démarches', back,
    h('p', { class: 'lead' }, dated,
      ' Vous y trouvez les objectifs choisis avec votre conseiller, domaine par domaine, et pour chacun les démarches : quoi faire, pour quand, et qui s\'en occupe.'),
    domains.length
      ? domains.map((x) => h('section', { class: 'plan-domain my-plan-domain', 'aria-labelledby': `my-pd-${x.domain_id}` },
        h('h2', { id: `my-pd-${x.domain_id}` }, domainLabel(ref, x.domain_id)),
        objectives(x).map((o) => objectiveCard(me, nameOf, o, now, redraw))))
      : h('p', { class: 'callout' }, 'Votre plan n\'a pas encore de démarche. Votre conseiller le construira avec vous : ce que vous voulez atteindre, les démarches à faire, qui s\'en occupe et pour quand.'),
    withheld.length ? h('section', { 'aria-labelledby': 'h-withheld' },
      h('h2', { id: 'h-withheld' }, 'Ce qui n\'est pas affiché'),
      h('p', {}, `Les démarches de ${withheld.length > 1 ? 'ces domaines' : 'ce domaine'} ne sont pas affichées ici : ${withheld.map((x) => `« ${domainLabel(ref, x.domain_id)} »`).join(', ')}. `,
        'Sans votre accord, cette partie de votre dossier reste cachée. ',
        h('a', { href: `${HOME}/consentements` }, 'Voir mes consentements'))) : null,
    domains.length ? h('p', { class: 'note' }, 'Une démarche est faite ou commencée ? Dites-le ici, avec ses boutons : votre conseiller le verra. Une date ne vous convient pas ? Parlez-en avec votre conseiller : c\'est lui qui change les dates.') : null,
    others.length ? h('section', { 'aria-labelledby': 'h-other-plans' },
      h('h2', { id: 'h-other-plans' }, 'Les plans de mes autres diagnostics'),
      h('ul', { class: 'history' }, others.map((s) => h('li', {},
        h('a', { href: s.id === shared[0].id ? PAGE : `${PAGE}/${s.id}` },
          `Plan de votre diagnostic du ${dayOf(s)}${s.id === shared[0].id ? ' (le plus récent)' : ''}`))))) : null);
}

/** The next open action, in a box for the home page: its title, for when, who, and the way to the page. */
function nextBox(me, nameOf, { a, o }, now) {
  const isLate = late(a, now);
  const doer = who(me, nameOf, a);
  return h('section', { class: `next-step${isLate ? ' next-step-late' : ''}`, 'aria-labelledby': 'h-next-step' },
    h('h2', { id: 'h-next-step' }, 'Prochaine démarche'),
    h('p', { class: 'next-title' }, h('strong', {}, a.title)),
    h('p', {}, isLate ? [h('span', { class: 'status late' }, 'En retard'), ' · '] : null, timing(a, now),
      doer ? ` · qui s'en occupe : ${doer}` : '', '.'),
    h('p', { class: 'note' }, `Pour l'objectif « ${o.title} ».`),
    h('p', {}, h('a', { href: PAGE }, 'Voir toutes mes démarches')));
}

/**
 * The « Prochaine démarche » card of the home page, from the diagnostics it already
 * read: null when there is no plan yet (the menu still leads to the page).
 */
export async function nextStep(me, diagnostics) {
  try {
    const [latest] = await sharedDiagnostics(me, diagnostics);
    if (!latest) return null;
    const plan = await get(`/diagnostics/${latest.id}/plan?purpose=accompagnement`);
    const next = openActions(plan)[0];
    if (!next) return null;
    const structures = await getStructures().catch(() => []);
    const nameOf = (sid) => structures.find((s) => s.id === sid)?.name || 'une structure qui vous accompagne';
    return nextBox(me, nameOf, next, today());
  } catch {
    return null; // the home page shows without it
  }
}
