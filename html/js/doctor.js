// The doctor's console (doctor.html): sign in (a stored session, else the
// hospital's SSO, else the password form), today's appointments, the live
// queue over the signaling connection (call next, call, skip, no-show),
// and in a call the call view beside the visit record.  The call engine
// (call.js, callview.js) and the record panel (record.js) are imported
// when needed, so the queue works even where they fail to load.

import { start, announce, el, $, show } from './ui.js';
import { t, has, time, lang } from './i18n.js';
import { api, ApiError } from './api.js';
import { Signal } from './signal.js';

const KEY = 'teleclinic.doctor';
let session = null;       // {token, doctor, expires, name}
let signal = null;
let queue = { patients: [], waiting: 0, average: 0 };
let today = [];
let call = null;          // the live Call
let view = null;          // the call view's handle
let record = null;        // the record panel's handle {destroy}
let recordFor = null;     // the appointment it shows
let callState = null;     // {key, vars} of the last call_state / error
let pendingNoshow = null;
let todayTimer = null;
const names = {};         // appointment id -> patient name
const modules = {};

function errText(e) {
    return e instanceof ApiError ? e.text() : t('error.unknown');
}

function topError(e) {
    const box = $('top-error');
    box.hidden = !e;
    box.textContent = e ? errText(e) : '';
}

// the other helpers' modules, loaded once; null when they cannot be
async function mod(name, css) {
    if (!(name in modules)) {
        try {
            modules[name] = await import(`./${name}.js`);
            if (css && !document.querySelector(`link[href="/${css}"]`)) {
                document.head.append(el('link', { rel: 'stylesheet', href: '/' + css }));
            }
        } catch (e) {
            modules[name] = null;
        }
    }
    return modules[name];
}

// ---- signing in

function stored() {
    try {
        const s = JSON.parse(sessionStorage.getItem(KEY) || 'null');
        if (s && s.token && (!s.expires || new Date(s.expires).getTime() > Date.now())) {
            return s;
        }
    } catch (e) {
        // a broken entry: sign in again
    }
    sessionStorage.removeItem(KEY);
    return null;
}

async function doctorName(id) {
    try {
        const docs = await api('GET', '/doctors');
        const d = docs.find((x) => x.id === id);
        return d ? d.name : id;
    } catch (e) {
        return id;
    }
}

async function signedIn(answer) {
    session = { token: answer.token, doctor: answer.doctor, expires: answer.expires };
    session.name = answer.name || await doctorName(answer.doctor);
    sessionStorage.setItem(KEY, JSON.stringify(session));
    openConsole();
}

async function signinForm() {
    show('signin');
    const sel = $('signin-doctor');
    if (!sel.options.length) {
        const [docs, deps] = await Promise.all([
            api('GET', '/doctors'),
            api('GET', '/departments').catch(() => [])
        ]);
        const dep = {};
        for (const d of deps) {
            dep[d.id] = d.name;
        }
        sel.replaceChildren(el('option', { value: '' }, t('console.signin.choose')),
            ...docs.map((d) => el('option', { value: d.id },
                                  `${d.name} (${dep[d.department] || d.department})`)));
    }
}

async function submitSignin(ev) {
    ev.preventDefault();
    const box = $('signin-error');
    box.hidden = true;
    const doctor = $('signin-doctor').value;
    const password = $('signin-password').value;
    if (!doctor || !password) {
        box.textContent = t('console.signin.missing');
        box.hidden = false;
        (doctor ? $('signin-password') : $('signin-doctor')).focus();
        return;
    }
    $('signin-submit').disabled = true;
    try {
        const a = await api('POST', '/doctor/login', { body: { doctor, password } });
        $('signin-password').value = '';
        await signedIn(a);
    } catch (e) {
        box.textContent = errText(e);
        box.hidden = false;
        $('signin-password').focus();
    } finally {
        $('signin-submit').disabled = false;
    }
}

function signout() {
    if (call) {
        try { call.hangup(); } catch (e) { /* over already */ }
    }
    closeCall();
    closeRecord();
    if (signal) {
        signal.close();
        signal = null;
    }
    clearInterval(todayTimer);
    sessionStorage.removeItem(KEY);
    session = null;
    announce(t('console.signed_out'));
    signinForm().catch(topError);
}

// ---- the console

function openConsole() {
    $('console-doctor').textContent = t('console.signed_in_as', { name: session.name });
    show('console');
    loadToday();
    clearInterval(todayTimer);
    todayTimer = setInterval(loadToday, 60000);
    connect();
}

function connect() {
    signal = new Signal(session.token);
    signal.addEventListener('welcome', (e) => {
        queue.average = e.detail.average || 0;
        setConn(null);
    });
    signal.addEventListener('queue', (e) => onQueue(e.detail));
    signal.addEventListener('call_state', (e) => onCallState(e.detail));
    signal.addEventListener('call', (e) => onCall(e.detail));
    signal.addEventListener('ended', (e) => onEnded(e.detail));
    signal.addEventListener('error', (e) => onError(e.detail));
    signal.addEventListener('lost', () => setConn('console.conn.lost', true));
    signal.addEventListener('back', () => { setConn(null); announce(t('console.conn.back')); });
    signal.addEventListener('closed', (e) => {
        if (e.detail && e.detail.reason === 'unauthorized') {
            sessionStorage.removeItem(KEY);
            setConn('console.conn.unauthorized', true);
        } else if (e.detail && e.detail.reason === 'replaced') {
            setConn('console.conn.replaced', true);
        }
    });
    signal.connect();
}

function setConn(key, urgent) {
    const p = $('conn');
    p.hidden = !key;
    p.dataset.key = key || '';
    p.textContent = key ? t(key) : '';
    if (key) {
        announce(t(key), urgent);
    }
}

async function loadToday() {
    if (!session) {
        return;
    }
    try {
        today = await api('GET', '/doctor/appointments', { token: session.token });
        for (const a of today) {
            if (a.patient) {
                names[a.id] = a.patient.name;
            }
        }
        renderToday();
    } catch (e) {
        if (e instanceof ApiError && e.status === 401) {
            signout();
            return;
        }
        topError(e);
    }
}

function statusWord(s) {
    return t('console.status.' + s);
}

function renderToday() {
    const list = $('today-list');
    $('today-empty').hidden = today.length > 0;
    list.replaceChildren(...today.map((a) => {
        const name = a.patient ? a.patient.name : '';
        const over = a.status === 'fulfilled';
        const label = el('span', { class: 'console-line' },
            el('span', { class: 'console-time' }, `${time(a.start)}–${time(a.end)}`),
            el('span', { class: 'console-name' }, name),
            el('span', { class: 'console-status status-' + a.status }, statusWord(a.status)));
        const li = el('li', { 'data-appointment': a.id }, label);
        if (a.reason) {
            li.append(el('span', { class: 'console-reason' }, a.reason));
        }
        if (over) {
            li.append(el('button', { type: 'button', class: 'secondary console-open',
                                     'aria-label': t('console.today.open_for', { name }),
                                     onclick: () => openRecord(a.id, name, null) },
                         t('console.today.open')));
        }
        return li;
    }));
}

// ---- the queue

function onQueue(q) {
    const before = queue.patients.map((p) => `${p.appointment}:${p.state}:${p.connected}`).join();
    queue = { patients: q.patients || [], waiting: q.waiting || 0,
              average: q.average !== undefined ? q.average : queue.average };
    for (const p of queue.patients) {
        names[p.appointment] = p.name;
    }
    renderQueue();
    const after = queue.patients.map((p) => `${p.appointment}:${p.state}:${p.connected}`).join();
    if (before !== after) {
        announce(t('console.queue.summary', { n: queue.waiting }));
        loadToday();
    }
}

function stateWord(p) {
    if (p.state === 'in-call') {
        return t('console.state.in_call');
    }
    if (p.state === 'ringing') {
        return t('console.state.ringing');
    }
    return p.connected ? t('console.state.connected') : t('console.state.away');
}

function renderQueue() {
    const { patients, waiting, average } = queue;
    // Chinese sentences follow each other without a space
    $('queue-summary').textContent = t('console.queue.summary', { n: waiting })
        + (average ? (lang() === 'zh' ? '' : ' ')
           + t('console.queue.average', { m: Math.max(1, Math.round(average / 60)) }) : '');
    const busy = !!call || patients.some((p) => p.state === 'in-call' || p.state === 'ringing');
    const anyone = patients.some((p) => p.state === 'waiting' && p.connected);
    $('call-next').disabled = busy || !anyone;
    $('queue-empty').hidden = patients.length > 0;
    let pos = 0;
    $('queue-list').replaceChildren(...patients.map((p) => {
        const waitingHere = p.state !== 'in-call';
        if (waitingHere) {
            pos++;
        }
        const symbol = p.state === 'in-call' ? '●' : (p.connected ? '✓' : '✗');
        const li = el('li', { 'data-appointment': p.appointment,
                              class: 'console-patient ' + (p.connected ? 'is-connected' : 'is-away') },
            el('div', { class: 'console-line' },
                el('span', { class: 'console-pos' }, waitingHere ? String(pos) : ''),
                el('span', { class: 'console-name' }, p.name),
                el('span', { class: 'console-time' }, time(p.start))),
            el('p', { class: 'console-state' },
                el('span', { 'aria-hidden': 'true', class: 'console-symbol' }, symbol + ' '),
                stateWord(p),
                p.arrived ? ' · ' + t('console.state.arrived', { time: time(p.arrived) }) : ''));
        if (p.state === 'waiting') {
            li.append(el('div', { class: 'actions console-row' },
                el('button', { type: 'button', class: 'call', disabled: busy || !p.connected,
                               'aria-label': t('console.queue.call_for', { name: p.name }),
                               onclick: () => send({ type: 'call', appointment: p.appointment }) },
                   t('console.queue.call')),
                el('button', { type: 'button', class: 'secondary skip',
                               'aria-label': t('console.queue.skip_for', { name: p.name }),
                               onclick: () => send({ type: 'skip', appointment: p.appointment }) },
                   t('console.queue.skip')),
                el('button', { type: 'button', class: 'danger noshow',
                               'aria-label': t('console.queue.noshow_for', { name: p.name }),
                               onclick: () => askNoshow(p) },
                   t('console.queue.noshow'))));
        }
        return li;
    }));
}

function send(msg) {
    setCallState(null);
    if (!signal || !signal.connected) {
        setCallState('console.conn.lost');
        return;
    }
    signal.send(msg);
}

function askNoshow(p) {
    pendingNoshow = p;
    $('noshow-text').textContent = t('console.noshow.text', { name: p.name });
    const d = $('noshow-dialog');
    d.returnValue = '';
    d.showModal();
}

function setCallState(key, vars) {
    callState = key ? { key, vars } : null;
    const p = $('ring-state');
    p.hidden = !key;
    p.dataset.key = key || '';
    p.textContent = key ? t(key, vars) : '';
}

function onCallState(m) {
    const name = names[m.appointment] || '';
    setCallState('console.call_state.' + m.state, { name });
    announce(t('console.call_state.' + m.state, { name }), m.state !== 'ringing');
}

function onError(m) {
    if (m.code === 'visit_over') {
        return;
    }
    const key = has('console.error.' + m.code) ? 'console.error.' + m.code
        : (has('error.' + m.code) ? 'error.' + m.code : 'error.unknown');
    setCallState(key);
    announce(t(key), true);
}

// ---- the call

async function onCall(m) {
    setCallState(null);
    // the same visit given back (rejoin), also as a new call when the
    // node that held the room died and another made it again
    if (call && m.rejoin && (call.id === m.call || call.appointment === m.appointment)) {
        call.start(m);
        return;
    }
    if (call) {
        return;
    }
    const name = names[m.appointment] || '';
    $('work').hidden = false;
    $('call-area').hidden = false;
    $('call-heading').textContent = t('console.call.with', { name });
    announce(t('console.call.with', { name }), true);
    const engine = await mod('call', null);
    const viewer = await mod('callview', 'call.css');
    if (!engine || !viewer) {
        $('call').replaceChildren(el('p', { class: 'message error' }, t('console.call.unavailable')));
        openRecord(m.appointment, name, null);
        return;
    }
    let localStream = null;
    try {
        localStream = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
    } catch (e) {
        $('call').replaceChildren(el('p', { class: 'message error' }, t('console.call.no_camera')));
    }
    call = new engine.Call(signal, { role: 'doctor', localStream });
    const mine = call;
    // a hangup here or there, or a drop: the Call says so
    mine.addEventListener('ended', (e) => {
        if (call === mine) {
            onEnded({ call: mine.id, reason: e.detail && e.detail.reason });
        }
    });
    call.start(m);
    try {
        view = viewer.mountCallView($('call'), call, { role: 'doctor' });
    } catch (e) {
        view = null;
    }
    renderQueue();
    openRecord(m.appointment, name, call);
}

function closeCall() {
    if (view) {
        try { view.destroy(); } catch (e) { /* gone */ }
        view = null;
    }
    if (call && call.localStream) {
        for (const tr of call.localStream.getTracks()) {
            tr.stop();
        }
    }
    call = null;
    $('call').replaceChildren();
    $('call-area').hidden = true;
    $('work').hidden = $('record').hidden;
}

function onEnded(m) {
    if (!call || (m.call && call.id && m.call !== call.id)) {
        return;
    }
    const name = names[recordFor] || '';
    closeCall();
    setCallState('console.call.ended', { name });
    announce(t('console.call.ended', { name }));
    // the record stays open for the closing, now without the live call
    if (recordFor) {
        openRecord(recordFor, name, null);
    }
    renderQueue();
    loadToday();
    $('call-next').focus();
}

// ---- the record panel

async function openRecord(appointment, name, liveCall) {
    closeRecord();
    recordFor = appointment;
    $('work').hidden = false;
    $('record').hidden = false;
    $('record-patient').textContent = t('console.record.for', { name });
    const m = await mod('record', 'doctor.css');
    if (recordFor !== appointment) {
        return;
    }
    $('record-missing').hidden = !!m;
    if (m) {
        record = m.mountRecord($('record-body'), {
            appointment, token: session.token,
            signal: liveCall ? signal : null, call: liveCall
        });
    }
    if (!liveCall) {
        // opened from today's list: the keyboard lands on the panel
        $('record-patient').setAttribute('tabindex', '-1');
        $('record-patient').focus();
    }
}

function closeRecord() {
    if (record) {
        try { record.destroy(); } catch (e) { /* gone */ }
        record = null;
    }
    recordFor = null;
    $('record-body').replaceChildren();
    $('record').hidden = true;
    $('work').hidden = $('call-area').hidden;
}

// ---- start

function redraw() {
    if (session) {
        $('console-doctor').textContent = t('console.signed_in_as', { name: session.name });
        renderQueue();
        renderToday();
        if (callState) {
            setCallState(callState.key, callState.vars);
        }
        if (recordFor) {
            $('record-patient').textContent = t('console.record.for', { name: names[recordFor] || '' });
        }
        const c = $('conn');
        if (!c.hidden && c.dataset.key) {
            c.textContent = t(c.dataset.key);
        }
    } else {
        $('signin-doctor').replaceChildren();
        signinForm().catch(topError);
    }
}

async function main() {
    await start();
    document.addEventListener('teleclinic:language', redraw);
    $('signin-form').addEventListener('submit', submitSignin);
    $('signout').addEventListener('click', signout);
    $('call-next').addEventListener('click', () => send({ type: 'call_next' }));
    $('record-hide').addEventListener('click', () => { closeRecord(); $('today-heading').focus(); });
    $('today-heading').setAttribute('tabindex', '-1');
    $('noshow-dialog').addEventListener('close', () => {
        const p = pendingNoshow;
        pendingNoshow = null;
        if (p && $('noshow-dialog').returnValue === 'yes') {
            send({ type: 'noshow', appointment: p.appointment });
            announce(t('console.noshow.done', { name: p.name }));
        }
    });

    const s = stored();
    if (s) {
        session = s;
        openConsole();
        return;
    }
    // where the hospital's SSO in front has named the doctor, an empty
    // sign-in is enough (docs/api.md); else the password form
    try {
        const ways = await api('GET', '/doctor/login');
        if (ways && ways.sso) {
            const a = await api('POST', '/doctor/login', { body: {} });
            if (a && a.token) {
                await signedIn(a);
                return;
            }
        }
    } catch (e) {
        // the password form, which says what is wrong when it is used
    }
    await signinForm();
}

main().catch(topError);
