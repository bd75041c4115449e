// The analyst: an indicator's figures as a bar chart (SVG) and as a table.
import { get } from './api.js';
import { field, form, h, render, values } from './dom.js';

export async function dashboard(me, chosen) {
  const indicators = (await get('/statistics/indicators')).items;
  const id = chosen || indicators[0]?.id;
  const def = indicators.find((i) => i.id === id);
  const data = id ? await get(`/statistics/indicators/${encodeURIComponent(id)}`) : { cells: [] };
  const pick = form('Choisir un indicateur', [
    field('Indicateur', 'indicator', { options: indicators.map((i) => [i.id, i.label_fr]), value: id }).wrap,
  ], 'Afficher', async (f) => dashboard(me, values(f).indicator));
  render('Statistiques', pick,
    h('section', { 'aria-labelledby': 'h-ind' },
      h('h2', { id: 'h-ind' }, def?.label_fr || 'Aucun indicateur'),
      def?.description_fr ? h('p', {}, def.description_fr) : null,
      chart(def, data),
      h('p', { class: 'help' }, `Les effectifs inférieurs à ${data.rule?.threshold ?? 'au seuil'} sont masqués (secret statistique).`)));
}

function cellLabel(cell) {
  const dims = Object.entries(cell).filter(([k]) => !['count', 'value', 'suppressed'].includes(k));
  return dims.map(([, v]) => v).join(' · ') || 'Total';
}

function chart(def, data) {
  const cells = (data.cells || []).slice(0, 30);
  if (!cells.length) return h('p', {}, 'Pas encore de chiffres pour cet indicateur.');
  const unit = def?.unit === 'percent' ? ' %' : def?.unit ? ` ${def.unit}` : '';
  const val = (c) => (c.suppressed ? 0 : Number(c.value ?? c.count ?? 0));
  const max = Math.max(1, ...cells.map(val));
  const rowH = 28; const labelW = 220; const barW = 380; const width = labelW + barW + 80;
  const height = cells.length * rowH + 10;
  const titleId = `chart-title-${def?.id}`;
  const svg = h('svg', { viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-labelledby': titleId, class: 'chart', width: '100%' },
    h('title', { id: titleId }, `${def?.label_fr || 'Indicateur'} : diagramme en barres`),
    cells.map((c, i) => {
      const y = i * rowH + 5;
      const w = Math.round((val(c) / max) * barW);
      return h('g', {},
        h('text', { x: labelW - 8, y: y + 18, 'text-anchor': 'end', class: 'chart-label' }, cellLabel(c).slice(0, 32)),
        h('rect', { x: labelW, y, width: Math.max(w, 1), height: rowH - 8, class: 'chart-bar' }),
        h('text', { x: labelW + w + 6, y: y + 18, class: 'chart-value' }, c.suppressed ? 'secret' : `${val(c)}${unit}`));
    }));
  const table = h('details', {}, h('summary', {}, 'Voir les chiffres en tableau'),
    h('div', { class: 'table-wrap' }, h('table', {},
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Catégorie'), h('th', { scope: 'col' }, 'Effectif'), h('th', { scope: 'col' }, 'Valeur'))),
      h('tbody', {}, cells.map((c) => h('tr', {}, h('th', { scope: 'row' }, cellLabel(c)), h('td', {}, c.suppressed ? 'secret' : c.count ?? '—'), h('td', {}, c.suppressed ? 'secret' : `${c.value ?? '—'}${unit}`)))))));
  return h('figure', {}, svg, table);
}
