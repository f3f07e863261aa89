// Two nodes on Redis, in a real browser, while Redis is away: the
// patient books on the node that does not have Dr. Weber's room, then
// Redis is killed.  The patient's page, whose hello there is answered
// with room_elsewhere, goes by itself to the room's node, where the
// doctor signed in: they meet in one room and hold a call, video flowing.
import { crc32 } from 'node:zlib';
import { launch, person, ok, note, done, PHONE, DESKTOP, appErrors,
         missingKeys } from '../lib/browser.mjs';
import { step, bookThroughPages, enterWaitingRoom, signInDoctor,
         firstFrame, mediaFlows } from './app-e2e-lib.mjs';

const BASES = { node1: process.env.TELECLINIC_BASE, node2: process.env.TELECLINIC_BASE2 };
const REDIS = Number(process.env.TELECLINIC_REDIS_PID);

// the node of a doctor's room, as the module chooses it (rendezvous
// hashing: the highest CRC-32 of "doctor/node")
const [home, other] = Object.keys(BASES)
    .sort((a, b) => crc32(`jonas-weber/${b}`) - crc32(`jonas-weber/${a}`));

const browser = await launch();
const pat = await person(browser, { viewport: PHONE, relay: true, name: 'patient', base: BASES[other] });
const doc = await person(browser, { viewport: DESKTOP, relay: true, name: 'doctor', base: BASES[home] });

try {
    note(`Dr. Weber's room is on ${home}; the patient's pages come from ${other}`);
    await bookThroughPages(pat, { name: 'Ruth Ohnebus', phone: '+49 30 5550302', shots: false });

    process.kill(REDIS, 'SIGKILL');
    note('Redis killed');
    await pat.waitForTimeout(1500);

    await signInDoctor(doc, { shots: false });
    await enterWaitingRoom(pat, { shots: false });
    await doc.waitForFunction(() => /Ruth Ohnebus/.test(document.getElementById('queue-list').textContent),
                              null, { timeout: 20000 });
    ok(true, "Redis away: the console lists the patient whose page came from the other node");
    await step(pat, 'wait-redis-away');

    await doc.click('#call-next');
    await pat.waitForSelector('[data-view="ring"]:not([hidden]) #answer', { timeout: 15000 });
    await pat.click('#answer');
    await doc.waitForSelector('#call-area:not([hidden]) video');
    ok(await firstFrame(pat, Date.now()) >= 0, 'the patient sees the doctor');
    ok(await firstFrame(doc, Date.now()) >= 0, 'the doctor sees the patient');
    await mediaFlows(pat, 'patient, Redis away');
    await mediaFlows(doc, 'doctor, Redis away');
    await step(pat, 'call-redis-away');

    ok(missingKeys(pat).length === 0 && missingKeys(doc).length === 0, 'no missing strings');
    const errs = [...appErrors(pat), ...appErrors(doc)].filter((e) => !/WebSocket|net::ERR/.test(e));
    ok(errs.length === 0, 'no errors in the pages', errs);
} catch (e) {
    ok(false, 'the scenario ran', e.stack);
} finally {
    await browser.close();
    done();
}
