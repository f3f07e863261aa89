// The waiting room and the call, end to end through the TURN relay: a
// patient (phone) books a slot of the on-call doctor within check-in,
// passes the device check, waits in line, is rung (a spoken announcement
// in the page's language, one large Answer button), declines once, then
// answers; media flows both ways over relay candidates only; mute and
// camera; the snapshot consent dialog (no, then yes); a reload mid-call
// brings the call back by itself (in Chinese with large text); the
// doctor's hangup ends the visit.
import { launch, person, ok, note, done, accessible, screenshot,
         PHONE, NARROW, DESKTOP, http, freeSlot } from '../lib/browser.mjs';

const TURN_PORT = process.env.TELECLINIC_TURN_PORT;
const browser = await launch();

async function step(page, state) {
    await page.waitForTimeout(200);
    await accessible(page, state);
    await screenshot(page, state);
}

// the selected candidate pair of the page's current call, and its video
async function media(page, expr = 'window.teleclinicCall') {
    return page.evaluate(async (expr) => {
        const call = eval(expr);
        if (!call || !call.pc) return null;
        const r = await call.pc.getStats();
        let pairId = null;
        let frames = 0;
        r.forEach((s) => {
            if (s.type === 'transport' && s.selectedCandidatePairId) pairId = s.selectedCandidatePairId;
            if (s.type === 'inbound-rtp' && s.kind === 'video') frames += s.framesDecoded || 0;
        });
        const pair = pairId && r.get(pairId);
        const local = pair && r.get(pair.localCandidateId);
        const remote = pair && r.get(pair.remoteCandidateId);
        return { frames, local: local && { type: local.candidateType, url: local.url, port: local.port },
                 remote: remote && { type: remote.candidateType } };
    }, expr);
}

async function framesGrow(page, what, expr) {
    const a = await media(page, expr);
    await page.waitForTimeout(2000);
    const b = await media(page, expr);
    ok(a && b && b.frames > a.frames, `${what}: decoded video frames grow over 2 s`, { a, b });
    return b;
}

function relayChecks(m, who) {
    ok(m && m.local && m.local.type === 'relay', `${who}: the selected pair's local candidate is a relay`, m);
    ok(m && m.remote && m.remote.type === 'relay', `${who}: the remote candidate is a relay too`, m);
    if (m && m.local && m.local.url) {
        ok(new RegExp(':' + TURN_PORT + '(\\?|$)').test(m.local.url),
           `${who}: the relay is the module's TURN port ${TURN_PORT}`, m.local.url);
    } else {
        note(`${who}: getStats gives no url for the local candidate`);
    }
}

// ---- the booking (the patient's join link)
const slot = await freeSlot('jonas-weber', { from: 60000, to: 14 * 60000, days: 2 });
const booked = await http('POST', '/appointments', {
    body: { slot: slot.id, patient: { name: 'Erika Muster', phone: '+49301234567' }, reason: 'rash' } });
ok(booked.status === 201, 'a slot within check-in is booked', booked);
const appt = booked.json;
const waitUrl = `/wait.html?appointment=${appt.id}#token=${encodeURIComponent(appt.token)}`;

// ---- the patient: the device check
const patient = await person(browser, { viewport: PHONE, relay: true, name: 'patient' });
await patient.context().addInitScript(() => {
    window.__spoken = [];
    if (window.speechSynthesis) {
        const speak = window.speechSynthesis.speak.bind(window.speechSynthesis);
        window.speechSynthesis.speak = (u) => {
            window.__spoken.push({ text: u.text, lang: u.lang });
            try { speak(u); } catch (e) { /* no voice */ }
        };
    }
});
await patient.goto(waitUrl);
await patient.waitForSelector('[data-view="check"]:not([hidden])');
await patient.waitForFunction(() => {
    const v = document.getElementById('preview');
    return v && v.readyState >= 2 && v.videoWidth > 0 && !v.paused;
}, null, { timeout: 10000 });
ok(true, 'the camera preview plays');
const levels = [];
for (let i = 0; i < 15; i++) {
    levels.push(await patient.evaluate(() => document.getElementById('mic-meter').value));
    await patient.waitForTimeout(200);
}
ok(Math.max(...levels) > 0 && new Set(levels).size > 1, 'the microphone meter moves', levels);
await patient.waitForFunction(() => /Connected/.test(document.getElementById('conn-status').textContent));
ok(true, 'the check shows the connection to the clinic');
ok(await patient.isVisible('#test-sound'), 'a speaker test button');
await patient.click('#test-sound');
await step(patient, 'device-check');

await patient.click('#ready');
await patient.waitForSelector('[data-view="queue"]:not([hidden])');
await patient.waitForFunction(() => /next/.test(document.getElementById('q-position').textContent));
ok(true, 'the patient sees position 1 (next)');
await step(patient, 'queue');

// ---- the doctor: a stand-in for the doctor's console (doctor.html is
// another helper's), made of the same modules: signal.js and call.js
const doctor = await person(browser, { viewport: DESKTOP, relay: true, name: 'doctor' });
await doctor.goto('/guide.html');
const welcomed = await doctor.evaluate(async () => {
    const r = await fetch('/api/v1/doctor/login', { method: 'POST', headers: { 'Content-Type': 'application/json' },
                                                    body: JSON.stringify({ doctor: 'jonas-weber', password: 'demo-password' }) });
    const { token } = await r.json();
    const { Signal } = await import('/js/signal.js');
    const { Call } = await import('/js/call.js');
    const s = new Signal(token);
    window.doc = { s, events: [], call: null };
    for (const type of ['welcome', 'queue', 'call_state', 'snapshot_consent', 'error', 'ended']) {
        s.addEventListener(type, (e) => window.doc.events.push(e.detail));
    }
    s.addEventListener('call', async (e) => {
        const m = e.detail;
        window.doc.events.push(m);
        if (window.doc.call && window.doc.call.id === m.call && window.doc.call.state !== 'ended') {
            window.doc.call.start(m);
            return;
        }
        const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
        window.doc.call = new Call(s, { role: 'doctor', localStream: stream });
        window.doc.call.start(m);
        const { mountCallView } = await import('/js/callview.js');
        mountCallView(document.querySelector('main'), window.doc.call, { role: 'doctor' });
    });
    s.connect();
    await new Promise((res) => s.addEventListener('welcome', res, { once: true }));
    return true;
});
ok(welcomed, 'the doctor (stand-in page) is welcomed');
const docEvent = (pred, timeout = 15000) => doctor.waitForFunction(
    (src) => window.doc.events.find(eval(src)), pred, { timeout });

// ---- a ring, declined
await doctor.evaluate(() => window.doc.s.send({ type: 'call_next' }));
await patient.waitForSelector('[data-view="ring"]:not([hidden])', { timeout: 10000 });
ok(await patient.isVisible('#answer.big'), 'the ring shows one large Answer button');
ok(await patient.isVisible('#decline'), 'and a smaller "Not now"');
const spoken = await patient.evaluate(() => ({ s: window.__spoken, lang: document.documentElement.lang }));
ok(spoken.s.length > 0 && spoken.s[0].lang === spoken.lang, "the ring is spoken in the page's language", spoken);
await step(patient, 'ring');
await patient.click('#decline');
await docEvent("(m) => m.type === 'call_state' && m.state === 'declined'");
ok(true, 'Not now: the doctor is told declined');
await patient.waitForSelector('[data-view="queue"]:not([hidden]) #q-note:not([hidden])');
await step(patient, 'declined');

// ---- rung again, answered
await doctor.evaluate(() => window.doc.s.send({ type: 'call_next' }));
await patient.waitForSelector('[data-view="ring"]:not([hidden])', { timeout: 10000 });
await patient.click('#answer');
const firstFrame = await patient.evaluate(async () => {
    for (;;) {
        const c = window.teleclinicCall;
        if (c && c.pc) {
            const r = await c.pc.getStats();
            let f = 0;
            r.forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'video') f += s.framesDecoded || 0; });
            if (f > 0) return performance.now() - window.teleclinicAnsweredAt;
        }
        await new Promise((res) => setTimeout(res, 50));
        if (performance.now() - window.teleclinicAnsweredAt > 20000) return -1;
    }
});
ok(firstFrame > 0, 'the patient decodes the doctor\'s video after answering');
note(`from Answer to the first decoded remote frame: ${Math.round(firstFrame)} ms`);
await patient.waitForSelector('[data-view="call"]:not([hidden]) .call-view[data-state="connected"]');
ok(true, 'the call view says connected');

relayChecks(await framesGrow(patient, 'patient', 'window.teleclinicCall'), 'patient');
relayChecks(await framesGrow(doctor, 'doctor', 'window.doc.call'), 'doctor');
await patient.waitForFunction(() => /good|fair/.test(document.getElementById('call-quality').dataset.level || ''));
ok(true, 'the quality indicator shows a level');
await step(patient, 'call');
await screenshot(doctor, 'doctor-standin-call');
await patient.setViewportSize(NARROW);
await patient.waitForTimeout(200);
ok(await patient.evaluate(() => document.documentElement.scrollWidth <= document.documentElement.clientWidth),
   'the call view fits 320 px without sideways scrolling');
await step(patient, 'call-320');
await patient.setViewportSize(PHONE);

// mute and camera
for (const [btn, kind] of [['#call-mute', 'audio'], ['#call-camera', 'video']]) {
    await patient.click(btn);
    const on = await patient.evaluate(([b, k]) => ({
        pressed: document.querySelector(b).getAttribute('aria-pressed'),
        enabled: window.teleclinicCall.localStream.getTracks().filter((t) => t.kind === k).map((t) => t.enabled)
    }), [btn, kind]);
    ok(on.pressed === 'true' && on.enabled.length && on.enabled.every((e) => !e), `${btn} pressed: the ${kind} track is off`, on);
    if (kind === 'audio') await step(patient, 'muted');
    await patient.click(btn);
    const off = await patient.evaluate(([b, k]) => ({
        pressed: document.querySelector(b).getAttribute('aria-pressed'),
        enabled: window.teleclinicCall.localStream.getTracks().filter((t) => t.kind === k).map((t) => t.enabled)
    }), [btn, kind]);
    ok(off.pressed === 'false' && off.enabled.every((e) => e), `${btn} again: the ${kind} track is on`, off);
}

// ---- snapshot consent: no, then yes
for (const granted of [false, true]) {
    const n = await doctor.evaluate(() => window.doc.events.length);
    await doctor.evaluate(() => window.doc.s.send({ type: 'snapshot_request', call: window.doc.call.id }));
    await patient.waitForSelector('dialog#consent[open]');
    const focused = await patient.evaluate(() => document.getElementById('consent').contains(document.activeElement));
    ok(focused, 'the consent dialog has the focus');
    if (!granted) await step(patient, 'consent');
    await patient.click(granted ? '#consent-yes' : '#consent-no');
    await doctor.waitForFunction((n) => window.doc.events.slice(n).find((m) => m.type === 'snapshot_consent'), n);
    const answer = await doctor.evaluate((n) => window.doc.events.slice(n).find((m) => m.type === 'snapshot_consent'), n);
    ok(answer.granted === granted, `the doctor gets granted ${granted}`, answer);
    ok(await patient.isHidden('dialog#consent'), 'the dialog closes');
}
const blob = await doctor.evaluate(async () => {
    const b = await window.doc.call.snapshot();
    return { type: b.type, size: b.size };
});
ok(blob.type === 'image/jpeg' && blob.size > 1000, "the doctor's snapshot() is a JPEG of the patient's video", blob);

// ---- a reload mid-call (in Chinese, large text): the call comes back by itself
await patient.evaluate(() => {
    localStorage.setItem('teleclinic.lang', 'zh');
    localStorage.setItem('teleclinic.text', 'large');
});
const reloadAt = Date.now();
await patient.reload();
let back = false;
while (!back && Date.now() - reloadAt < 30000) {
    back = await patient.evaluate(async () => {
        const c = window.teleclinicCall;
        if (!c || !c.pc) return false;
        const r = await c.pc.getStats();
        let f = 0;
        r.forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'video') f += s.framesDecoded || 0; });
        return f > 0;
    }).catch(() => false);
    if (!back) await patient.waitForTimeout(100);
}
ok(back, 'after the reload the remote video comes back');
note(`from the reload to the remote video again: ${Date.now() - reloadAt} ms`);
ok(await patient.isVisible('[data-view="call"] .call-view'), 'after the reload the call view is back without a click');
relayChecks(await framesGrow(patient, 'patient after reload', 'window.teleclinicCall'), 'patient after reload');
await framesGrow(doctor, 'doctor after reload', 'window.doc.call');
ok((await patient.textContent('#call-hangup')) === '挂断', 'the call view is in Chinese');
await step(patient, 'call-zh-large');

// ---- the doctor hangs up: the visit is over
await doctor.evaluate(() => window.doc.call.hangup());
await patient.waitForSelector('[data-view="over"]:not([hidden])');
ok((await patient.getAttribute('#over-link', 'href'))
   === `/visit.html?appointment=${encodeURIComponent(appt.id)}#token=${encodeURIComponent(appt.token)}`,
   'the visit-over view links back to the appointment with the token in the fragment');
await step(patient, 'over-zh');
const a2 = await http('GET', `/appointments/${appt.id}`, { token: appt.token });
ok(a2.json && a2.json.status === 'fulfilled', 'the appointment is fulfilled', a2.json && a2.json.status);

// ---- closed: the visit is over, a bad link, and check-in not open yet
const again = await person(browser, { viewport: PHONE, name: 'again' });
await again.goto(waitUrl);
await again.waitForSelector('[data-view="closed"]:not([hidden])');
ok(/over or was cancelled/.test(await again.textContent('#closed-text')),
   'the waiting room of a visit that is over says so in plain words', await again.textContent('#closed-text'));
await step(again, 'closed-over');
await again.goto('about:blank');
await again.goto(`/wait.html?appointment=${appt.id}#token=x${encodeURIComponent(appt.token)}`);
await again.waitForSelector('[data-view="closed"]:not([hidden])');
ok(/does not work any more/.test(await again.textContent('#closed-text')), 'a bad link is refused in plain words');

const later = await freeSlot('jonas-weber', { from: 30 * 60000, days: 2 });
const lb = await http('POST', '/appointments', {
    body: { slot: later.id, patient: { name: 'Otto Later', phone: '+49301234568' }, reason: 'check-up' } });
await again.goto(`/wait.html?appointment=${lb.json.id}#token=${encodeURIComponent(lb.json.token)}`);
await again.waitForSelector('[data-view="check"]:not([hidden])');
await again.click('#ready');
await again.waitForSelector('[data-view="queue"]:not([hidden]) #q-early:not([hidden])');
ok(/opens at/.test(await again.textContent('#q-early')), 'before check-in: the time the waiting room opens',
   await again.textContent('#q-early'));
await step(again, 'too-early');

// ---- camera and microphone refused: the browser's "Block" (headless
// Chromium has no prompt to answer, so its refusal is made in the page:
// getUserMedia rejects as it does when a person blocks the request)
const refusing = await person(browser, { viewport: PHONE, name: 'refused' });
await refusing.context().addInitScript(() => {
    navigator.mediaDevices.getUserMedia = () =>
        Promise.reject(new DOMException('Permission denied', 'NotAllowedError'));
});
await refusing.goto(`/wait.html?appointment=${lb.json.id}#token=${encodeURIComponent(lb.json.token)}`);
await refusing.waitForSelector('#device-help:not([hidden])');
ok(/guide\.html$/.test(await refusing.getAttribute('#device-help a', 'href')),
   'refused devices: help in plain words with the way to the guide');
ok(/blocked|refused|not allowed|allow/i.test(await refusing.textContent('#device-help-text')),
   'refused devices: the help says what happened', await refusing.textContent('#device-help-text'));
ok(await refusing.isEnabled('#ready'), 'refused devices: the patient can still go on');
await step(refusing, 'devices-refused');
await refusing.click('#ready');
await refusing.waitForSelector('[data-view="queue"]:not([hidden]) #q-early:not([hidden])');
ok(true, 'refused devices: the waiting room goes on without them');

const errors = [...patient.consoleErrors, ...doctor.consoleErrors,
                ...again.consoleErrors.filter((e) => !/WebSocket|1008/.test(e))];
ok(errors.length === 0, 'no errors in the pages\' consoles', errors);

await browser.close();
done();
