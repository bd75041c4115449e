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

async function send(method, path, body, accept = 'application/json, application/problem+json') {
  const headers = { accept };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const t = token();
  if (t) headers.authorization = `Bearer ${t}`;
  try {
    return await fetch(`/api/v1${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new ApiError(0, { detail: 'Le serveur ne répond pas. Vérifiez votre connexion et réessayez.' });
  }
}

/** A call answered as a Response; an expired access token is refreshed once. */
async function call(method, path, body, accept) {
  let res = await send(method, path, body, accept);
  if (res.status === 401 && token() && !path.startsWith('/auth/')) {
    if (await refreshed()) res = await send(method, path, body, accept);
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

export async function api(method, path, body) {
  const res = await call(method, path, body);
  const text = await res.text();
  try { return text ? JSON.parse(text) : null; } catch { return null; }
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
