// The browser side of the app's end-to-end tests: Debian's Chromium driven
// by playwright-core (never a downloaded browser), with the flags that keep
// its traffic on loopback and give it fake camera and microphone, axe-core
// injected into pages for the accessibility rules, and a screenshot of each
// step saved under one folder.  A test script prints TAP lines ("ok N - ...")
// that the Perl wrapper (Teleclinic::Browser) passes on to prove.

import { chromium } from 'playwright-core';
import { readFileSync, mkdirSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const AXE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

export const BASE = process.env.TELECLINIC_BASE || 'http://127.0.0.1:8080';
export const SHOTS = process.env.TELECLINIC_SHOTS
    || join(dirname(fileURLToPath(import.meta.url)), '../../build/screenshots');

export const PHONE = { width: 360, height: 740 };
export const NARROW = { width: 320, height: 640 };
export const DESKTOP = { width: 1280, height: 800 };

// playwright-core's own --disable-features list, repeated: Chromium keeps
// only the last such flag, and mDNS hiding of local addresses must go too
// (its responder would multicast on the machine's interface).
const FEATURES = [
    'AcceptCHFrame', 'AutoExpandDetailsElement', 'AvoidUnnecessaryBeforeUnloadCheckSync',
    'CertificateTransparencyComponentUpdater', 'DestroyProfileOnBrowserClose',
    'DialMediaRouteProvider', 'ExtensionManifestV2Disabled', 'GlobalMediaControls',
    'HttpsUpgrades', 'ImprovedCookieControls', 'LazyFrameLoading', 'LensOverlay',
    'MediaRouter', 'PaintHolding', 'ThirdPartyStoragePartitioning', 'Translate',
    'AutofillServerCommunication', 'OptimizationHints', 'InterestFeedContentSuggestions',
    'WebRtcHideLocalIpsWithMdns'
];

let count = 0;
let failed = 0;

export function ok(cond, name, detail) {
    count++;
    if (!cond) {
        failed++;
    }
    console.log(`${cond ? 'ok' : 'not ok'} ${count} - ${name}`);
    if (!cond && detail !== undefined) {
        for (const line of String(typeof detail === 'string' ? detail
                                   : JSON.stringify(detail, null, 1)).split('\n')) {
            console.log('# ' + line);
        }
    }
    return cond;
}

export function note(text) {
    console.log('# ' + text);
}

export function done() {
    console.log(`1..${count}`);
    process.exitCode = failed ? 1 : 0;
}

export async function launch() {
    // playwright-core gives the browser a fresh profile of its own in a
    // temporary directory and removes it at close
    return chromium.launch({
        executablePath: process.env.TELECLINIC_CHROMIUM || '/usr/bin/chromium',
        headless: true,
        args: [
            '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
            '--disable-background-networking', '--disable-component-update',
            '--disable-sync',
            '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
            '--autoplay-policy=no-user-gesture-required',
            '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
            '--disable-features=' + FEATURES.join(',')
        ],
        ignoreDefaultArgs: ['--disable-features']
    });
}

// A page for one person: its own context (storage, cookies), a viewport,
// a language, camera and microphone allowed for this origin.  With relay,
// every RTCPeerConnection it makes uses relay candidates only, so a call
// can only have gone through the TURN relay (the app itself never forces
// that; the test does, from outside).  base: the node it opens pages of.
export async function person(browser, { viewport = DESKTOP, locale = 'en-US',
                                        relay = false, name = 'page',
                                        base = BASE } = {}) {
    const context = await browser.newContext({
        viewport, locale, baseURL: base,
        permissions: ['camera', 'microphone'],
        isMobile: viewport.width < 500, hasTouch: viewport.width < 500,
        deviceScaleFactor: 1
    });
    if (relay) {
        await context.addInitScript(() => {
            const Native = window.RTCPeerConnection;
            window.RTCPeerConnection = function (config = {}) {
                return new Native({ ...config, iceTransportPolicy: 'relay' });
            };
            window.RTCPeerConnection.prototype = Native.prototype;
            Object.setPrototypeOf(window.RTCPeerConnection, Native);
        });
    }
    const page = await context.newPage();
    page.teleclinicName = name;
    page.consoleErrors = [];
    page.on('console', (m) => {
        if (m.type() === 'error') {
            page.consoleErrors.push(m.text());
        }
    });
    page.on('pageerror', (e) => page.consoleErrors.push(String(e)));
    return page;
}

// axe-core's WCAG 2.0/2.1 A and AA rules on the page as it is now; returns
// the violations of impact serious or critical.
export async function axe(page) {
    if (!(await page.evaluate(() => typeof window.axe === 'object'))) {
        await page.addScriptTag({ content: AXE });
    }
    const result = await page.evaluate(() => window.axe.run(document, {
        runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] }
    }));
    return result.violations
        .filter((v) => v.impact === 'serious' || v.impact === 'critical')
        .map((v) => ({ id: v.id, impact: v.impact,
                       nodes: v.nodes.slice(0, 3).map((n) => n.target.join(' ')) }));
}

// ok() that axe finds nothing serious in this state of the page
export async function accessible(page, state) {
    const v = await axe(page);
    return ok(v.length === 0, `axe: no serious or critical violation (${state})`, v);
}

let shot = 0;

// a screenshot of this step, NN-WHO-STEP.png under the run's folder
export async function screenshot(page, step, { fullPage = true } = {}) {
    mkdirSync(SHOTS, { recursive: true });
    shot++;
    const file = join(SHOTS, `${String(shot).padStart(2, '0')}-${page.teleclinicName}-${step}.png`);
    await page.screenshot({ path: file, fullPage });
    return file;
}

// The API called from the test itself (Node's fetch, not a page): the
// status and the JSON answer, null when there is none.
export async function http(method, path, { token, body } = {}) {
    const headers = {};
    if (token) headers.Authorization = 'Bearer ' + token;
    if (body) headers['Content-Type'] = 'application/json';
    const r = await fetch(BASE + '/api/v1' + path, { method, headers, body: body && JSON.stringify(body) });
    let json = null;
    try { json = await r.json(); } catch (e) { /* none */ }
    return { status: r.status, json };
}

// a day as the slots API takes it (YYYY-MM-DD in local time)
export function ymd(d) {
    const p = (n) => String(n).padStart(2, '0');
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
}

// the first free slot of a doctor starting more than from and less than
// to ms from now, looked for today and on the days after (days in all)
export async function freeSlot(doctor, { from, to = Infinity, days = 3 }) {
    for (let i = 0; i < days; i++) {
        const d = new Date(Date.now() + i * 86400000);
        const list = (await http('GET', `/doctors/${doctor}/slots?date=${ymd(d)}`)).json;
        const s = list.find((x) => x.status === 'free' && new Date(x.start) - Date.now() > from
                                   && new Date(x.start) - Date.now() < to);
        if (s) return s;
    }
    throw new Error(`no free slot of ${doctor} between ${from} and ${to} ms from now`);
}

// a booking through the API; returns the appointment (id, token, ...)
export async function book(slot, name = 'Jane Roe') {
    const r = await http('POST', '/appointments', { body: { slot: slot.id, patient: { name, phone: '+49301234567' },
                                                            reason: 'cough' } });
    if (r.status !== 201) throw new Error('booking: ' + JSON.stringify(r));
    return r.json;
}

// the page's console errors less the browser's own line for an answer
// the test provoked (expected: the statuses, e.g. a cancelled visit's
// 404 or 409, the SSO try's 422, a refused token's 401)
export function appErrors(page, expected = [401, 404, 409, 422]) {
    const re = new RegExp(`Failed to load resource: .* (${expected.join('|')})`);
    return page.consoleErrors.filter((e) => !re.test(e));
}

// the i18n keys the page asked for and neither table has
export function missingKeys(page) {
    return page.consoleErrors.filter((e) => e.includes('i18n: no string'));
}
