// Two nodes on Redis, in a real browser: the patient's pages come from
// node 1, the doctor's console from node 2; they are in a call through
// the relay when node 1 is killed (kill -9, master and workers).  The
// patient's page, whose connection drops, connects by itself to the next
// node of the welcome's list, and the call comes back on both sides
// (rejoin: a new peer connection), video flowing again.
import { readFileSync, readdirSync } from 'node:fs';
import { launch, person, ok, note, done, PHONE, DESKTOP, appErrors,
         missingKeys } from '../lib/browser.mjs';
import { step, bookThroughPages, enterWaitingRoom, signInDoctor,
         firstFrame, mediaFlows } from './app-e2e-lib.mjs';

const BASE2 = process.env.TELECLINIC_BASE2;
const PID1 = Number(process.env.TELECLINIC_PID1);

// an nginx master and its workers, at once
function killNode(pid) {
    const kids = readdirSync('/proc').filter((d) => /^\d+$/.test(d)).filter((d) => {
        try {
            return readFileSync(`/proc/${d}/stat`, 'utf8').replace(/^\d+ \(.*\) \S /, '').split(' ')[0] === String(pid);
        } catch (e) {
            return false;
        }
    }).map(Number);
    for (const p of [pid, ...kids]) {
        try { process.kill(p, 'SIGKILL'); } catch (e) { /* gone */ }
    }
    return kids.length;
}

const browser = await launch();
const pat = await person(browser, { viewport: PHONE, relay: true, name: 'patient' });
const doc = await person(browser, { viewport: DESKTOP, relay: true, name: 'doctor', base: BASE2 });

try {
    await bookThroughPages(pat, { name: 'Nora Zweiknoten', phone: '+49 30 5550301', shots: false });
    await enterWaitingRoom(pat, { shots: false });

    await signInDoctor(doc, { shots: false });
    await doc.waitForFunction(() => /Nora Zweiknoten/.test(document.getElementById('queue-list').textContent),
                              null, { timeout: 15000 });
    ok(true, "the console on node 2 lists the patient waiting on node 1's page");

    await doc.click('#call-next');
    await pat.waitForSelector('[data-view="ring"]:not([hidden]) #answer', { timeout: 15000 });
    await pat.click('#answer');
    await doc.waitForSelector('#call-area:not([hidden]) video');
    ok(await firstFrame(pat, Date.now()) >= 0, 'the patient sees the doctor across nodes');
    ok(await firstFrame(doc, Date.now()) >= 0, 'the doctor sees the patient across nodes');
    await mediaFlows(pat, 'patient before the kill');
    await step(pat, 'call-before-kill');

    await pat.evaluate(() => { window.teleclinicOldPc = window.teleclinicCall.pc; });
    const t0 = Date.now();
    const workers = killNode(PID1);
    ok(workers > 0, `node 1 killed: its master and ${workers} workers`);

    await pat.waitForFunction(() => window.teleclinicCall && window.teleclinicCall.pc !== window.teleclinicOldPc,
                              null, { timeout: 30000 });
    ok(true, "the patient's page made a new peer connection by itself");
    const back = await firstFrame(pat, t0, 40000);
    note(`node 1 killed to the first decoded remote frame again (patient): ${back} ms`);
    ok(back >= 0, 'the patient sees the doctor again without doing anything', back);
    const dback = await firstFrame(doc, t0, 40000);
    ok(dback >= 0, 'the doctor sees the patient again', dback);
    await mediaFlows(pat, 'patient after node 1 died');
    await mediaFlows(doc, 'doctor after node 1 died');
    await step(pat, 'call-after-kill');
    await step(doc, 'console-after-kill');

    ok(missingKeys(pat).length === 0 && missingKeys(doc).length === 0, 'no missing strings');
    const errs = [...appErrors(pat), ...appErrors(doc)]
        .filter((e) => !/ERR_CONNECTION_REFUSED|WebSocket|net::ERR/.test(e));
    ok(errs.length === 0, 'no errors in the pages but the dead node\'s', errs);
} catch (e) {
    ok(false, 'the scenario ran', e.stack);
} finally {
    await browser.close();
    done();
}
