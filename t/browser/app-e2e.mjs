// The whole visit in a real browser, relay only: a patient on a phone
// books the on-call doctor through the pages within check-in, goes through
// the device check into the waiting room; the doctor signs in on the
// console at desktop size, sees the patient connected, calls the next
// patient; the patient answers; media flows through the TURN relay both
// ways; the doctor keeps a picture with the patient's consent, writes the
// note and a prescription, hangs up and closes the record; the patient
// reads the summary and rates the visit, and the rating is in /metrics.
import { launch, person, ok, note, done, PHONE, DESKTOP, BASE,
         http, appErrors, missingKeys } from '../lib/browser.mjs';
import { step, bookThroughPages, enterWaitingRoom, signInDoctor,
         queueLine, stats, firstFrame, mediaFlows } from './app-e2e-lib.mjs';

const browser = await launch();
const pat = await person(browser, { viewport: PHONE, relay: true, name: 'patient' });
const doc = await person(browser, { viewport: DESKTOP, relay: true, name: 'doctor' });

async function ratingBuckets() {
    const m = await (await fetch(BASE + '/metrics')).text();
    const b = {};
    for (const l of m.split('\n')) {
        const x = l.match(/^teleclinic_rating_bucket\{[^}]*le="([^"]+)"[^}]*\} (\d+)/);
        if (x) b[x[1]] = (b[x[1]] || 0) + Number(x[2]);
    }
    return { b, text: m.split('\n').filter((l) => l.startsWith('teleclinic_rating')).join('\n') };
}

try {
    // ---- the patient books through the pages and enters the waiting room
    const a = await bookThroughPages(pat, { name: 'Erika Muster', phone: '+49 30 5550101', reason: 'cough for a week' });
    ok(/^[0-9a-f]+$/.test(a.id) && a.token, 'the booking gives an appointment and its link');
    note(`booked ${a.slot}, starting in ${Math.round((a.start - Date.now()) / 1000)} s`);
    await enterWaitingRoom(pat);
    ok(/You are (next|number 1)/.test(await pat.textContent('#q-position')), 'the patient is first in line',
       await pat.textContent('#q-position'));

    // ---- the doctor signs in (a wrong password first) and sees the patient connected
    await signInDoctor(doc, { wrongFirst: true });
    await doc.waitForSelector('#queue-list li');
    const line = queueLine(doc, 'Erika Muster');
    await line.waitFor();
    await doc.waitForFunction(() => /Connected/.test(document.getElementById('queue-list').textContent));
    const lt = await line.textContent();
    ok(/Connected, ready/.test(lt) && lt.includes('✓'), 'the queue says in words (and a symbol) that the patient is connected', lt);
    ok(/Patients waiting: 1/.test(await doc.textContent('#queue-summary')), 'the queue counts one waiting',
       await doc.textContent('#queue-summary'));
    await doc.waitForSelector('#today-list li');
    const today = await doc.textContent('#today-list');
    ok(today.includes('Erika Muster') && /Checked in/.test(today), "today's list has the patient, checked in", today);
    ok(await doc.isEnabled('#call-next'), 'call next is enabled');
    await doc.waitForFunction(() => /Patients waiting: 1/.test((document.getElementById('announce') || {}).textContent || ''));
    ok(true, 'the queue change is announced (aria-live)');
    const box = await doc.locator('#call-next').boundingBox();
    ok(box && box.height >= 44, `the call-next button is at least 44 px high (${box && box.height})`);
    await step(doc, 'console-queue');

    // ---- call next; the patient answers with the big button
    await doc.click('#call-next');
    await pat.waitForSelector('[data-view="ring"]:not([hidden]) #answer', { timeout: 10000 });
    await doc.waitForFunction(() => /Calling/.test(document.getElementById('ring-state').textContent));
    ok(true, 'the console says it is calling');
    await step(doc, 'console-ringing');
    await step(pat, 'wait-ring');
    const t0 = Date.now();
    await pat.click('#answer');
    await pat.waitForSelector('[data-view="call"]:not([hidden]) video');
    await doc.waitForSelector('#call-area:not([hidden]) video');
    const [pf, df] = await Promise.all([firstFrame(pat, t0), firstFrame(doc, t0)]);
    note(`answer to the first decoded remote frame: patient ${pf} ms, doctor ${df} ms`);
    ok(pf >= 0 && df >= 0, 'both sides decode remote video after the answer', [pf, df]);
    await mediaFlows(pat, 'patient');
    await mediaFlows(doc, 'doctor');
    ok(await doc.isVisible('#record'), 'the record panel is open beside the call');
    ok(await doc.isVisible('#record button:text("Ask to keep a picture")'), 'the live record offers the snapshot');
    const [cb, rb] = [await doc.locator('#call-area').boundingBox(), await doc.locator('#record').boundingBox()];
    note(`desktop: call ${JSON.stringify(cb)} record ${JSON.stringify(rb)}`);
    ok(cb && rb && rb.y < cb.y + cb.height, 'the call and the record are both in view at desktop size');
    await step(doc, 'console-in-call');
    await step(pat, 'wait-in-call');
    // the same call on a tablet and a phone: stacked, nothing sideways
    for (const vp of [{ width: 768, height: 1024 }, PHONE]) {
        await doc.setViewportSize(vp);
        await step(doc, `console-in-call-${vp.width}`);
        const [c2, r2] = [await doc.locator('#call-area').boundingBox(), await doc.locator('#record').boundingBox()];
        ok(c2 && r2 && r2.y >= c2.y + c2.height - 1, `at ${vp.width} px the record is below the call`, [c2, r2]);
        const q2 = await doc.locator('#queue-card').boundingBox();
        ok(q2 && c2 && c2.y < q2.y, `at ${vp.width} px the call comes before the queue`, [c2, q2]);
    }
    await doc.setViewportSize(DESKTOP);

    // ---- the doctor shares the screen and stops; the patient (a phone)
    // switches the camera: each time the track sent changes, the call goes on
    const sent = (page) => page.evaluate(() => {
        const s = window.teleclinicCall.pc.getSenders().find((x) => x.track && x.track.kind === 'video');
        return s ? { id: s.track.id, label: s.track.label } : null;
    });
    ok(await doc.isVisible('#call-share'), 'the doctor can share the screen');
    const camera = await sent(doc);
    await doc.click('#call-share');
    await doc.waitForFunction(() => document.getElementById('call-share').getAttribute('aria-pressed') === 'true');
    const screen = await sent(doc);
    ok(screen && camera && screen.id !== camera.id && /screen/.test(screen.label),
       "sharing: the doctor's video sent is the screen", [camera, screen]);
    await mediaFlows(pat, 'patient while the doctor shares the screen');
    await doc.click('#call-share');
    await doc.waitForFunction(() => document.getElementById('call-share').getAttribute('aria-pressed') === 'false');
    const again = await sent(doc);
    ok(again && !/screen/.test(again.label), "stopped: the doctor's camera is sent again", again);
    ok(await pat.isVisible('#call-switch'), 'the patient on a phone can switch the camera');
    const front = await sent(pat);
    await pat.click('#call-switch');
    await pat.waitForFunction((id) => {
        const s = window.teleclinicCall.pc.getSenders().find((x) => x.track && x.track.kind === 'video');
        return s && s.track.id !== id;
    }, front && front.id, { timeout: 10000 });
    ok(true, "switching: the patient's camera track sent is a new one");
    await mediaFlows(doc, 'doctor after the patient switched the camera');

    // ---- a picture with the patient's consent
    await doc.click('#record button:text("Ask to keep a picture")');
    await pat.waitForFunction(() => document.getElementById('consent').open, null, { timeout: 10000 });
    await step(pat, 'consent-dialog');
    await pat.click('#consent-yes');
    await doc.waitForFunction(() => {
        const img = document.querySelector('#record img.record-thumb');
        return img && img.complete && img.naturalWidth > 0;
    }, null, { timeout: 15000 });
    ok(true, 'the thumbnail of the kept picture appears in the record');
    await step(doc, 'console-snapshot');

    // ---- the note and a prescription
    await doc.fill('#record textarea[name="diagnosis"]', 'acute bronchitis');
    await doc.fill('#record textarea[name="advice"]', 'rest and drink plenty');
    const combo = '#record input[role="combobox"]';
    await doc.focus(combo);
    await doc.keyboard.type('amox');
    await doc.waitForSelector('#record [role="option"]');
    await doc.keyboard.press('ArrowDown');
    await doc.keyboard.press('Enter');
    await doc.waitForSelector('#record form.record-form.card:not([hidden])');
    await doc.fill('#record input[name="dose"]', '500 mg');
    await doc.fill('#record input[name="frequency"]', '3 x a day');
    await doc.fill('#record input[name="days"]', '7');
    await doc.fill('#record input[name="quantity"]', '21');
    await doc.click('#record button:text("Add the prescription")');
    await doc.waitForFunction(() => document.querySelector('#record ul[id$="rx-list"]').textContent.includes('Amoxicillin'));
    await doc.waitForFunction(() => /^Saved/.test(document.querySelector('#record .record-saved').textContent),
                              null, { timeout: 10000 });
    ok(true, 'the note is saved and the prescription listed');
    await step(doc, 'console-record-written');

    // ---- hang up; the record stays for the closing
    await doc.click('#call-hangup');
    await doc.waitForSelector('#call-area', { state: 'hidden' });
    ok(await doc.isVisible('#record'), 'after the hangup the record stays open');
    ok(/has ended/.test(await doc.textContent('#ring-state')), 'the console says the call ended');
    await pat.waitForSelector('[data-view="over"]:not([hidden])', { timeout: 10000 });
    await step(pat, 'wait-over');
    await doc.click('#record button:text("Close and sign the record")');
    await doc.click('#record dialog button:text("Yes, close and sign")');
    await doc.waitForSelector('#record .record-final');
    ok(true, 'the record is closed and signed');
    await step(doc, 'console-record-closed');
    await doc.waitForFunction(() => /Seen/.test(document.getElementById('today-list').textContent), null, { timeout: 10000 });
    ok(await doc.isVisible('#today-list button:text("Open the record")'), "today's list offers the seen visit's record");
    await doc.click('#record-hide');
    await doc.click('#today-list button:text("Open the record")');
    await doc.waitForSelector('#record .record-final');
    ok(await doc.isHidden('#record button:text("Ask to keep a picture")'), 'a record opened from the list has no snapshot button');
    await step(doc, 'console-record-from-list');

    // ---- the summary and the rating on the patient's visit page
    await pat.click('#over-link');
    await pat.waitForURL(/visit\.html/);
    await pat.waitForSelector('#s-body dl', { timeout: 20000 });
    const sum = await pat.textContent('#summary');
    ok(sum.includes('acute bronchitis') && sum.includes('rest and drink plenty') && sum.includes('500 mg'),
       'the visit page shows the summary', sum.slice(0, 400));
    await step(pat, 'visit-summary');
    const before = await ratingBuckets();
    await pat.locator('.star').nth(4).click();
    await pat.click('#rate-form button[type="submit"]');
    await pat.waitForSelector('#rate-thanks:not([hidden])');
    await step(pat, 'visit-rated');
    const after = await ratingBuckets();
    const d5 = (after.b['5'] || 0) - (before.b['5'] || 0);
    const d4 = (after.b['4'] || 0) - (before.b['4'] || 0);
    ok(d5 === 1 && d4 === 0, 'GET /metrics: the rating 5 is in teleclinic_rating_bucket (le="5" up by one, le="4" not)',
       after.text);
    const rec = await http('GET', `/appointments/${a.id}/record`, { token: a.token });
    ok(rec.json && rec.json.rating && rec.json.rating.score === 5 && rec.json.snapshots.length === 1
       && rec.json.prescriptions.length === 1, 'the record has the rating, the picture and the prescription',
       rec.json && { rating: rec.json.rating, snaps: rec.json.snapshots });

    // ---- sign out
    await doc.click('#signout');
    await doc.waitForSelector('[data-view="signin"]:not([hidden])');
    ok(await doc.evaluate(() => sessionStorage.getItem('teleclinic.doctor') === null), 'sign out clears the session');
} catch (e) {
    ok(false, 'the flow ran to the end', String(e && e.stack || e));
    for (const p of [pat, doc]) {
        await step(p, 'failure').catch(() => {});
    }
}

for (const p of [pat, doc]) {
    ok(appErrors(p).length === 0, `no console errors (${p.teleclinicName})`, appErrors(p));
    ok(missingKeys(p).length === 0, `no i18n key missing (${p.teleclinicName})`, missingKeys(p));
}
await browser.close();
done();
