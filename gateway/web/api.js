// The public API, and nothing else: bearer token in sessionStorage,
// problem+json answers turned into an ApiError with the fields' messages.
const TOKEN = 'eva.token';

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

export async function api(method, path, body) {
  const headers = { accept: 'application/json, application/problem+json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const t = token();
  if (t) headers.authorization = `Bearer ${t}`;
  let res;
  try {
    res = await fetch(`/api/v1${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new ApiError(0, { detail: 'Le serveur ne répond pas. Vérifiez votre connexion et réessayez.' });
  }
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!res.ok) {
    if (res.status === 401 && t) {
      setToken(null);
      window.dispatchEvent(new Event('eva:logout'));
    }
    throw new ApiError(res.status, data);
  }
  return data;
}

export const get = (p) => api('GET', p);
export const post = (p, b = {}) => api('POST', p, b);
export const patch = (p, b) => api('PATCH', p, b);

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
