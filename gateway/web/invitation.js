// Accepting an invitation (no session needed): the code a structure handed over, what it
// is for, then the account's password; the session opens at once.
import { get, post, setSession } from './api.js';
import { field, fmtDay, form, h, notice, render, values } from './dom.js';

const ROLES = {
  person: 'personne accompagnée', counselor: 'conseiller ou conseillère', structure_admin: 'administrateur ou administratrice',
  partner: 'partenaire', analyst: 'analyste', operator: 'exploitant',
};

/** Invitation codes are shown in groups of four; spaces and dashes typed are dropped. */
const clean = (code) => String(code || '').replace(/[\s-]+/g, '').toUpperCase();

/** `#/invitation?code=…`: asks for the code, then the password. `done(session)` goes on. */
export async function route(params, done) {
  const code = clean(params.get('code'));
  if (!code) return askCode();
  let inv;
  try {
    inv = await get(`/invitations/${encodeURIComponent(code)}`);
  } catch (e) {
    const why = e.status === 404 || e.status === 400
      ? 'Ce code d\'invitation n\'existe pas ou a déjà servi. Vérifiez-le, ou demandez un nouveau code à la structure qui vous a invité.'
      : e.message;
    return askCode(code, why);
  }
  return accept(code, inv, done);
}

function askCode(typed = '', error = '') {
  const c = field('Code d\'invitation', 'code', { required: true, value: typed, autocomplete: 'one-time-code', help: 'Le code que la structure vous a remis, par exemple ABCD-EFGH-…' });
  const f = form('Saisir le code', [c.wrap], 'Continuer', async (el) => {
    const v = clean(values(el).code);
    if (!v) throw Object.assign(new Error('Le formulaire est incomplet.'), { fields: [{ field: 'code', message: 'Indiquez le code reçu.' }] });
    location.hash = `#/invitation?code=${encodeURIComponent(v)}`;
  });
  render('Accepter une invitation',
    h('p', {}, 'Une structure vous a invité à utiliser EVA : indiquez le code qu\'elle vous a remis pour créer votre accès.'),
    f,
    h('p', {}, h('a', { href: '#/' }, 'J\'ai déjà un compte : me connecter')));
  if (error) {
    const wrap = f.querySelector('[data-field="code"]');
    wrap.querySelector('.error').textContent = error;
    wrap.querySelector('input').setAttribute('aria-invalid', 'true');
    wrap.querySelector('input').focus();
  }
}

function accept(code, inv, done) {
  const role = ROLES[inv.role] || inv.role;
  const where = inv.structure ? ` pour ${inv.structure.name}` : '';
  const until = inv.expires_at ? ` Ce code est valable jusqu'au ${fmtDay(inv.expires_at, 'long')}.` : '';
  const fields = [];
  if (inv.password_required) {
    fields.push(field('Votre nom, tel que les autres le verront', 'display_name', { autocomplete: 'name', help: 'Facultatif si la structure l\'a déjà indiqué.' }).wrap);
    fields.push(field('Choisissez un mot de passe', 'password', { type: 'password', required: true, autocomplete: 'new-password', help: 'Au moins 12 caractères. Une phrase de quelques mots, facile à retenir pour vous seul, convient bien.' }).wrap);
    fields.push(field('Tapez-le une seconde fois', 'confirmation', { type: 'password', required: true, autocomplete: 'new-password' }).wrap);
  } else {
    fields.push(field('Le mot de passe de votre compte EVA', 'password', { type: 'password', required: true, autocomplete: 'current-password', help: `Vous avez déjà un compte avec l'adresse ${inv.email} : ce rôle s'y ajoute.` }).wrap);
  }
  render('Accepter une invitation',
    h('p', {}, `Vous êtes invité comme ${role}${where}, avec l'adresse ${inv.email}.${until}`),
    form('Créer mon accès', fields, inv.password_required ? 'Créer mon accès' : 'Accepter l\'invitation', async (f) => {
      const v = values(f);
      // Passwords as typed: spaces at the ends count.
      v.password = f.querySelector('[name="password"]').value;
      v.confirmation = f.querySelector('[name="confirmation"]')?.value;
      const wrong = [];
      if (!v.password) wrong.push({ field: 'password', message: 'Indiquez un mot de passe.' });
      else if (inv.password_required && [...v.password].length < 12) wrong.push({ field: 'password', message: `Le mot de passe doit compter au moins 12 caractères (il en a ${[...v.password].length}).` });
      if (inv.password_required && v.password && v.confirmation !== v.password) wrong.push({ field: 'confirmation', message: 'Les deux mots de passe ne sont pas les mêmes.' });
      if (wrong.length) throw Object.assign(new Error('Le formulaire contient des erreurs.'), { fields: wrong });
      const body = { code, password: v.password };
      if (v.display_name) body.display_name = v.display_name;
      let s;
      try {
        s = await post('/auth/invitations/accept', body);
      } catch (e) {
        if (e.status === 401) e.fields = [{ field: 'password', message: 'Ce mot de passe n\'est pas celui de votre compte.' }];
        // The password rules come back on `password`; anything else is said above the button.
        throw e;
      }
      setSession(s);
      notice(`Bienvenue ${s.user.display_name || s.user.email} : votre accès est prêt.`);
      done(s.user);
    }));
}
