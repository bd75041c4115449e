// A person's history: for each domain, how the ratings moved from one shared diagnostic to
// the next (a chart of freins and points d'appui per diagnostic, the same figures as a
// table) as the counselor, the person, or both of them see it (`?vue=`), a sentence on
// where the two views meet in the latest diagnostic, then two diagnostics compared item
// by item.
import { domainLabel, get, getReferentiel, levelLabel } from './api.js';
import { field, fmtDay, form, h, notice, render, values } from './dom.js';

/** « de Bruno », « d'Ana » : the French elision before a vowel. */
const of = (name) => (/^[aeiouyàâäéèêëîïôöûüù]/i.test(name) ? `d'${name}` : `de ${name}`);

/** The levels in the chart's order, from the heaviest barrier to the strength. */
const ORDER = ['frein_majeur', 'frein', 'sans_impact', 'point_d_appui', 'non_aborde'];
/** The scale on which two ratings are « two levels apart » (« pas encore abordé » is off it). */
const SCALE = ORDER.slice(0, 4);
const NOT_RATED = 'non_cote';
const SHOWN = [...ORDER, NOT_RATED];

/** The charts' views (`?vue=`): whose ratings they count. */
const VIEWS = { conseiller: ['counselor'], personne: ['person'], deux: ['counselor', 'person'] };
const VIEW_LABEL = { conseiller: 'du conseiller', personne: 'de la personne', deux: 'les deux' };
const VIEW_PHRASE = { conseiller: 'selon le conseiller', personne: 'selon la personne', deux: 'selon le conseiller et selon la personne' };
const LEVEL_OF = { counselor: 'counselor_level', person: 'person_level' };
const WHO = { counselor: 'Conseiller', person: 'Personne' };
const ACCORDING = { counselor: 'selon le conseiller', person: 'selon la personne' };
const NOT_RATED_BY = { counselor: 'Non coté par le conseiller', person: 'Non coté par la personne' };

const EVOLUTION = {
  improved: 'S\'est amélioré',
  unchanged: 'Sans changement',
  worsened: 'S\'est aggravé',
  newly_addressed: 'Abordé pour la première fois',
  not_comparable: 'Pas comparable (non coté dans l\'un des deux)',
};

/** `dd/mm/yyyy`, for short chart labels. */
const day = (s) => fmtDay(s);

/** The diagnostics' names, in time order: « n° 1 du 14/03/2026 ». */
function nameOf(list, d) {
  return `Diagnostic n° ${list.findIndex((x) => x.id === d.id) + 1} du ${day(d.shared_at || d.created_at)}`;
}

/** A domain of a diagnostic as read, or null when the person's consent withholds it. */
function visible(diag, domainId) {
  const dom = diag.domains.find((x) => x.domain_id === domainId);
  return dom && dom.access === 'visible' ? dom : null;
}

/** Items of the domain per level, counted from the ratings of `who`; unrated ones as such. */
function counts(diag, domainId, who) {
  const dom = visible(diag, domainId);
  if (!dom) return null;
  const c = Object.fromEntries(SHOWN.map((k) => [k, 0]));
  for (const it of dom.items || []) c[ORDER.includes(it[LEVEL_OF[who]]) ? it[LEVEL_OF[who]] : NOT_RATED] += 1;
  return c;
}

/** « Frein : 1, Point d'appui : 2, Non coté par la personne : 3 ». */
function spoken(ref, c, who) {
  return SHOWN.filter((k) => c[k]).map((k) => `${k === NOT_RATED ? NOT_RATED_BY[who] : levelLabel(ref, k)} : ${c[k]}`).join(', ') || 'aucun item';
}

/**
 * One domain's chart: per diagnostic a stacked bar per rater (the counselor's above the
 * person's in « les deux », each named in the drawing), counts written in the bars.
 */
function chart(ref, dom, diags, list, view) {
  const raters = VIEWS[view];
  const label = dom.label_fr;
  const rows = diags.map((d) => ({ d, c: raters.map((who) => [who, counts(d, dom.id, who)]) }));
  const sum = (c) => (c ? SHOWN.reduce((n, k) => n + c[k], 0) : 0);
  const total = Math.max(1, ...rows.flatMap((r) => r.c.map(([, c]) => sum(c))));
  // Phone first: each diagnostic's name above its bars, in a drawing narrow enough that its
  // text stays legible at 390 px (the SVG takes the width it is given).
  const width = 340;
  const tag = raters.length > 1 ? 78 : 0;
  const barW = width - tag - 2;
  const barH = 26;
  const rowH = 22 + raters.length * (barH + 4);
  const height = rows.length * rowH + 4;
  const bars = (c, who, y) => {
    const out = [];
    let x = tag;
    for (const k of SHOWN) {
      if (!c[k]) continue;
      const w = (c[k] / total) * barW;
      out.push(h('rect', { x, y, width: Math.max(w - 2, 1), height: barH, class: `lvl lvl-${k} by-${who}` }));
      if (w >= 18) out.push(h('text', { x: x + w / 2 - 1, y: y + 18, class: `chart-value on-${k}`, 'text-anchor': 'middle' }, String(c[k])));
      x += w;
    }
    return out;
  };
  const titleId = `hist-title-${dom.id}`;
  const descId = `hist-desc-${dom.id}`;
  const latest = rows[rows.length - 1];
  const svg = h('svg', { viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-labelledby': titleId, 'aria-describedby': descId, class: 'chart history-chart', width: '100%' },
    h('title', { id: titleId }, `${label} : nombre d'items par niveau ${VIEW_PHRASE[view]}, pour chacun des ${rows.length} diagnostics partagés (détail dans le tableau qui suit)`),
    h('desc', { id: descId }, latest.c[0][1]
      ? `Au dernier diagnostic, ${latest.c.map(([who, c]) => `${ACCORDING[who]} : ${spoken(ref, c, who)}`).join(' ; ')}.`
      : 'Au dernier diagnostic, domaine non visible.'),
    rows.map(({ d, c }, i) => {
      const y = 2 + i * rowH;
      const parts = [h('text', { x: 0, y: y + 14, class: 'chart-label' }, nameOf(list, d))];
      if (!c[0][1]) {
        parts.push(h('text', { x: 0, y: y + 38, class: 'chart-label' }, 'domaine non visible'));
        return h('g', {}, parts);
      }
      c.forEach(([who, counted], j) => {
        const top = y + 20 + j * (barH + 4);
        if (tag) parts.push(h('text', { x: 0, y: top + 18, class: 'chart-label rater' }, WHO[who]));
        parts.push(bars(counted, who, top));
      });
      return h('g', {}, parts);
    }));
  const heads = SHOWN.map((k) => (k !== NOT_RATED ? levelLabel(ref, k) : raters.length > 1 ? 'Non coté' : NOT_RATED_BY[raters[0]]));
  const table = h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': `${label} : tableau des chiffres` }, h('table', {},
    h('caption', {}, `${label} : les chiffres du graphique (nombre d'items par niveau, ${VIEW_PHRASE[view]})`),
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Diagnostic'), heads.map((x) => h('th', { scope: 'col' }, x)))),
    h('tbody', {}, rows.flatMap(({ d, c }) => c.map(([who, counted]) => h('tr', {},
      h('th', { scope: 'row' }, raters.length > 1 ? `${nameOf(list, d)}, ${ACCORDING[who]}` : nameOf(list, d)),
      counted ? SHOWN.map((k) => h('td', {}, String(counted[k]))) : h('td', { colspan: SHOWN.length }, 'Domaine non visible : pas d\'accord de la personne.')))))));
  return h('section', { class: 'domain history', 'aria-labelledby': `h-${dom.id}` },
    h('h3', { id: `h-${dom.id}` }, label),
    reading(ref, dom, diags[diags.length - 1], list),
    h('figure', {}, svg, table));
}

/**
 * Where the two views meet in the latest diagnostic, in one plain sentence: the items both
 * rated alike, those two levels apart or more (« Vous voyez « Frein » là où la personne voit
 * « Point d'appui » : Permis de conduire. »), and those the person did not rate.
 */
function reading(ref, dom, diag, list) {
  const d = visible(diag, dom.id);
  if (!d) return null;
  const items = d.items || [];
  const at = `Au dernier diagnostic (${nameOf(list, diag).replace('Diagnostic ', '')})`;
  if (!items.some((i) => i.person_level)) {
    return h('p', { class: 'reading' }, `${at}, la personne n'a coté aucun item de ce domaine : pas encore de regard à croiser.`);
  }
  const both = items.filter((i) => i.counselor_level && i.person_level);
  const same = both.filter((i) => i.counselor_level === i.person_level).length;
  const apart = new Map();
  for (const i of both) {
    const [c, p] = [SCALE.indexOf(i.counselor_level), SCALE.indexOf(i.person_level)];
    if (c < 0 || p < 0 || Math.abs(c - p) < 2) continue;
    const key = `${i.counselor_level}|${i.person_level}`;
    if (!apart.has(key)) apart.set(key, []);
    apart.get(key).push(dom.items.find((x) => x.id === i.item_id)?.label_fr || i.item_id);
  }
  const missing = items.filter((i) => i.counselor_level && !i.person_level).length;
  const words = [both.length
    ? `${at}, vous êtes d'accord sur ${same} des ${both.length} item(s) cotés par vous deux.`
    : `${at}, vous n'avez coté aucun item en commun.`];
  for (const [key, names] of apart) {
    const [c, p] = key.split('|');
    words.push(`Vous voyez « ${levelLabel(ref, c)} » là où la personne voit « ${levelLabel(ref, p)} » : ${names.join(', ')}.`);
  }
  if (both.length && !apart.size) words.push('Aucun écart de deux niveaux ou plus.');
  if (missing) words.push(`Non coté par la personne : ${missing} item(s) que vous avez cotés.`);
  return h('p', { class: 'reading' }, words.join(' '));
}

/** The legend of the charts' colours (the tables say the same in words), and of the rows. */
function legend(ref, view) {
  return h('ul', { class: 'legend', 'aria-label': 'Légende des graphiques' },
    SHOWN.map((k) => h('li', {}, h('span', { class: `swatch lvl-${k}`, 'aria-hidden': 'true' }),
      k === NOT_RATED ? 'Non coté' : levelLabel(ref, k))),
    VIEWS[view].length > 1
      ? [h('li', {}, h('span', { class: 'rater-tag', 'aria-hidden': 'true' }, 'Conseiller'), 'barre du haut : la cotation du conseiller'),
        h('li', {}, h('span', { class: 'rater-tag by-person', 'aria-hidden': 'true' }, 'Personne'), 'barre du bas, bordée de noir : la cotation de la personne')]
      : null);
}

/** The choice of whose ratings the charts show: a radio group, kept in the address. */
function viewPicker(view, pick) {
  return h('fieldset', { class: 'views' }, h('legend', {}, 'Cotations :'),
    Object.keys(VIEWS).map((v) => h('span', { class: 'view-choice' },
      h('input', { type: 'radio', name: 'vue', id: `vue-${v}`, value: v, checked: v === view, onchange: () => pick(v) }),
      h('label', { for: `vue-${v}` }, VIEW_LABEL[v]))));
}

/** Plain words for one item's evolution, e.g. « Frein → Point d'appui : s'est amélioré ». */
function comparison(ref, cmp, list) {
  const byDomain = new Map();
  const rated = (i) => i.access !== 'visible' || i.from_counselor_level || i.to_counselor_level || i.from_person_level || i.to_person_level;
  const quiet = new Set(cmp.items.map((i) => i.domain_id));
  for (const it of cmp.items) if (rated(it)) quiet.delete(it.domain_id);
  for (const it of cmp.items.filter(rated)) {
    if (!byDomain.has(it.domain_id)) byDomain.set(it.domain_id, []);
    byDomain.get(it.domain_id).push(it);
  }
  const from = list.find((d) => d.id === cmp.from?.id);
  const to = list.find((d) => d.id === cmp.to?.id);
  const sections = [...byDomain].map(([domainId, items]) => {
    const domain = ref.domains.find((x) => x.id === domainId);
    const label = domain?.label_fr || domainId;
    if (items.every((i) => i.access !== 'visible')) {
      return h('section', { class: 'domain' }, h('h3', {}, label), h('p', {}, 'Domaine non visible : la personne n\'a pas donné son accord.'));
    }
    const tally = { improved: 0, unchanged: 0, worsened: 0 };
    for (const i of items) if (i.counselor_evolution in tally) tally[i.counselor_evolution] += 1;
    return h('section', { class: 'domain', 'aria-labelledby': `c-${domainId}` },
      h('h3', { id: `c-${domainId}` }, label),
      h('p', { class: 'tally' }, `${tally.improved} amélioré(s), ${tally.unchanged} sans changement, ${tally.worsened} aggravé(s).`),
      h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': `${label} : évolution de chaque item` }, h('table', { class: 'compare' },
        h('caption', { class: 'sr-only' }, `${label} : évolution de chaque item`),
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Item'), h('th', { scope: 'col' }, 'Avant'), h('th', { scope: 'col' }, 'Après'),
          h('th', { scope: 'col' }, 'Évolution selon le conseiller'), h('th', { scope: 'col' }, 'Évolution selon la personne'))),
        h('tbody', {}, items.map((i) => {
          const item = domain?.items.find((x) => x.id === i.item_id);
          const evo = i.counselor_evolution;
          return h('tr', { class: `evo-${evo || 'none'}` },
            h('th', { scope: 'row' }, item?.label_fr || i.item_id),
            h('td', {}, i.from_counselor_level ? levelLabel(ref, i.from_counselor_level) : 'Non coté'),
            h('td', {}, i.to_counselor_level ? levelLabel(ref, i.to_counselor_level) : 'Non coté'),
            h('td', {}, h('span', { class: `evo evo-${evo || 'none'}` }, EVOLUTION[evo] || '—')),
            h('td', {}, !i.from_person_level && !i.to_person_level ? 'Pas d\'auto-évaluation' : (EVOLUTION[i.person_evolution] || '—')));
        })))));
  });
  return h('section', { id: 'comparaison', 'aria-labelledby': 'h-cmp-result' },
    h('h2', { id: 'h-cmp-result', tabindex: '-1' }, `Du ${from ? nameOf(list, from).replace('Diagnostic ', 'diagnostic ') : 'premier'} au ${to ? nameOf(list, to).replace('Diagnostic ', 'diagnostic ') : 'second'}`),
    sections.length ? sections : h('p', {}, 'Aucun item coté dans ces deux diagnostics.'),
    quiet.size ? h('p', { class: 'note' }, `Sans cotation dans ces deux diagnostics : ${[...quiet].map((x) => domainLabel(ref, x)).join(', ')}.`) : null);
}

/** `#/personnes/{id}/historique?vue=…&de=…&a=…`. */
export async function route(me, personId, params = new URLSearchParams()) {
  const [person, ref, page] = await Promise.all([
    get(`/people/${personId}`), getReferentiel(),
    get(`/people/${personId}/diagnostics?page_size=500&purpose=accompagnement`),
  ]);
  const summaries = page.items
    .filter((d) => d.status === 'partage' || d.status === 'remplace')
    .sort((a, b) => String(a.shared_at || a.created_at).localeCompare(String(b.shared_at || b.created_at)));
  const name = `${person.first_name} ${person.last_name}`;
  const back = h('p', {}, h('a', { href: `#/personnes/${personId}` }, `Revenir au dossier ${of(name)}`));
  const title = `Historique ${of(name)}`;
  if (!summaries.length) {
    return render(title, back, h('p', {}, 'Aucun diagnostic partagé pour l\'instant : l\'historique commence au premier diagnostic partagé.'));
  }
  // The last twelve in the charts; all of them in the comparison's choices.
  const recent = summaries.slice(-12);
  const diags = await Promise.all(recent.map((d) => get(`/diagnostics/${d.id}?purpose=accompagnement`)));
  const rated = (dom) => diags.some((d) => (visible(d, dom.id)?.items || []).some((i) => i.counselor_level || i.person_level));
  const domains = ref.domains.filter(rated);
  const unrated = ref.domains.filter((dom) => !rated(dom));
  let view = VIEWS[params.get('vue')] ? params.get('vue') : 'conseiller';
  const here = (q) => `#/personnes/${personId}/historique${String(q) ? `?${q}` : ''}`;
  const charts = (v) => h('div', { id: 'evol-charts' },
    legend(ref, v),
    domains.length ? domains.map((dom) => chart(ref, dom, diags, summaries, v)) : h('p', {}, 'Aucun item coté dans ces diagnostics.'));
  let drawn = charts(view);
  // Another view redraws the charts in place (the focus stays on the choice) and the
  // address keeps it, to bookmark or reload.
  const pick = (v) => {
    view = v;
    const q = new URLSearchParams(params);
    if (v === 'conseiller') q.delete('vue');
    else q.set('vue', v);
    history.replaceState(null, '', here(q));
    const next = charts(v);
    drawn.replaceWith(next);
    drawn = next;
    document.getElementById('main').dataset.rendered = location.hash;
    notice(`Graphiques et tableaux : les cotations ${VIEW_PHRASE[v]}.`);
  };

  const choices = summaries.map((d) => [d.id, nameOf(summaries, d)]).reverse();
  const last = summaries[summaries.length - 1];
  const before = summaries[summaries.length - 2];
  const from = params.get('de') || before?.id || '';
  const to = params.get('a') || last.id;
  let result = null;
  let problem = null;
  if (summaries.length > 1 && from && to) {
    try {
      result = comparison(ref, await get(`/diagnostics/compare?${new URLSearchParams({ from, to, purpose: 'accompagnement' })}`), summaries);
    } catch (e) {
      problem = e;
    }
  }
  const compare = summaries.length > 1
    ? form('Comparer deux diagnostics', [
      h('div', { class: 'period' },
        field('Diagnostic de départ', 'de', { options: choices, value: from, required: true }).wrap,
        field('Diagnostic d\'arrivée', 'a', { options: choices, value: to, required: true }).wrap),
    ], 'Comparer', async (f) => {
      const v = values(f);
      if (v.de === v.a) throw Object.assign(new Error('Choisissez deux diagnostics différents.'), { fields: [{ field: 'a', message: 'Choisissez un autre diagnostic que celui de départ.' }] });
      const at = (x) => summaries.findIndex((d) => d.id === x);
      const [de, a] = at(v.de) < at(v.a) ? [v.de, v.a] : [v.a, v.de];
      location.hash = here(new URLSearchParams({ ...(view === 'conseiller' ? {} : { vue: view }), de, a }));
    })
    : h('p', {}, 'Un seul diagnostic partagé : la comparaison sera possible au suivant.');

  render(title, back,
    h('p', {}, `${summaries.length} diagnostic(s) partagé(s), du ${day(summaries[0].shared_at)} au ${day(last.shared_at)}. `,
      'Les graphiques montrent, domaine par domaine, combien d\'items sont classés en freins et en points d\'appui à chaque diagnostic : selon le conseiller, selon la personne elle-même, ou les deux côte à côte.'),
    h('section', { 'aria-labelledby': 'h-evol' },
      h('h2', { id: 'h-evol' }, 'Évolution par domaine'),
      recent.length < summaries.length ? h('p', {}, `Les ${recent.length} derniers diagnostics sont montrés.`) : null,
      viewPicker(view, pick),
      drawn,
      unrated.length ? h('p', { class: 'note' }, `Sans cotation (ou non visibles) : ${unrated.map((dom) => dom.label_fr).join(', ')}.`) : null),
    h('section', { 'aria-labelledby': 'h-cmp' },
      h('h2', { id: 'h-cmp' }, 'Comparer deux diagnostics'),
      compare,
      problem ? h('p', { class: 'form-status' }, problem.message) : null),
    result);
  if (params.get('de') && result) document.getElementById('h-cmp-result')?.focus();
  return undefined;
}

