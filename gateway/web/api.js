// The public API, and nothing else: bearer token in sessionStorage,
// problem+json answers turned into an ApiError with the fields' messages.
const TOKEN = 'eva.token';
const REFRESH = 'eva.refresh';

export class ApiError extends Error {
  constructor(status, problem) {
    const text = problem?.detail || problem?.title || `Erreur ${status}`;
    // The API speaks French then English ("fr / en"): keep the French.
    super(String(text).split(' / ')[0]);
    this.status = status;
    this.problem = problem;
    this.fields = (problem?.errors || []).map((e) => ({ field: e.field, message: String(e.message).split(' / ')[0] }));
  }
}

export const token = () => sessionStorage.getItem(TOKEN);
export const setToken = (t) => (t ? sessionStorage.setItem(TOKEN, t) : sessionStorage.removeItem(TOKEN));

/** Keeps a session answered by `/auth/login` or `/auth/refresh`. */
export function setSession(s) {
  setToken(s?.access_token);
  if (s?.refresh_token) sessionStorage.setItem(REFRESH, s.refresh_token);
  else sessionStorage.removeItem(REFRESH);
}

/** Ends the session on the server (its refresh token is revoked), then here. */
export async function endSession() {
  const refresh = sessionStorage.getItem(REFRESH);
  try {
    if (refresh) await send('POST', '/auth/logout', { refresh_token: refresh });
  } finally {
    setSession(null);
  }
}

/** One refresh at a time, shared by the calls that met an expired token. */
let refreshing = null;
async function refreshed() {
  const refresh = sessionStorage.getItem(REFRESH);
  if (!refresh) return false;
  refreshing ??= send('POST', '/auth/refresh', { refresh_token: refresh })
    .then((s) => { setSession(s); return true; }, () => false)
    .finally(() => { refreshing = null; });
  return refreshing;
}

const WRITES = new Set(['POST', 'PATCH', 'PUT', 'DELETE']);

/** A random UUID (v4): `crypto.randomUUID` needs https, a box on a LAN may serve http. */
function uuid() {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const x = [...b].map((v) => v.toString(16).padStart(2, '0')).join('');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

const pause = (ms) => new Promise((r) => setTimeout(r, ms));

async function send(method, path, body, accept = 'application/json, application/problem+json', key = undefined, extra = {}) {
  const headers = { accept, ...extra };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const t = token();
  if (t) headers.authorization = `Bearer ${t}`;
  if (key) headers['idempotency-key'] = key;
  try {
    return await fetch(`/api/v1${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new ApiError(0, { detail: 'Le serveur ne répond pas. Vérifiez votre connexion et réessayez.' });
  }
}

/**
 * A write whose answer was lost (the network dropped) is sent again under the same
 * `Idempotency-Key`: the server gives back the first answer instead of doing it twice
 * (a second person, a second referral). Twice at most, then the error is told.
 */
async function sendOnce(method, path, body, accept, extra) {
  if (!WRITES.has(method)) return send(method, path, body, accept, undefined, extra);
  const key = uuid();
  for (let attempt = 0; ; attempt += 1) {
    try {
      const res = await send(method, path, body, accept, key, extra);
      const busy = res.status === 409 && res.headers.get('retry-after')
        && (await res.clone().text()).includes('idempotency-key-in-use');
      if (!busy || attempt >= 4) return res;
      await pause(1000 * Number(res.headers.get('retry-after') || 1));
    } catch (e) {
      if (e.status !== 0 || attempt >= 2) throw e;
      await pause(500 * 3 ** attempt);
    }
  }
}

/** A call answered as a Response; an expired access token is refreshed once. */
async function call(method, path, body, accept, extra = {}) {
  let res = await sendOnce(method, path, body, accept, extra);
  if (res.status === 401 && token() && !path.startsWith('/auth/')) {
    if (await refreshed()) res = await sendOnce(method, path, body, accept, extra);
    if (res.status === 401) {
      setSession(null);
      window.dispatchEvent(new Event('eva:logout'));
    }
  }
  if (!res.ok) {
    let data = null;
    try { data = JSON.parse(await res.text()); } catch { data = null; }
    throw new ApiError(res.status, data);
  }
  return res;
}

async function parsed(res) {
  const text = await res.text();
  try { return text ? JSON.parse(text) : null; } catch { return null; }
}

export async function api(method, path, body) {
  return parsed(await call(method, path, body));
}

/**
 * A resource with its version (`ETag`), and a change made only over that version
 * (`If-Match`): someone else's change meanwhile is refused with 412, not overwritten.
 */
export async function getVersioned(path) {
  const res = await call('GET', path);
  return { data: await parsed(res), version: res.headers.get('etag') };
}
export async function patchVersioned(path, body, version) {
  const res = await call('PATCH', path, body, undefined, version ? { 'if-match': version } : {});
  return { data: await parsed(res), version: res.headers.get('etag') };
}

export const get = (p) => api('GET', p);
export const post = (p, b = {}) => api('POST', p, b);
export const patch = (p, b) => api('PATCH', p, b);
export const put = (p, b) => api('PUT', p, b);
export const del = (p) => api('DELETE', p);

/** Every item of a paged list (`items`, `next_page_token`), up to `max` items. */
export async function getAll(path, { max = 500, pageSize = 100 } = {}) {
  const out = [];
  let next = '';
  do {
    const sep = path.includes('?') ? '&' : '?';
    const page = await get(`${path}${sep}page_size=${pageSize}${next ? `&page_token=${encodeURIComponent(next)}` : ''}`);
    out.push(...page.items);
    next = page.next_page_token || '';
  } while (next && out.length < max);
  return out;
}

/**
 * Downloads what `path` answers as a file (the bearer token can't ride on a plain
 * link): the name from Content-Disposition, else `fallback`.
 */
export async function download(path, fallback, accept = '*/*') {
  const res = await call('GET', path, undefined, accept);
  const blob = await res.blob();
  const named = /filename="?([^";]+)"?/.exec(res.headers.get('content-disposition') || '');
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob);
  a.download = named ? named[1] : fallback;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
  return a.download;
}

/** Cached reads the views share: the référentiel and the structures' names. */
let referentiel;
export async function getReferentiel() {
  referentiel ??= await get('/referentiel');
  return referentiel;
}
let structures;
export async function getStructures() {
  structures ??= (await get('/structures?page_size=500')).items;
  return structures;
}
export function levelLabel(ref, code) {
  return ref.levels.find((l) => l.code === code)?.label_fr || code || '—';
}
export function domainLabel(ref, id) {
  return ref.domains.find((d) => d.id === id)?.label_fr || id;
}
/** Forgets the cached reads (at logout: the next account may see other structures). */
export function forget() {
  referentiel = undefined;
  structures = undefined;
}
