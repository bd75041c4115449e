// La bibliothèque de fiches solutions de la communauté : les fiches par domaine (les plus
// utiles d'abord), une fiche et l'avis « ça a marché », publier une fiche ; sa modification
// par l'auteur et sa modération sont dans community_moderation.js.
import { get, getReferentiel, post } from './api.js';
import { field, fmtDate, form, h, notice, values } from './dom.js';
import {
  BASE, action, allSpaces, byWho, crumbs, explainRefusal, page, prose, screenWhileTyping, tags,
} from './community.js';
import { editSolution, edited, moderateBox, reportBox, sheetFields, sheetPayload } from './community_moderation.js';

// ---------------------------------------------------------------------------
// Bibliothèque de solutions
// ---------------------------------------------------------------------------

function validity(s) {
  if (s.valid_from && s.valid_until) return `Valable du ${s.valid_from.split('-').reverse().join('/')} au ${s.valid_until.split('-').reverse().join('/')}`;
  if (s.valid_until) return `Valable jusqu'au ${s.valid_until.split('-').reverse().join('/')}`;
  if (s.valid_from) return `Valable depuis le ${s.valid_from.split('-').reverse().join('/')}`;
  return null;
}

const counts = (s) => `Utilisée ${s.used_count} fois, a marché ${s.worked_count} fois`;

export async function library(me, params) {
  const ref = await getReferentiel();
  const domain = params.get('domaine') || '';
  const expired = params.get('expirees') === '1';
  const qs = new URLSearchParams({ page_size: '100' });
  if (domain) qs.set('domain', domain);
  if (expired) qs.set('include_expired', 'true');
  const sheets = (await get(`/community/solutions?${qs}`)).items;
  const pick = field('Domaine', 'domaine', { options: [['', 'Tous les domaines'], ...ref.domains.map((d) => [d.id, d.label_fr])], value: domain });
  const filter = form('Filtrer les fiches', [pick.wrap,
    h('div', { class: 'check' }, h('input', { type: 'checkbox', id: 'c-expired', name: 'expirees', value: '1', checked: expired }),
      h('label', { for: 'c-expired' }, 'Montrer aussi les fiches expirées'))], 'Filtrer', async (f) => {
    const v = values(f);
    const p = new URLSearchParams();
    if (v.domaine) p.set('domaine', v.domaine);
    if (v.expirees) p.set('expirees', '1');
    location.hash = `${BASE}/solutions${p.toString() ? `?${p}` : ''}`;
  });
  filter.classList.add('filters');
  return page('Bibliothèque de solutions', crumbs(['Solutions', null]),
    h('p', {}, 'Des fiches écrites par des conseillers : un dispositif, une aide, un contact qui a marché. Les plus utiles d\'abord.'),
    h('p', { class: 'actions' }, h('a', { class: 'button', href: `${BASE}/solutions/nouvelle` }, 'Publier une fiche')),
    filter,
    h('section', { 'aria-labelledby': 'c-sheets' },
      h('h2', { id: 'c-sheets' }, sheets.length ? `${sheets.length} fiche${sheets.length > 1 ? 's' : ''}` : 'Aucune fiche'),
      sheets.length
        ? h('ul', { class: 'cards sheets' }, sheets.map((s) => h('li', {},
          h('h3', {}, h('a', { href: `${BASE}/solutions/${s.id}` }, s.title)),
          h('p', { class: 'meta' }, counts(s), validity(s) ? ` · ${validity(s)}` : ''),
          tags(ref, s.domains))))
        : h('p', {}, domain ? 'Aucune fiche pour ce domaine. ' : '', h('a', { href: `${BASE}/solutions/nouvelle` }, 'Publiez la première'), '.')));
}

export async function solution(me, id) {
  const [ref, s, spaces] = await Promise.all([getReferentiel(), get(`/community/solutions/${id}`), allSpaces()]);
  // A sheet is moderated by the moderators of a theme space of one of its domains.
  const moderator = spaces.some((sp) => sp.kind === 'theme' && sp.my_role === 'moderator' && s.domains.includes(sp.domain_id));
  const itemLabel = (itemId) => {
    for (const d of ref.domains) {
      const it = (d.items || []).find((i) => i.id === itemId);
      if (it) return it.label_fr;
    }
    return itemId;
  };
  const countLine = h('p', { class: 'counts', id: 'c-counts' }, counts(s));
  const said = (worked) => action(worked ? 'Ça a marché' : 'Ça n\'a pas marché', async () => {
    const ns = await post(`/community/solutions/${id}/feedback`, { worked });
    countLine.textContent = counts(ns);
    notice(worked ? 'Merci : votre avis « ça a marché » est enregistré.' : 'Merci : votre avis « ça n\'a pas marché » est enregistré.');
  }, { class: worked ? '' : 'secondary', 'aria-describedby': 'c-counts' });
  const mine = s.author_user_id === me.user_id;
  return page(s.title, crumbs(['Solutions', `${BASE}/solutions`], ['Fiche', null]),
    h('article', { class: 'sheet' },
      h('p', { class: 'meta', id: 'c-s-meta' }, `${byWho(me, s.author_user_id, 'Votre fiche', 'Fiche')}, ${fmtDate(s.created_at)}`, edited(s)),
      s.status === 'hidden' ? h('p', {}, h('span', { class: 'badge hidden' }, 'Masquée par la modération')) : null,
      tags(ref, s.domains),
      prose(s.body),
      h('dl', { class: 'facts' },
        validity(s) ? [h('dt', {}, 'Validité'), h('dd', {}, validity(s))] : null,
        s.territory_codes.length ? [h('dt', {}, 'Territoires'), h('dd', {}, s.territory_codes.join(', '))] : null,
        s.item_ids.length ? [h('dt', {}, 'Freins concernés'), h('dd', {}, s.item_ids.map(itemLabel).join(', '))] : null)),
    h('section', { 'aria-labelledby': 'c-feedback' },
      h('h2', { id: 'c-feedback' }, 'Vous l\'avez utilisée ?'),
      h('p', {}, 'Dites-le à vos collègues : les fiches qui marchent remontent en tête de la bibliothèque. Votre dernier avis compte.'),
      countLine,
      h('p', { class: 'actions' }, said(true), said(false))),
    mine ? editSolution(s, ref, () => solution(me, id)) : null,
    moderator ? moderateBox('solution', s, () => solution(me, id)) : null,
    mine || moderator ? null : reportBox('solution', s.id, 'cette fiche'));
}

export async function publish() {
  const ref = await getReferentiel();
  const f = form('Publier une fiche solution', sheetFields(ref), 'Publier la fiche', async (fm) => {
    const v = values(fm, ['domains']);
    const payload = sheetPayload(v);
    let s;
    try {
      s = await post('/community/solutions', payload);
    } catch (e) {
      await explainRefusal(e, { title: v.title, body: v.body });
    }
    notice('Votre fiche est publiée dans la bibliothèque.');
    location.hash = `${BASE}/solutions/${s.id}`;
  });
  screenWhileTyping(f, ['title', 'body']);
  return page('Publier une fiche solution', crumbs(['Solutions', `${BASE}/solutions`], ['Publier une fiche', null]),
    h('p', {}, 'Une aide, un dispositif, un contact qui a marché : partagez-le avec vos collègues.'),
    f);
}

