// A person's history: for each domain, how the counselor's ratings moved from one
// shared diagnostic to the next (a chart of freins and points d'appui per diagnostic,
// and the same figures as a table), then two diagnostics compared item by item.
import { domainLabel, get, getReferentiel, levelLabel } from './api.js';
import { field, fmtDay, form, h, render, values } from './dom.js';

/** `render` with the children flattened and the empty ones left out (null, false, arrays). */
/** « de Bruno », « d'Ana » : the French elision before a vowel. */
const of = (name) => (/^[aeiouyàâäéèêëîïôöûüù]/i.test(name) ? `d'${name}` : `de ${name}`);

/** The levels in the chart's order, from the heaviest barrier to the strength. */
const ORDER = ['frein_majeur', 'frein', 'sans_impact', 'point_d_appui', 'non_aborde'];
const NOT_RATED = 'non_cote';

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

/** Items of the domain per level, counted from the counselor's ratings. */
function counts(diag, domainId) {
  const dom = diag.domains.find((x) => x.domain_id === domainId);
  if (!dom || dom.access !== 'visible') return null;
  const c = Object.fromEntries([...ORDER, NOT_RATED].map((k) => [k, 0]));
  for (const it of dom.items || []) c[it.counselor_level && ORDER.includes(it.counselor_level) ? it.counselor_level : NOT_RATED] += 1;
  return c;
}

/** One domain's chart: a stacked bar per diagnostic, counts written in the bars. */
function chart(ref, domainId, label, diags, list) {
  const rows = diags.map((d) => ({ d, c: counts(d, domainId) }));
  const shown = [...ORDER.filter((k) => k !== 'non_aborde'), 'non_aborde', NOT_RATED];
  const nameOfLevel = (k) => (k === NOT_RATED ? 'Non coté' : levelLabel(ref, k));
  const total = Math.max(1, ...rows.map((r) => (r.c ? shown.reduce((n, k) => n + r.c[k], 0) : 0)));
  // Phone first: each diagnostic's name above its bar, in a drawing narrow enough that its
  // text stays legible at 390 px (the SVG takes the width it is given).
  const left = 0;
  const width = 340;
  const barW = width - 2;
  const rowH = 52;
  const height = rows.length * rowH + 4;
  const titleId = `hist-title-${domainId}`;
  const svg = h('svg', { viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-labelledby': titleId, class: 'chart history-chart', width: '100%' },
    h('title', { id: titleId }, `${label} : nombre d'items par niveau selon le conseiller, pour chacun des ${rows.length} diagnostics partagés (détail dans le tableau qui suit)`),
    rows.map(({ d, c }, i) => {
      const y = 2 + i * rowH;
      const parts = [h('text', { x: 0, y: y + 14, class: 'chart-label' }, `Diagnostic n° ${list.findIndex((x) => x.id === d.id) + 1} du ${day(d.shared_at || d.created_at)}`)];
      if (!c) {
        parts.push(h('text', { x: left, y: y + 38, class: 'chart-label' }, 'domaine non visible'));
        return h('g', {}, parts);
      }
      let x = left;
      for (const k of shown) {
        if (!c[k]) continue;
        const w = (c[k] / total) * barW;
        parts.push(h('rect', { x, y: y + 20, width: Math.max(w - 2, 1), height: 26, class: `lvl lvl-${k}` }));
        if (w >= 18) parts.push(h('text', { x: x + w / 2 - 1, y: y + 38, class: `chart-value on-${k}`, 'text-anchor': 'middle' }, String(c[k])));
        x += w;
      }
      return h('g', {}, parts);
    }));
  const table = h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': `${label} : tableau des chiffres` }, h('table', {},
    h('caption', {}, `${label} : les chiffres du graphique (nombre d'items par niveau, selon le conseiller)`),
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Diagnostic'), shown.map((k) => h('th', { scope: 'col' }, nameOfLevel(k))))),
    h('tbody', {}, rows.map(({ d, c }) => h('tr', {},
      h('th', { scope: 'row' }, nameOf(list, d)),
      c ? shown.map((k) => h('td', {}, String(c[k]))) : h('td', { colspan: shown.length }, 'Domaine non visible : pas d\'accord de la personne.'))))));
  return h('section', { class: 'domain history', 'aria-labelledby': `h-${domainId}` },
    h('h3', { id: `h-${domainId}` }, label),
    h('figure', {}, svg, table));
}

/** The legend of the charts' colours (the tables say the same in words). */
function legend(ref) {
  return h('ul', { class: 'legend', 'aria-label': 'Légende des graphiques' },
    [...ORDER, NOT_RATED].map((k) => h('li', {}, h('span', { class: `swatch lvl-${k}`, 'aria-hidden': 'true' }),
      k === NOT_RATED ? 'Non coté' : levelLabel(ref, k))));
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

/** `#/personnes/{id}/historique?de=…&a=…`. */
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
  const rated = (dom) => diags.some((d) => (d.domains.find((x) => x.domain_id === dom.id)?.items || []).some((i) => i.counselor_level));
  const domains = ref.domains.filter(rated);
  const unrated = ref.domains.filter((dom) => !rated(dom));

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
  const pick = summaries.length > 1
    ? form('Comparer deux diagnostics', [
      h('div', { class: 'period' },
        field('Diagnostic de départ', 'de', { options: choices, value: from, required: true }).wrap,
        field('Diagnostic d\'arrivée', 'a', { options: choices, value: to, required: true }).wrap),
    ], 'Comparer', async (f) => {
      const v = values(f);
      if (v.de === v.a) throw Object.assign(new Error('Choisissez deux diagnostics différents.'), { fields: [{ field: 'a', message: 'Choisissez un autre diagnostic que celui de départ.' }] });
      const at = (x) => summaries.findIndex((d) => d.id === x);
      const [de, a] = at(v.de) < at(v.a) ? [v.de, v.a] : [v.a, v.de];
      location.hash = `#/personnes/${personId}/historique?${new URLSearchParams({ de, a })}`;
    })
    : h('p', {}, 'Un seul diagnostic partagé : la comparaison sera possible au suivant.');

  render(title, back,
    h('p', {}, `${summaries.length} diagnostic(s) partagé(s), du ${day(summaries[0].shared_at)} au ${day(last.shared_at)}. `,
      'Les graphiques montrent, domaine par domaine, combien d\'items la cotation du conseiller classe en freins et en points d\'appui à chaque diagnostic.'),
    h('section', { 'aria-labelledby': 'h-evol' },
      h('h2', { id: 'h-evol' }, 'Évolution par domaine'),
      recent.length < summaries.length ? h('p', {}, `Les ${recent.length} derniers diagnostics sont montrés.`) : null,
      legend(ref),
      domains.length ? domains.map((dom) => chart(ref, dom.id, domainLabel(ref, dom.id), diags, summaries)) : h('p', {}, 'Aucun item coté par le conseiller dans ces diagnostics.'),
      unrated.length ? h('p', { class: 'note' }, `Sans cotation du conseiller (ou non visibles) : ${unrated.map((dom) => dom.label_fr).join(', ')}.`) : null),
    h('section', { 'aria-labelledby': 'h-cmp' },
      h('h2', { id: 'h-cmp' }, 'Comparer deux diagnostics'),
      pick,
      problem ? h('p', { class: 'form-status' }, problem.message) : null),
    result);
  if (params.get('de') && result) document.getElementById('h-cmp-result')?.focus();
  return undefined;
}

