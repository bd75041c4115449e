// Building the page without innerHTML: h('p', { class: 'x' }, 'texte', child).
export function h(tag, attrs = {}, ...children) {
  const svg = ['svg', 'g', 'rect', 'text', 'title', 'desc', 'line'].includes(tag);
  const el = svg ? document.createElementNS('http://www.w3.org/2000/svg', tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/**
 * A table in a box that scrolls sideways when the table is wider than the screen (a
 * phone): the box is focusable and named, so the keyboard can scroll it too.
 */
export function scrollBox(label, table) {
  return h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': label }, table);
}

let ids = 0;
/** A unique id for label/field pairs. */
export const uid = (p = 'f') => `${p}-${++ids}`;

/** Replaces the main content; the title and focus move to the new page's h1. */
export function render(title, ...children) {
  const main = document.getElementById('main');
  // Children as h() takes them: arrays flattened, null/undefined/false left out.
  const kids = children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false);
  main.replaceChildren(h('h1', { tabindex: '-1' }, title), ...kids);
  document.title = `${title} — EVA`;
  main.querySelector('h1').focus();
}

/** A message for screen readers and eyes, in the page's live region. */
export function notice(text, kind = 'ok') {
  const n = document.getElementById('notice');
  n.className = `notice ${kind}`;
  n.textContent = text;
  n.dataset.at = String(Date.now());
}

/** Clears a message older than `ms` (a new page does not keep the last page's news). */
export function clearNotice(ms) {
  const n = document.getElementById('notice');
  if (n.textContent && Date.now() - Number(n.dataset.at || 0) > ms) {
    n.textContent = '';
    n.className = 'notice';
  }
}

/** A labelled field with its help and its error slot: { wrap, input }. */
export function field(label, name, { type = 'text', required = false, help, options, value, autocomplete, multiline } = {}) {
  const id = uid(name);
  const errId = `${id}-err`;
  const helpId = help ? `${id}-help` : null;
  let input;
  if (options) {
    input = h('select', { id, name, required }, options.map(([v, l]) => h('option', { value: v, selected: v === value }, l)));
  } else if (multiline) {
    input = h('textarea', { id, name, required, rows: 3 });
    if (value) input.value = value;
  } else {
    input = h('input', { id, name, type, required, autocomplete, value });
  }
  input.setAttribute('aria-describedby', [helpId, errId].filter(Boolean).join(' '));
  const wrap = h('div', { class: 'field', 'data-field': name },
    h('label', { for: id }, label, required ? h('span', { class: 'req' }, ' (obligatoire)') : null),
    help ? h('p', { class: 'help', id: helpId }, help) : null,
    input,
    h('p', { class: 'error', id: errId }));
  return { wrap, input };
}

/** A group of checkboxes in a fieldset; name repeated, values in `choices`. */
export function checkboxes(legend, name, choices, { help, checked = [] } = {}) {
  const errId = uid(`${name}-err`);
  const helpId = help ? uid(`${name}-help`) : null;
  return h('fieldset', { class: 'field checks', 'data-field': name, 'aria-describedby': [helpId, errId].filter(Boolean).join(' ') },
    h('legend', {}, legend),
    help ? h('p', { class: 'help', id: helpId }, help) : null,
    choices.map(([v, l]) => {
      const id = uid(name);
      return h('div', { class: 'check' }, h('input', { type: 'checkbox', id, name, value: v, checked: checked.includes(v) }), h('label', { for: id }, l));
    }),
    h('p', { class: 'error', id: errId }));
}

/** A form with a status line (aria-live) and a submit button; `onsubmit(form)` may throw an ApiError. */
export function form(label, children, submit, onsubmit) {
  const status = h('p', { class: 'form-status', role: 'alert' });
  const button = h('button', { type: 'submit' }, submit);
  const f = h('form', { 'aria-label': label, novalidate: true }, children, status, button);
  f.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearErrors(f);
    clearNotice(-1); // the news of an earlier action is old once another is tried
    button.disabled = true;
    try {
      await onsubmit(f);
    } catch (err) {
      showErrors(f, err);
    } finally {
      button.disabled = false;
    }
  });
  return f;
}

export function clearErrors(f) {
  for (const p of f.querySelectorAll('.error, .form-status')) p.textContent = '';
  for (const el of f.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
}

/** Puts each field's message next to it; what was typed stays where it was. */
export function showErrors(f, err) {
  const status = f.querySelector('.form-status');
  const fields = err.fields || [];
  let first = null;
  const unplaced = [];
  for (const { field: name, message } of fields) {
    const key = String(name).split(/[.[]/)[0];
    const wrap = f.querySelector(`[data-field="${CSS.escape(key)}"]`);
    if (!wrap) { unplaced.push(message); continue; }
    wrap.querySelector('.error').textContent = message;
    const input = wrap.querySelector('input, select, textarea');
    if (input) input.setAttribute('aria-invalid', 'true');
    first ??= input;
  }
  // `explained`: the error's own message says it best (not a mere validation error).
  const general = fields.length && !unplaced.length && !err.explained
    ? 'Le formulaire contient des erreurs : corrigez les champs signalés.'
    : [err.message || 'Une erreur est survenue.', ...unplaced].join(' ');
  status.textContent = general;
  (first || status).focus?.();
}

/** Values of a form: repeated names (checkboxes) as arrays when `arrays` lists them. */
export function values(f, arrays = []) {
  const data = new FormData(f);
  const out = {};
  for (const [k, v] of data) {
    if (arrays.includes(k)) (out[k] ||= []).push(v);
    else out[k] = typeof v === 'string' ? v.trim() : v;
  }
  for (const k of arrays) out[k] ||= [];
  return out;
}

export function fmtDate(s) {
  if (!s) return '';
  const d = new Date(s);
  return Number.isNaN(d.getTime()) ? s : d.toLocaleString('fr-FR', { dateStyle: 'medium', timeStyle: 'short' });
}

const DAY_STYLES = {
  numeric: {},
  short: { day: 'numeric', month: 'short', year: 'numeric' },
  long: { dateStyle: 'long' },
};
/**
 * A day in French: `numeric` 14/03/2026, `short` 14 mars 2026, `long` 14 mars 2026 (and
 * « 1er »). A date alone (`2026-03-14`) is that day wherever the browser is.
 */
export function fmtDay(s, style = 'numeric') {
  if (!s) return '';
  const only = /^(\d{4})-(\d{2})-(\d{2})$/.exec(s);
  const d = only ? new Date(Number(only[1]), Number(only[2]) - 1, Number(only[3])) : new Date(s);
  if (Number.isNaN(d.getTime())) return s;
  const text = d.toLocaleDateString('fr-FR', DAY_STYLES[style]);
  return style === 'numeric' ? text : text.replace(/^1 /, '1er ');
}
