// The doctor's visit record panel (html/js/record.js), mounted into a
// served page (there is no doctor page in this branch): during a call held
// over the WebSocket protocol the snapshot consent (refused, then granted:
// one picture and its thumbnail), then after the hang-up the note saved as
// typed, the drug search as a combobox (English prefix and a Chinese
// substring, keyboard selection), a prescription, an order and a follow-up
// in the record and in the panel, remove, close (final and read-only, and
// 409 visit_not_held in words for a visit not held) and an addendum;
// axe and screenshots at each state, at desktop width and in a 26rem
// column, in English and Chinese.
import { launch, person, ok, note, done, accessible, screenshot,
         DESKTOP, http, freeSlot, book, appErrors, missingKeys } from '../lib/browser.mjs';

const browser = await launch();

// the 409 of closing a record whose visit was not held
const EXPECTED = [409];

async function step(page, state) {
    await page.waitForTimeout(150);
    await accessible(page, state);
    await screenshot(page, state);
}

const login = await http('POST', '/doctor/login', { body: { doctor: 'jonas-weber', password: 'demo-password' } });
ok(login.status === 200, 'the doctor signs in');
const dtoken = login.json.token;
const a = await book(await freeSlot('jonas-weber', { from: 30000, to: 14 * 60000 }), 'Max Muster');
const later = await book(await freeSlot('jonas-weber', { from: 40 * 60000, to: 10 * 3600000 }), 'Erika Muster');
const rec = `/appointments/${a.id}/record`;
const record = async () => (await http('GET', rec, { token: dtoken })).json;

// a served page with the panel's style sheet and a container: a column of
// 26rem (as beside the call) or the page's width (alone)
async function panelPage(locale, name) {
    const page = await person(browser, { viewport: DESKTOP, locale, name });
    await page.goto('/guide.html');
    await page.waitForFunction(() => document.title && !document.title.includes('.'));
    await page.evaluate(() => {
        const link = document.createElement('link');
        link.rel = 'stylesheet';
        link.href = '/doctor.css';
        document.head.append(link);
        const main = document.getElementById('main');
        main.replaceChildren();
        const aside = document.createElement('aside');
        aside.id = 'record';
        aside.setAttribute('aria-label', 'record');
        aside.style.width = '26rem';
        main.append(aside);
    });
    await page.waitForFunction(() => [...document.styleSheets].some((s) => (s.href || '').endsWith('/doctor.css')));
    return page;
}

async function mount(page, appointment, { live = false, consentWait } = {}) {
    await page.evaluate(async ({ appointment, token, live, consentWait }) => {
        const { mountRecord } = await import('/js/record.js');
        if (window.panel) window.panel.destroy();
        const opts = { appointment, token };
        if (consentWait) opts.consentWait = consentWait;
        if (live) {
            opts.signal = window.signal;
            // the real Call (call.js) is another helper's and needs a WebRTC
            // peer; the panel uses only its id and snapshot(), so a stand-in
            // gives a JPEG drawn on a canvas
            opts.call = {
                id: window.callId,
                snapshot: () => new Promise((r) => {
                    const c = document.createElement('canvas');
                    c.width = 320; c.height = 240;
                    const g = c.getContext('2d');
                    g.fillStyle = '#c04030'; g.fillRect(0, 0, 320, 240);
                    g.fillStyle = '#ffe0c0'; g.beginPath(); g.arc(160, 120, 70, 0, 7); g.fill();
                    c.toBlob(r, 'image/jpeg', 0.8);
                })
            };
        }
        window.panel = mountRecord(document.getElementById('record'), opts);
    }, { appointment, token: dtoken, live, consentWait });
    await page.waitForSelector('#record .record-note textarea');
    const text = await page.textContent('#record');
    ok(!/\bnull\b|\bundefined\b/.test(text), 'no null nor undefined shown in the panel');
}

const page = await panelPage('en-US', 'doctor');

// ---- the call, held over the protocol: the doctor's real Signal, the
// patient's raw WebSocket
const callId = await page.evaluate(async ({ dtoken, ptoken }) => {
    const { Signal } = await import('/js/signal.js');
    const wait = (target, type, f = () => true) => new Promise((r, j) => {
        const h = (e) => { if (f(e.detail)) { target.removeEventListener(type, h); r(e.detail); } };
        target.addEventListener(type, h);
        setTimeout(() => j(new Error('no ' + type)), 8000);
    });
    const s = new Signal(dtoken);
    window.signal = s;
    const welcome = wait(s, 'welcome');
    s.connect();
    await welcome;

    const ws = new WebSocket('ws://' + location.host + '/ws');
    window.patient = ws;
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
        ws.waiters.push({ f: (x) => x.type === type, r: (x) => { ws.msgs.splice(ws.msgs.indexOf(x), 1); r(x); } });
        setTimeout(() => j(new Error('no ' + type + ': ' + JSON.stringify(ws.msgs))), 8000);
    });
    ws.say = (m) => ws.send(JSON.stringify({ v: 1, ...m }));
    await new Promise((r) => { ws.onopen = r; });
    ws.say({ type: 'hello', token: ptoken });
    await ws.next('welcome');
    await ws.next('queue');
    const call = wait(s, 'call');
    s.send({ type: 'call_next' });
    const ring = await ws.next('ring');
    ws.say({ type: 'accept', call: ring.call });
    await ws.next('call');
    await call;
    window.callId = ring.call;
    return ring.call;
}, { dtoken, ptoken: a.token });
ok(!!callId, 'a call is up between the doctor and the patient', callId);

// the wait for the patient's answer shortened from 60 s to 1.5 s
await mount(page, a.id, { live: true, consentWait: 1500 });
ok((await page.textContent('#record h2')) === 'Visit record', 'the panel shows its heading');
const labels = await page.$$eval('#record label', (ls) => ls.map((l) => l.textContent));
ok(['Chief complaint', 'History of present illness', 'Findings', 'Diagnosis', 'Advice'].every((l) => labels.includes(l)),
   'the five fields of the note are labelled', labels);
ok(await page.isVisible('#record button:text("Ask to keep a picture")'), 'a live call offers the snapshot button');
await step(page, 'open-in-call');

// ---- the snapshot: the patient says no, then yes
async function answer(granted) {
    await page.click('#record button:text("Ask to keep a picture")');
    await page.waitForFunction(() => document.querySelector('#record .record-snap-status').textContent.includes('Waiting'));
    ok(true, `the panel waits for the patient's answer (${granted ? 'yes' : 'no'})`);
    ok(await page.isDisabled('#record button:text("Ask to keep a picture")'), 'one request at a time');
    if (!granted) await step(page, 'snapshot-waiting');
    await page.evaluate(async ({ granted, callId }) => {
        const req = await window.patient.next('snapshot_request');
        window.patient.say({ type: 'snapshot_consent', call: callId, request: req.request, granted });
    }, { granted, callId });
}

// no answer: the panel says so and nothing is taken
await page.click('#record button:text("Ask to keep a picture")');
await page.evaluate(() => window.patient.next('snapshot_request'));
await page.waitForFunction(() => document.querySelector('#record .record-snap-status').textContent.includes('did not answer'),
                           null, { timeout: 5000 });
ok(await page.isEnabled('#record button:text("Ask to keep a picture")'), 'no answer: the panel says so and may ask again');

await answer(false);
await page.waitForFunction(() => document.querySelector('#record .record-snap-status').textContent.includes('said no'));
ok(true, 'the panel says the patient said no');
await page.waitForTimeout(300);
ok((await record()).snapshots.length === 0, 'no picture is kept on a no');
ok(await page.evaluate(() => document.querySelector('#record .record-snap-status').getAttribute('aria-live') === 'polite'),
   'the consent state is announced politely');
await step(page, 'snapshot-refused');

await answer(true);
await page.waitForFunction(() => {
    const img = document.querySelector('#record img.record-thumb');
    return img && img.complete && img.naturalWidth === 320;
}, null, { timeout: 10000 });
ok(true, 'the kept picture shows as a thumbnail');
const snaps = (await record()).snapshots;
ok(snaps.length === 1, 'one picture is in the record', snaps);
ok(/Picture 1 from the call/.test(await page.getAttribute('#record img.record-thumb', 'alt')), 'the thumbnail has alt text');
ok((await page.textContent('#record .record-snap-status')).includes('has been kept'), 'the panel says the picture is kept');
await step(page, 'snapshot-kept');

// ---- the hang-up: the visit is held
const status = await page.evaluate(async (callId) => {
    window.signal.send({ type: 'hangup', call: callId });
    const v = await window.patient.next('visit');
    window.patient.close();
    return v.status;
}, callId);
ok(status === 'fulfilled', 'the visit is held', status);

// ---- the note, saved as the doctor types (a change during a save too)
// the first save is held back a little so the typing goes on while it is in flight
await page.route('**/record/note', async (route) => { await new Promise((w) => setTimeout(w, 700)); await route.continue(); },
                 { times: 1 });
await page.click('#record textarea[name="complaint"]');
await page.keyboard.type('cough for two weeks');
await page.waitForFunction(() => document.querySelector('#record .record-saved').textContent.startsWith('Saving'));
await page.keyboard.type(', worse at night');
await page.waitForFunction(() => /^Saved \d/.test(document.querySelector('#record .record-saved').textContent),
                           null, { timeout: 8000 });
await page.waitForTimeout(1200);
ok(/^Saved \d/.test(await page.textContent('#record .record-saved')), 'the indicator says saved with the time',
   await page.textContent('#record .record-saved'));
let r = await record();
ok(r.note.complaint === 'cough for two weeks, worse at night', 'the server has all that was typed', r.note);
await page.fill('#record textarea[name="diagnosis"]', 'acute bronchitis');
await page.focus('#record textarea[name="advice"]');
await page.waitForTimeout(400);
r = await record();
ok(r.note.diagnosis === 'acute bronchitis', 'leaving a field saves it at once (blur)', r.note);
await page.keyboard.type('rest, fluids');
await page.waitForTimeout(1500);
r = await record();
ok(r.note.advice === 'rest, fluids' && r.note.complaint.startsWith('cough'), 'every field in one note', r.note);
await page.fill('#record textarea[name="findings"]', 'x'.repeat(3700));
ok((await page.textContent('#record textarea[name="findings"] + .record-count')).includes('3700 of 4000'),
   'a count near the limit');
await page.fill('#record textarea[name="findings"]', 'wheeze');
await page.waitForFunction(() => /^Saved/.test(document.querySelector('#record .record-saved').textContent));
await step(page, 'note-saved');

// a failing save is tried again, and the indicator says so
await page.route('**/record/note', (route) => route.fulfill({ status: 503, contentType: 'application/json',
    body: JSON.stringify({ error: { code: 'storage_unavailable', message: 'disk' } }) }), { times: 1 });
await page.fill('#record textarea[name="history"]', 'two weeks');
await page.waitForFunction(() => document.querySelector('#record .record-saved').textContent === 'Not saved — retrying');
ok(true, 'a failed save says "Not saved — retrying"');
await step(page, 'note-retrying');
await page.waitForFunction(() => /^Saved/.test(document.querySelector('#record .record-saved').textContent), null, { timeout: 8000 });
ok((await record()).note.history === 'two weeks', 'and is saved on the retry');
page.consoleErrors.splice(0);

// ---- the drug search: a combobox
const combo = '#record input[role="combobox"]';
ok(await page.evaluate((c) => {
    const i = document.querySelector(c);
    const lb = document.getElementById(i.getAttribute('aria-controls'));
    return lb && lb.getAttribute('role') === 'listbox' && i.getAttribute('aria-expanded') === 'false'
        && !!document.querySelector(`label[for="${i.id}"]`);
}, combo), 'the search is a labelled combobox controlling a listbox');
await page.focus(combo);
await page.keyboard.type('amox');
await page.waitForSelector('#record [role="option"]');
const opts = await page.$$eval('#record [role="option"]', (os) => os.map((o) => o.textContent));
ok(opts.length >= 2 && opts[0].includes('Amoxicillin') && opts[0].includes('500 mg') && opts[0].includes('capsule'),
   "'amox' finds Amoxicillin with strength and form", opts);
ok((await page.getAttribute(combo, 'aria-expanded')) === 'true', 'aria-expanded is true with results');
await step(page, 'search-amox');
await page.keyboard.press('ArrowDown');
await page.keyboard.press('ArrowDown');
const act = await page.getAttribute(combo, 'aria-activedescendant');
ok(act && (await page.getAttribute('#' + act, 'aria-selected')) === 'true'
   && (await page.textContent('#' + act)).includes('250 mg/5 mL'), 'the arrow keys move the active option', act);
await page.keyboard.press('Escape');
ok((await page.getAttribute(combo, 'aria-expanded')) === 'false' && await page.isHidden('#record [role="listbox"]'),
   'Escape closes the list');
await page.keyboard.press('ArrowDown');
await page.keyboard.press('Enter');
await page.waitForSelector('#record form.record-form.card:not([hidden])');
ok((await page.textContent('#record .record-chosen')).startsWith('Amoxicillin, 500 mg'), 'Enter chooses the drug',
   await page.textContent('#record .record-chosen'));
ok(await page.evaluate(() => document.activeElement.name === 'dose'), 'the focus moves to the dose');
await page.keyboard.type('500 mg');
await page.fill('#record input[name="frequency"]', '3 x a day');
await page.fill('#record input[name="days"]', '7');
await page.fill('#record input[name="quantity"]', '21');
await page.fill('#record .record-form.card input[name="note"]', 'after meals');
await step(page, 'prescription-form');
await page.click('#record button:text("Add the prescription")');
await page.waitForFunction(() => document.querySelector('#record ul[id$="rx-list"]').textContent.includes('Amoxicillin'));
r = await record();
ok(r.prescriptions.length === 1 && r.prescriptions[0].drug === 'amoxicillin-500' && r.prescriptions[0].days === 7
   && r.prescriptions[0].quantity === 21, 'the prescription is in the record', r.prescriptions);
ok((await page.textContent('#record ul[id$="rx-list"]')).includes('3 x a day'), 'and in the panel, by name');

// a Chinese name, found by a part of it
await page.fill(combo, '克拉维');
await page.waitForSelector('#record [role="option"]');
const zh = await page.$$eval('#record [role="option"]', (os) => os.map((o) => o.dataset.drug));
ok(zh.includes('co-amoxiclav-625'), 'a part of a Chinese name finds the drug', zh);
await page.click('#record [role="option"][data-drug="co-amoxiclav-625"]');
await page.fill('#record input[name="dose"]', '1 tablet');
await page.fill('#record input[name="frequency"]', '2 x a day');
// the server's 422 unknown_drug (the formulary changed meanwhile) in words
await page.route('**/record/prescriptions', (route) => route.fulfill({ status: 422, contentType: 'application/json',
    body: JSON.stringify({ error: { code: 'unknown_drug', message: 'unknown drug', field: 'drug' } }) }), { times: 1 });
await page.click('#record button:text("Add the prescription")');
await page.waitForSelector('#record .record-form.card .message.error:not([hidden])');
ok((await page.textContent('#record .record-form.card .message.error')).includes('not in the formulary'),
   '422 unknown_drug is shown in words');
page.consoleErrors.splice(0);
await step(page, 'unknown-drug');
await page.click('#record button:text("Add the prescription")');
await page.waitForFunction(() => document.querySelector('#record ul[id$="rx-list"]').textContent.includes('clavulanic'));
ok((await record()).prescriptions.length === 2, 'a second prescription');

// ---- an exam order
await page.fill('#record input[type="search"]', 'blood');
const examOpts = await page.$$eval('#record select[name="exam"] option', (os) => os.map((o) => o.textContent));
ok(examOpts.includes('Complete blood count') && !examOpts.includes('Creatinine'), 'the filter narrows the exams', examOpts);
await page.selectOption('#record select[name="exam"]', 'cbc');
await page.fill('#record .record-section form:not(.card) input[name="note"] >> nth=0', 'fasting');
await page.click('#record button:text("Order the examination")');
await page.waitForFunction(() => document.querySelector('#record ul[id$="order-list"]').textContent.includes('Complete blood count'));
r = await record();
ok(r.orders.length === 1 && r.orders[0].exam === 'cbc' && r.orders[0].note === 'fasting', 'the order is in the record', r.orders);

// ---- a follow-up
await page.selectOption('#record select[name="kind"]', 'revisit');
await page.fill('#record input[name="due"]', '2030-01-15');
await page.fill('#record input[id$="fu-note"]', 'if not better');
await page.click('#record button:text("Add the follow-up")');
await page.waitForFunction(() => document.querySelector('#record ul[id$="fu-list"]').textContent.includes('Follow-up visit'));
r = await record();
ok(r.followups.length === 1 && r.followups[0].kind === 'revisit' && r.followups[0].due === '2030-01-15',
   'the follow-up is in the record', r.followups);
ok((await page.textContent('#record ul[id$="fu-list"]')).includes('2030'), 'the panel shows its due date');
await step(page, 'items');

// ---- remove, by keyboard
await page.focus('#record button[aria-label="Remove Amoxicillin + clavulanic acid, 500 mg + 125 mg, tablet"]');
await page.keyboard.press('Enter');
await page.waitForFunction(() => !document.querySelector('#record ul[id$="rx-list"]').textContent.includes('clavulanic'));
r = await record();
ok(r.prescriptions.length === 1 && r.prescriptions[0].drug === 'amoxicillin-500', 'remove deletes it from the record',
   r.prescriptions);

// the panel again later: names of drugs it did not search for come back
await mount(page, a.id);
await page.waitForFunction(() => document.querySelector('#record ul[id$="rx-list"]').textContent.includes('Amoxicillin'));
ok(true, 'a panel opened later names the drug from its id');
ok(await page.isHidden('#record button:text("Ask to keep a picture")').catch(() => true)
   && (await page.$('#record button:text("Ask to keep a picture")')) === null, 'no snapshot button without a call');
ok((await page.inputValue('#record textarea[name="complaint"]')).startsWith('cough'), 'the note is read back');

// ---- close: the dialog, then final and read-only
await page.click('#record button:text("Close and sign the record")');
ok(await page.evaluate(() => document.querySelector('#record dialog').open), 'close asks in a dialog');
await step(page, 'close-dialog');
await page.click('#record dialog button:text("Yes, close and sign")');
await page.waitForSelector('#record .record-final');
r = await record();
ok(r.status === 'final', 'the record is final', r.status);
ok(await page.$$eval('#record textarea[name="complaint"]', (t) => t[0].readOnly), 'the note is read-only');
ok((await page.$(combo)) === null && (await page.$('#record .record-remove')) === null,
   'no search, no remove once final');
await page.fill('#record textarea[name="text"]', 'culture negative');
await page.click('#record button:text("Add the addendum")');
await page.waitForFunction(() => document.querySelector('#record .record-addenda').textContent.includes('culture negative'));
r = await record();
ok(r.addenda.length === 1 && r.addenda[0].text === 'culture negative', 'the addendum is in the record', r.addenda);
await step(page, 'final-addendum');

// the column at the page's width (alone)
await page.evaluate(() => { document.getElementById('record').style.width = ''; });
await step(page, 'final-wide');

// ---- a visit not held: 409 visit_not_held in words
await page.evaluate(() => { document.getElementById('record').style.width = '26rem'; });
await mount(page, later.id);
await page.click('#record button:text("Close and sign the record")');
await page.click('#record dialog button:text("Yes, close and sign")');
await page.waitForSelector('#record .record-close .message.error:not([hidden])');
ok((await page.textContent('#record .record-close .message.error')).includes('only after the video call'),
   '409 visit_not_held in plain words');
await step(page, 'not-held');

// large text and high contrast
await page.evaluate(() => document.documentElement.classList.add('text-large', 'contrast-high'));
await step(page, 'large-contrast');
const overflow = await page.evaluate(() => {
    const c = document.getElementById('record');
    return [...c.querySelectorAll('*')].filter((e) => e.getBoundingClientRect().right > c.getBoundingClientRect().right + 1)
        .map((e) => e.tagName + '.' + e.className).slice(0, 5);
});
ok(overflow.length === 0, 'nothing sticks out of the 26rem column in large text', overflow);
const small = await page.evaluate(() => [...document.querySelectorAll('#record button, #record input, #record select')]
    .filter((e) => e.offsetParent && e.getBoundingClientRect().height < 44).map((e) => e.outerHTML.slice(0, 80)));
ok(small.length === 0, 'every control is at least 44 px high', small);

// a language switch redraws the panel and keeps what is being typed
await page.evaluate(() => document.documentElement.classList.remove('text-large', 'contrast-high'));
await page.fill('#record textarea[name="history"]', 'since the flu');
await page.click('#lang-switch');
await page.waitForFunction(() => document.querySelector('#record label[for$="note-complaint"]').textContent === '主诉');
ok((await page.inputValue('#record textarea[name="history"]')) === 'since the flu', 'a language switch keeps the typing');
await page.click('#lang-switch');
await page.waitForFunction(() => document.querySelector('#record label[for$="note-complaint"]').textContent === 'Chief complaint');
await page.waitForFunction(() => /^Saved/.test(document.querySelector('#record .record-saved').textContent));
ok((await http('GET', `/appointments/${later.id}/record`, { token: dtoken })).json.note.history === 'since the flu',
   'and saves it');

ok(appErrors(page, EXPECTED).length === 0, 'no console errors', appErrors(page, EXPECTED));
ok(missingKeys(page).length === 0, 'no i18n key missing');

// ---- in Chinese: the final record, and an open one
const zhp = await panelPage('zh-CN', 'zh');
await mount(zhp, a.id);
const zlabels = await zhp.$$eval('#record label', (ls) => ls.map((l) => l.textContent));
ok(['主诉', '现病史', '检查所见', '诊断', '医嘱'].every((l) => zlabels.includes(l)), 'the note in Chinese medical terms', zlabels);
await zhp.waitForFunction(() => document.querySelector('#record ul[id$="fu-list"]').textContent.includes('复诊'));
ok(true, 'the follow-up kind in Chinese');
await zhp.waitForFunction(() => document.querySelector('#record ul[id$="rx-list"]').textContent.includes('阿莫西林, 500 mg'));
ok(true, "the drug by its Chinese name, as the record gives it");
ok(await zhp.$$eval('#record textarea', (ts) => ts.filter((x) => x.name !== 'text').every((x) => x.readOnly)) && (await zhp.$('#record input[role="combobox"]')) === null,
   'a final record opened later is read-only');
ok((await zhp.textContent('#record .record-addenda')).includes('culture negative') && (await zhp.$('#record textarea[name="text"]')) !== null,
   'with its addenda and the addendum form');
await step(zhp, 'zh-final');
await mount(zhp, later.id);
await zhp.focus('#record input[role="combobox"]');
await zhp.keyboard.type('莫西');
await zhp.waitForSelector('#record [role="option"]');
await step(zhp, 'zh-open-search');
await zhp.evaluate(() => { document.getElementById('record').style.width = ''; });
await step(zhp, 'zh-open-wide');
ok(appErrors(zhp, EXPECTED).length === 0 && missingKeys(zhp).length === 0,
   'no console error nor missing string (Chinese)', zhp.consoleErrors);
// ---- alone on a narrow phone screen
const nar = await panelPage('en-US', 'narrow');
await nar.setViewportSize({ width: 320, height: 640 });
await nar.evaluate(() => { document.getElementById('record').style.width = ''; });
await mount(nar, later.id);
await nar.fill('#record input[role="combobox"]', 'para');
await nar.waitForSelector('#record [role="option"]');
const w = await nar.evaluate(() => document.documentElement.scrollWidth);
ok(w <= 320, `no horizontal scroll at 320 px: ${w}`);
await step(nar, 'narrow-open');
ok(appErrors(nar, EXPECTED).length === 0, 'no console error (narrow)', nar.consoleErrors);
note('shots in build/screenshots/app-record');

await page.evaluate(() => { window.panel.destroy(); window.signal.close(); });
await browser.close();
done();
