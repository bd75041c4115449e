// EVA's web client: one page, hash routes, a view per role.
import { get, post, setToken, token } from './api.js';
import { field, form, h, notice, render, values } from './dom.js';
import * as counselor from './counselor.js';
import * as person from './person.js';
import * as analyst from './analyst.js';

let me = null;

function roles(m) {
  const all = new Set(m.roles || []);
  for (const s of m.structures || []) for (const r of s.roles || []) all.add(r);
  if (m.person_id) all.add('person');
  return all;
}

function nav() {
  const n = document.getElementById('nav');
  if (!me) return n.replaceChildren();
  const r = roles(me);
  const links = [];
  if (r.has('counselor') || r.has('structure_admin')) links.push(['#/personnes', 'Personnes suivies']);
  if (r.has('person')) links.push(['#/mon-espace', 'Mon espace']);
  if (r.has('analyst')) links.push(['#/statistiques', 'Statistiques']);
  const here = location.hash || '#/';
  n.replaceChildren(h('ul', {},
    links.map(([href, label]) => h('li', {}, h('a', { href, 'aria-current': here.startsWith(href) ? 'page' : null }, label))),
    h('li', {}, h('span', { class: 'who' }, me.display_name || me.email)),
    h('li', {}, h('button', { type: 'button', class: 'link', onclick: logout }, 'Se déconnecter'))));
}

async function logout() {
  try { await post('/auth/logout', {}); } catch { /* the session ends here anyway */ }
  setToken(null);
  me = null;
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
        setToken(s.access_token);
        me = s.user;
      } catch (e) {
        if (e.status === 401) e.message = 'Adresse e-mail ou mot de passe incorrect.';
        throw e;
      }
      notice(`Bonjour ${me.display_name || me.email}, vous êtes connecté.`);
      go(home());
    }));
}

function home() {
  const r = roles(me);
  if (r.has('counselor') || r.has('structure_admin')) return '#/personnes';
  if (r.has('person')) return '#/mon-espace';
  if (r.has('analyst')) return '#/statistiques';
  return '#/compte';
}

async function route() {
  if (!token()) { me = null; nav(); return login(); }
  try {
    me ??= await get('/me');
  } catch {
    setToken(null); me = null; nav(); return login();
  }
  nav();
  const hash = location.hash || '#/';
  const parts = hash.slice(2).split('/');
  try {
    switch (parts[0]) {
      case 'personnes':
        if (parts[1] === 'nouvelle') return await counselor.newPerson(me);
        if (parts[1]) return await counselor.personPage(me, parts[1]);
        return await counselor.caseload(me);
      case 'diagnostics': return await counselor.diagnosticPage(me, parts[1]);
      case 'mon-espace': return await person.space(me);
      case 'statistiques': return await analyst.dashboard(me);
      case 'compte':
        return render('Mon compte', h('p', {}, `Vous êtes connecté en tant que ${me.email}.`));
      default:
        location.replace(home());
        return undefined;
    }
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

window.addEventListener('hashchange', () => route());
window.addEventListener('eva:logout', () => { me = null; notice('Votre session a expiré : reconnectez-vous.', 'warn'); });
route();
