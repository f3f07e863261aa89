// My appointment (visit.html?appointment=ID#token=T): the appointment,
// reschedule, cancel (a dialog), the check-in countdown and the way into
// the waiting room; after the visit the doctor's summary and the rating.
// The token stays in the fragment: it is never sent in a URL.

import { start, announce, el, $, show } from './ui.js';
import { t, date, time, when, named } from './i18n.js';
import { api, seg, ApiError } from './api.js';

const OPEN_BEFORE = 15 * 60 * 1000;
const id = new URLSearchParams(location.search).get('appointment') || '';
let token = new URLSearchParams(location.hash.slice(1)).get('token') || '';
let appt = null;
let doctorName = '';
let timer = null;
let poll = null;
let record = null;
let rated = false;
let pick = { day: null, slot: null };

function topError(e) {
    const box = $('top-error');
    box.hidden = !e;
    box.textContent = e ? (e instanceof ApiError ? e.text() : t('error.unknown')) : '';
}

function ymd(d) {
    const p = (n) => String(n).padStart(2, '0');
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
}

async function load() {
    appt = await api('GET', `/appointments/${seg(id)}`, { token });
    try {
        const docs = await api('GET', '/doctors');
        const d = docs.find((x) => x.id === appt.doctor);
        doctorName = d ? d.name : appt.doctor;
    } catch (e) {
        doctorName = appt.doctor;
    }
    render();
}

function render() {
    const a = appt;
    $('v-when').textContent = when(a.start);
    $('v-doctor').textContent = doctorName;
    $('v-status').textContent = t('visit.status.' + a.status);
    $('v-patient').textContent = a.patient ? a.patient.name : '';
    $('v-reason').textContent = a.reason || t('visit.no_reason');
    const open = a.status === 'booked' || a.status === 'arrived';
    $('manage').hidden = a.status !== 'booked';
    $('checkin').hidden = !open || Date.now() > new Date(a.end).getTime();
    $('again').hidden = !(a.status === 'cancelled' || a.status === 'noshow');
    $('status-text').textContent = t('visit.explain.' + a.status);
    $('enter').href = `/wait.html?appointment=${encodeURIComponent(id)}#token=${encodeURIComponent(token)}`;
    clearInterval(timer);
    if (!$('checkin').hidden) {
        tick();
        timer = setInterval(tick, 1000);
    }
    $('summary').hidden = a.status !== 'fulfilled';
    $('rating').hidden = a.status !== 'fulfilled' || !record;
    if (a.status === 'fulfilled') {
        summary();
    }
    show('view');
}

function tick() {
    const left = new Date(appt.start).getTime() - OPEN_BEFORE - Date.now();
    if (left <= 0) {
        $('countdown').textContent = t('visit.open_now');
        if ($('enter').hidden) {
            $('enter').hidden = false;
            announce(t('visit.open_now'));
        }
        clearInterval(timer);
        return;
    }
    $('enter').hidden = true;
    const s = Math.ceil(left / 1000);
    const parts = [];
    if (s >= 86400) {
        parts.push(t('visit.days', { n: Math.floor(s / 86400) }));
    }
    if (s >= 3600) {
        parts.push(t('visit.hours', { n: Math.floor(s % 86400 / 3600) }));
    }
    parts.push(t('visit.minutes', { n: Math.floor(s % 3600 / 60) }));
    if (s < 3600) {
        parts.push(t('visit.seconds', { n: s % 60 }));
    }
    $('countdown').textContent = t('visit.opens_in', { left: parts.join(' ') });
}

// ---- reschedule: another time of the same doctor
function days() {
    const out = [];
    const d = new Date();
    for (let i = 0; i < 14; i++) {
        out.push(ymd(d));
        d.setDate(d.getDate() + 1);
    }
    return out;
}

function pressed(box, b) {
    for (const x of box.querySelectorAll('button')) {
        x.setAttribute('aria-pressed', String(x === b));
    }
}

async function slots() {
    pick.slot = null;
    const list = (await api('GET', `/doctors/${seg(appt.doctor)}/slots?date=${pick.day}`))
        .filter((s) => s.status === 'free' && new Date(s.start) > new Date());
    const box = $('slots');
    box.replaceChildren(...list.map((s) => el('button', {
        type: 'button', 'aria-pressed': 'false', 'data-slot': s.id,
        onclick: (ev) => { pick.slot = s; pressed(box, ev.currentTarget); }
    }, time(s.start))));
    if (!list.length) {
        box.replaceChildren(el('p', {}, t('book.slot.none')));
    }
}

function reschedule() {
    pick.day = appt.start.slice(0, 10);
    const all = days();
    if (!all.includes(pick.day)) {
        pick.day = all[0];
    }
    $('days').replaceChildren(...all.map((day) => el('button', {
        type: 'button', 'data-day': day, 'aria-pressed': String(day === pick.day),
        onclick: (ev) => { pick.day = day; pressed($('days'), ev.currentTarget); slots().catch(topError); }
    }, date(day + 'T12:00:00', { weekday: 'short', day: 'numeric', month: 'short' }))));
    $('slot-error').hidden = true;
    show('reschedule');
    slots().catch(topError);
}

async function saveReschedule() {
    if (!pick.slot) {
        $('slot-error').textContent = t('book.slot.choose_first');
        $('slot-error').hidden = false;
        return;
    }
    try {
        const a = await api('POST', `/appointments/${seg(id)}/reschedule`, { token, body: { slot: pick.slot.id } });
        token = a.token;
        // the old token is outdated: the page's address carries the new one
        history.replaceState(null, '', `${location.pathname}?appointment=${encodeURIComponent(id)}#token=${encodeURIComponent(token)}`);
        await load();
        announce(t('visit.rescheduled'));
        $('status-text').textContent = t('visit.rescheduled');
    } catch (e) {
        $('slot-error').textContent = e instanceof ApiError ? e.text() : t('error.unknown');
        $('slot-error').hidden = false;
        if (e.code === 'slot_taken') {
            slots().catch(() => {});
        }
    }
}

async function cancel() {
    $('cancel-dialog').close();
    try {
        appt = await api('POST', `/appointments/${seg(id)}/cancel`, { token });
        render();
        announce(t('visit.explain.cancelled'));
    } catch (e) {
        topError(e);
    }
}

// ---- after the visit
function kv(list) {
    return el('dl', { class: 'facts' }, ...list.filter(([, v]) => v !== null && v !== undefined && v !== '')
        .flatMap(([k, v]) => [el('dt', {}, t(k)), el('dd', {}, String(v))]));
}

async function summary() {
    clearTimeout(poll);
    try {
        record = await api('GET', `/appointments/${seg(id)}/record`, { token });
    } catch (e) {
        if (e.code === 'no_record') {
            $('s-wait').hidden = false;
            $('s-body').replaceChildren();
            poll = setTimeout(summary, 15000);
            return;
        }
        topError(e);
        return;
    }
    $('s-wait').hidden = true;
    const r = record;
    const body = [kv([['summary.diagnosis', r.note && r.note.diagnosis], ['summary.advice', r.note && r.note.advice]])];
    if (r.prescriptions && r.prescriptions.length) {
        body.push(el('h3', {}, t('summary.prescriptions')), el('ul', { class: 'plain' },
            ...r.prescriptions.map((p) => el('li', { class: 'card' }, el('strong', {}, named(p, p.drug)),
                kv([['summary.strength', p.strength], ['summary.dose', p.dose], ['summary.frequency', p.frequency],
                    ['summary.days', p.days], ['summary.quantity', p.quantity], ['summary.note', p.note]])))));
    }
    if (r.orders && r.orders.length) {
        body.push(el('h3', {}, t('summary.orders')), el('ul', {},
            ...r.orders.map((o) => el('li', {}, named(o, o.exam) + (o.note ? ' — ' + o.note : '')))));
    }
    if (r.followups && r.followups.length) {
        body.push(el('h3', {}, t('summary.followups')), el('ul', {},
            ...r.followups.map((f) => el('li', {}, [t('summary.kind.' + f.kind), f.note,
                f.due ? t('summary.due', { date: date(f.due + 'T12:00:00', { year: 'numeric', month: 'long', day: 'numeric' }) }) : ''].filter(Boolean).join(' — ')))));
    }
    if (r.snapshots && r.snapshots.length) {
        const fig = el('div', { class: 'snapshots' });
        body.push(el('h3', {}, t('summary.pictures')), fig);
        for (const [i, s] of r.snapshots.entries()) {
            fetch(`/api/v1/appointments/${seg(id)}/record/snapshots/${seg(s.id)}`,
                  { headers: { Authorization: 'Bearer ' + token }, cache: 'no-store' })
                .then((x) => x.blob())
                .then((b) => fig.append(el('img', { src: URL.createObjectURL(b), style: 'max-width:100%',
                    alt: t('summary.picture_alt', { n: i + 1, when: when(s.taken) }) })));
        }
    }
    $('s-body').replaceChildren(...body);
    announce(t('summary.ready'));
    rated = rated || !!r.rating;
    $('rating').hidden = false;
    $('rate-form').hidden = rated;
    $('rate-thanks').hidden = !rated;
}

function stars() {
    $('stars').replaceChildren(...[1, 2, 3, 4, 5].map((n) => el('label', { class: 'star' },
        el('input', { type: 'radio', name: 'score', value: String(n) }),
        el('span', { 'aria-hidden': 'true' }, '★ ' + n),
        el('span', { class: 'visually-hidden' }, t('rate.score', { n })))));
}

async function rate(ev) {
    ev.preventDefault();
    const c = document.querySelector('input[name="score"]:checked');
    if (!c) {
        $('rate-error').textContent = t('rate.choose');
        $('rate-error').hidden = false;
        return;
    }
    try {
        await api('POST', `/appointments/${seg(id)}/rating`, { token,
            body: { score: Number(c.value), comment: $('comment').value.trim() } });
    } catch (e) {
        if (e.code !== 'already_rated') {
            $('rate-error').textContent = e.text();
            $('rate-error').hidden = false;
            return;
        }
    }
    rated = true;
    $('rate-form').hidden = true;
    $('rate-thanks').hidden = false;
    announce(t('rate.thanks'));
}

async function main() {
    await start();
    stars();
    $('reschedule').onclick = reschedule;
    $('resched-back').onclick = () => show('view');
    $('resched-save').onclick = saveReschedule;
    $('cancel').onclick = () => $('cancel-dialog').showModal();
    $('cancel-no').onclick = () => $('cancel-dialog').close();
    $('cancel-yes').onclick = cancel;
    $('rate-form').onsubmit = rate;
    document.addEventListener('teleclinic:language', () => { stars(); if (appt) render(); });
    if (!id || !token) {
        topError(new ApiError(401, 'unauthorized'));
        return;
    }
    try {
        await load();
    } catch (e) {
        topError(e);
        show('loading');
    }
}

main();
