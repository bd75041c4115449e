// Notifications: the list (each one links to its question or solution sheet), mark
// read, the preferences per kind; and the menu's link with the count of unread ones,
// kept live by the server's event stream (read with fetch: the stream wants the
// bearer token in a header, which EventSource cannot send).
import { get, getReferentiel, patch, post, token } from './api.js';
import { checkboxes, field, fmtDate, form, h, notice, render, values } from './dom.js';

/** `render` with the children flattened and the empty ones left out (null, false, arrays). */

const KINDS = {
  reply: ['Réponse à une question que vous suivez', 'Une collègue ou un collègue a répondu à une question que vous avez posée ou que vous suivez.'],
  mention: ['Mention', 'On vous cite dans une question ou une réponse.'],
  new_solution: ['Nouvelle fiche solution', 'Une fiche est publiée dans un domaine que vous suivez.'],
  answer_accepted: ['Réponse acceptée', 'Votre réponse a été acceptée par la personne qui posait la question.'],
};
const FREQUENCIES = [['immediately', 'Tout de suite'], ['daily_digest', 'Un résumé par jour'], ['never', 'Jamais']];

/** Only counselors and structure admins have notifications. */
function concerned(me) {
  const all = new Set(me?.roles || []);
  for (const s of me?.structures || []) for (const r of s.roles || []) all.add(r);
  return all.has('counselor') || all.has('structure_admin');
}

// The badge's state: one link in the menu at a time, redrawn with the count.
let unread = null;
let link = null;
let live = null; // { controller } while the stream is open
let retry = null;
let retryDelay = 2000;

function drawBadge() {
  if (!link) return;
  const here = location.hash || '#/';
  if (here === '#/notifications' || here.startsWith('#/notifications?') || here.startsWith('#/notifications/')) link.setAttribute('aria-current', 'page');
  else link.removeAttribute('aria-current');
  link.dataset.unread = String(unread ?? 0);
  const count = unread ? `${unread} non lue${unread > 1 ? 's' : ''}` : '';
  // Said as « Notifications, 2 non lues »; seen as « Notifications » and a pill « 2 non lues ».
  if (count) link.setAttribute('aria-label', `Notifications, ${count}`);
  else link.removeAttribute('aria-label');
  link.replaceChildren(...(count ? ['Notifications ', h('span', { class: 'count' }, count)] : ['Notifications']));
}

/** Asks the server how many are unread, and redraws the badge. */
export async function refresh() {
  try {
    const r = await get('/notifications?page_size=1&unread_only=true');
    set(r.unread_count);
  } catch {
    // The badge keeps its last count; the next event tries again.
  }
}

function set(n) {
  unread = Math.max(0, Number(n) || 0);
  drawBadge();
}

/** The menu's link to the notifications with the unread count (null for accounts without any). */
export function badge(me) {
  if (!concerned(me)) return null;
  link = h('a', { href: '#/notifications', class: 'notif-link' });
  drawBadge();
  if (!live && !retry) {
    refresh();
    listen();
  }
  return link;
}

/** Reads the event stream; each new notification refreshes the count. */
async function listen() {
  const t = token();
  if (!t) return;
  const controller = new AbortController();
  live = { controller };
  let ended = 'fin du flux';
  try {
    const res = await fetch('/api/v1/notifications/stream', {
      headers: { authorization: `Bearer ${t}`, accept: 'text/event-stream' },
      signal: controller.signal,
    });
    if (!res.ok || !res.body) throw new Error(`flux ${res.status}`);
    retryDelay = 2000;
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let end;
      // Events end with a blank line.
      while ((end = buffer.search(/\r?\n\r?\n/)) >= 0) {
        const raw = buffer.slice(0, end);
        buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, '');
        const event = /^event:\s*(.*)$/m.exec(raw)?.[1];
        if (event === 'ready') refresh();
        if (event === 'notification') {
          const before = unread ?? 0;
          await refresh();
          if ((unread ?? 0) > before) notice(`Nouvelle notification : vous en avez ${unread} non lue${unread > 1 ? 's' : ''}.`);
          if ((location.hash || '').startsWith('#/notifications')) await arrived?.();
        }
      }
    }
  } catch (e) {
    ended = e?.message || String(e);
  }
  if (live?.controller !== controller) return; // stopped, or another stream took over
  live = null;
  // Gone (server restart, network, expired token): try again later, a little later each time.
  retry = setTimeout(async () => {
    // The count first: an expired access token is refreshed by that call.
    if (link?.isConnected && token()) await refresh();
    retry = null;
    if (link?.isConnected && token() && !live) listen();
  }, retryDelay);
  retryDelay = Math.min(retryDelay * 2, 60_000);
  return ended;
}

/** Stops listening for new notifications (at logout). */
export function stop() {
  const l = live;
  live = null;
  l?.controller.abort();
  clearTimeout(retry);
  retry = null;
  retryDelay = 2000;
  unread = null;
  link = null;
}

/** The titles of the questions and sheets the notifications are about (what can be read). */
async function titles(items) {
  const wanted = new Map();
  for (const n of items) {
    if (n.content_kind === 'solution' && n.content_id) wanted.set(`s:${n.content_id}`, `/community/solutions/${n.content_id}`);
    else if (n.question_id) wanted.set(`q:${n.question_id}`, `/community/questions/${n.question_id}`);
  }
  const out = new Map();
  await Promise.all([...wanted].map(([k, path]) => get(path).then((x) => out.set(k, x.title), () => null)));
  return out;
}

function target(n) {
  if (n.content_kind === 'solution' && n.content_id) return [`#/communaute/solutions/${n.content_id}`, `s:${n.content_id}`];
  if (n.question_id) return [`#/communaute/questions/${n.question_id}`, `q:${n.question_id}`];
  if (n.content_kind === 'question' && n.content_id) return [`#/communaute/questions/${n.content_id}`, `q:${n.content_id}`];
  return [null, null];
}

async function markRead(body) {
  await post('/notifications/read', body);
  await refresh();
}

/** Redraws the open notifications page's list (not its preferences form). */
let arrived = null;

export async function route(me, parts, params) {
  if (!concerned(me)) return render('Notifications', h('p', {}, 'Les notifications concernent les conseillers et les responsables de structure.'));
  const onlyUnread = params?.get('non-lues') === '1';
  const listPath = `/notifications?page_size=100${onlyUnread ? '&unread_only=true' : ''}`;
  const [first, prefs, ref] = await Promise.all([get(listPath), get('/notifications/preferences'), getReferentiel()]);
  let page = first;
  set(page.unread_count);
  let names = await titles(page.items);
  const again = async (message) => {
    notice(message);
    await route(me, parts, params);
  };

  const item = (n) => {
    const [href, key] = target(n);
    const [kind] = KINDS[n.kind] || ['Notification'];
    const what = names.get(key) || (n.content_kind === 'solution' ? 'une fiche solution' : 'une question de la communauté');
    const read = Boolean(n.read_at);
    return h('li', { class: `notification ${read ? 'read' : 'unread'}` },
      h('p', { class: 'kind' }, read ? null : h('span', { class: 'dot' }, 'Non lue'), read ? null : ' · ', kind, ` · ${fmtDate(n.created_at)}`),
      h('p', {}, href
        ? h('a', { href, onclick: () => { if (!read) post('/notifications/read', { notification_ids: [n.id] }).then(refresh, () => null); } }, what)
        : what),
      read ? null : h('button', {
        type: 'button', class: 'secondary', 'aria-label': `Marquer comme lue : ${kind}, ${what}`,
        onclick: async (ev) => {
          ev.currentTarget.disabled = true;
          try {
            await markRead({ notification_ids: [n.id] });
            await again('La notification est marquée comme lue.');
          } catch (e) {
            ev.target.disabled = false;
            notice(e.message, 'error');
          }
        },
      }, 'Marquer comme lue'));
  };

  const prefsForm = form('Préférences de notification', [
    h('p', { class: 'help' }, 'Pour chaque sorte de notification, quand être prévenu(e).'),
    Object.entries(KINDS).map(([k, [label, help]]) => field(label, `pref_${k}`, { options: FREQUENCIES, value: prefs.preferences?.[k] || 'immediately', help }).wrap),
    checkboxes('Domaines suivis', 'followed_domains', ref.domains.map((d) => [d.id, d.label_fr]), {
      checked: prefs.followed_domains || [], help: 'Vous êtes prévenu(e) des nouvelles fiches solutions de ces domaines.',
    }),
  ], 'Enregistrer mes préférences', async (f) => {
    const v = values(f, ['followed_domains']);
    const preferences = {};
    for (const k of Object.keys(KINDS)) preferences[k] = v[`pref_${k}`];
    try {
      await patch('/notifications/preferences', { preferences, followed_domains: v.followed_domains });
    } catch (e) {
      // `preferences.reply` → the select `pref_reply`.
      e.fields = (e.fields || []).map((x) => ({ ...x, field: String(x.field).replace(/^preferences\./, 'pref_') }));
      throw e;
    }
    notice('Vos préférences sont enregistrées.');
  });

  const live = h('div', { class: 'notif-live' });
  const drawList = () => live.replaceChildren(
    h('p', {}, page.unread_count
      ? `${page.unread_count} notification${page.unread_count > 1 ? 's' : ''} non lue${page.unread_count > 1 ? 's' : ''}.`
      : 'Aucune notification non lue.'),
    h('nav', { class: 'tabs', 'aria-label': 'Quelles notifications montrer' }, h('ul', {},
      h('li', {}, h('a', { href: '#/notifications', 'aria-current': onlyUnread ? null : 'page' }, 'Toutes')),
      h('li', {}, h('a', { href: '#/notifications?non-lues=1', 'aria-current': onlyUnread ? 'page' : null }, 'Non lues')))),
    page.unread_count ? h('p', {}, h('button', {
      type: 'button',
      onclick: async (ev) => {
        ev.currentTarget.disabled = true;
        try {
          await markRead({ all: true });
          await again('Toutes les notifications sont marquées comme lues.');
        } catch (e) {
          ev.target.disabled = false;
          notice(e.message, 'error');
        }
      },
    }, 'Tout marquer comme lu')) : '',
    h('section', { 'aria-labelledby': 'n-list' },
      h('h2', { id: 'n-list' }, onlyUnread ? 'Notifications non lues' : 'Toutes les notifications'),
      page.items.length
        ? h('ul', { class: 'cards notifications' }, page.items.map(item))
        : h('p', {}, onlyUnread ? 'Rien de nouveau.' : 'Aucune notification pour l\'instant.')));
  drawList();
  // A notification arriving while the page is open joins the list at once.
  arrived = async () => {
    if (!live.isConnected) { arrived = null; return; }
    page = await get(listPath);
    names = await titles(page.items);
    drawList();
  };
  render('Notifications', live,
    h('section', { 'aria-labelledby': 'n-prefs' },
      h('h2', { id: 'n-prefs' }, 'Mes préférences'),
      prefsForm));
  return undefined;
}

