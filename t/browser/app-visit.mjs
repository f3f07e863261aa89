// My appointment: the view, a reschedule (the new link works, the old
// token is refused), a cancel through the dialog, the countdown before the
// waiting room opens, the way in within the window, and after a visit held
// over the WebSocket protocol the doctor's summary and the rating.
import { launch, person, ok, note, done, accessible, screenshot,
         PHONE, DESKTOP, BASE, http, freeSlot, book, appErrors, missingKeys } from '../lib/browser.mjs';

const browser = await launch();

// the refused old token's 401, the cancelled visit's 404 and 409
const EXPECTED = [401, 404, 409];

function visitUrl(a) {
    return `/visit.html?appointment=${a.id}#token=${encodeURIComponent(a.token)}`;
}

async function step(page, state) {
    await page.waitForTimeout(150);
    await accessible(page, state);
    await screenshot(page, state);
}

const page = await person(browser, { viewport: PHONE, name: 'patient' });

// ---- a later appointment: view, countdown, reschedule, cancel
{
    const a = await book(await freeSlot('jonas-weber', { from: 40 * 60000, to: 10 * 3600000 }));
    await page.goto(visitUrl(a));
    await page.waitForSelector('[data-view="view"]:not([hidden])');
    const text = await page.textContent('main');
    ok(text.includes('Jane Roe') && text.includes('cough'), 'the view shows the patient and the reason');
    ok(text.includes('Dr. Jonas Weber'), "the view shows the doctor's name");
    ok((await page.textContent('#v-status')) === 'Booked', 'the status in words');
    const c1 = await page.textContent('#countdown');
    ok(/The waiting room opens in .*\d+ min/.test(c1), 'a countdown to the waiting room', c1);
    ok(await page.isHidden('#enter'), 'no way in before the window');
    await page.waitForTimeout(1100);
    ok((await page.textContent('#countdown')) !== c1 || /h/.test(c1), 'the countdown is live');
    await step(page, 'later');

    await page.click('#reschedule');
    await page.waitForSelector('[data-view="reschedule"]:not([hidden]) #slots button');
    await step(page, 'reschedule');
    const chosen = page.locator('#slots button').last();
    const newSlot = await chosen.getAttribute('data-slot');
    await chosen.click();
    await page.click('#resched-save');
    await page.waitForFunction((old) => !location.hash.includes(old), encodeURIComponent(a.token));
    await page.waitForSelector('[data-view="view"]:not([hidden])');
    const token = new URLSearchParams((await page.evaluate(() => location.hash)).slice(1)).get('token');
    ok(token && token !== a.token, 'the page has the new token in its fragment');
    const old = await http('GET', `/appointments/${a.id}`, { token: a.token });
    ok(old.status === 401, 'the old token is refused', old.status);
    const now = await http('GET', `/appointments/${a.id}`, { token });
    ok(now.status === 200 && now.json.slot === newSlot, 'the new token works and the slot moved', now.json);
    await page.reload();
    await page.waitForSelector('[data-view="view"]:not([hidden])');
    ok((await page.textContent('main')).includes('Jane Roe'), 'the new link opens the appointment');
    await step(page, 'rescheduled');

    await page.click('#cancel');
    ok(await page.evaluate(() => document.getElementById('cancel-dialog').open), 'cancel opens a dialog');
    await step(page, 'cancel-dialog');
    await page.click('#cancel-yes');
    await page.waitForFunction(() => document.getElementById('v-status').textContent === 'Cancelled');
    ok(await page.isVisible('#again a'), 'a cancelled appointment offers booking again');
    ok(await page.isHidden('#checkin'), 'no countdown once cancelled');
    await step(page, 'cancelled');
}

// ---- within the window: the way into the waiting room, then a held visit
const b = await book(await freeSlot('jonas-weber', { from: 30000, to: 14 * 60000 }), 'Max Muster');
await page.goto(visitUrl(b));
await page.waitForSelector('#enter:not([hidden])');
ok((await page.getAttribute('#enter', 'href')) === `/wait.html?appointment=${b.id}#token=${encodeURIComponent(b.token)}`,
   'the check-in button leads to the waiting room with the token in the fragment');
ok(/open/.test(await page.textContent('#countdown')), 'the page says the waiting room is open');
await step(page, 'window-open');

const login = await http('POST', '/doctor/login', { body: { doctor: 'jonas-weber', password: 'demo-password' } });
ok(login.status === 200, 'the doctor signs in');
const dtoken = login.json.token;

const held = await page.evaluate(async ({ dtoken, ptoken }) => {
    const url = 'ws://' + location.host + '/ws';
    function open(token) {
        const ws = new WebSocket(url);
        ws.msgs = [];
        ws.waiters = [];
        ws.onmessage = (e) => {
            const m = JSON.parse(e.data);
            ws.msgs.push(m);
            ws.waiters = ws.waiters.filter((w) => !(w.f(m) && (w.r(m), true)));
        };
        ws.next = (type) => new Promise((r, j) => {
            const m = ws.msgs.find((x) => x.type === type);
            if (m) { ws.msgs.splice(ws.msgs.indexOf(m), 1); return r(m); }
            ws.waiters.push({ f: (x) => x.type === type, r });
            setTimeout(() => j(new Error('no ' + type + ': ' + JSON.stringify(ws.msgs))), 8000);
        });
        ws.say = (m) => ws.send(JSON.stringify({ v: 1, ...m }));
        return new Promise((r) => { ws.onopen = () => { ws.say({ type: 'hello', token }); r(ws); }; });
    }
    const doc = await open(dtoken);
    await doc.next('welcome');
    const pat = await open(ptoken);
    await pat.next('welcome');
    await pat.next('queue');
    doc.say({ type: 'call_next' });
    const ring = await pat.next('ring');
    pat.say({ type: 'accept', call: ring.call });
    await pat.next('call');
    await doc.next('call');
    await new Promise((r) => setTimeout(r, 300));
    doc.say({ type: 'hangup', call: ring.call });
    const visit = await pat.next('visit');
    doc.close();
    pat.close();
    return visit.status;
}, { dtoken, ptoken: b.token });
ok(held === 'fulfilled', 'the visit is held over the protocol', held);

await page.reload();
await page.waitForSelector('#s-wait:not([hidden])');
ok(/still writing/.test(await page.textContent('#s-wait')), 'the summary is not ready while the doctor writes');
await step(page, 'summary-writing');

const rec = `/appointments/${b.id}/record`;
const note1 = await http('PUT', rec + '/note', { token: dtoken,
    body: { diagnosis: 'acute bronchitis', advice: 'rest and drink plenty' } });
ok(note1.status === 200, 'the doctor writes the note');
const drugs = (await http('GET', '/formulary?q=para', { token: dtoken })).json;
const exams = (await http('GET', '/exams', { token: dtoken })).json;
const rx = await http('POST', rec + '/prescriptions', { token: dtoken,
    body: { drug: drugs[0].id, dose: '500 mg', frequency: '3 x a day', days: 5, quantity: 15, note: 'after meals' } });
const or = await http('POST', rec + '/orders', { token: dtoken, body: { exam: exams[0].id, note: '' } });
const fu = await http('POST', rec + '/followups', { token: dtoken, body: { kind: 'revisit', note: 'if not better', due: '2030-01-15' } });
ok(rx.status === 201 && or.status === 201 && fu.status === 201, 'a prescription, an order and a follow-up',
   [rx, or, fu]);
const closed = await http('POST', rec + '/close', { token: dtoken });
ok(closed.status === 200, 'the record is closed');
note('record as the patient sees it: ' + JSON.stringify((await http('GET', rec, { token: b.token })).json).slice(0, 600));

await page.waitForSelector('#s-body dl', { timeout: 20000 });
const sum = await page.textContent('#summary');
ok(sum.includes('acute bronchitis') && sum.includes('rest and drink plenty'), 'the summary shows diagnosis and advice');
ok(sum.includes('500 mg') && sum.includes('3 x a day') && sum.includes('after meals'), 'the summary shows the prescription');
// the record names the drug and the exam from the formulary, not by id
ok(sum.includes(drugs[0].name) && !sum.includes(drugs[0].id), 'the summary names the drug', sum);
ok(sum.includes(exams[0].name) && !sum.includes(exams[0].id), 'the summary names the exam', exams[0]);
ok(sum.includes('Follow-up visit') && sum.includes('if not better') && sum.includes('2030'), 'the summary shows the follow-up in words');
await step(page, 'summary');

async function ratingCount() {
    const m = await (await fetch(BASE + '/metrics')).text();
    return m.split('\n').filter((l) => /^teleclinic_rating_count/.test(l) || /^teleclinic_rating_bucket\{le="\+Inf"\}/.test(l))
        .map((l) => Number(l.split(' ').pop())).reduce((x, y) => x + y, 0);
}
const before = await ratingCount();
await page.locator('.star', { hasText: '4' }).click();
await page.fill('#comment', 'kind and clear');
await step(page, 'rating');
await page.click('#rate-form button[type="submit"]');
await page.waitForSelector('#rate-thanks:not([hidden])');
ok(true, 'the rating is sent and thanked');
const r = (await http('GET', rec, { token: b.token })).json;
ok(r.rating && r.rating.score === 4 && r.rating.comment === 'kind and clear', 'the server has the rating', r.rating);
ok((await ratingCount()) > before, 'the rating histogram moved', [before]);
await step(page, 'rated');
ok(appErrors(page, EXPECTED).length === 0, 'no console errors', appErrors(page, EXPECTED));
ok(missingKeys(page).length === 0, 'no i18n key missing');

// ---- the same visit in Chinese at desktop size, and at 320 px
for (const [viewport, locale, name] of [[DESKTOP, 'zh-CN', 'zh'], [{ width: 320, height: 640 }, 'en-US', 'narrow']]) {
    const p = await person(browser, { viewport, locale, name });
    await p.goto(visitUrl(b));
    await p.waitForSelector('#s-body dl');
    if (locale === 'zh-CN') {
        ok((await p.textContent('#v-status')) === '已就诊', 'the status in Chinese words');
        ok((await p.textContent('#summary')).includes('复诊'), 'the follow-up kind in Chinese');
        ok((await p.textContent('#summary')).includes('对乙酰氨基酚'), "the drug's Chinese name");
        ok(await p.isVisible('#rate-thanks'), 'a rated visit shows thanks, not the form');
    }
    const w = await p.evaluate(() => document.documentElement.scrollWidth);
    ok(w <= viewport.width, `no horizontal scroll at ${viewport.width} px: ${w}`);
    await step(p, name + '-summary');
    ok(appErrors(p, EXPECTED).length === 0 && missingKeys(p).length === 0,
       `no console error nor missing string (${name})`, p.consoleErrors);
    await p.context().close();
}

await browser.close();
done();
