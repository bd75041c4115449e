// The action plan of a diagnostic: objectives per domain, actions per objective,
// with their dates and statuses; each one can be changed, done or given up.
import { domainLabel, get, getReferentiel, patch, post } from './api.js';
import { field, fmtDate, fmtDay, form, h, notice, render, values } from './dom.js';

/** `render` with the children flattened and the empty ones left out (null, false, arrays). */
/** « de Bruno », « d'Ana » : the French elision before a vowel. */
const of = (name) => (/^[aeiouyàâäéèêëîïôöûüù]/i.test(name) ? `d'${name}` : `de ${name}`);

const OBJECTIVE = { en_cours: 'En cours', realise: 'Atteint', abandonne: 'Abandonné' };
const ACTION = { prevue: 'Prévue', en_cours: 'En cours', realisee: 'Faite', annulee: 'Annulée' };
const DIAG = { brouillon: 'brouillon', partage: 'partagé', remplace: 'remplacé' };

/** Today, `YYYY-MM-DD`, in the browser's time. */
function today() {
  const d = new Date();
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
}

/** `2026-03-14` → `14/03/2026`. */
const day = (s) => fmtDay(s);

/** The API's words made plainer for the fields of the plan. */
function plainer(e) {
  for (const f of e.fields || []) {
    if (/précède/.test(f.message)) {
      f.message = f.field === 'end_date'
        ? 'La date de fin ne peut pas être avant la date de début de l\'objectif.'
        : 'L\'échéance ne peut pas être avant la date de début de l\'objectif (aujourd\'hui pour un nouvel objectif).';
    } else if (/titre obligatoire/.test(f.message)) {
      f.message = 'Écrivez un titre : il dit en quelques mots ce qui est visé.';
    } else if (/date/.test(f.field) && /invalide|invalid/.test(f.message)) {
      f.message = 'Cette date n\'est pas valide : choisissez-la dans le calendrier (jour/mois/année).';
    }
  }
  return e;
}

/** Checks of a title and a date before asking the API; throws the fields' messages. */
function check(v, dateField, dateLabel) {
  const fields = [];
  if (!v.title) fields.push({ field: 'title', message: 'Écrivez un titre : il dit en quelques mots ce qui est visé.' });
  else if (v.title.length > 500) fields.push({ field: 'title', message: `Le titre fait ${v.title.length} caractères : 500 au plus.` });
  if (dateField && v[dateField] && !/^\d{4}-\d{2}-\d{2}$/.test(v[dateField])) {
    fields.push({ field: dateField, message: `${dateLabel} n'est pas une date valide : choisissez-la dans le calendrier.` });
  }
  if (fields.length) throw Object.assign(new Error('Le formulaire est incomplet : corrigez les champs signalés.'), { fields });
}

/** Sends a change; the API's errors come back plainer, next to the fields. */
async function send(fn) {
  try {
    return await fn();
  } catch (e) {
    throw plainer(e);
  }
}

export async function route(me, id, params, focus) {
  const [d, ref] = await Promise.all([get(`/diagnostics/${id}?purpose=accompagnement`), getReferentiel()]);
  const [p, plan] = await Promise.all([get(`/people/${d.person_id}`), get(`/diagnostics/${id}/plan?purpose=accompagnement`)]);
  const name = `${p.first_name} ${p.last_name}`;
  const superseded = d.status === 'remplace';
  const withheld = plan.domains.filter((x) => x.access !== 'visible').map((x) => x.domain_id);
  const visible = ref.domains.filter((x) => !withheld.includes(x.id));
  const again = async (message, anchor) => {
    notice(message);
    await route(me, id, params, anchor);
  };

  const actionItem = (o, a) => {
    const open = a.status === 'prevue' || a.status === 'en_cours';
    const move = (status, label, done) => h('button', {
      type: 'button', class: status === 'annulee' ? 'danger' : 'secondary', 'aria-label': `${label} : ${a.title}`,
      onclick: async (ev) => {
        ev.currentTarget.disabled = true;
        try {
          const body = { status };
          if (status === 'realisee') body.end_date = today();
          await patch(`/plan/actions/${a.id}`, body);
          await again(done, `obj-${o.id}`);
        } catch (e) {
          ev.target.disabled = false;
          notice(e.message, 'error');
        }
      },
    }, label);
    const when = a.status === 'realisee' ? `faite le ${day(a.end_date)}`
      : a.status === 'annulee' ? `annulée le ${day(a.end_date)}`
        : a.planned_date ? `prévue le ${day(a.planned_date)}` : 'sans date prévue';
    const edit = open && !superseded ? h('details', {}, h('summary', {}, 'Modifier l\'action', h('span', { class: 'sr-only' }, ` « ${a.title} »`)),
      form(`Modifier l'action « ${a.title} »`, [
        field('Action', 'title', { required: true, value: a.title }).wrap,
        field('Date prévue', 'planned_date', { type: 'date', value: a.planned_date || '' }).wrap,
      ], 'Enregistrer l\'action', async (f) => {
        const v = values(f);
        check(v, 'planned_date', 'La date prévue');
        await send(() => patch(`/plan/actions/${a.id}`, { title: v.title, planned_date: v.planned_date }));
        await again(`L'action « ${v.title} » est modifiée.`, `obj-${o.id}`);
      })) : null;
    return h('li', { class: `action action-${a.status}` },
      h('p', { class: 'action-title' }, h('strong', {}, a.title)),
      h('p', { class: 'action-state' }, h('span', { class: `status status-${a.status}` }, ACTION[a.status] || a.status), ` · ${when}`,
        a.referral_id ? [' · ', h('a', { href: `#/orientations/${a.referral_id}` }, 'voir l\'orientation')] : null),
      open && !superseded ? h('p', { class: 'buttons' },
        a.status === 'prevue' ? move('en_cours', 'Commencer', `L'action « ${a.title} » est commencée.`) : null,
        move('realisee', 'Marquer comme faite', `L'action « ${a.title} » est faite.`),
        move('annulee', 'Annuler l\'action', `L'action « ${a.title} » est annulée.`)) : null,
      edit);
  };

  const objectiveCard = (o) => {
    const open = o.status === 'en_cours';
    const setStatus = (status, label, done, cls = 'secondary') => h('button', {
      type: 'button', class: cls, 'aria-label': `${label} : ${o.title}`,
      onclick: async (ev) => {
        ev.currentTarget.disabled = true;
        try {
          const body = { status };
          if (status === 'realise') body.end_date = today() < (o.start_date || '') ? o.start_date : today();
          await patch(`/plan/objectives/${o.id}`, body);
          await again(done, `obj-${o.id}`);
        } catch (e) {
          ev.target.disabled = false;
          notice(e.message, 'error');
        }
      },
    }, label);
    const state = open
      ? `depuis le ${day(o.start_date)}${o.target_date ? ` · échéance le ${day(o.target_date)}` : ' · sans échéance'}`
      : `${o.status === 'realise' ? 'atteint' : 'abandonné'} le ${day(o.end_date)}`;
    const addAction = open && !superseded ? form(`Ajouter une action à « ${o.title} »`, [
      field('Nouvelle action', 'title', { required: true, help: 'Par exemple : « Prendre rendez-vous à l\'auto-école ».' }).wrap,
      field('Date prévue', 'planned_date', { type: 'date', help: 'Facultatif.' }).wrap,
    ], 'Ajouter l\'action', async (f) => {
      const v = values(f);
      check(v, 'planned_date', 'La date prévue');
      const body = { title: v.title };
      if (v.planned_date) body.planned_date = v.planned_date;
      await send(() => post(`/plan/objectives/${o.id}/actions`, body));
      await again(`L'action « ${v.title} » est ajoutée.`, `obj-${o.id}`);
    }) : null;
    const edit = open && !superseded ? h('details', {}, h('summary', {}, 'Modifier l\'objectif', h('span', { class: 'sr-only' }, ` « ${o.title} »`)),
      form(`Modifier l'objectif « ${o.title} »`, [
        field('Objectif', 'title', { required: true, value: o.title }).wrap,
        field('Échéance', 'target_date', { type: 'date', value: o.target_date || '' }).wrap,
      ], 'Enregistrer l\'objectif', async (f) => {
        const v = values(f);
        check(v, 'target_date', 'L\'échéance');
        await send(() => patch(`/plan/objectives/${o.id}`, { title: v.title, target_date: v.target_date }));
        await again(`L'objectif « ${v.title} » est modifié.`, `obj-${o.id}`);
      })) : null;
    return h('article', { class: `objective objective-${o.status}`, 'aria-labelledby': `obj-${o.id}` },
      h('h3', { id: `obj-${o.id}`, tabindex: '-1' }, o.title),
      h('p', {}, h('span', { class: `status status-${o.status}` }, OBJECTIVE[o.status] || o.status), ' · ', state),
      o.actions.length
        ? h('ul', { class: 'actions-list', 'aria-label': `Actions de l'objectif « ${o.title} »` }, o.actions.map((a) => actionItem(o, a)))
        : h('p', { class: 'note' }, 'Aucune action pour l\'instant.'),
      addAction,
      superseded ? null : h('p', { class: 'buttons' },
        open ? [setStatus('realise', 'Objectif atteint', `L'objectif « ${o.title} » est atteint.`),
          setStatus('abandonne', 'Abandonner l\'objectif', `L'objectif « ${o.title} » est abandonné.`, 'danger')]
          : setStatus('en_cours', 'Reprendre l\'objectif', `L'objectif « ${o.title} » est repris.`)),
      edit);
  };

  const withObjectives = plan.domains.filter((x) => x.access === 'visible' && x.objectives?.length);
  const ordered = ref.domains.map((x) => withObjectives.find((w) => w.domain_id === x.id)).filter(Boolean)
    .concat(withObjectives.filter((w) => !ref.domains.some((x) => x.id === w.domain_id)));

  const newObjective = superseded ? null : form('Fixer un objectif', [
    field('Domaine', 'domain_id', { required: true, options: [['', 'Choisissez un domaine'], ...visible.map((x) => [x.id, x.label_fr])], value: params?.get('domaine') || '' }).wrap,
    field('Objectif', 'title', { required: true, help: 'En quelques mots, ce que la personne veut atteindre. Par exemple : « Obtenir le permis B ».' }).wrap,
    field('Échéance', 'target_date', { type: 'date', help: 'Facultatif : la date visée.' }).wrap,
  ], 'Fixer l\'objectif', async (f) => {
    const v = values(f);
    const fields = [];
    if (!v.domain_id) fields.push({ field: 'domain_id', message: 'Choisissez le domaine de l\'objectif.' });
    if (!v.title) fields.push({ field: 'title', message: 'Écrivez l\'objectif : il dit en quelques mots ce qui est visé.' });
    if (v.target_date && v.target_date < today()) fields.push({ field: 'target_date', message: 'L\'échéance est déjà passée : choisissez une date à partir d\'aujourd\'hui.' });
    if (fields.length) throw Object.assign(new Error('Le formulaire est incomplet : corrigez les champs signalés.'), { fields });
    check(v, 'target_date', 'L\'échéance');
    const body = { domain_id: v.domain_id, title: v.title };
    if (v.target_date) body.target_date = v.target_date;
    const o = await send(() => post(`/diagnostics/${id}/plan/objectives`, body));
    await again(`L'objectif « ${o.title} » est fixé.`, `obj-${o.id}`);
  });

  render('Plan d\'action',
    h('p', { class: 'links' },
      h('a', { href: `#/personnes/${d.person_id}` }, `Revenir au dossier ${of(name)}`), ' · ',
      h('a', { href: `#/diagnostics/${id}` }, 'Voir le diagnostic'), ' · ',
      h('a', { href: `#/personnes/${d.person_id}/historique` }, 'Historique et comparaison')),
    h('p', {}, `${name} · diagnostic ${DIAG[d.status] || d.status} du ${fmtDate(d.shared_at || d.created_at)}.`),
    superseded ? h('p', { class: 'card' }, 'Ce diagnostic a été remplacé par un plus récent : son plan se lit ici, et se poursuit sur le diagnostic en cours. ',
      d.superseded_by_diagnostic_id ? h('a', { href: `#/diagnostics/${d.superseded_by_diagnostic_id}/plan` }, 'Ouvrir le plan du diagnostic en cours') : null) : null,
    ordered.length
      ? ordered.map((dom) => h('section', { class: 'domain plan-domain', 'aria-labelledby': `pd-${dom.domain_id}` },
        h('h2', { id: `pd-${dom.domain_id}` }, domainLabel(ref, dom.domain_id)),
        dom.objectives.map(objectiveCard)))
      : h('p', {}, 'Aucun objectif pour l\'instant.'),
    withheld.length ? h('p', { class: 'note' }, `Domaines non visibles (pas d'accord de la personne) : ${withheld.map((x) => domainLabel(ref, x)).join(', ')}.`) : null,
    newObjective ? h('section', { 'aria-labelledby': 'h-new-obj' }, h('h2', { id: 'h-new-obj' }, 'Fixer un nouvel objectif'), newObjective) : null);
  if (focus) document.getElementById(focus)?.focus();
}
