// EVA's web client: one page, hash routes (`#/<area>/…?query`), a module per area.
// Each module answers `route(me, parts, params)` for its area's addresses.
import { endSession, forget, get, post, setSession, token } from './api.js';
import { clearNotice, field, form, h, notice, render, values } from './dom.js';
import * as counselor from './counselor.js';
import * as notifications from './notifications.js';
import * as referrals from './referrals.js';
import * as community from './community.js';
import * as admin from './admin.js';
import * as person from './person.js';
import * as analyst from './analyst.js';
import * as invitation from './invitation.js';

let me = null;

/** Every role the account holds, in any structure. */
export function roles(m) {
  const all = new Set(m.roles || []);
  for (const s of m.structures || []) for (const r of s.roles || []) all.add(r);
  if (m.person_id) all.add('person');
  return all;
}

const AREAS = {
  personnes: counselor, diagnostics: counselor, notifications, orientations: referrals,
  communaute: community, structure: admin, 'mon-espace': person, statistiques: analyst,
};

function links(r) {
  const out = [];
  const counselling = r.has('counselor') || r.has('structure_admin');
  if (counselling) out.push(['#/personnes', 'Personnes suivies']);
  if (counselling || r.has('partner')) out.push(['#/orientations', 'Orientations']);
  if (counselling) out.push(['#/communaute', 'Communauté']);
  if (r.has('structure_admin') || r.has('partner')) out.push(['#/structure', 'Ma structure']);
  if (r.has('person')) out.push(['#/mon-espace', 'Mon espace']);
  if (r.has('analyst')) out.push(['#/statistiques', 'Statistiques']);
  return out;
}

function nav() {
  const n = document.getElementById('nav');
  if (!me) return n.replaceChildren();
  const r = roles(me);
  const here = location.hash || '#/';
  const current = (href) => (here === href || here.startsWith(`${href}/`) || here.startsWith(`${href}?`) ? 'page' : null);
  n.replaceChildren(h('ul', {},
    links(r).map(([href, label]) => h('li', {}, h('a', { href, 'aria-current': current(href) }, label))),
    h('li', {}, notifications.badge(me)),
    h('li', {}, h('span', { class: 'who' }, me.display_name || me.email)),
    h('li', {}, h('button', { type: 'button', class: 'link', onclick: logout }, 'Se déconnecter'))));
  return undefined;
}

async function logout() {
  try { await endSession(); } catch { /* the session ends here anyway */ }
  me = null;
  forget();
  notifications.stop();
  notice('Vous êtes déconnecté.');
  go('#/');
}

function login() {
  const email = field('Adresse e-mail', 'email', { type: 'email', required: true, autocomplete: 'username' });
  const password = field('Mot de passe', 'password', { type: 'password', required: true, autocomplete: 'current-password' });
  render('Se connecter',
    h('p', {}, 'Connectez-vous avec l\'adresse e-mail et le mot de passe de votre compte EVA.'),
    form('Connexion', [email.wrap, password.wrap], 'Se connecter', async (f) => {
      const v = values(f);
      const fields = [];
      if (!v.email) fields.push({ field: 'email', message: 'Indiquez votre adresse e-mail.' });
      if (!v.password) fields.push({ field: 'password', message: 'Indiquez votre mot de passe.' });
      if (fields.length) throw Object.assign(new Error('Le formulaire est incomplet.'), { fields });
      try {
        const s = await post('/auth/login', { email: v.email, password: v.password });
        setSession(s);
        me = s.user;
      } catch (e) {
        if (e.status === 401) e.message = 'Adresse e-mail ou mot de passe incorrect.';
        throw e;
      }
      notice(`Bonjour ${me.display_name || me.email}, vous êtes connecté.`);
      // After an expired session, back to the page that was open.
      go(location.hash && location.hash !== '#/' ? location.hash : home());
    }),
    h('p', {}, 'Une structure vous a remis un code d\'invitation ? ', h('a', { href: '#/invitation' }, 'Créer mon accès avec ce code')));
}

function home() {
  return links(roles(me))[0]?.[0] || '#/compte';
}

/**
 * Draws the page of the address. `main` is `aria-busy` while it loads, and says which
 * address it shows (`data-rendered`) once drawn: assistive technologies and tests wait for it.
 */
let generation = 0;
async function route() {
  const main = document.getElementById('main');
  const mine = ++generation;
  main.setAttribute('aria-busy', 'true');
  // A message said just before this page was asked for (« vous êtes connecté ») stays.
  clearNotice(1500);
  try {
    await draw();
  } finally {
    if (mine === generation) {
      main.dataset.rendered = location.hash || '#/';
      main.setAttribute('aria-busy', 'false');
    }
  }
}

async function draw() {
  const hash = (location.hash || '#/').slice(2);
  const [path, query] = hash.split('?');
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  const params = new URLSearchParams(query || '');
  // An invitation is accepted without a session (it opens one).
  if (parts[0] === 'invitation') {
    return invitation.route(params, (user) => { me = user; go(home()); });
  }
  if (!token()) { me = null; nav(); return login(); }
  try {
    me ??= await get('/me');
  } catch {
    setSession(null); me = null; nav(); return login();
  }
  nav();
  try {
    if (parts[0] === 'compte') return render('Mon compte', h('p', {}, `Vous êtes connecté en tant que ${me.email}.`));
    const area = AREAS[parts[0]];
    if (!area) {
      // Unless another address was asked for meanwhile (its own route draws it).
      if ((location.hash || '#/').slice(2) === hash) location.replace(home());
      return undefined;
    }
    return await area.route(me, parts, params);
  } catch (e) {
    render('Page indisponible', h('p', { class: 'form-status' }, e.message || 'Une erreur est survenue.'),
      h('p', {}, h('a', { href: home() }, 'Revenir à l\'accueil')));
    return undefined;
  }
}

/** Goes to a page; the page is drawn even when the address does not change. */
export function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

// « Aller au contenu » moves the focus to the page's h1: following `#main` would change the
// address, and the address is the route.
document.querySelector('a.skip')?.addEventListener('click', (e) => {
  e.preventDefault();
  const main = document.getElementById('main');
  (main.querySelector('h1') || main).focus();
});
window.addEventListener('hashchange', () => route());
window.addEventListener('eva:logout', () => {
  me = null;
  notifications.stop();
  route().then(() => notice('Votre session a expiré : reconnectez-vous pour revenir à cette page.', 'warn'));
});
route();
