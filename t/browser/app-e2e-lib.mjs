// What the end-to-end scripts (app-e2e.mjs, app-e2e-variants.mjs) share:
// a patient who books the on-call doctor through the pages and goes into
// the waiting room, the doctor who signs in on the console, the call's
// WebRTC figures from getStats, and the checks after each step.
import { ok, note, accessible, screenshot } from '../lib/browser.mjs';

export async function step(page, state, { width } = {}) {
    await page.waitForTimeout(200);
    await accessible(page, `${page.teleclinicName}: ${state}`);
    await screenshot(page, state);
    const w = await page.evaluate(() => document.documentElement.scrollWidth);
    const vw = width || page.viewportSize().width;
    ok(w <= vw, `no horizontal scroll (${page.teleclinicName}: ${state}): ${w} <= ${vw}`);
}

// the slot's start from its id (doctor.YYYYMMDD.HHMM, the server's local time)
function slotStart(id) {
    const m = id.match(/\.(\d{8})\.(\d{4})$/);
    if (!m) return null;
    const [, d, hm] = m;
    return new Date(+d.slice(0, 4), +d.slice(4, 6) - 1, +d.slice(6, 8), +hm.slice(0, 2), +hm.slice(2));
}

// books Dr. Jonas Weber at the first free time within check-in, through
// index.html; ends on the visit page; returns {id, token, link, start}
// (checkin: false takes any later free time of today, for an appointment
// that is not to be held)
export async function bookThroughPages(page, { name, phone, reason = '', shots = true, checkin = true }) {
    await page.goto('/');
    await page.waitForSelector('#departments button');
    if (shots) await step(page, 'book-department');
    await page.locator('#departments button', { hasText: /General Practice|全科/ }).first().click();
    await page.waitForSelector('[data-view="doctor"]:not([hidden]) .card');
    const card = page.locator('#doctors .card', { hasText: 'Jonas Weber' });
    await card.locator('button').first().click();
    await page.waitForSelector('[data-view="slot"]:not([hidden]) #days button[aria-pressed="true"]');
    await page.waitForSelector('#slots button');
    const ids = await page.$$eval('#slots button', (bs) => bs.map((b) => b.dataset.slot));
    const now = Date.now();
    const slot = ids.find((id) => {
        const s = slotStart(id);
        return s && s.getTime() > now + 30000 && (!checkin || s.getTime() <= now + 15 * 60000);
    });
    ok(!!slot, `a time of Dr. Weber ${checkin ? 'within the next 15 minutes' : 'later today'} is offered (${name})`,
       ids.slice(0, 6));
    await page.click(`#slots button[data-slot="${slot}"]`);
    if (shots) await step(page, 'book-time');
    await page.click('#slot-next');
    await page.waitForSelector('[data-view="details"]:not([hidden])');
    await page.fill('#name', name);
    await page.fill('#phone', phone);
    if (reason) await page.fill('#reason', reason);
    if (shots) await step(page, 'book-details');
    await page.click('#book-submit');
    await page.waitForSelector('[data-view="done"]:not([hidden])');
    if (shots) await step(page, 'book-done');
    const link = await page.inputValue('#join-link');
    const u = new URL(link);
    const id = u.searchParams.get('appointment');
    const token = new URLSearchParams(u.hash.slice(1)).get('token');
    await page.click('#open-visit');
    await page.waitForURL(/visit\.html/);
    await page.waitForSelector('[data-view="view"]:not([hidden])');
    return { id, token, link, slot, start: slotStart(slot) };
}

// from the visit page into the waiting room, through the device check
export async function enterWaitingRoom(page, { shots = true } = {}) {
    await page.waitForSelector('#enter:not([hidden])', { timeout: 20000 });
    if (shots) await step(page, 'visit-checkin-open');
    await page.click('#enter');
    await page.waitForURL(/wait\.html/);
    await page.waitForSelector('[data-view="check"]:not([hidden]) #ready', { timeout: 15000 });
    await page.waitForTimeout(1000);
    if (shots) await step(page, 'wait-device-check');
    await page.click('#ready');
    await page.waitForSelector('[data-view="queue"]:not([hidden])', { timeout: 15000 });
    await page.waitForFunction(() => document.getElementById('q-position').textContent.trim() !== '');
    if (shots) await step(page, 'wait-queue');
}

export async function signInDoctor(page, { wrongFirst = false, shots = true } = {}) {
    await page.goto('/doctor.html');
    await page.waitForSelector('[data-view="signin"]:not([hidden]) #signin-doctor option[value="jonas-weber"]',
                               { state: 'attached' });
    if (shots) await step(page, 'console-signin');
    await page.selectOption('#signin-doctor', 'jonas-weber');
    if (wrongFirst) {
        await page.fill('#signin-password', 'not-the-password');
        await page.click('#signin-submit');
        await page.waitForSelector('#signin-error:not([hidden])');
        ok(/wrong/.test(await page.textContent('#signin-error')), 'a wrong password is said in words',
           await page.textContent('#signin-error'));
        if (shots) await step(page, 'console-signin-wrong');
    }
    await page.fill('#signin-password', 'demo-password');
    await page.click('#signin-submit');
    await page.waitForSelector('[data-view="console"]:not([hidden])');
    ok(await page.evaluate(() => !!JSON.parse(sessionStorage.getItem('teleclinic.doctor')).token),
       'the session is kept in sessionStorage');
}

// the queue line of one patient on the console
export function queueLine(page, name) {
    return page.locator('#queue-list li', { hasText: name });
}

// the call's WebRTC figures: the selected pair's local candidate type and
// the video frames decoded so far
export async function stats(page) {
    return page.evaluate(async () => {
        const c = window.teleclinicCall;
        if (!c || !c.pc) return null;
        const st = await c.pc.getStats();
        const m = new Map();
        st.forEach((r) => m.set(r.id, r));
        let pair = null;
        st.forEach((r) => {
            if (r.type === 'transport' && r.selectedCandidatePairId) pair = m.get(r.selectedCandidatePairId);
        });
        if (!pair) {
            st.forEach((r) => {
                if (r.type === 'candidate-pair' && r.nominated && r.state === 'succeeded') pair = r;
            });
        }
        const local = pair ? m.get(pair.localCandidateId) : null;
        const remote = pair ? m.get(pair.remoteCandidateId) : null;
        let frames = 0;
        st.forEach((r) => {
            if (r.type === 'inbound-rtp' && r.kind === 'video') frames += r.framesDecoded || 0;
        });
        return { local: local ? local.candidateType : null, remote: remote ? remote.candidateType : null,
                 frames, state: c.pc.connectionState };
    });
}

// waits for the first decoded remote frame; returns ms since t0 (or -1)
export async function firstFrame(page, t0, timeout = 30000) {
    while (Date.now() - t0 < timeout) {
        const s = await stats(page);
        if (s && s.frames > 0) return Date.now() - t0;
        await page.waitForTimeout(50);
    }
    return -1;
}

// both sides: relay, and frames decoded growing
export async function mediaFlows(page, label) {
    const a = await stats(page);
    await page.waitForTimeout(1500);
    const b = await stats(page);
    ok(b && b.local === 'relay', `${label}: the selected pair's local candidate is a relay`, b);
    ok(a && b && b.frames > a.frames, `${label}: framesDecoded grows (${a && a.frames} -> ${b && b.frames})`, [a, b]);
    return b;
}

export function noteTime(what, ms) {
    note(`${what}: ${ms} ms`);
}
