// The counselor: caseload, a new person, the person's file (consents,
// diagnostics, referral) and the diagnostic editor with both ratings side by side.
import { get, getReferentiel, getStructures, levelLabel, domainLabel, patch, post } from './api.js';
import { checkboxes, field, fmtDate, form, h, notice, render, values } from './dom.js';

const PURPOSES = [['accompagnement', 'Accompagnement'], ['orientation', 'Orientation vers une autre structure'], ['statistiques', 'Statistiques anonymes']];
const STATUS = { brouillon: 'Brouillon', partage: 'Partagé', remplace: 'Remplacé' };
const REFERRAL = {
  envoyee: 'envoyée', a_l_etude: 'à l\'étude', acceptee: 'acceptée', refusee: 'refusée', expiree: 'expirée', en_cours: 'en cours',
  terminee: 'terminée', abandonnee: 'abandonnée', annulee: 'annulée', declinee_par_la_personne: 'déclinée par la personne',
};

function myStructures(me) {
  return (me.structures || []).filter((s) => s.roles.includes('counselor') || s.roles.includes('structure_admin'));
}

export async function caseload(me) {
  const mine = myStructures(me);
  const lists = await Promise.all(mine.map(async (s) => [s, (await get(`/people?structure_id=${s.id}&page_size=200`)).items]));
  render('Personnes suivies',
    h('p', {}, h('a', { href: '#/personnes/nouvelle', class: 'button' }, 'Inscrire une personne')),
    lists.map(([s, people]) => h('section', { 'aria-labelledby': `s-${s.id}` },
      h('h2', { id: `s-${s.id}` }, s.name),
      people.length
        ? h('ul', { class: 'cards' }, people.map((p) => h('li', {}, h('a', { href: `#/personnes/${p.id}` }, `${p.first_name} ${p.last_name}`), ` — née ou né le ${p.birth_date}`)))
        : h('p', {}, 'Personne n\'est encore suivi par cette structure.'))));
}

export async function newPerson(me) {
  const mine = myStructures(me);
  const structure = field('Structure qui accompagne', 'structure_id', { options: mine.map((s) => [s.id, s.name]), required: true });
  const first = field('Prénom', 'first_name', { required: true, autocomplete: 'off' });
  const last = field('Nom', 'last_name', { required: true, autocomplete: 'off' });
  const birth = field('Date de naissance', 'birth_date', { type: 'date', required: true, help: 'Au format jour/mois/année.' });
  const commune = field('Code INSEE de la commune', 'commune_insee', { required: true, help: 'Cinq caractères, par exemple 69123 pour Lyon.' });
  const email = field('Adresse e-mail de la personne', 'email', { type: 'email', help: 'Facultatif.' });
  const phone = field('Téléphone', 'phone', { type: 'tel', help: 'Facultatif.' });
  render('Inscrire une personne',
    form('Inscrire une personne', [structure.wrap, first.wrap, last.wrap, birth.wrap, commune.wrap, email.wrap, phone.wrap], 'Inscrire la personne', async (f) => {
      const v = values(f);
      const body = { structure_id: v.structure_id, first_name: v.first_name, last_name: v.last_name, birth_date: v.birth_date, commune_insee: v.commune_insee };
      if (v.email) body.email = v.email;
      if (v.phone) body.phone = v.phone;
      const p = await post('/people', body);
      notice(`${p.first_name} ${p.last_name} est inscrit(e).`);
      location.hash = `#/personnes/${p.id}`;
    }));
}

export async function personPage(me, id) {
  const [p, ref, structures, consents, diagnostics] = await Promise.all([
    get(`/people/${id}`), getReferentiel(), getStructures(),
    get(`/people/${id}/consents?status=active`), get(`/people/${id}/diagnostics`),
  ]);
  const mine = myStructures(me);
  const nameOf = (sid) => structures.find((s) => s.id === sid)?.name || sid;
  const domains = ref.domains.map((d) => [d.id, d.label_fr + (d.sensitive ? ' (donnée sensible)' : '')]);

  const consentForm = form('Recueillir un consentement', [
    field('Structure autorisée', 'grantee_structure_id', { options: structures.map((s) => [s.id, s.name]), value: mine[0]?.id, required: true }).wrap,
    checkboxes('Pour quoi faire', 'purposes', PURPOSES, { checked: ['accompagnement'] }),
    checkboxes('Domaines', 'domains', domains, { help: 'Aucun domaine coché : tous les domaines sauf les données sensibles.' }),
  ], 'Enregistrer le consentement', async (f) => {
    const v = values(f, ['purposes', 'domains']);
    await post(`/people/${id}/consents`, v);
    notice('Le consentement est enregistré.');
    await personPage(me, id);
  });

  const openForm = form('Ouvrir un diagnostic', [
    field('Structure', 'structure_id', { options: mine.map((s) => [s.id, s.name]), required: true }).wrap,
  ], 'Ouvrir un diagnostic', async (f) => {
    const d = await post(`/people/${id}/diagnostics`, values(f));
    notice('Le diagnostic est ouvert.');
    location.hash = `#/diagnostics/${d.id}`;
  });

  const shared = diagnostics.items.find((d) => d.status === 'partage');
  const referForm = form('Orienter la personne', [
    field('Depuis la structure', 'sender_structure_id', { options: mine.map((s) => [s.id, s.name]), required: true }).wrap,
    field('Structure visée', 'target_structure_id', { options: [['', 'Choisissez une structure'], ...structures.map((s) => [s.id, s.name])], required: true }).wrap,
    checkboxes('Domaines concernés', 'domains', domains),
    field('Motif de l\'orientation', 'reason', { multiline: true, required: true }).wrap,
  ], 'Orienter la personne', async (f) => {
    const v = values(f, ['domains']);
    const fields = [];
    if (!v.target_structure_id) fields.push({ field: 'target_structure_id', message: 'Choisissez la structure vers laquelle orienter.' });
    if (!v.domains.length) fields.push({ field: 'domains', message: 'Cochez au moins un domaine.' });
    if (fields.length) throw Object.assign(new Error('Le formulaire est incomplet.'), { fields });
    const r = await post('/referrals', { ...v, person_id: id, diagnostic_id: shared?.id || null });
    notice(`Orientation envoyée à ${nameOf(r.target_structure_id)}.`);
    await personPage(me, id);
  });

  const referrals = (await Promise.all(mine.map((s) => get(`/referrals?structure_id=${s.id}&direction=sent&person_id=${id}`)
    .then((r) => r.items, () => [])))).flat();
  render(`${p.first_name} ${p.last_name}`,
    h('p', {}, `Née ou né le ${p.birth_date} · commune ${p.commune_insee}`, p.email ? ` · ${p.email}` : ''),
    h('section', { 'aria-labelledby': 'h-consents' },
      h('h2', { id: 'h-consents' }, 'Consentements'),
      consents.items.length
        ? h('ul', {}, consents.items.map((c) => h('li', {}, `${nameOf(c.grantee_structure_id)} : ${c.purposes.join(', ')} — ${c.domains.map((d) => domainLabel(ref, d)).join(', ')} (jusqu'au ${c.valid_until})`)))
        : h('p', {}, 'Aucun consentement actif.'),
      h('details', {}, h('summary', {}, 'Recueillir un consentement'), consentForm)),
    h('section', { 'aria-labelledby': 'h-diag' },
      h('h2', { id: 'h-diag' }, 'Diagnostics'),
      diagnostics.items.length
        ? h('ul', {}, diagnostics.items.map((d) => h('li', {}, h('a', { href: `#/diagnostics/${d.id}` }, `Diagnostic du ${fmtDate(d.created_at)}`), ` — ${STATUS[d.status] || d.status}`)))
        : h('p', {}, 'Aucun diagnostic pour l\'instant.'),
      openForm),
    h('section', { 'aria-labelledby': 'h-ref' },
      h('h2', { id: 'h-ref' }, 'Orientations'),
      referrals.length
        ? h('ul', {}, referrals.filter((r) => r.person_id === id).map((r) => h('li', {}, `Vers ${nameOf(r.target_structure_id)} — ${REFERRAL[r.status] || r.status || ''}, le ${fmtDate(r.sent_at)}`)))
        : null,
      referForm));
}

export async function diagnosticPage(me, id) {
  const [d, ref] = await Promise.all([get(`/diagnostics/${id}?purpose=accompagnement`), getReferentiel()]);
  const draft = d.status === 'brouillon';
  const levels = [['', '— Non coté —'], ...ref.levels.map((l) => [l.code, l.label_fr])];
  const sections = d.domains.map((dom) => {
    const domain = ref.domains.find((x) => x.id === dom.domain_id);
    const label = domain?.label_fr || dom.domain_id;
    if (dom.access !== 'visible') {
      return h('section', { class: 'domain' }, h('h2', {}, label), h('p', {}, 'Domaine non visible : la personne n\'a pas donné son accord.'));
    }
    const rows = (dom.items || []).map((it) => {
      const item = domain?.items.find((x) => x.id === it.item_id);
      const itemLabel = item?.label_fr || it.item_id;
      const selId = `lvl-${it.item_id}`;
      return h('tr', { 'data-field': it.item_id },
        h('th', { scope: 'row' }, itemLabel),
        h('td', {}, levelLabel(ref, it.person_level), it.person_note ? h('span', { class: 'note' }, ` « ${it.person_note} »`) : ''),
        h('td', {},
          draft
            ? [h('label', { for: selId, class: 'sr-only' }, `Cotation du conseiller : ${itemLabel}`),
              h('select', { id: selId, name: it.item_id, 'aria-describedby': `${selId}-err` }, levels.map(([v, l]) => h('option', { value: v, selected: v === (it.counselor_level || '') }, l))),
              h('p', { class: 'error', id: `${selId}-err` })]
            : levelLabel(ref, it.counselor_level)));
    });
    return h('section', { class: 'domain', 'aria-labelledby': `d-${dom.domain_id}` },
      h('h2', { id: `d-${dom.domain_id}` }, label),
      h('div', { class: 'table-wrap' }, h('table', {},
        h('caption', { class: 'sr-only' }, `${label} : auto-évaluation de la personne et cotation du conseiller`),
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Item'), h('th', { scope: 'col' }, 'Selon la personne'), h('th', { scope: 'col' }, 'Selon le conseiller'))),
        h('tbody', {}, rows))));
  });
  const back = h('p', {}, h('a', { href: `#/personnes/${d.person_id}` }, 'Revenir au dossier de la personne'));
  const intro = h('p', {}, `Statut : ${STATUS[d.status] || d.status} · référentiel ${d.referentiel_version}. `,
    'Les deux regards sont côte à côte : l\'auto-évaluation de la personne et votre cotation.');
  if (!draft) return render('Diagnostic', back, intro, sections);
  const save = form('Cotations du diagnostic', sections, 'Enregistrer les cotations', async (f) => {
    const ratings = [...f.querySelectorAll('select')].filter((s) => s.value).map((s) => ({ item_id: s.name, level: s.value }));
    if (!ratings.length) throw Object.assign(new Error('Cotez au moins un item avant d\'enregistrer.'), { fields: [] });
    await patch(`/diagnostics/${id}`, { ratings });
    notice(`${ratings.length} cotation(s) enregistrée(s).`);
  });
  const share = h('button', { type: 'button', class: 'secondary', onclick: async () => {
    try {
      await post(`/diagnostics/${id}/share`, {});
      notice('Le diagnostic est partagé.');
      await diagnosticPage(me, id);
    } catch (e) {
      notice(e.message, 'error');
    }
  } }, 'Partager le diagnostic');
  render('Diagnostic', back, intro, save, h('p', {}, 'Une fois les cotations enregistrées, partagez le diagnostic : il ne pourra plus être modifié.'), share);
}
