// « Ma structure »: what a structure's admin and a partner manage. Addresses:
//   #/structure                         the first structure I administer (or am a partner of)
//   #/structure/{id}                    its details (editable by its admin)
//   #/structure/{id}/membres            members: invite, change a role, remove (admin)
//   #/structure/{id}/services           its services in the directory (archive, reopen), export, import
//   #/structure/{id}/services/nouveau   add a service
//   #/structure/{id}/services/{sid}     change a service
//   #/structure/{id}/reception          a partner's event format and webhooks (pause, resume)
//   #/structure/{id}/reception/{wid}    a webhook's deliveries
import { del, download, get, getVersioned, patch, patchVersioned, post } from './api.js';
import { checkboxes, field, fmtDate, form, h, notice, render, scrollBox, uid, values } from './dom.js';

/** A page of the area: its h1, then its parts (absent ones skipped) in one block. */
const show = (title, ...parts) => render(title, h('div', { class: 'admin' }, parts));

// ---------------------------------------------------------------------------
// Words
// ---------------------------------------------------------------------------

const KINDS = {
  aci: 'Atelier et chantier d\'insertion (ACI)', ei: 'Entreprise d\'insertion (EI)', ai: 'Association intermédiaire (AI)',
  etti: 'Entreprise de travail temporaire d\'insertion (ETTI)', eiti: 'Entreprise d\'insertion par le travail indépendant (EITI)',
  association: 'Association', ccas: 'Centre communal d\'action sociale (CCAS)', partner: 'Partenaire', departement: 'Département',
};
const ROLES = {
  counselor: 'Conseiller (accompagnement des personnes)', structure_admin: 'Administrateur de la structure',
  partner: 'Partenaire (reçoit les orientations)', analyst: 'Analyste (statistiques)',
};
const ROLE_SHORT = { counselor: 'conseiller', structure_admin: 'administrateur', partner: 'partenaire', analyst: 'analyste' };
const MEMBER_STATUS = {
  invited: 'Invité : n\'a pas encore activé son compte', active: 'Actif',
  locked: 'Bloqué pour un moment (trop d\'essais de mot de passe)', disabled: 'Désactivé',
};
const ASSOCIATIONS = ['aci', 'ei', 'ai', 'etti', 'eiti', 'association', 'ccas'];
/** The roles a structure's kind allows (identity's `roles_for_kind`). */
function rolesFor(kind) {
  if (ASSOCIATIONS.includes(kind)) return ['counselor', 'structure_admin'];
  if (kind === 'partner') return ['partner', 'structure_admin'];
  if (kind === 'departement') return ['analyst', 'structure_admin'];
  return [];
}

const DELIVERY = {
  pending: 'En attente d\'envoi', delivered: 'Reçu par votre logiciel', retrying: 'Échec, nouvel essai prévu', failed: 'Abandonné après plusieurs échecs',
};
const FORMATS = [['protobuf', 'Protobuf (binaire, par défaut)'], ['json', 'JSON (texte lisible)']];

/** data·inclusion thématiques by category, in French. */
const THEMATIQUES = {
  'choisir-un-metier': ['Choisir un métier', {
    'confirmer-son-choix-de-metier': 'Confirmer son choix de métier', 'connaitre-les-opportunites-demploi': 'Connaître les opportunités d\'emploi',
    'decouvrir-un-metier-ou-un-secteur-dactivite': 'Découvrir un métier ou un secteur d\'activité', 'identifier-ses-points-forts-et-ses-competences': 'Identifier ses points forts et ses compétences' }],
  'creer-une-entreprise': ['Créer une entreprise', {
    'definir-son-projet-de-creation-dentreprise': 'Définir son projet de création d\'entreprise', 'developper-son-entreprise': 'Développer son entreprise',
    'structurer-son-projet-de-creation-dentreprise': 'Structurer son projet de création d\'entreprise' }],
  'difficultes-administratives-ou-juridiques': ['Difficultés administratives ou juridiques', {
    'accompagnement-aux-demarches-administratives': 'Accompagnement aux démarches administratives', 'accompagnement-pour-lacces-a-la-citoyennete': 'Accompagnement pour l\'accès à la citoyenneté',
    'accompagnement-pour-lacces-aux-droits': 'Accompagnement pour l\'accès aux droits', 'beneficier-dune-mesure-daccompagnement-adapte': 'Bénéficier d\'une mesure d\'accompagnement adapté',
    'connaitre-ses-droits-face-a-une-discrimination': 'Connaître ses droits face à une discrimination', 'prendre-en-compte-une-problematique-judiciaire': 'Prendre en compte une problématique judiciaire' }],
  'difficultes-financieres': ['Difficultés financières', {
    'acquerir-une-autonomie-budgetaire': 'Acquérir une autonomie budgétaire', 'ameliorer-sa-gestion-budgetaire': 'Améliorer sa gestion budgétaire',
    'mettre-en-place-une-mesure-de-protection-financiere': 'Mettre en place une mesure de protection financière',
    'prevenir-une-degradation-de-la-situation-financiere': 'Prévenir une dégradation de la situation financière', 'situation-dendettement-surendettement': 'Endettement, surendettement' }],
  'equipement-et-alimentation': ['Équipement et alimentation', {
    'aide-menagere': 'Aide ménagère', alimentation: 'Alimentation', electromenager: 'Électroménager', habillement: 'Habillement' }],
  famille: ['Famille', {
    'garde-denfants': 'Garde d\'enfants', 'prise-en-charge-personne-dependante': 'Prise en charge d\'une personne dépendante',
    'soutien-a-la-parentalite-et-a-leducation': 'Soutien à la parentalité et à l\'éducation', 'soutien-aidants': 'Soutien aux aidants',
    'surmonter-conflits-separation-violence': 'Surmonter conflits, séparation, violence' }],
  'lecture-ecriture-calcul': ['Lecture, écriture, calcul', { 'maitriser-le-calcul': 'Maîtriser le calcul', 'maitriser-le-francais': 'Maîtriser le français' }],
  'logement-hebergement': ['Logement, hébergement', {
    'acheter-un-logement': 'Acheter un logement', 'changer-de-logement': 'Changer de logement', 'louer-un-logement': 'Louer un logement',
    'rechercher-une-solution-dhebergement-temporaire': 'Rechercher une solution d\'hébergement temporaire', 'reduire-les-impayes-de-loyer': 'Réduire les impayés de loyer',
    'se-maintenir-dans-le-logement': 'Se maintenir dans le logement', 'sinformer-sur-les-demarches-liees-a-lacces-au-logement': 'S\'informer sur les démarches d\'accès au logement' }],
  mobilite: ['Mobilité', {
    'acceder-a-un-vehicule': 'Accéder à un véhicule', 'entretenir-reparer-son-vehicule': 'Entretenir, réparer son véhicule',
    'etre-accompagne-dans-son-parcours-mobilite': 'Être accompagné dans son parcours mobilité', 'financer-ma-mobilite': 'Financer sa mobilité',
    'mobilite-douce-partagee-collective': 'Mobilité douce, partagée, collective', 'preparer-un-permis': 'Préparer un permis' }],
  numerique: ['Numérique', {
    'acceder-a-des-services-en-ligne': 'Accéder à des services en ligne', 'acceder-a-une-connexion-internet': 'Accéder à une connexion internet',
    'acquerir-un-equipement': 'Acquérir un équipement', 'maitriser-les-fondamentaux-du-numerique': 'Maîtriser les fondamentaux du numérique' }],
  'preparer-sa-candidature': ['Préparer sa candidature', {
    'developper-son-reseau': 'Développer son réseau', 'organiser-ses-demarches-de-recherche-demploi': 'Organiser ses démarches de recherche d\'emploi',
    'realiser-un-cv-et-ou-une-lettre-de-motivation': 'Réaliser un CV ou une lettre de motivation', 'valoriser-ses-competences': 'Valoriser ses compétences' }],
  remobilisation: ['Remobilisation', {
    'activites-sportives-et-culturelles': 'Activités sportives et culturelles', 'benevolat-action-citoyenne': 'Bénévolat, action citoyenne',
    'bien-etre-confiance-en-soi': 'Bien-être, confiance en soi', 'lien-social': 'Lien social' }],
  sante: ['Santé', {
    'acces-aux-soins': 'Accès aux soins', addictions: 'Addictions', 'constituer-un-dossier-mdph-invalidite': 'Constituer un dossier MDPH, invalidité',
    'sante-mentale': 'Santé mentale', 'sante-sexuelle': 'Santé sexuelle' }],
  'se-former': ['Se former', { 'monter-son-dossier-de-formation': 'Monter son dossier de formation', 'trouver-sa-formation': 'Trouver sa formation' }],
  'souvrir-a-linternational': ['S\'ouvrir à l\'international', {
    'connaitre-les-opportunites-demploi-a-letranger': 'Connaître les opportunités d\'emploi à l\'étranger',
    'sinformer-sur-les-aides-pour-travailler-a-letranger': 'S\'informer sur les aides pour travailler à l\'étranger',
    'sorganiser-suite-a-son-retour-en-france': 'S\'organiser après son retour en France' }],
  'trouver-un-emploi': ['Trouver un emploi', {
    'convaincre-un-recruteur-en-entretien': 'Convaincre un recruteur en entretien', 'faire-des-candidatures-spontanees': 'Faire des candidatures spontanées',
    'maintien-dans-lemploi': 'Se maintenir dans l\'emploi', 'repondre-a-des-offres-demploi': 'Répondre à des offres d\'emploi',
    'suivre-ses-candidatures-et-relancer-les-employeurs': 'Suivre ses candidatures et relancer les employeurs' }],
};
function thematiqueLabel(code) {
  const [cat, sub] = code.split('--');
  const c = THEMATIQUES[cat];
  if (!c) return code;
  return sub ? `${c[0]} : ${c[1][sub] || sub}` : c[0];
}
const TYPES = [['accompagnement', 'Accompagnement'], ['aide-financiere', 'Aide financière'], ['aide-materielle', 'Aide matérielle'],
  ['atelier', 'Atelier'], ['formation', 'Formation'], ['information', 'Information']];
const PUBLICS = [['actifs', 'Personnes en emploi'], ['beneficiaires-des-minimas-sociaux', 'Bénéficiaires des minima sociaux (RSA…)'],
  ['demandeurs-emploi', 'Demandeurs d\'emploi'], ['etudiants', 'Étudiants'], ['familles', 'Familles'], ['femmes', 'Femmes'], ['jeunes', 'Jeunes'],
  ['personnes-en-situation-de-handicap', 'Personnes en situation de handicap'], ['personnes-en-situation-durgence', 'Personnes en situation d\'urgence'],
  ['personnes-en-situation-juridique-specifique', 'Personnes en situation juridique spécifique'], ['personnes-exilees', 'Personnes exilées'],
  ['residents-qpv-frr', 'Habitants des quartiers prioritaires ou zones rurales (QPV, FRR)'], ['seniors', 'Seniors']];
const RECEPTION = [['en-presentiel', 'Sur place'], ['a-distance', 'À distance']];
const MOBILISATION = [['telephoner', 'Téléphoner'], ['envoyer-un-courriel', 'Envoyer un e-mail'], ['se-presenter', 'Se présenter sur place'],
  ['utiliser-lien-mobilisation', 'Utiliser le lien d\'inscription']];
const MOBILISABLE_BY = [['professionnels', 'Les professionnels (orientation)'], ['usagers', 'Les personnes elles-mêmes']];
const LISTS = ['thematiques', 'types', 'publics', 'reception_modes', 'mobilisation_modes', 'mobilisable_by'];

// ---------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------

/** An error for `form()`: its message, and each field's message next to it. */
function invalid(fields, message = 'Le formulaire contient des erreurs : corrigez les champs signalés.') {
  return Object.assign(new Error(message), { fields });
}

const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@.]+$/;
const siret = (s) => (s || '').replace(/^(\d{3})(\d{3})(\d{3})(\d{5})$/, '$1 $2 $3 $4');
/** A one-time code in groups of four, easier to read aloud; typed back with or without spaces. */
const grouped = (code) => code.replace(/(.{4})(?=.)/g, '$1 ');

/** The structures where I am admin or partner, then the others. */
function mine(me) {
  const all = me.structures || [];
  const managed = all.filter((s) => (s.roles || []).some((r) => r === 'structure_admin' || r === 'partner'));
  return managed.length ? managed : all;
}

/** A button copying `text`; when the browser refuses, the code is selected for Ctrl+C. */
function copyButton(text, label, target) {
  return h('button', { type: 'button', class: 'secondary', onclick: async () => {
    try {
      await navigator.clipboard.writeText(text);
      notice('Copié : collez-le où vous voulez le transmettre.');
    } catch {
      const range = document.createRange();
      range.selectNodeContents(target);
      const sel = window.getSelection();
      sel.removeAllRanges();
      sel.addRange(range);
      notice('La copie automatique n\'a pas fonctionné : le code est sélectionné, copiez-le avec Ctrl+C.', 'warn');
    }
  } }, label);
}

/** A question with « oui » / « annuler » that replaces `where`'s content until answered. */
function confirmIn(where, question, yes, onYes) {
  const keep = [...where.childNodes];
  const status = h('p', { class: 'form-status', role: 'alert' });
  const q = h('p', { class: 'confirm-question', tabindex: '-1' }, question);
  const yesBtn = h('button', { type: 'button', class: 'danger', onclick: async () => {
    yesBtn.disabled = true;
    status.textContent = '';
    try {
      await onYes();
    } catch (e) {
      status.textContent = e.message || 'Une erreur est survenue.';
      yesBtn.disabled = false;
    }
  } }, yes);
  const box = h('div', { class: 'confirm' }, q, status, h('div', { class: 'actions' }, yesBtn,
    h('button', { type: 'button', class: 'secondary', onclick: () => { where.replaceChildren(...keep); } }, 'Annuler')));
  where.replaceChildren(box);
  q.focus();
}

/** Everything a page of the area needs about the structure `id` and my roles there. */
async function context(me, id) {
  const s = await get(`/structures/${encodeURIComponent(id)}`);
  const roles = (me.structures || []).find((x) => x.id === id)?.roles || [];
  const operator = (me.roles || []).includes('operator');
  const isAdmin = roles.includes('structure_admin') || operator;
  const isPartner = roles.includes('partner');
  return {
    me, s, roles, isAdmin, isPartner,
    canEditServices: isAdmin || isPartner,
    partnerKind: s.kind === 'partner',
    base: `#/structure/${encodeURIComponent(s.id)}`,
  };
}

/** The structure chooser (when I have several) and the area's sub-menu. */
function header(c, here) {
  const list = mine(c.me);
  const out = [];
  if (list.length > 1) {
    const pick = field('Structure', 'structure', { options: list.map((s) => [s.id, s.name]), value: c.s.id });
    out.push(form('Changer de structure', [pick.wrap], 'Afficher cette structure', async (f) => {
      location.hash = `#/structure/${encodeURIComponent(values(f).structure)}`;
    }));
    out[0].classList.add('chooser');
  }
  const links = [['', 'Présentation']];
  if (c.isAdmin) links.push(['/membres', 'Membres']);
  links.push(['/services', 'Services']);
  if (c.partnerKind && (c.isAdmin || c.isPartner)) links.push(['/reception', 'Réception des orientations']);
  out.push(h('nav', { class: 'subnav', 'aria-label': `Sections de ${c.s.name}` }, h('ul', {},
    links.map(([p, label]) => h('li', {}, h('a', { href: `${c.base}${p}`, 'aria-current': p === here ? 'page' : null }, label))))));
  return h('div', { class: 'structure-head' }, out);
}

// ---------------------------------------------------------------------------
// The structure's details
// ---------------------------------------------------------------------------

async function overview(c) {
  const { s } = c;
  const rows = [['Nom', s.name], ['SIRET', siret(s.siret)], ['Type', KINDS[s.kind] || s.kind],
    ['Code commune INSEE', s.commune_insee || '—'], ['Intercommunalité (SIREN de l\'EPCI)', s.epci || '—'],
    ['Inscrite dans EVA le', s.created_at ? fmtDate(s.created_at) : '—'],
    ['Vos rôles ici', c.roles.map((r) => ROLE_SHORT[r] || r).join(', ') || '—']];
  let edit = null;
  if (c.isAdmin) {
    const name = field('Nom de la structure', 'name', { required: true, value: s.name, help: '200 caractères au plus.' });
    const insee = field('Code commune INSEE', 'commune_insee', { required: true, value: s.commune_insee,
      help: 'Le code officiel de la commune (5 caractères, ex. 27681 pour Vernon), différent du code postal.' });
    const epci = field('SIREN de l\'intercommunalité (EPCI)', 'epci', { value: s.epci, help: 'Facultatif : 9 chiffres.' });
    edit = h('details', { class: 'edit' }, h('summary', {}, 'Modifier le nom ou le territoire'),
      h('p', { class: 'help' }, 'Le SIRET et le type de structure ne se modifient pas : écrivez au support d\'EVA en cas d\'erreur.'),
      form('Modifier la structure', [name.wrap, insee.wrap, epci.wrap], 'Enregistrer les modifications', async (f) => {
        const v = values(f);
        const errors = [];
        if (!v.name) errors.push({ field: 'name', message: 'Indiquez le nom de la structure.' });
        else if (v.name.length > 200) errors.push({ field: 'name', message: 'Le nom compte 200 caractères au plus.' });
        if (!/^[0-9][0-9AB][0-9]{3}$/i.test(v.commune_insee)) errors.push({ field: 'commune_insee', message: 'Le code commune INSEE compte 5 caractères (ex. 27681, 2A004).' });
        if (v.epci && !/^\d{9}$/.test(v.epci)) errors.push({ field: 'epci', message: 'Le SIREN de l\'EPCI compte 9 chiffres, ou laissez le champ vide.' });
        if (errors.length) throw invalid(errors);
        const body = {};
        if (v.name !== s.name) body.name = v.name;
        if (v.commune_insee.toUpperCase() !== s.commune_insee) body.commune_insee = v.commune_insee;
        if (v.epci !== (s.epci || '')) body.epci = v.epci;
        if (!Object.keys(body).length) throw invalid([], 'Rien n\'a changé : modifiez un champ avant d\'enregistrer.');
        c.s = await patch(`/structures/${s.id}`, body);
        notice('Les informations de la structure sont enregistrées.');
        await overview(c);
      }));
  }
  const next = [];
  if (c.isAdmin) next.push(h('li', {}, h('a', { href: `${c.base}/membres` }, 'Gérer les membres'), ' : inviter des collègues, changer un rôle, retirer quelqu\'un.'));
  next.push(h('li', {}, h('a', { href: `${c.base}/services` }, 'Les services de la structure'), ' : ce que vous proposez, dans l\'annuaire que consultent les conseillers.'));
  if (c.partnerKind && (c.isAdmin || c.isPartner)) {
    next.push(h('li', {}, h('a', { href: `${c.base}/reception` }, 'La réception des orientations'), ' : le format des événements et les webhooks de votre logiciel.'));
  }
  show(s.name, header(c, ''),
    h('section', { 'aria-labelledby': 'h-identity' },
      h('h2', { id: 'h-identity' }, 'Identité de la structure'),
      h('dl', { class: 'facts' }, rows.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])),
      edit),
    h('section', { 'aria-labelledby': 'h-next' },
      h('h2', { id: 'h-next' }, 'Que faire ici ?'),
      h('ul', {}, next)));
}

// ---------------------------------------------------------------------------
// Members
// ---------------------------------------------------------------------------

/** The panel of a one-time invitation code, shown after an invitation. */
function invitationPanel(who, inv) {
  const code = h('code', { class: 'secret-value' }, grouped(inv.code));
  return h('section', { class: 'card secret', 'aria-labelledby': 'h-code' },
    h('h2', { id: 'h-code' }, `Code d'invitation de ${who}`),
    h('p', {}, code),
    h('p', {}, copyButton(inv.code, 'Copier le code', code)),
    h('p', {}, 'Transmettez ce code à la personne vous-même (de vive voix, par téléphone ou par message) : EVA n\'envoie pas d\'e-mail. ',
      'Avec ce code, elle active son compte et choisit son mot de passe.'),
    h('p', {}, `Rôle : ${ROLE_SHORT[inv.role] || inv.role}. `,
      inv.expires_at ? `Le code marche une seule fois, jusqu'au ${fmtDate(inv.expires_at)}. ` : 'Le code marche une seule fois. ',
      'Il ne sera plus affiché : s\'il est perdu, invitez la personne à nouveau.'));
}

async function members(c, shown = null) {
  if (!c.isAdmin) {
    return show('Membres', header(c, '/membres'), h('p', {}, 'Seuls les administrateurs de la structure gèrent ses membres.'));
  }
  const sid = c.s.id;
  const list = (await get(`/structures/${sid}/members?page_size=500`)).items;
  const allowed = rolesFor(c.s.kind);
  const roleOptions = allowed.map((r) => [r, ROLES[r]]);
  const refresh = (next) => members(c, next);

  const email = field('Adresse e-mail', 'email', { type: 'email', required: true, autocomplete: 'off',
    help: 'L\'adresse professionnelle de la personne, ex. prenom.nom@exemple.fr.' });
  const name = field('Nom et prénom', 'display_name', { autocomplete: 'off', help: 'Facultatif : sinon, la personne l\'indique en activant son compte.' });
  const role = field('Rôle', 'role', { options: roleOptions, value: allowed[0], required: true });
  const invite = form('Inviter un membre', [email.wrap, name.wrap, role.wrap], 'Créer l\'invitation', async (f) => {
    const v = values(f);
    const errors = [];
    if (!v.email) errors.push({ field: 'email', message: 'Indiquez l\'adresse e-mail de la personne.' });
    else if (!EMAIL.test(v.email)) errors.push({ field: 'email', message: 'Adresse e-mail invalide : elle doit ressembler à prenom.nom@exemple.fr.' });
    if (v.display_name.length > 100) errors.push({ field: 'display_name', message: 'Le nom compte 100 caractères au plus.' });
    if (errors.length) throw invalid(errors);
    let r;
    try {
      r = await post(`/structures/${sid}/members`, { email: v.email, display_name: v.display_name, role: v.role });
    } catch (e) {
      if (e.status === 409 && !e.fields.length) e.fields = [{ field: 'email', message: 'Cette adresse a déjà ce rôle dans la structure : elle est déjà membre.' }];
      throw e;
    }
    const who = r.member.display_name || r.member.email;
    notice(`Invitation créée pour ${who} : transmettez-lui le code affiché.`);
    await refresh({ who, invitation: r.invitation });
  });

  const items = list.map((m) => memberCard(c, m, allowed, refresh));
  show('Membres', header(c, '/membres'),
    shown ? invitationPanel(shown.who, shown.invitation) : null,
    h('section', { 'aria-labelledby': 'h-members' },
      h('h2', { id: 'h-members' }, `Membres de ${c.s.name} (${list.length})`),
      list.length ? h('ul', { class: 'members' }, items) : h('p', {}, 'Aucun membre pour l\'instant.')),
    h('section', { 'aria-labelledby': 'h-invite' },
      h('h2', { id: 'h-invite' }, 'Inviter un membre'),
      h('p', {}, 'EVA crée le compte et vous donne un code d\'invitation à transmettre à la personne.'),
      invite));
  if (shown) document.getElementById('h-code')?.scrollIntoView({ block: 'nearest' });
  return undefined;
}

function memberCard(c, m, allowed, refresh) {
  const sid = c.s.id;
  const who = m.display_name || m.email;
  const hid = uid('member');
  const self = m.user_id === c.me.user_id;
  const roleNames = m.roles.map((r) => ROLE_SHORT[r] || r).join(', ');
  const actions = h('div', { class: 'member-actions' });

  if (allowed.length > 1 && m.status !== 'disabled') {
    // The roles change in place: an account keeps its password, an invitation its code.
    const pick = checkboxes('Rôles dans la structure', 'roles', allowed.map((r) => [r, ROLES[r]]), { checked: m.roles,
      help: m.status === 'invited'
        ? 'Cochez un rôle au moins. Le code d\'invitation déjà transmis reste valable : il donnera ces rôles.'
        : 'Cochez un rôle au moins. La personne garde son compte et son mot de passe ; si vous lui retirez un rôle, elle devra se reconnecter.' });
    actions.append(h('details', {}, h('summary', { 'aria-describedby': hid }, 'Changer le rôle'),
      form(`Changer le rôle de ${who}`, [pick], 'Enregistrer les rôles', async (f) => {
        const { roles } = values(f, ['roles']);
        if (!roles.length) throw invalid([{ field: 'roles', message: 'Cochez au moins un rôle. Pour que la personne quitte la structure, utilisez « Retirer de la structure ».' }]);
        let r;
        try {
          r = await patch(`/structures/${sid}/members/${m.user_id}`, { roles });
        } catch (e) {
          if (e.status === 409 && !e.fields.length) e.fields = [{ field: 'roles', message: e.message }];
          throw e;
        }
        const names = r.roles.map((x) => ROLE_SHORT[x] || x).join(' et ');
        notice(`${who} est maintenant ${names} dans la structure${self && !r.roles.includes('structure_admin') ? ' : vous n\'administrez plus cette structure' : ''}.`);
        await refresh(null);
      })));
  }
  const removeBox = h('div', { class: 'remove' });
  removeBox.append(h('button', { type: 'button', class: 'danger', 'aria-describedby': hid, onclick: () => {
    confirmIn(removeBox, self
      ? 'Vous retirer vous-même de la structure ? Vous n\'y aurez plus accès.'
      : `Retirer ${who} de la structure ? Ses sessions prennent fin ; sans autre structure, son compte est désactivé.`,
    'Oui, retirer', async () => {
      await del(`/structures/${sid}/members/${m.user_id}`);
      notice(`${who} ne fait plus partie de la structure.`);
      await refresh(null);
    });
  } }, self ? 'Me retirer de la structure' : 'Retirer de la structure'));
  actions.append(removeBox);

  return h('li', { class: 'card member' },
    h('h3', { id: hid }, who, self ? ' (vous)' : ''),
    h('dl', { class: 'facts' },
      h('dt', {}, 'E-mail'), h('dd', {}, m.email),
      h('dt', {}, m.roles.length > 1 ? 'Rôles' : 'Rôle'), h('dd', {}, roleNames || '—'),
      h('dt', {}, 'Statut'), h('dd', {}, h('span', { class: `status status-${m.status}` }, MEMBER_STATUS[m.status] || m.status)),
      m.since ? [h('dt', {}, 'Membre depuis le'), h('dd', {}, fmtDate(m.since))] : null),
    actions);
}

// ---------------------------------------------------------------------------
// Services (the directory)
// ---------------------------------------------------------------------------

async function services(c) {
  const sid = c.s.id;
  // Its admins and partners see the archived services too (the API lets them alone).
  const withArchived = c.canEditServices ? '&include_archived=true' : '';
  const list = (await get(`/services?structure_id=${encodeURIComponent(sid)}&page_size=500${withArchived}`)).items;
  const exportBtn = h('button', { type: 'button', class: 'secondary', onclick: async () => {
    try {
      const name = await download(`/services/export?structure_id=${encodeURIComponent(sid)}`, 'services.json', 'application/json');
      notice(`Le fichier ${name} est téléchargé (format data·inclusion, en JSON).`);
    } catch (e) {
      notice(e.message, 'error');
    }
  } }, 'Exporter les services (fichier JSON)');
  const cards = list.map((s) => {
    const archived = s.status === 'archived';
    const hid = uid('svc');
    const place = [s.commune, s.postal_code && `(${s.postal_code})`].filter(Boolean).join(' ');
    const seats = s.capacity != null
      ? `${s.available_places ?? '?'} place(s) disponible(s) sur ${s.capacity}`
      : (s.available_places != null ? `${s.available_places} place(s) disponible(s)` : null);
    const archiveBox = h('div', { class: 'remove' });
    if (c.isAdmin && !archived) {
      archiveBox.append(h('button', { type: 'button', class: 'secondary', 'aria-describedby': hid, onclick: () => {
        confirmIn(archiveBox, `Archiver « ${s.name} » ? Le service est fermé : il sort de l'annuaire, des suggestions et de l'export, et ne reçoit plus d'orientation. Les orientations en cours continuent ; vous pourrez le rouvrir.`,
          'Oui, archiver', async () => {
            await post(`/services/${s.id}/archive`, {});
            notice(`Le service « ${s.name} » est archivé : il n'apparaît plus dans l'annuaire.`);
            await services(c);
          });
      } }, 'Archiver ce service'));
    } else if (c.isAdmin) {
      archiveBox.append(h('button', { type: 'button', class: 'secondary', 'aria-describedby': hid, onclick: async (e) => {
        e.target.disabled = true;
        try {
          await post(`/services/${s.id}/unarchive`, {});
          notice(`Le service « ${s.name} » est rouvert : il est de nouveau dans l'annuaire.`);
          await services(c);
        } catch (err) {
          notice(err.message, 'error');
          e.target.disabled = false;
        }
      } }, 'Rouvrir ce service'));
    }
    return h('li', { class: `card service${archived ? ' archived' : ''}` },
      h('h3', { id: hid }, s.name),
      archived ? h('p', {}, h('span', { class: 'status status-archived' }, `Archivé (fermé) le ${fmtDate(s.archived_at)}`),
        ' : absent de l\'annuaire et de l\'export.') : null,
      s.thematiques.length ? h('p', {}, h('strong', {}, 'Thématiques : '), s.thematiques.map(thematiqueLabel).join(' ; ')) : null,
      place ? h('p', {}, h('strong', {}, 'Lieu : '), place) : null,
      seats ? h('p', {}, h('strong', {}, 'Places : '), seats) : null,
      h('p', { class: 'note' }, s.updated_on ? `Mis à jour le ${s.updated_on.split('-').reverse().join('/')}` : '',
        s.source && s.source !== 'eva' ? ` · importé de « ${s.source} »` : ''),
      c.canEditServices ? h('p', {}, h('a', { href: `${c.base}/services/${s.id}`, 'aria-describedby': hid }, 'Modifier ce service')) : null,
      archiveBox.childNodes.length ? archiveBox : null);
  });
  show('Services de la structure', header(c, '/services'),
    h('p', {}, 'Les services que propose la structure, tels que les conseillers les trouvent dans l\'annuaire pour orienter les personnes.'),
    h('div', { class: 'actions' },
      c.canEditServices ? h('a', { class: 'button', href: `${c.base}/services/nouveau` }, 'Ajouter un service') : null,
      list.length ? exportBtn : null),
    h('section', { 'aria-labelledby': 'h-services' },
      h('h2', { id: 'h-services' }, `Services (${list.length})`),
      list.length ? h('ul', { class: 'cards' }, cards) : h('p', {}, 'Aucun service pour l\'instant.')),
    c.isAdmin ? importSection(c) : null,
    h('p', { class: 'note' }, 'Un service complet pour un temps : indiquez 0 place disponible. Un service qui ferme : archivez-le (administrateurs) ; il reste consultable et peut être rouvert. L\'export ne contient que les services ouverts.'));
}

function importSection(c) {
  const file = field('Fichier JSON au schéma data·inclusion', 'file', { type: 'file', required: true,
    help: 'Un tableau de services, 20 Mo au plus ; un export d\'EVA se réimporte tel quel.' });
  file.input.setAttribute('accept', '.json,application/json');
  const source = field('Nom de la source', 'source', { help: 'Facultatif, ex. dora : les services déjà importés de la même source sont mis à jour.' });
  const dry = h('div', { class: 'check' }, h('input', { type: 'checkbox', id: 'import-dry', name: 'dry_run', value: 'true', checked: true }),
    h('label', { for: 'import-dry' }, 'Seulement vérifier le fichier (rien n\'est enregistré)'));
  const report = h('div', { class: 'report' });
  const f = form('Importer des services', [file.wrap, source.wrap, dry], 'Importer le fichier', async (form_) => {
    const chosen = file.input.files?.[0];
    if (!chosen) throw invalid([{ field: 'file', message: 'Choisissez un fichier JSON.' }]);
    if (chosen.size > 20 * 1024 * 1024) throw invalid([{ field: 'file', message: 'Le fichier dépasse 20 Mo : découpez-le.' }]);
    let rows;
    try {
      rows = JSON.parse(await chosen.text());
    } catch {
      throw invalid([{ field: 'file', message: 'Ce fichier n\'est pas du JSON lisible.' }]);
    }
    const v = values(form_);
    const q = new URLSearchParams({ structure_id: c.s.id, dry_run: v.dry_run ? 'true' : 'false' });
    if (v.source) q.set('source', v.source);
    let r;
    try {
      r = await post(`/services/import?${q}`, rows);
    } catch (e) {
      e.fields = e.fields.map((x) => (x.field === 'content' ? { ...x, field: 'file' } : x));
      throw e;
    }
    const what = v.dry_run ? 'Vérification' : 'Import';
    report.replaceChildren(
      h('p', {}, `${what} : ${r.created} service(s) ${v.dry_run ? 'à créer' : 'créé(s)'}, ${r.updated} ${v.dry_run ? 'à mettre à jour' : 'mis à jour'}, ${r.rejected.length} refusé(s).`),
      r.rejected.length ? scrollBox('Lignes refusées', h('table', {},
        h('caption', {}, 'Lignes refusées'),
        h('thead', {}, h('tr', {}, ['Ligne', 'Identifiant', 'Champ', 'Raison'].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, r.rejected.map((x) => h('tr', {}, h('td', {}, String(x.index + 1)), h('td', {}, x.source_id || '—'),
          h('td', {}, x.field), h('td', {}, String(x.reason).split(' / ')[0])))))) : null);
    notice(`${what} terminé${v.dry_run ? 'e' : ''} : ${r.rejected.length} ligne(s) refusée(s).`);
  });
  return h('details', { class: 'import' }, h('summary', {}, 'Importer un fichier de services'), f, report);
}

/** The thématiques, grouped by category in collapsible lists. */
function thematiquesField(checked) {
  const errId = uid('thematiques-err');
  const helpId = uid('thematiques-help');
  return h('fieldset', { class: 'field thematiques', 'data-field': 'thematiques', 'aria-describedby': `${helpId} ${errId}` },
    h('legend', {}, 'Thématiques'),
    h('p', { class: 'help', id: helpId }, 'Ce à quoi le service répond : les conseillers cherchent par thématique. Ouvrez une catégorie pour cocher.'),
    Object.entries(THEMATIQUES).map(([cat, [label, subs]]) => {
      const codes = Object.keys(subs).map((s) => `${cat}--${s}`);
      const n = codes.filter((x) => checked.includes(x)).length;
      return h('details', { open: n > 0 }, h('summary', {}, label, n ? ` (${n} cochée${n > 1 ? 's' : ''})` : ''),
        h('div', { class: 'checks-list' }, Object.entries(subs).map(([sub, l]) => {
          const id = uid('thema');
          const code = `${cat}--${sub}`;
          return h('div', { class: 'check' }, h('input', { type: 'checkbox', id, name: 'thematiques', value: code, checked: checked.includes(code) }),
            h('label', { for: id }, l));
        })));
    }),
    h('p', { class: 'error', id: errId }));
}

async function serviceForm(c, serviceId) {
  // The version read: saving over someone else's change meanwhile is refused (412).
  let read = serviceId ? await getVersioned(`/services/${encodeURIComponent(serviceId)}`) : null;
  const s = read?.data ?? null;
  const val = (k) => (s && s[k] != null ? String(s[k]) : undefined);
  const arr = (k) => (s && s[k]) || [];
  const back = h('p', {}, h('a', { href: `${c.base}/services` }, 'Revenir aux services de la structure'));
  if (!c.canEditServices) {
    return show(s ? s.name : 'Ajouter un service', header(c, '/services'), back, h('p', {}, 'Seuls les administrateurs et les partenaires de la structure modifient ses services.'));
  }
  const group = (legend, ...children) => h('fieldset', { class: 'group' }, h('legend', {}, legend), children);
  const F = (label, name, opts = {}) => field(label, name, { value: val(name), ...opts }).wrap;
  const fields = [
    group('Le service',
      F('Nom du service', 'name', { required: true, help: 'De 3 à 150 caractères, sans point final. Ex. : Permis de conduire solidaire.' }),
      F('Description', 'description', { required: true, multiline: true, help: 'De 50 à 2 000 caractères : ce que le service propose, pour qui, comment.' }),
      thematiquesField(arr('thematiques')),
      checkboxes('Type de service', 'types', TYPES, { checked: arr('types') }),
      checkboxes('Publics', 'publics', PUBLICS, { checked: arr('publics'), help: 'Laissez vide si le service est ouvert à tous.' }),
      F('Conditions d\'accès', 'access_conditions', { multiline: true, help: 'Facultatif : ex. être inscrit à France Travail, habiter la commune…' }),
      F('Frais', 'fees', { options: [['', 'Non précisé'], ['gratuit', 'Gratuit'], ['payant', 'Payant']] }),
      F('Précisions sur les frais', 'fees_details', { help: 'Facultatif : ex. 1 € par séance, pris en charge par le Département.' })),
    group('Où',
      F('Adresse', 'address'),
      F('Complément d\'adresse', 'address_complement'),
      F('Code postal', 'postal_code', { help: '5 chiffres.' }),
      F('Commune', 'commune'),
      F('Code commune INSEE', 'commune_insee', { help: '5 caractères, différent du code postal (ex. 27681 pour Vernon).' }),
      F('Zone où le service est ouvert', 'eligibility_zone', { value: arr('eligibility_zone').join(', '),
        help: 'Codes séparés par des virgules : commune (27681), département (27), intercommunalité (SIREN, 9 chiffres) ou « france ».' }),
      checkboxes('Accueil', 'reception_modes', RECEPTION, { checked: arr('reception_modes') })),
    group('Comment y orienter une personne',
      checkboxes('Qui peut faire appel au service', 'mobilisable_by', MOBILISABLE_BY, { checked: arr('mobilisable_by') }),
      checkboxes('Comment', 'mobilisation_modes', MOBILISATION, { checked: arr('mobilisation_modes') }),
      F('Lien d\'inscription', 'mobilisation_link', { type: 'url', help: 'Facultatif : une adresse qui commence par https://.' }),
      F('Nom du contact', 'contact_name'),
      F('Téléphone', 'phone', { type: 'tel', autocomplete: 'off' }),
      F('E-mail de contact', 'email', { type: 'email', autocomplete: 'off' }),
      F('Horaires d\'accueil', 'opening_hours', { multiline: true })),
    group('Places',
      F('Nombre de places', 'capacity', { type: 'number', help: 'Facultatif : la capacité totale.' }),
      F('Places disponibles', 'available_places', { type: 'number', help: 'Facultatif : mettez-le à jour quand des places se libèrent. 0 si le service est complet.' })),
  ];
  const submit = s ? 'Enregistrer les modifications' : 'Ajouter le service';
  const f = form(s ? `Modifier le service ${s.name}` : 'Ajouter un service', fields, submit, async (el) => {
    const v = values(el, LISTS);
    const errors = [];
    const err = (field_, message) => errors.push({ field: field_, message });
    if (!v.name) err('name', 'Indiquez le nom du service.');
    else if (v.name.length < 3 || v.name.length > 150) err('name', `Le nom compte de 3 à 150 caractères (ici ${v.name.length}).`);
    else if (v.name.endsWith('.')) err('name', 'Retirez le point à la fin du nom.');
    const dl = [...v.description].length;
    if (!dl) err('description', 'Décrivez le service en quelques phrases (50 caractères au moins).');
    else if (dl < 50 || dl > 2000) err('description', `La description compte de 50 à 2 000 caractères (ici ${dl}) : ${dl < 50 ? 'ajoutez ce que le service propose, pour qui, comment.' : 'raccourcissez-la.'}`);
    if (v.postal_code && !/^\d{5}$/.test(v.postal_code)) err('postal_code', 'Le code postal compte 5 chiffres.');
    if (v.commune_insee && !/^[0-9][0-9AB][0-9]{3}$/i.test(v.commune_insee)) err('commune_insee', 'Le code commune INSEE compte 5 caractères (ex. 27681).');
    if (v.email && !EMAIL.test(v.email)) err('email', 'Adresse e-mail invalide : elle doit ressembler à contact@exemple.fr.');
    if (v.mobilisation_link && !/^https?:\/\/[^\s/]+\.[^\s]+$/.test(v.mobilisation_link)) err('mobilisation_link', 'Le lien doit être une adresse web complète, qui commence par https://.');
    const num = (k) => (v[k] === '' ? null : Number(v[k]));
    const capacity = num('capacity');
    const available = num('available_places');
    if (capacity !== null && !(Number.isInteger(capacity) && capacity >= 0)) err('capacity', 'Un nombre entier, 0 ou plus.');
    if (available !== null && !(Number.isInteger(available) && available >= 0)) err('available_places', 'Un nombre entier, 0 ou plus.');
    else if (available !== null && capacity !== null && available > capacity) err('available_places', `Pas plus de places disponibles que de places en tout (${capacity}).`);
    if (errors.length) throw invalid(errors);
    const text = (k) => v[k] || null;
    const body = {
      name: v.name, description: v.description, thematiques: v.thematiques, types: v.types, publics: v.publics,
      access_conditions: text('access_conditions'), fees: text('fees'), fees_details: text('fees_details'),
      address: text('address'), address_complement: text('address_complement'), postal_code: text('postal_code'),
      commune: text('commune'), commune_insee: v.commune_insee ? v.commune_insee.toUpperCase() : null,
      eligibility_zone: v.eligibility_zone.split(/[,;\s]+/).map((x) => x.trim()).filter(Boolean),
      reception_modes: v.reception_modes, mobilisable_by: v.mobilisable_by, mobilisation_modes: v.mobilisation_modes,
      mobilisation_link: text('mobilisation_link'), contact_name: text('contact_name'), phone: text('phone'), email: text('email'),
      opening_hours: text('opening_hours'), capacity, available_places: available,
    };
    if (s) {
      try {
        await patchVersioned(`/services/${s.id}`, body, read.version);
      } catch (e) {
        if (e.status !== 412) throw e;
        const meanwhile = await changedMeanwhile(s.id, read.data, body);
        read = meanwhile.now;
        throw meanwhile.err;
      }
      notice(`Le service « ${v.name} » est modifié.`);
    } else {
      await post('/services', { structure_id: c.s.id, ...body });
      notice(`Le service « ${v.name} » est ajouté à l'annuaire.`);
    }
    location.hash = `${c.base}/services`;
  });
  return show(s ? `Modifier « ${s.name} »` : 'Ajouter un service', header(c, '/services'), back,
    h('p', {}, 'Les champs marqués « obligatoire » sont à remplir ; les autres aident les conseillers à savoir si le service convient.'), f);
}

/** Plain text of a field's value, to say what it is now. */
const shown = (x) => (Array.isArray(x) ? x.join(', ') : x == null || x === '' ? '(vide)' : String(x));

/**
 * Someone saved the service while this form was open: the error to show, saying next
 * to each field they changed what it is now (what was typed stays), and the version
 * now read, over which the next save is made (the user has seen it).
 */
async function changedMeanwhile(id, before, body) {
  const now = await getVersioned(`/services/${encodeURIComponent(id)}`);
  const same = (a, b) => JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
  const fields = Object.keys(body)
    .filter((k) => !same(before[k], now.data[k]))
    .map((k) => ({ field: k, message: `Modifié entre-temps par quelqu'un d'autre : maintenant « ${shown(now.data[k])} ». Gardez votre saisie ou reprenez cette valeur.` }));
  const err = new Error('Quelqu\'un a enregistré ce service pendant que vous le modifiiez. Vos saisies sont gardées : vérifiez les champs signalés, puis enregistrez à nouveau pour garder votre version.');
  err.fields = fields;
  err.explained = true;
  return { now, err };
}

// ---------------------------------------------------------------------------
// A partner's reception: event format, webhooks, deliveries
// ---------------------------------------------------------------------------

function secretPanel(hook) {
  const code = h('code', { class: 'secret-value' }, hook.secret);
  return h('section', { class: 'card secret', 'aria-labelledby': 'h-secret' },
    h('h2', { id: 'h-secret' }, 'Secret de signature du nouveau webhook'),
    h('p', {}, code),
    h('p', {}, copyButton(hook.secret, 'Copier le secret', code)),
    h('p', {}, 'Donnez ce secret à la personne qui gère votre logiciel. Il ne sera plus jamais affiché : s\'il est perdu, supprimez le webhook et déclarez-le à nouveau.'),
    h('p', { class: 'note' }, 'Chaque envoi porte l\'en-tête « eva-signature: t=…,v1=… » : un HMAC-SHA256, avec ce secret, de « t.corps ». ',
      'Votre logiciel le recalcule et refuse un envoi dont la signature ne correspond pas ou dont l\'heure diffère de plus de 5 minutes.'));
}

async function reception(c, created = null) {
  if (!c.partnerKind || !(c.isAdmin || c.isPartner)) {
    return show('Réception des orientations', header(c, '/reception'),
      h('p', {}, 'Cette page concerne les structures partenaires : leurs réglages et leurs webhooks.'));
  }
  const sid = c.s.id;
  const [settings, hooks] = await Promise.all([
    get(`/structures/${sid}/partner-settings`),
    get(`/structures/${sid}/webhooks?page_size=50`).then((r) => r.items),
  ]);
  const again = (next) => reception(c, next);

  const fmt = field('Format des événements', 'event_format', { options: FORMATS, value: settings.event_format,
    help: 'Le format des messages NATS de votre structure (eva.partners.…). Les webhooks ont chacun leur format.' });
  const settingsForm = form('Format des événements', [fmt.wrap], 'Enregistrer le format', async (f) => {
    const { event_format: format } = values(f);
    await patch(`/structures/${sid}/partner-settings`, { event_format: format });
    notice(`Format des événements enregistré : ${format}.`);
  });

  const url = field('Adresse du webhook', 'url', { type: 'url', required: true, autocomplete: 'off',
    help: 'L\'adresse de votre logiciel qui reçoit les orientations ; elle commence par https:// (connexion chiffrée).' });
  const hookFormat = field('Format', 'format', { options: FORMATS, value: 'protobuf' });
  const add = form('Ajouter un webhook', [url.wrap, hookFormat.wrap], 'Ajouter le webhook', async (f) => {
    const v = values(f);
    let u = null;
    try { u = new URL(v.url); } catch { u = null; }
    const local = u && ['localhost', '127.0.0.1', '[::1]'].includes(u.hostname);
    if (!v.url) throw invalid([{ field: 'url', message: 'Indiquez l\'adresse du webhook.' }]);
    if (!u || !u.hostname) throw invalid([{ field: 'url', message: 'Adresse invalide : écrivez l\'adresse complète, ex. https://logiciel.exemple.fr/eva.' }]);
    if (u.protocol === 'http:' && !local) {
      throw invalid([{ field: 'url', message: 'L\'adresse doit commencer par https:// : EVA n\'envoie les orientations que sur une connexion chiffrée.' }]);
    }
    if (u.protocol !== 'https:' && u.protocol !== 'http:') throw invalid([{ field: 'url', message: 'L\'adresse doit commencer par https://.' }]);
    if (hooks.length >= 5) throw invalid([], 'Cinq webhooks au plus par structure : supprimez-en un d\'abord.');
    const hook = await post(`/structures/${sid}/webhooks`, { url: v.url, format: v.format });
    notice('Le webhook est ajouté : copiez son secret de signature, il ne sera plus affiché.');
    await again(hook);
  });

  const cards = hooks.map((w) => {
    const hid = uid('hook');
    const remove = h('div', { class: 'remove' });
    remove.append(h('button', { type: 'button', class: 'danger', 'aria-describedby': hid, onclick: () => {
      confirmIn(remove, `Supprimer le webhook ${w.url} ? EVA n'y enverra plus rien ; les envois en attente sont abandonnés.`, 'Oui, supprimer', async () => {
        await del(`/structures/${sid}/webhooks/${w.id}`);
        notice(`Le webhook ${w.url} est supprimé : EVA n'y envoie plus rien.`);
        await again(null);
      });
    } }, 'Supprimer ce webhook'));
    const paused = w.status === 'paused';
    const toggle = h('button', { type: 'button', class: 'secondary', 'aria-describedby': hid, onclick: async () => {
      toggle.disabled = true;
      try {
        await post(`/structures/${sid}/webhooks/${w.id}/${paused ? 'resume' : 'pause'}`, {});
        notice(paused
          ? 'Le webhook reprend : les orientations gardées pendant la pause partent d\'abord, dans l\'ordre.'
          : 'Le webhook est en pause : EVA garde les orientations et les enverra à la reprise.');
        await again(null);
      } catch (e) {
        notice(e.message, 'error');
        toggle.disabled = false;
      }
    } }, paused ? 'Reprendre les envois' : 'Mettre en pause');
    return h('li', { class: `card hook${paused ? ' paused' : ''}` },
      h('h3', { id: hid, class: 'url' }, w.url),
      h('p', {}, `Format : ${w.format} · déclaré le ${fmtDate(w.created_at)}`),
      h('p', {}, 'État : ', paused
        ? h('span', { class: 'status status-paused' }, `En pause depuis le ${fmtDate(w.paused_at)}`)
        : h('span', { class: 'status status-active' }, 'Actif'),
      paused ? ' — rien n\'est envoyé ; les orientations sont gardées et partiront à la reprise.' : ''),
      h('p', {}, h('a', { href: `${c.base}/reception/${w.id}`, 'aria-describedby': hid }, 'Voir les envois récents')),
      h('div', { class: 'actions' }, toggle),
      remove);
  });

  return show('Réception des orientations', header(c, '/reception'),
    created ? secretPanel(created) : null,
    h('p', {}, 'Les orientations adressées à votre structure arrivent dans EVA (menu Orientations). Votre logiciel peut aussi les recevoir : ',
      'par des webhooks (EVA appelle votre adresse à chaque nouvelle orientation, message ou changement d\'état, avec une signature) ou par NATS.'),
    h('section', { 'aria-labelledby': 'h-hooks' },
      h('h2', { id: 'h-hooks' }, `Webhooks (${hooks.length} sur 5 possibles)`),
      hooks.length ? h('ul', { class: 'cards' }, cards) : h('p', {}, 'Aucun webhook : les orientations ne sont envoyées à aucun logiciel.'),
      h('h3', {}, 'Ajouter un webhook'),
      add,
      h('p', { class: 'note' }, 'Pour arrêter les envois un moment (maintenance de votre logiciel), mettez le webhook en pause : il garde son adresse et son secret, et les orientations arrivées entre-temps lui sont envoyées, dans l\'ordre, à la reprise. Supprimer un webhook abandonne ses envois en attente.')),
    h('section', { 'aria-labelledby': 'h-settings' },
      h('h2', { id: 'h-settings' }, 'Événements NATS'),
      settingsForm,
      settings.updated_at ? h('p', { class: 'note' }, `Modifié le ${fmtDate(settings.updated_at)}.`) : null));
}

async function deliveries(c, webhookId, params) {
  const sid = c.s.id;
  const status = params.get('etat') || '';
  const q = new URLSearchParams({ page_size: '100' });
  if (status) q.set('status', status);
  const [hooks, page] = await Promise.all([
    get(`/structures/${sid}/webhooks?page_size=50`).then((r) => r.items),
    get(`/structures/${sid}/webhooks/${encodeURIComponent(webhookId)}/deliveries?${q}`),
  ]);
  const hook = hooks.find((w) => w.id === webhookId);
  const pick = field('État', 'etat', { options: [['', 'Tous'], ...Object.entries(DELIVERY)], value: status });
  const filter = form('Filtrer les envois', [pick.wrap], 'Afficher', async (f) => {
    const { etat } = values(f);
    location.hash = `${c.base}/reception/${webhookId}${etat ? `?etat=${etat}` : ''}`;
  });
  const rows = page.items.map((d) => h('tr', {},
    h('th', { scope: 'row' }, d.event_type),
    h('td', {}, h('span', { class: `status delivery-${d.status}` }, DELIVERY[d.status] || d.status || '—')),
    h('td', {}, String(d.attempts)),
    h('td', {}, d.last_attempt_at ? fmtDate(d.last_attempt_at) : '—'),
    h('td', {}, d.last_http_status ? String(d.last_http_status) : '—'),
    h('td', {}, d.last_error || (d.next_attempt_at && d.status !== 'delivered' ? `Prochain essai : ${fmtDate(d.next_attempt_at)}` : '—'))));
  return show('Envois du webhook', header(c, '/reception'),
    h('p', {}, h('a', { href: `${c.base}/reception` }, 'Revenir à la réception des orientations')),
    h('p', {}, 'Adresse : ', h('strong', { class: 'url' }, hook ? hook.url : webhookId)),
    filter,
    page.items.length
      ? scrollBox('Envois récents', h('table', {},
        h('caption', {}, `Envois récents, les plus récents d'abord${status ? ` (${DELIVERY[status]})` : ''}`),
        h('thead', {}, h('tr', {}, ['Événement', 'État', 'Essais', 'Dernier essai', 'Réponse HTTP', 'Erreur ou suite'].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, rows)))
      : h('p', {}, status ? 'Aucun envoi dans cet état.' : 'Aucun envoi pour l\'instant : il y en aura un à la prochaine orientation adressée à votre structure.'));
}

// ---------------------------------------------------------------------------

export async function route(me, parts, params) {
  let id = parts[1];
  if (!id) id = mine(me)[0]?.id;
  if (!id) return show('Ma structure', h('p', {}, 'Votre compte n\'est rattaché à aucune structure.'));
  const c = await context(me, id);
  switch (parts[2]) {
    case 'membres': return members(c);
    case 'services':
      if (parts[3] === 'nouveau') return serviceForm(c, null);
      if (parts[3]) return serviceForm(c, parts[3]);
      return services(c);
    case 'reception':
      if (parts[3]) return deliveries(c, parts[3], params);
      return reception(c);
    default: return overview(c);
  }
}
