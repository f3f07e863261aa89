// The patient's waiting room (wait.html?appointment=ID#token=T): the
// device check, then the place in line; a ring with one large Answer
// button (a chime and a spoken announcement); the call; the consent
// question for a still picture; and the end of the visit.  The token comes
// from the fragment only and travels in the WebSocket's hello, never in a
// URL.  The connection is made at once, so a reload during a call brings
// the call back by itself (the server's 'call' with rejoin: true).

import { start, announce, $, show } from './ui.js';
import { t, locale, time } from './i18n.js';
import { Signal } from './signal.js';
import { Call, holdSignals } from './call.js';
import { mountCallView } from './callview.js';
import { mountDeviceCheck, tones } from './devices.js';

const id = new URLSearchParams(location.search).get('appointment') || '';
const token = new URLSearchParams(location.hash.slice(1)).get('token') || '';
const visitUrl = `/visit.html?appointment=${encodeURIComponent(id)}#token=${encodeURIComponent(token)}`;

let signal = null;
let check = null;
let opened = null;
let ready = false;
let view = 'loading';
let queue = null;
let ring = null;
let ringTimer = null;
let call = null;
let callView = null;
let request = null;
let earlyTimer = null;
let finished = false;
let held = null;

function go(v) {
    view = v;
    show(v);
}

function stopRing() {
    clearInterval(ringTimer);
    ringTimer = null;
    if (window.speechSynthesis) {
        speechSynthesis.cancel();
    }
}

function note(key) {
    $('q-note').hidden = !key;
    $('q-note').textContent = key ? t(key) : '';
    if (key) {
        announce(t(key));
    }
}

function queueText() {
    if (!queue) {
        $('q-position').textContent = '';
        $('q-estimate').textContent = $('q-early').hidden ? t('wait.connecting') : '';
        return '';
    }
    const pos = queue.position === 1 ? t('wait.position_next') : t('wait.position', { n: queue.position });
    const min = Math.ceil((queue.estimated_wait || 0) / 60);
    const est = min > 0 ? t('wait.estimated', { min }) : t('wait.estimated_soon');
    $('q-position').textContent = pos;
    $('q-estimate').textContent = est;
    $('q-busy').hidden = !queue.doctor_busy;
    return [pos, est, queue.doctor_busy ? t('wait.doctor_busy') : ''].join(' ');
}

function toQueue() {
    queueText();
    if (ready && !call && !finished) {
        go('queue');
    }
}

function speak(text) {
    if (!window.speechSynthesis || !window.SpeechSynthesisUtterance) {
        return;
    }
    const u = new SpeechSynthesisUtterance(text);
    u.lang = locale();
    speechSynthesis.speak(u);
}

function onRing(msg) {
    ring = msg;
    note(null);
    go('ring');
    const chime = () => tones([[880, 0.18], [660, 0.18], [880, 0.3]], 0.3);
    chime();
    clearInterval(ringTimer);
    ringTimer = setInterval(chime, 4000);
    speak(t('wait.ring_spoken'));
    announce(t('wait.ring_spoken'), true);
    $('answer').focus();
}

async function localStream() {
    if (opened) {
        await opened.catch(() => {});
    }
    return check ? check.take() : new MediaStream();
}

async function onCall(msg) {
    stopRing();
    ring = null;
    ready = true;
    // the call given back (rejoin), also as a new call when the node that
    // held the room died and another made it again
    if (call && call.state !== 'ended' && (call.id === msg.call || msg.rejoin)) {
        call.start(msg);
        return;
    }
    const stream = await localStream();
    call = new Call(signal, { role: 'patient', localStream: stream, held });
    call.addEventListener('ended', (e) => over(e.detail.reason));
    go('call');
    callView = mountCallView($('call'), call, { role: 'patient' });
    call.start(msg);
}

function over() {
    if (finished) {
        return;
    }
    finished = true;
    stopRing();
    if (callView) {
        callView.destroy();
        callView = null;
    }
    if (call && call.localStream) {
        call.localStream.getTracks().forEach((tr) => tr.stop());
    }
    if ($('consent').open) {
        $('consent').close();
    }
    $('over-link').href = visitUrl;
    go('over');
    announce(t('wait.over_heading') + '. ' + t('wait.over_text'));
    if (signal) {
        signal.close();
    }
}

function onEnded(msg) {
    if (call && msg.call === call.id) {
        return; // the Call ends itself, and over() follows
    }
    stopRing();
    ring = null;
    note(msg.reason === 'timeout' ? 'wait.missed' : 'wait.cancelled');
    toQueue();
}

function onSnapshotRequest(msg) {
    request = msg;
    const d = $('consent');
    if (!d.open) {
        d.showModal();
    }
    d.focus();
    announce(t('consent.heading'), true);
}

function consent(granted) {
    const d = $('consent');
    if (request) {
        signal.send({ type: 'snapshot_consent', call: request.call, request: request.request, granted });
        request = null;
    }
    d.close();
    announce(t(granted ? 'consent.said_yes' : 'consent.said_no'));
}

function closed(reason) {
    if (finished || reason === 'closed') {
        return;
    }
    stopRing();
    $('closed-text').textContent = t('wait.closed.' + reason);
    $('closed-link').href = visitUrl;
    $('closed-link').hidden = reason === 'replaced';
    go('closed');
    announce(t('wait.closed.' + reason), true);
}

function connect() {
    signal = new Signal(token);
    held = holdSignals(signal);
    signal.addEventListener('welcome', () => {
        check && check.setConnected(true);
        $('q-early').hidden = true;
    });
    signal.addEventListener('queue', (e) => {
        const before = queue ? queueText() : null;
        queue = e.detail;
        const now = queueText();
        if (now !== before && view === 'queue') {
            announce(now);
        }
        if (view === 'ring' || view === 'call') {
            return;
        }
        toQueue();
    });
    signal.addEventListener('ring', (e) => onRing(e.detail));
    signal.addEventListener('call', (e) => onCall(e.detail));
    signal.addEventListener('ended', (e) => onEnded(e.detail));
    signal.addEventListener('visit', (e) => {
        if (e.detail.status === 'fulfilled') {
            over();
        } else if (e.detail.status === 'noshow') {
            closed('visit_over');
        }
    });
    signal.addEventListener('snapshot_request', (e) => onSnapshotRequest(e.detail));
    signal.addEventListener('error', (e) => {
        const m = e.detail;
        if (m.code === 'too_early') {
            tooEarly(m.opens_at);
        }
    });
    signal.addEventListener('lost', () => {
        if (finished) {
            return;
        }
        check && check.setConnected(false);
        $('conn-line').hidden = false;
        $('conn-line').textContent = t('wait.lost');
        announce(t('wait.lost'), true);
    });
    signal.addEventListener('back', () => {
        $('conn-line').hidden = false;
        $('conn-line').textContent = t('wait.back');
        announce(t('wait.back'), true);
        setTimeout(() => { $('conn-line').hidden = true; }, 4000);
    });
    signal.addEventListener('closed', (e) => closed(e.detail.reason));
    signal.connect();
}

// check-in is not open yet: say when, and come back then
function tooEarly(opensAt) {
    const s = signal;
    signal = null;
    s.close();
    $('q-early').hidden = false;
    $('q-early').textContent = t('wait.too_early', { time: time(opensAt) });
    $('q-position').textContent = '';
    $('q-estimate').textContent = '';
    if (ready) {
        go('queue');
    }
    announce(t('wait.too_early', { time: time(opensAt) }));
    clearTimeout(earlyTimer);
    const wait = Math.max(1000, new Date(opensAt).getTime() - Date.now() + 1000);
    earlyTimer = setTimeout(connect, Math.min(wait, 2 ** 31 - 1));
}

async function main() {
    await start();
    if (!token || !id) {
        $('closed-text').textContent = t('wait.no_token');
        $('closed-link').hidden = true;
        go('closed');
        return;
    }
    $('answer').onclick = () => {
        if (ring) {
            stopRing();
            window.teleclinicAnsweredAt = performance.now();
            signal.send({ type: 'accept', call: ring.call });
        }
    };
    $('decline').onclick = () => {
        if (ring) {
            stopRing();
            signal.send({ type: 'decline', call: ring.call });
            ring = null;
            note('wait.declined');
            toQueue();
        }
    };
    $('consent-yes').onclick = () => consent(true);
    $('consent-no').onclick = () => consent(false);
    $('consent').addEventListener('cancel', (e) => { e.preventDefault(); consent(false); });
    $('ready').onclick = () => {
        ready = true;
        toQueue();
        if (!queue) {
            go('queue');
        }
    };
    document.addEventListener('teleclinic:language', () => {
        queueText();
        if (callView && call && call.state !== 'ended') {
            callView.destroy();
            callView = mountCallView($('call'), call, { role: 'patient' });
        }
    });
    check = mountDeviceCheck($('devices'));
    go('check');
    connect();
    opened = check.open();
}

main();
