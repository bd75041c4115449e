// « Ma structure » in headless Chromium (run by tests/tests/system/web.rs): A's admin
// invites a member (a bad address is told next to its field), changes the new member's
// role and removes them, changes an active member's roles in place (the last admin keeps
// the role, told next to the field; the counselor logs in afterwards with the same
// password), adds a service to the directory (a missing field is told next to it),
// changes it, archives it (out of the export) and reopens it; B's partner adds a webhook
// (http refused, https accepted, its secret shown once), pauses and resumes it, reads its
// deliveries and deletes it. Every page is checked on a phone too (390 px).
import { readFileSync } from 'node:fs';
import { checkA11y, expect, fixtures, fitsPhone, launch, logIn, logOut, screenshot, step, told } from './lib.mjs';

const fx = fixtures();
const { browser, page } = await launch();
const h1 = (name) => page.getByRole('heading', { level: 1, name }).waitFor();
const NEW = { email: 'camille.dupont@exemple.fr', name: 'Camille Dupont' };
const SERVICE = 'Atelier CV et lettre de motivation';
let exported;
const member = (email) => page.getByRole('listitem').filter({ has: page.getByText(email, { exact: true }) });

try {
  await step('l\'administrateur de A ouvre « Ma structure »', async () => {
    await page.goto(`${fx.baseUrl}/`);
    await logIn(page, fx.admin, 'Personnes suivies');
    await page.getByRole('link', { name: 'Ma structure' }).click();
    await h1(fx.structures.a.name);
    await page.getByText('Association', { exact: true }).waitFor();
    await checkA11y(page, 'structure');
    await screenshot(page, 'structure-presentation');
    await fitsPhone(page, 'structure', { shot: 'structure-presentation-telephone' });
  });

  await step('modifier la structure : un code commune faux est signalé à côté du champ', async () => {
    await page.getByText('Modifier le nom ou le territoire').click();
    const edit = page.getByRole('form', { name: 'Modifier la structure' });
    await edit.getByLabel('Code commune INSEE').fill('271');
    await edit.getByRole('button', { name: 'Enregistrer les modifications' }).click();
    await edit.locator('[data-field="commune_insee"] .error').filter({ hasText: '5 caractères' }).waitFor();
    expect((await edit.getByLabel('Code commune INSEE').inputValue()) === '271', 'the code typed is kept');
    expect((await edit.getByLabel('Nom de la structure').inputValue()) === fx.structures.a.name, 'the name stays');
  });

  await step('les membres : le conseiller de A est listé', async () => {
    await page.getByRole('navigation', { name: /Sections de/ }).getByRole('link', { name: 'Membres' }).click();
    await h1('Membres');
    const counselor = member(fx.counselor.email);
    await counselor.waitFor();
    expect((await counselor.textContent()).includes('conseiller'), 'the counselor\'s role is shown');
    expect((await counselor.textContent()).includes('Actif'), 'the counselor\'s status is shown');
    await checkA11y(page, 'membres');
    await screenshot(page, 'structure-membres');
    await fitsPhone(page, 'membres');
  });

  await step('inviter : une adresse fausse est signalée à côté du champ, le nom reste', async () => {
    const invite = page.getByRole('form', { name: 'Inviter un membre' });
    await invite.getByLabel('Adresse e-mail').fill('camille.dupont-exemple.fr');
    await invite.getByLabel('Nom et prénom').fill(NEW.name);
    await invite.getByRole('button', { name: 'Créer l\'invitation' }).click();
    await invite.locator('[data-field="email"] .error').filter({ hasText: 'prenom.nom@exemple.fr' }).waitFor();
    expect((await invite.getByLabel('Adresse e-mail').getAttribute('aria-invalid')) === 'true', 'the e-mail field is marked invalid');
    expect((await invite.getByLabel('Nom et prénom').inputValue()) === NEW.name, 'the name typed is kept');
    expect((await member(NEW.email).count()) === 0, 'nobody was invited');
  });

  let firstCode;
  await step('inviter : le code d\'invitation est affiché, à transmettre', async () => {
    const invite = page.getByRole('form', { name: 'Inviter un membre' });
    await invite.getByLabel('Adresse e-mail').fill(NEW.email);
    await invite.getByRole('button', { name: 'Créer l\'invitation' }).click();
    await page.getByRole('heading', { level: 2, name: `Code d'invitation de ${NEW.name}` }).waitFor();
    await told(page, 'transmettez-lui le code');
    firstCode = (await page.locator('.secret-value').textContent()).replace(/\s/g, '');
    expect(/^[A-Z2-7]{26}$/.test(firstCode), `a 26-character code: ${firstCode}`);
    await page.getByRole('button', { name: 'Copier le code' }).waitFor();
    const card = member(NEW.email);
    await card.getByText('Invité').waitFor();
    expect((await card.textContent()).includes('conseiller'), 'invited as a counselor');
    await checkA11y(page, 'invitation');
    await screenshot(page, 'structure-invitation');
    await fitsPhone(page, 'code d\'invitation d\'un membre');
  });

  await step('changer le rôle du nouveau membre : le même code donnera le nouveau rôle', async () => {
    const card = member(NEW.email);
    await card.locator('summary', { hasText: 'Changer le rôle' }).click();
    const change = card.getByRole('form', { name: `Changer le rôle de ${NEW.name}` });
    await change.getByText('Le code d\'invitation déjà transmis reste valable').waitFor();
    await change.getByLabel('Conseiller (accompagnement des personnes)').uncheck();
    await change.getByLabel('Administrateur de la structure').check();
    await change.getByRole('button', { name: 'Enregistrer les rôles' }).click();
    await told(page, 'est maintenant administrateur');
    const after = member(NEW.email);
    await after.getByRole('definition').filter({ hasText: /^administrateur$/ }).waitFor();
    expect(!(await after.textContent()).includes('conseiller'), 'the counselor role is gone');
    await after.getByText('Invité').waitFor();
    // The code already handed over now says the new role.
    const info = await page.evaluate(async (code) => (await fetch(`/api/v1/invitations/${code}`)).json(), firstCode);
    expect(info.role === 'structure_admin', `the same code gives the new role (${info.role})`);
  });

  await step('retirer le nouveau membre, après confirmation', async () => {
    const card = member(NEW.email);
    await card.getByRole('button', { name: 'Retirer de la structure' }).click();
    await card.getByText(`Retirer ${NEW.name} de la structure ?`).waitFor();
    await card.getByRole('button', { name: 'Oui, retirer' }).click();
    await told(page, 'ne fait plus partie de la structure');
    await member(NEW.email).waitFor({ state: 'detached' });
    await member(fx.counselor.email).waitFor();
  });

  await step('changer ses propres rôles : le dernier administrateur garde son rôle, dit à côté du champ', async () => {
    const card = member(fx.admin.email);
    await card.locator('summary', { hasText: 'Changer le rôle' }).click();
    const change = card.getByRole('form', { name: /^Changer le rôle de / });
    await change.getByLabel('Administrateur de la structure').uncheck();
    await change.getByRole('button', { name: 'Enregistrer les rôles' }).click();
    await change.locator('[data-field="roles"] .error').filter({ hasText: 'Cochez au moins un rôle' }).waitFor();
    await change.getByLabel('Conseiller (accompagnement des personnes)').check();
    await change.getByRole('button', { name: 'Enregistrer les rôles' }).click();
    await change.locator('[data-field="roles"] .error').filter({ hasText: 'dernier administrateur' }).waitFor();
    expect(await change.getByLabel('Conseiller (accompagnement des personnes)').isChecked(), 'the box ticked is kept');
    expect(!(await change.getByLabel('Administrateur de la structure').isChecked()), 'the box unticked is kept');
    await checkA11y(page, 'rôles refusés');
    await screenshot(page, 'structure-role-refuse');
    await fitsPhone(page, 'rôles refusés');
    expect((await member(fx.admin.email).getByRole('definition').filter({ hasText: /^administrateur$/ }).count()) === 1, 'the admin is still admin');
  });

  await step('donner au conseiller actif le rôle administrateur, sans nouvelle invitation', async () => {
    const card = member(fx.counselor.email);
    await card.locator('summary', { hasText: 'Changer le rôle' }).click();
    const change = card.getByRole('form', { name: /^Changer le rôle de / });
    expect(await change.getByLabel('Conseiller (accompagnement des personnes)').isChecked(), 'the current role is ticked');
    await change.getByLabel('Administrateur de la structure').check();
    await change.getByRole('button', { name: 'Enregistrer les rôles' }).click();
    await told(page, 'est maintenant conseiller et administrateur');
    const after = member(fx.counselor.email);
    await after.getByRole('definition').filter({ hasText: /^conseiller, administrateur$/ }).waitFor();
    expect((await after.textContent()).includes('Actif'), 'still an active account');
    expect((await page.locator('.secret-value').count()) === 0, 'no invitation code: the account is kept');
  });

  await step('lui retirer le rôle administrateur', async () => {
    const card = member(fx.counselor.email);
    await card.locator('summary', { hasText: 'Changer le rôle' }).click();
    const change = card.getByRole('form', { name: /^Changer le rôle de / });
    await change.getByLabel('Administrateur de la structure').uncheck();
    await change.getByRole('button', { name: 'Enregistrer les rôles' }).click();
    await told(page, 'est maintenant conseiller dans la structure');
    const after = member(fx.counselor.email);
    await after.getByRole('definition').filter({ hasText: /^conseiller$/ }).waitFor();
    expect((await after.textContent()).includes('Actif'), 'still an active account');
  });

  await step('les membres sur un téléphone (390 px)', async () => {
    await member(fx.counselor.email).waitFor();
    await fitsPhone(page, 'membres après les changements de rôle', { shot: 'structure-membres-telephone' });
  });

  await step('ajouter un service : une description manquante est signalée, le nom reste', async () => {
    await page.getByRole('navigation', { name: /Sections de/ }).getByRole('link', { name: 'Services' }).click();
    await h1('Services de la structure');
    await page.getByRole('link', { name: 'Ajouter un service' }).click();
    await h1('Ajouter un service');
    await page.getByLabel('Nom du service').fill(SERVICE);
    await page.getByLabel('Code postal').fill('27200');
    await page.getByRole('button', { name: 'Ajouter le service' }).click();
    await page.locator('[data-field="description"] .error').filter({ hasText: '50 caractères' }).waitFor();
    expect((await page.getByLabel('Description').getAttribute('aria-invalid')) === 'true', 'the description is marked invalid');
    expect((await page.getByLabel('Nom du service').inputValue()) === SERVICE, 'the name typed is kept');
    expect((await page.getByLabel('Code postal').inputValue()) === '27200', 'the postal code typed is kept');
    await checkA11y(page, 'service avec erreur');
    await screenshot(page, 'structure-service-erreur');
    await fitsPhone(page, 'service avec erreur', { shot: 'structure-service-erreur-telephone' });
  });

  await step('ajouter le service', async () => {
    await page.getByLabel('Description').fill('Un atelier collectif chaque mardi pour écrire son CV et une lettre de motivation, avec un conseiller et un ordinateur prêté.');
    await page.getByText('Préparer sa candidature', { exact: true }).click();
    await page.getByLabel('Réaliser un CV ou une lettre de motivation').check();
    await page.getByLabel('Atelier', { exact: true }).check();
    await page.getByLabel('Commune', { exact: true }).fill('Vernon');
    await page.getByLabel('Nombre de places').fill('8');
    await page.getByLabel('Places disponibles').fill('3');
    await page.getByRole('button', { name: 'Ajouter le service' }).click();
    await h1('Services de la structure');
    await told(page, 'est ajouté à l\'annuaire');
    const card = page.getByRole('listitem').filter({ has: page.getByRole('heading', { name: SERVICE }) });
    await card.getByText('3 place(s) disponible(s) sur 8').waitFor();
    expect((await card.textContent()).includes('Réaliser un CV'), 'its thématique is shown');
  });

  await step('modifier le service, il est à jour dans la liste', async () => {
    let card = page.getByRole('listitem').filter({ has: page.getByRole('heading', { name: SERVICE }) });
    await card.getByRole('link', { name: 'Modifier ce service' }).click();
    await h1(`Modifier « ${SERVICE} »`);
    expect((await page.getByLabel('Réaliser un CV ou une lettre de motivation').isChecked()), 'its thématique is checked');
    await page.getByLabel('Places disponibles').fill('9');
    await page.getByRole('button', { name: 'Enregistrer les modifications' }).click();
    await page.locator('[data-field="available_places"] .error').filter({ hasText: 'Pas plus de places' }).waitFor();
    await page.getByLabel('Places disponibles').fill('2');
    await page.getByRole('button', { name: 'Enregistrer les modifications' }).click();
    await h1('Services de la structure');
    await told(page, 'est modifié');
    card = page.getByRole('listitem').filter({ has: page.getByRole('heading', { name: SERVICE }) });
    await card.getByText('2 place(s) disponible(s) sur 8').waitFor();
    await checkA11y(page, 'services');
    await screenshot(page, 'structure-services');
    await fitsPhone(page, 'services', { shot: 'structure-services-telephone' });
  });

  await step('modifié par quelqu\'un d\'autre pendant la saisie : dit à côté du champ, rien de perdu', async () => {
    let card = page.getByRole('listitem').filter({ has: page.getByRole('heading', { name: SERVICE }) });
    await card.getByRole('link', { name: 'Modifier ce service' }).click();
    await h1(`Modifier « ${SERVICE} »`);
    await page.getByLabel('Horaires d\'accueil').fill('Lundi et jeudi, 9 h – 12 h');
    // Meanwhile a colleague saves the service from elsewhere: one place is left.
    const id = /services\/([0-9a-f-]{36})/.exec(page.url())[1];
    const status = await page.evaluate(async (sid) => {
      const r = await fetch(`/api/v1/services/${sid}`, {
        method: 'PATCH',
        headers: { authorization: `Bearer ${sessionStorage.getItem('eva.token')}`, 'content-type': 'application/json' },
        body: JSON.stringify({ available_places: 1 }),
      });
      return r.status;
    }, id);
    expect(status === 200, `the colleague's change is saved (${status})`);
    await page.getByRole('button', { name: 'Enregistrer les modifications' }).click();
    const places = page.locator('[data-field="available_places"] .error');
    await places.filter({ hasText: 'maintenant « 1 »' }).waitFor();
    await page.getByRole('alert').filter({ hasText: 'pendant que vous le modifiiez' }).waitFor();
    expect((await page.getByLabel('Places disponibles').getAttribute('aria-invalid')) === 'true', 'the field changed meanwhile is marked');
    expect((await page.getByLabel('Horaires d\'accueil').inputValue()) === 'Lundi et jeudi, 9 h – 12 h', 'what was typed is kept');
    await checkA11y(page, 'service modifié entre-temps');
    await screenshot(page, 'structure-service-modifie-entre-temps');
    // Seen: take the colleague's value for the places, keep one's own hours, save.
    await page.getByLabel('Places disponibles').fill('1');
    await page.getByRole('button', { name: 'Enregistrer les modifications' }).click();
    await h1('Services de la structure');
    await told(page, 'est modifié');
    card = page.getByRole('listitem').filter({ has: page.getByRole('heading', { name: SERVICE }) });
    await card.getByText('1 place(s) disponible(s) sur 8').waitFor();
  });

  await step('exporter les services de la structure', async () => {
    const [file] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Exporter les services (fichier JSON)' }).click()]);
    const rows = JSON.parse(readFileSync(await file.path(), 'utf8'));
    expect(Array.isArray(rows) && rows.some((r) => r.nom === SERVICE), 'the export holds the new service');
    await told(page, 'est téléchargé');
    exported = await file.path();
  });

  await step('vérifier un fichier à importer : sans fichier, l\'erreur est à côté du champ', async () => {
    await page.getByText('Importer un fichier de services').click();
    const imp = page.getByRole('form', { name: 'Importer des services' });
    await imp.getByLabel('Nom de la source').fill('mon-fichier');
    await imp.getByRole('button', { name: 'Importer le fichier' }).click();
    await imp.locator('[data-field="file"] .error').filter({ hasText: 'Choisissez un fichier' }).waitFor();
    expect((await imp.getByLabel('Nom de la source').inputValue()) === 'mon-fichier', 'the source typed is kept');
    await imp.getByLabel('Fichier JSON au schéma data·inclusion').setInputFiles(exported);
    expect(await imp.getByLabel('Seulement vérifier le fichier').isChecked(), 'a dry run by default');
    await imp.getByRole('button', { name: 'Importer le fichier' }).click();
    await page.getByText(/^Vérification : \d+ service\(s\) à créer/).waitFor();
    await told(page, 'Vérification terminée');
  });

  await step('archiver le service : il reste listé comme archivé et sort de l\'export', async () => {
    const card = page.getByRole('listitem').filter({ has: page.getByRole('heading', { name: SERVICE }) });
    await card.getByRole('button', { name: 'Archiver ce service' }).click();
    await card.getByText(`Archiver « ${SERVICE} » ?`).waitFor();
    await card.getByRole('button', { name: 'Oui, archiver' }).click();
    await told(page, 'est archivé');
    const after = page.getByRole('listitem').filter({ has: page.getByRole('heading', { name: SERVICE }) });
    await after.getByText(/^Archivé \(fermé\) le /).waitFor();
    await after.getByRole('button', { name: 'Rouvrir ce service' }).waitFor();
    const [file] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Exporter les services (fichier JSON)' }).click()]);
    const rows = JSON.parse(readFileSync(await file.path(), 'utf8'));
    expect(Array.isArray(rows) && !rows.some((r) => r.nom === SERVICE), 'an archived service is not exported');
    await checkA11y(page, 'service archivé');
    await screenshot(page, 'structure-service-archive');
    await fitsPhone(page, 'service archivé');
  });

  await step('rouvrir le service', async () => {
    const card = page.getByRole('listitem').filter({ has: page.getByRole('heading', { name: SERVICE }) });
    await card.getByRole('button', { name: 'Rouvrir ce service' }).click();
    await told(page, 'est rouvert');
    const after = page.getByRole('listitem').filter({ has: page.getByRole('heading', { name: SERVICE }) });
    await after.getByRole('button', { name: 'Archiver ce service' }).waitFor();
    expect((await after.getByText(/^Archivé/).count()) === 0, 'no longer archived');
  });

  await step('le conseiller se connecte avec son mot de passe habituel après le changement de rôle', async () => {
    await logOut(page);
    await logIn(page, fx.counselor, 'Personnes suivies');
  });

  await step('le partenaire de B ouvre la réception des orientations', async () => {
    await logOut(page);
    await page.goto(`${fx.baseUrl}/#/structure`);
    await logIn(page, fx.partner, fx.structures.b.name);
    const sections = page.getByRole('navigation', { name: /Sections de/ });
    expect((await sections.getByRole('link', { name: 'Membres' }).count()) === 0, 'a partner does not manage members');
    await sections.getByRole('link', { name: 'Services' }).click();
    await page.getByRole('heading', { name: 'Permis de conduire solidaire' }).waitFor();
    await sections.getByRole('link', { name: 'Réception des orientations' }).click();
    await h1('Réception des orientations');
    await page.getByText('Aucun webhook').waitFor();
  });

  await step('un webhook en http:// est refusé à côté du champ, l\'adresse reste', async () => {
    const add = page.getByRole('form', { name: 'Ajouter un webhook' });
    await add.getByLabel('Adresse du webhook').fill('http://partner.example/eva/events');
    await add.getByRole('button', { name: 'Ajouter le webhook' }).click();
    await add.locator('[data-field="url"] .error').filter({ hasText: 'https://' }).waitFor();
    expect((await add.getByLabel('Adresse du webhook').inputValue()) === 'http://partner.example/eva/events', 'the address typed is kept');
    // The API's own checks land next to the field too: no private network address.
    await add.getByLabel('Adresse du webhook').fill('https://10.1.2.3/eva');
    await add.getByRole('button', { name: 'Ajouter le webhook' }).click();
    await add.locator('[data-field="url"] .error').filter({ hasText: 'réseau privé' }).waitFor();
    expect((await page.getByText('Aucun webhook').count()) === 1, 'no webhook was added');
  });

  const url = 'https://partner.example/eva/events';
  await step('un webhook en https:// est ajouté, son secret affiché une fois', async () => {
    const add = page.getByRole('form', { name: 'Ajouter un webhook' });
    await add.getByLabel('Adresse du webhook').fill(url);
    await add.getByLabel('Format').selectOption('json');
    await add.getByRole('button', { name: 'Ajouter le webhook' }).click();
    await page.getByRole('heading', { level: 2, name: 'Secret de signature du nouveau webhook' }).waitFor();
    const secret = (await page.locator('.secret-value').textContent()).trim();
    expect(secret.length >= 40, `a signing secret: ${secret.length} characters`);
    const card = page.getByRole('listitem').filter({ has: page.getByRole('heading', { name: url }) });
    await card.getByText('Format : json').waitFor();
    await checkA11y(page, 'webhooks');
    await screenshot(page, 'partenaire-webhooks');
    await fitsPhone(page, 'webhooks', { shot: 'partenaire-webhooks-telephone' });
  });

  await step('le format des événements NATS', async () => {
    const settings = page.getByRole('form', { name: 'Format des événements' });
    await settings.getByLabel('Format des événements').selectOption('json');
    await settings.getByRole('button', { name: 'Enregistrer le format' }).click();
    await told(page, 'Format des événements enregistré : json');
  });

  await step('mettre le webhook en pause, puis reprendre les envois', async () => {
    let card = page.getByRole('listitem').filter({ has: page.getByRole('heading', { name: url }) });
    await card.getByText('Actif', { exact: true }).waitFor();
    await card.getByRole('button', { name: 'Mettre en pause' }).click();
    await told(page, 'est en pause');
    card = page.getByRole('listitem').filter({ has: page.getByRole('heading', { name: url }) });
    await card.getByText(/^En pause depuis le /).waitFor();
    expect((await card.textContent()).includes('partiront à la reprise'), 'the card says the events are kept');
    await checkA11y(page, 'webhook en pause');
    await screenshot(page, 'partenaire-webhook-pause');
    await fitsPhone(page, 'webhook en pause');
    await card.getByRole('button', { name: 'Reprendre les envois' }).click();
    await told(page, 'reprend');
    card = page.getByRole('listitem').filter({ has: page.getByRole('heading', { name: url }) });
    await card.getByText('Actif', { exact: true }).waitFor();
    await card.getByRole('button', { name: 'Mettre en pause' }).waitFor();
  });

  await step('les envois du webhook', async () => {
    const card = page.getByRole('listitem').filter({ has: page.getByRole('heading', { name: url }) });
    await card.getByRole('link', { name: 'Voir les envois récents' }).click();
    await h1('Envois du webhook');
    await page.getByText(url).waitFor();
    await page.getByText('Aucun envoi pour l\'instant').waitFor();
    await checkA11y(page, 'envois du webhook');
    await screenshot(page, 'partenaire-envois');
    await fitsPhone(page, 'envois du webhook');
    await page.getByRole('link', { name: 'Revenir à la réception des orientations' }).click();
    await h1('Réception des orientations');
    expect((await page.getByRole('heading', { name: 'Secret de signature du nouveau webhook' }).count()) === 0, 'the secret is not shown again');
  });

  await step('désactiver le webhook (le supprimer), après confirmation', async () => {
    const card = page.getByRole('listitem').filter({ has: page.getByRole('heading', { name: url }) });
    await card.getByRole('button', { name: 'Supprimer ce webhook' }).click();
    await card.getByRole('button', { name: 'Oui, supprimer' }).click();
    await told(page, 'est supprimé');
    await page.getByText('Aucun webhook').waitFor();
    expect((await page.getByRole('heading', { name: url }).count()) === 0, 'the webhook is gone from the list');
  });
  console.log('admin: ok');
} finally {
  await browser.close();
}
