// The analyst: an indicator over a period, a territory and dimensions, as a bar chart
// (SVG) and as a table, with its exports. The choices live in the address, so a
// dashboard can be bookmarked and sent to a colleague.
import { download, get, getReferentiel, domainLabel, levelLabel } from './api.js';
import { checkboxes, field, form, h, notice, render, scrollBox, showErrors, values } from './dom.js';

const DIMENSIONS = {
  month: 'Mois', quarter: 'Trimestre', year: 'Année', commune: 'Commune', epci: 'Intercommunalité (EPCI)',
  departement: 'Département', structure_kind: 'Type de structure', domain: 'Domaine', item: 'Item', level: 'Niveau',
  evolution: 'Évolution', gap: 'Écart de regard', from_structure_kind: 'Structure qui oriente',
  to_structure_kind: 'Structure qui reçoit', refusal_reason: 'Motif de refus', measure: 'Mesure',
};
const VALUES = {
  association: 'association', partner: 'partenaire', departement: 'département', improved: 'amélioré', unchanged: 'inchangé',
  worsened: 'dégradé', newly_addressed: 'nouvellement abordé', not_comparable: 'non comparable',
};
const PARAMS = { indicator: 'indicateur', from: 'du', to: 'au', territory: 'territoire', group_by: 'par' };

/** The API's query for the choices `c` (only what is set). */
function query(c) {
  const q = new URLSearchParams();
  for (const k of ['from', 'to', 'territory']) if (c[k]) q.set(k, c[k]);
  if (c.group_by.length) q.set('group_by', c.group_by.join(','));
  const s = q.toString();
  return s ? `?${s}` : '';
}

/** The choices read from the address. */
function choices(params) {
  return {
    indicator: params.get(PARAMS.indicator) || '',
    from: params.get(PARAMS.from) || '',
    to: params.get(PARAMS.to) || '',
    territory: params.get(PARAMS.territory) || '',
    group_by: (params.get(PARAMS.group_by) || '').split(',').filter(Boolean),
  };
}

function address(c) {
  const q = new URLSearchParams();
  for (const [k, p] of Object.entries(PARAMS)) {
    const v = k === 'group_by' ? c.group_by.join(',') : c[k];
    if (v) q.set(p, v);
  }
  return `#/statistiques?${q}`;
}

export async function dashboard(me, params = new URLSearchParams()) {
  const [indicators, ref] = await Promise.all([
    get('/statistics/indicators?page_size=200').then((r) => r.items),
    getReferentiel().catch(() => ({ domains: [], levels: [] })),
  ]);
  const c = choices(params);
  c.indicator ||= indicators[0]?.id || '';
  const def = indicators.find((i) => i.id === c.indicator);
  const dims = def?.dimensions || [];
  c.group_by = c.group_by.filter((d) => dims.includes(d));
  let data = { cells: [] };
  let problem = null;
  if (def) {
    try {
      data = await get(`/statistics/indicators/${encodeURIComponent(def.id)}${query(c)}`);
    } catch (e) {
      problem = e;
    }
  }
  const label = (dim, v) => {
    if (dim === 'domain') return domainLabel(ref, v);
    if (dim === 'level') return levelLabel(ref, v);
    return VALUES[v] || v;
  };

  const pick = form('Choisir les chiffres', [
    field('Indicateur', 'indicator', { options: indicators.map((i) => [i.id, i.label_fr]), value: c.indicator }).wrap,
    h('div', { class: 'period' },
      field('Du mois', 'from', { type: 'month', value: c.from, help: 'Facultatif : par défaut, les douze derniers mois.' }).wrap,
      field('Au mois', 'to', { type: 'month', value: c.to, help: 'Facultatif : par défaut, le mois en cours.' }).wrap),
    field('Territoire', 'territory', { value: c.territory, help: 'Facultatif : un code de commune (5 caractères), d\'EPCI (9 chiffres) ou de département (27).' }).wrap,
    dims.length ? checkboxes('Détailler par', 'group_by', dims.map((d) => [d, DIMENSIONS[d] || d]), { checked: c.group_by }) : null,
  ], 'Afficher', async (f) => {
    const v = values(f, ['group_by']);
    const next = { indicator: v.indicator, from: v.from, to: v.to, territory: v.territory, group_by: v.group_by };
    if (next.indicator !== c.indicator) next.group_by = [];
    // The API checks the period and the territory; its errors land next to the field.
    await get(`/statistics/indicators/${encodeURIComponent(next.indicator)}${query(next)}`);
    location.hash = address(next);
  });

  const exports = def ? h('p', { class: 'exports' },
    h('button', { type: 'button', class: 'secondary', onclick: save(`${def.id}.csv`, c) }, 'Télécharger en CSV'), ' ',
    h('button', { type: 'button', class: 'secondary', onclick: save(`${def.id}.json`, c) }, 'Télécharger en JSON'), ' ',
    h('button', { type: 'button', class: 'secondary', onclick: save('open-data.zip', { ...c, territory: '', group_by: [] }) }, 'Open data : tous les indicateurs (ZIP)'))
    : null;

  render('Statistiques', pick,
    h('section', { 'aria-labelledby': 'h-ind' },
      h('h2', { id: 'h-ind' }, def?.label_fr || 'Aucun indicateur'),
      def?.description_fr ? h('p', {}, def.description_fr) : null,
      problem ? h('p', { class: 'form-status' }, problem.message) : chart(def, data, c.group_by, label),
      h('p', { class: 'help' }, `Les effectifs inférieurs à ${data.rule?.threshold ?? 'au seuil'} sont masqués (secret statistique) : ils apparaissent comme « secret ».`),
      exports));
  if (problem?.fields?.length) {
    showErrors(pick, problem);
  }
}

/** A download button's action: the export `file` with the choices `c`. */
function save(file, c) {
  return async () => {
    try {
      const name = await download(`/statistics/exports/${encodeURIComponent(file)}${query(file.startsWith('open-data') ? { ...c, territory: '', group_by: [] } : c)}`, file);
      notice(`Le fichier ${name} est téléchargé.`);
    } catch (e) {
      notice(e.message, 'error');
    }
  };
}

function cellLabel(cell, groupBy, label) {
  return groupBy.map((d) => label(d, cell[d] ?? '')).join(' · ') || 'Total';
}

function chart(def, data, groupBy, label) {
  const all = data.cells || [];
  if (!all.length) return h('p', {}, 'Pas encore de chiffres pour cet indicateur sur cette période.');
  const cells = all.slice(0, 40);
  const unit = def?.unit === 'percent' ? ' %' : def?.unit ? ` ${def.unit}` : '';
  const val = (c) => (c.suppressed ? 0 : Number(c.value ?? c.count ?? 0));
  const max = Math.max(1, ...cells.map(val));
  // Phone first: each label above its bar, in a drawing narrow enough to stay legible at
  // 390 px (the SVG takes the width it is given, its viewBox keeps the proportions).
  const rowH = 46; const barW = 330; const width = barW + 90;
  const height = cells.length * rowH + 4;
  const titleId = `chart-title-${def?.id}`;
  const svg = h('svg', { viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-labelledby': titleId, class: 'chart stats-chart', width: '100%' },
    h('title', { id: titleId }, `${def?.label_fr || 'Indicateur'} : diagramme en barres, ${cells.length} catégorie(s)`),
    cells.map((c, i) => {
      const y = i * rowH + 4;
      const w = Math.round((val(c) / max) * barW);
      return h('g', {},
        h('text', { x: 0, y: y + 15, class: 'chart-label' }, cellLabel(c, groupBy, label).slice(0, 48)),
        h('rect', { x: 0, y: y + 21, width: Math.max(w, 1), height: 18, class: c.suppressed ? 'chart-bar secret' : 'chart-bar' }),
        h('text', { x: w + 6, y: y + 36, class: 'chart-value' }, c.suppressed ? 'secret' : `${val(c)}${unit}`));
    }));
  // A count-only indicator has no « Valeur » column.
  const measured = all.some((c) => c.value != null && c.value !== c.count);
  const figures = measured ? ['Effectif', 'Valeur'] : ['Effectif'];
  const head = [...(groupBy.length ? groupBy.map((d) => DIMENSIONS[d] || d) : ['Catégorie']), ...figures];
  const table = h('details', {}, h('summary', {}, 'Voir les chiffres en tableau'),
    scrollBox(`${def?.label_fr || 'Indicateur'} : tableau des chiffres`, h('table', {},
      h('caption', {}, `${def?.label_fr || 'Indicateur'} : les chiffres du graphique`),
      h('thead', {}, h('tr', {}, head.map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, all.map((c) => h('tr', {},
        groupBy.length ? groupBy.map((d, i) => (i === 0 ? h('th', { scope: 'row' }, label(d, c[d] ?? '')) : h('td', {}, label(d, c[d] ?? '')))) : h('th', { scope: 'row' }, 'Total'),
        h('td', {}, c.suppressed ? 'secret' : c.count ?? '—'),
        measured ? h('td', {}, c.suppressed ? 'secret' : `${c.value ?? '—'}${c.value == null ? '' : unit}`) : null))))));
  const more = all.length > cells.length ? h('p', { class: 'help' }, `Le graphique montre les ${cells.length} premières catégories sur ${all.length} ; le tableau les montre toutes.`) : null;
  return h('figure', {}, svg, more, table);
}

/** `#/statistiques?indicateur=…&du=…&au=…&territoire=…&par=…`. */
export async function route(me, parts, params) {
  return dashboard(me, params);
}
