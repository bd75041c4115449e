// The person: my consents (withdraw a domain, or all), and who accessed my file.
import { get, getReferentiel, getStructures, domainLabel, post } from './api.js';
import { fmtDate, h, notice, render } from './dom.js';

const ACTIONS = { read: 'a consulté', create: 'a créé', update: 'a modifié', delete: 'a supprimé', export: 'a exporté', share: 'a partagé' };

export async function space(me) {
  const id = me.person_id;
  const [ref, structures, consents, log] = await Promise.all([
    getReferentiel().catch(() => ({ domains: [], levels: [] })), getStructures().catch(() => []),
    get(`/people/${id}/consents?status=active`), get(`/people/${id}/access-log?page_size=50`),
  ]);
  const nameOf = (sid) => structures.find((s) => s.id === sid)?.name || 'une structure';

  // Withdrawing one domain: the consent is withdrawn and granted again without it.
  async function withdrawDomain(c, domain) {
    await post(`/consents/${c.id}/withdraw`, {});
    const rest = c.domains.filter((d) => d !== domain);
    if (rest.length) {
      await post(`/people/${id}/consents`, { grantee_structure_id: c.grantee_structure_id, domains: rest, purposes: c.purposes, valid_until: c.valid_until });
    }
    notice(`${nameOf(c.grantee_structure_id)} ne voit plus le domaine « ${domainLabel(ref, domain)} ».`);
    await space(me);
  }
  async function withdrawAll(c) {
    await post(`/consents/${c.id}/withdraw`, {});
    notice(`Votre accord à ${nameOf(c.grantee_structure_id)} est retiré.`);
    await space(me);
  }
  const act = (fn) => async () => { try { await fn(); } catch (e) { notice(e.message, 'error'); } };

  render('Mon espace',
    h('section', { 'aria-labelledby': 'h-consents' },
      h('h2', { id: 'h-consents' }, 'Mes consentements'),
      h('p', {}, 'Vous choisissez qui voit quoi dans votre dossier. Vous pouvez retirer votre accord à tout moment : cela prend effet tout de suite.'),
      consents.items.filter((c) => c.status === 'active').length ? consents.items.filter((c) => c.status === 'active').map((c) => h('article', { class: 'card', 'aria-labelledby': `c-${c.id}` },
        h('h3', { id: `c-${c.id}` }, nameOf(c.grantee_structure_id)),
        h('p', {}, `Pour : ${c.purposes.join(', ')} · jusqu'au ${c.valid_until}. `, h('a', { href: c.receipt_url }, 'Télécharger le reçu')),
        h('ul', { class: 'domains' }, c.domains.map((d) => h('li', {}, h('span', {}, domainLabel(ref, d)), ' ',
          h('button', { type: 'button', class: 'secondary', onclick: act(() => withdrawDomain(c, d)) }, `Retirer l'accord pour « ${domainLabel(ref, d)} »`)))),
        h('button', { type: 'button', class: 'danger', onclick: act(() => withdrawAll(c)) }, `Retirer tout mon accord à ${nameOf(c.grantee_structure_id)}`)))
        : h('p', {}, 'Aucun consentement actif.')),
    h('section', { 'aria-labelledby': 'h-log' },
      h('h2', { id: 'h-log' }, 'Qui a consulté mon dossier'),
      log.items.length
        ? h('div', { class: 'table-wrap' }, h('table', {},
          h('caption', {}, 'Les accès à votre dossier, les plus récents d\'abord'),
          h('thead', {}, h('tr', {}, ['Quand', 'Qui', 'Quoi', 'Domaines'].map((t) => h('th', { scope: 'col' }, t)))),
          h('tbody', {}, log.items.map((a) => h('tr', {},
            h('td', {}, fmtDate(a.occurred_at)),
            h('td', {}, [a.actor_display_name || 'Quelqu\'un', a.actor_structure_name ? ` (${a.actor_structure_name})` : ''].join('')),
            h('td', {}, `${ACTIONS[a.action] || a.action} : ${a.resource_type}`),
            h('td', {}, (a.domains || []).map((d) => domainLabel(ref, d)).join(', ') || '—'))))))
        : h('p', {}, 'Personne n\'a encore consulté votre dossier.')));
}
