// A bad network (run by tests/tests/system/web.rs): the answer to « Inscrire la personne »
// is lost after the server registered her (the connection drops on the way back). The
// client sends the same request again under the same Idempotency-Key, the server gives back
// its first answer, and the counselor sees the person registered — once, not twice.
import { expect, fixtures, launch, logIn, step, told } from './lib.mjs';

const fx = fixtures();
const { browser, page } = await launch();
try {
  await step('le conseiller se connecte', async () => {
    await page.goto(`${fx.baseUrl}/`);
    await logIn(page, fx.counselor, 'Personnes suivies');
  });

  const keys = [];
  await step('la réponse de l\'inscription se perd : le client renvoie, la personne est inscrite', async () => {
    let lost = false;
    await page.route('**/api/v1/people', async (route) => {
      const req = route.request();
      if (req.method() !== 'POST') return route.continue();
      keys.push(req.headers()['idempotency-key']);
      if (lost) return route.continue();
      lost = true;
      // The server does the work; its answer never reaches the browser.
      const answer = await route.fetch();
      expect(answer.status() === 201, `the server registered her (${answer.status()})`);
      return route.abort('connectionreset');
    });
    await page.getByRole('link', { name: 'Inscrire une personne' }).click();
    await page.getByRole('heading', { level: 1, name: 'Inscrire une personne' }).waitFor();
    await page.getByLabel('Prénom').fill('Lou');
    await page.getByLabel(/^Nom/).fill('Réseau-Perdu');
    await page.getByLabel('Date de naissance').fill('1992-02-29');
    await page.getByLabel('Code INSEE de la commune').fill('27229');
    await page.getByRole('button', { name: 'Inscrire la personne' }).click();
    await page.getByRole('heading', { level: 1, name: 'Lou Réseau-Perdu' }).waitFor();
    await told(page, 'est inscrit');
    await page.unroute('**/api/v1/people');
  });

  await step('une seule fois : même clé, réponse redonnée, une seule personne', async () => {
    expect(keys.length === 2, `two sends (${keys.length})`);
    expect(/^[0-9a-f-]{36}$/.test(keys[0] || ''), `a UUID key (${keys[0]})`);
    expect(keys[0] === keys[1], 'the retry carries the same key');
    const found = await page.evaluate(async (a) => {
      const q = new URLSearchParams({ structure_id: a, last_name: 'Réseau-Perdu', first_name: 'Lou', birth_date: '1992-02-29' });
      const r = await fetch(`/api/v1/people?${q}`, { headers: { authorization: `Bearer ${sessionStorage.getItem('eva.token')}` } });
      return (await r.json()).items.length;
    }, fx.structures.a.id);
    expect(found === 1, `one person registered (${found})`);
  });
} finally {
  await browser.close();
}
