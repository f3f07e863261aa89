// The visit's variants in a real browser, relay only: two patients waiting
// (the second moves from 2 to 1 when the first goes into the call), the
// first patient's page reloaded mid-call and then its connection dropped
// (video comes back by itself each time), a
// refused picture, a declined call, a no-show through the confirmation,
// a cancelled appointment (the visit page says so, the waiting room
// refuses it plainly), and the console in Chinese with large text and
// high contrast, on a phone and at 320 px.
import { launch, person, ok, note, done, PHONE, NARROW, DESKTOP,
         http, appErrors, missingKeys } from '../lib/browser.mjs';
import { step, bookThroughPages, enterWaitingRoom, signInDoctor,
         queueLine, stats, firstFrame, mediaFlows } from './app-e2e-lib.mjs';

const browser = await launch();
const pa = await person(browser, { viewport: PHONE, relay: true, name: 'patientA' });
const pb = await person(browser, { viewport: PHONE, relay: true, name: 'patientB' });
const doc = await person(browser, { viewport: DESKTOP, relay: true, name: 'doctor' });
const pages = [pa, pb, doc];

try {
    // ---- two patients waiting
    const a = await bookThroughPages(pa, { name: 'Anton Erster', phone: '+49 30 5550201', shots: false });
    await enterWaitingRoom(pa, { shots: false });
    const b = await bookThroughPages(pb, { name: 'Berta Zweite', phone: '+49 30 5550202', shots: false });
    await enterWaitingRoom(pb, { shots: false });
    ok(/number 2/.test(await pb.textContent('#q-position')), 'the second patient is number 2',
       await pb.textContent('#q-position'));
    // position 2 of a doctor with 5-minute slots and no visit yet: one
    // slot's length ahead (docs/protocol.md, estimated_wait)
    ok(/about 5 min/.test(await pb.textContent('#q-estimate')), 'the second patient sees the estimated wait',
       await pb.textContent('#q-estimate'));
    await step(pb, 'second-waiting');

    await signInDoctor(doc, { shots: false });
    await queueLine(doc, 'Berta Zweite').waitFor();
    await doc.waitForFunction(() => (document.getElementById('queue-list').textContent.match(/Connected, ready/g) || []).length === 2);
    const order = await doc.$$eval('#queue-list li .console-name', (n) => n.map((x) => x.textContent));
    ok(order[0] === 'Anton Erster' && order[1] === 'Berta Zweite', 'the console lists both in queue order', order);
    ok(/Patients waiting: 2/.test(await doc.textContent('#queue-summary')), 'the console counts two waiting');
    await step(doc, 'two-waiting');

    // ---- "Later" sends a patient to the end of the queue (twice, back to the first order)
    const names = () => doc.$$eval('#queue-list li .console-name', (n) => n.map((x) => x.textContent).join(','));
    await queueLine(doc, 'Anton Erster').locator('button.skip').click();
    await doc.waitForFunction(() => /^\s*1\s*Berta/.test(document.querySelector('#queue-list li').textContent));
    ok((await names()) === 'Berta Zweite,Anton Erster', 'Later moves the first patient to the end', await names());
    await pb.waitForFunction(() => /You are next/.test(document.getElementById('q-position').textContent));
    await queueLine(doc, 'Berta Zweite').locator('button.skip').click();
    await doc.waitForFunction(() => /^\s*1\s*Anton/.test(document.querySelector('#queue-list li').textContent));
    await pb.waitForFunction(() => /number 2/.test(document.getElementById('q-position').textContent));
    ok((await names()) === 'Anton Erster,Berta Zweite', 'and again: the first order is back', await names());

    // ---- the first goes into the call (by the keyboard); the second moves to 1
    await doc.focus('#call-next');
    await doc.keyboard.press('Enter');
    await pa.waitForSelector('[data-view="ring"]:not([hidden]) #answer');
    await pa.click('#answer');
    await pb.waitForFunction(() => /You are next/.test(document.getElementById('q-position').textContent),
                             null, { timeout: 10000 });
    ok(true, "the second patient's position moves from 2 to 1");
    await step(pb, 'second-next');
    await doc.waitForSelector('#call-area:not([hidden]) video');
    ok(await firstFrame(doc, Date.now()) >= 0, 'the doctor sees the first patient');
    await doc.waitForFunction(() => /In the call/.test(document.getElementById('queue-list').textContent));
    ok(await doc.isDisabled('#call-next'), 'call next is disabled during a call');

    // ---- the patient's page reloaded mid-call: video flows again by itself
    await firstFrame(pa, Date.now());
    // from the reload on, the page's WebSockets are kept where the test
    // can close one, as a network change closes it under a phone's page
    await pa.context().addInitScript(() => {
        const Native = window.WebSocket;
        window.teleclinicSockets = [];
        window.WebSocket = function (...args) {
            const ws = new Native(...args);
            window.teleclinicSockets.push(ws);
            return ws;
        };
        window.WebSocket.prototype = Native.prototype;
        Object.setPrototypeOf(window.WebSocket, Native);
    });
    const tr = Date.now();
    await pa.reload();
    await pa.waitForSelector('[data-view="call"]:not([hidden]) video', { timeout: 30000 });
    const back = await firstFrame(pa, tr, 40000);
    note(`reload to the first decoded remote frame again (patient): ${back} ms`);
    ok(back >= 0, 'after the reload the patient sees the doctor again without doing anything', back);
    await mediaFlows(pa, 'patient after reload');
    await mediaFlows(doc, 'doctor after the patient reloaded');
    await step(pa, 'after-reload');

    // ---- the patient's connection to the clinic drops mid-call (closed
    // under the page): the page reconnects by itself, the server's rejoin
    // rebuilds the call, and video flows again
    await pa.evaluate(() => { window.teleclinicOldPc = window.teleclinicCall.pc; });
    const tdrop = Date.now();
    const dropped = await pa.evaluate(() => {
        const open = window.teleclinicSockets.filter((w) => w.readyState === WebSocket.OPEN);
        open.forEach((w) => w.close());
        return open.length;
    });
    ok(dropped === 1, "the patient's connection to the clinic is closed under the page", dropped);
    await pa.waitForFunction(() => window.teleclinicCall && window.teleclinicCall.pc !== window.teleclinicOldPc,
                             null, { timeout: 20000 });
    ok(await pa.evaluate(() => window.teleclinicSockets.filter((w) => w.readyState === WebSocket.OPEN).length) === 1,
       'the page has connected again by itself');
    const dropBack = await firstFrame(pa, tdrop, 40000);
    note(`dropped connection to the first decoded remote frame again (patient): ${dropBack} ms`);
    ok(dropBack >= 0, 'after the dropped connection the patient sees the doctor again without doing anything', dropBack);
    await mediaFlows(pa, 'patient after the dropped connection');
    await mediaFlows(doc, "doctor after the patient's dropped connection");

    // ---- the doctor's page reloaded mid-call: the kept session, the call back by itself
    const td = Date.now();
    await doc.reload();
    await doc.waitForSelector('#call-area:not([hidden]) video', { timeout: 30000 });
    ok(await doc.isHidden('[data-view="signin"]'), 'the reloaded console keeps the session (no sign-in)');
    const dback = await firstFrame(doc, td, 40000);
    note(`reload to the first decoded remote frame again (doctor): ${dback} ms`);
    ok(dback >= 0, 'after the reload the doctor sees the patient again without doing anything', dback);
    await mediaFlows(doc, 'doctor after reload');
    await mediaFlows(pa, 'patient after the doctor reloaded');
    await doc.waitForSelector('#record button:text("Ask to keep a picture")');
    await step(doc, 'after-reload');

    // ---- a refused picture
    await doc.click('#record button:text("Ask to keep a picture")');
    await pa.waitForFunction(() => document.getElementById('consent').open, null, { timeout: 10000 });
    await pa.click('#consent-no');
    await doc.waitForFunction(() => /said no/.test(document.querySelector('#record .record-snap-status').textContent),
                              null, { timeout: 10000 });
    ok(true, 'the record says the patient said no');
    await doc.waitForTimeout(500);
    const rec = await http('GET', `/appointments/${a.id}/record`,
                           { token: await doc.evaluate(() => JSON.parse(sessionStorage.getItem('teleclinic.doctor')).token) });
    ok(rec.status === 200 && rec.json.snapshots.length === 0, 'no picture is in the record after a no', rec.json);
    ok(await doc.locator('#record img.record-thumb').count() === 0, 'and none shows');
    await step(doc, 'snapshot-refused');
    await doc.click('#call-hangup');
    await doc.waitForSelector('#call-area', { state: 'hidden' });
    await pa.waitForSelector('[data-view="over"]:not([hidden])');

    // ---- a declined call
    await queueLine(doc, 'Berta Zweite').locator('button.call').click();
    await pb.waitForSelector('[data-view="ring"]:not([hidden]) #decline');
    await step(pb, 'ring-before-decline');
    await pb.click('#decline');
    await doc.waitForFunction(() => /declined/.test(document.getElementById('ring-state').textContent),
                              null, { timeout: 10000 });
    ok(true, 'the doctor sees that the patient declined');
    await pb.waitForSelector('[data-view="queue"]:not([hidden])');
    await step(doc, 'declined');

    // ---- a no-show, through the confirmation
    await doc.waitForFunction(() => !!document.querySelector('#queue-list li button.noshow'));
    await queueLine(doc, 'Berta Zweite').locator('button.noshow').click();
    ok(await doc.evaluate(() => document.getElementById('noshow-dialog').open), 'no-show asks first');
    ok((await doc.textContent('#noshow-text')).includes('Berta Zweite'), 'the dialog names the patient');
    await step(doc, 'noshow-dialog');
    await doc.click('#noshow-no');
    await doc.waitForTimeout(500);
    ok(await queueLine(doc, 'Berta Zweite').count() === 1, '"No" keeps the patient waiting');
    await queueLine(doc, 'Berta Zweite').locator('button.noshow').click();
    await doc.click('#noshow-yes');
    await doc.waitForFunction(() => !/Berta Zweite/.test(document.getElementById('queue-list').textContent),
                              null, { timeout: 10000 });
    ok(true, 'after "Yes" the patient leaves the queue');
    await doc.waitForFunction(() => /Not attended/.test(document.getElementById('today-list').textContent),
                              null, { timeout: 10000 });
    ok(true, "today's list says not attended");
    ok(!(await doc.isHidden('#queue-empty')), 'the console says nobody is waiting');
    await step(doc, 'after-noshow');

    // ---- a cancelled appointment
    const pc = await person(browser, { viewport: PHONE, relay: true, name: 'patientC' });
    pages.push(pc);
    const c = await bookThroughPages(pc, { name: 'Clara Dritte', phone: '+49 30 5550203', shots: false,
                                         checkin: false });
    await pc.click('#cancel');
    await pc.click('#cancel-yes');
    await pc.waitForFunction(() => /ancel/.test(document.getElementById('v-status').textContent), null, { timeout: 10000 });
    ok(true, 'the visit page shows the appointment cancelled');
    await step(pc, 'cancelled');
    await pc.goto(`/wait.html?appointment=${c.id}#token=${c.token}`);
    await pc.waitForSelector('[data-view="closed"]:not([hidden])', { timeout: 15000 });
    const why = await pc.textContent('#closed-text');
    ok(why.length > 10 && !/\w+\.\w+/.test(why), 'the waiting room refuses it plainly', why);
    await step(pc, 'waiting-room-refused');

    // ---- how the console signs in: it asks GET /doctor/login; without
    // SSO in front (make run's configuration) it shows the password form
    // and makes no failing sign-in on the way (t/060 tests the SSO side
    // of the server, with the variable set)
    {
        const fresh = await person(browser, { viewport: DESKTOP, name: 'doctor-fresh' });
        pages.push(fresh);
        const asked = [];
        fresh.on('request', (q) => { if (q.url().includes('/api/v1/doctor/login')) asked.push(q.method()); });
        await fresh.goto('/doctor.html');
        await fresh.waitForSelector('[data-view="signin"]:not([hidden])');
        ok(asked.join(',') === 'GET', 'the console asks how to sign in, and no sign-in is tried', asked);
        await fresh.context().close();
    }

    // ---- the console in Chinese, large text and high contrast, at desktop, phone and 320 px
    for (const [viewport, tag] of [[DESKTOP, 'zh-desktop'], [PHONE, 'zh-phone'], [NARROW, 'zh-320']]) {
        const z = await person(browser, { viewport, locale: 'zh-CN', relay: true, name: 'doctor-' + tag });
        pages.push(z);
        await z.goto('/doctor.html');
        await z.waitForSelector('#mode-text');
        if (tag === 'zh-desktop') {
            await z.click('#mode-text');
            await z.click('#mode-contrast');
        } else {
            await z.evaluate(() => { localStorage.setItem('teleclinic.text', 'large'); localStorage.setItem('teleclinic.contrast', 'high'); });
        }
        await z.reload();
        await z.waitForSelector('#signin-doctor option[value="jonas-weber"]', { state: 'attached' });
        const cls = await z.evaluate(() => document.documentElement.className);
        ok(/text-large/.test(cls) && /contrast-high/.test(cls), `large text and high contrast (${tag})`, cls);
        ok((await z.textContent('[data-view="signin"] h1')) === '登录医生工作台', `the sign-in is in Chinese (${tag})`);
        await step(z, 'signin');
        await z.selectOption('#signin-doctor', 'jonas-weber');
        await z.fill('#signin-password', 'demo-password');
        await z.click('#signin-submit');
        await z.waitForSelector('[data-view="console"]:not([hidden])');
        await z.waitForSelector('#today-list li');
        const text = await z.textContent('main');
        ok(text.includes('今日问诊') && text.includes('候诊室') && text.includes('呼叫下一位患者'),
           `the console is in Chinese (${tag})`);
        ok(/已就诊|未到诊/.test(text), `the day's statuses are in Chinese (${tag})`);
        const bx = await z.locator('#call-next').boundingBox();
        ok(bx.height >= 44, `the big button is at least 44 px (${tag}: ${bx.height})`);
        await step(z, 'console');
        if (tag === 'zh-desktop') {
            // a language switch redraws the dynamic parts
            await z.click('#lang-switch');
            await z.waitForFunction(() => /Patients waiting/.test(document.getElementById('queue-summary').textContent));
            ok(/Seen|Not attended/.test(await z.textContent('#today-list')), "after the switch to English today's list is redrawn");
            await z.click('#lang-switch');
            await z.waitForFunction(() => /等候的患者/.test(document.getElementById('queue-summary').textContent));
            ok(true, 'and back in Chinese');
        }
        const seen = z.locator('#today-list button.console-open').first();
        if (await seen.count()) {
            await seen.click();
            await z.waitForSelector('#record:not([hidden]) textarea');
            await step(z, 'record-from-list');
        }
        await z.context().close();
    }
} catch (e) {
    ok(false, 'the variants ran to the end', String(e && e.stack || e));
    for (const p of pages) {
        await step(p, 'failure').catch(() => {});
    }
}

for (const p of pages) {
    ok(appErrors(p).length === 0, `no console errors (${p.teleclinicName})`, appErrors(p));
    ok(missingKeys(p).length === 0, `no i18n key missing (${p.teleclinicName})`, missingKeys(p));
}
await browser.close();
done();
