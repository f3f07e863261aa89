// Booking (index.html): department, doctor with the next free times, day
// and time, name and phone, then the confirmation with the join link, a
// calendar file and the guide.  Server errors are shown at the field they
// concern or at the top; a time taken meanwhile refreshes the times.

import { start, announce, el, $, show } from './ui.js';
import { t, date, time, when, locale } from './i18n.js';
import { api, seg, ApiError } from './api.js';

const DAYS = 14;
const st = { department: null, doctor: null, doctors: [], day: null, slot: null, booked: null };

function ymd(d) {
    const p = (n) => String(n).padStart(2, '0');
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
}

function nextDays() {
    const out = [];
    const d = new Date();
    for (let i = 0; i < DAYS; i++) {
        out.push(ymd(d));
        d.setDate(d.getDate() + 1);
    }
    return out;
}

async function free(doctor, day) {
    const list = await api('GET', `/doctors/${seg(doctor)}/slots?date=${day}`);
    const now = Date.now();
    return list.filter((s) => s.status === 'free' && new Date(s.start).getTime() > now);
}

function topError(e) {
    const box = $('top-error');
    if (!e) {
        box.hidden = true;
        box.textContent = '';
        return;
    }
    box.textContent = e instanceof ApiError ? e.text() : t('error.unknown');
    box.hidden = false;
}

function steps() {
    for (let i = 1; i <= 4; i++) {
        $('step-' + i).textContent = t('book.step', { n: i, total: 4 });
    }
}

function pressed(container, button) {
    for (const b of container.querySelectorAll('button')) {
        b.setAttribute('aria-pressed', String(b === button));
    }
}

async function departments() {
    const list = await api('GET', '/departments');
    $('departments').replaceChildren(...list.map((d) => el('button', {
        type: 'button', 'aria-pressed': String(st.department === d.id),
        onclick: () => { st.department = d.id; doctors().catch(topError); }
    }, d.name)));
}

async function doctors() {
    topError(null);
    st.doctors = await api('GET', '/doctors?department=' + encodeURIComponent(st.department));
    const box = $('doctors');
    box.replaceChildren();
    show('doctor');
    for (const d of st.doctors) {
        const times = el('p', { class: 'muted' }, t('book.doctor.searching'));
        const card = el('div', { class: 'card' }, el('h2', {}, d.name), times,
                        el('div', { class: 'actions' }, el('button', {
                            type: 'button', onclick: () => pickDoctor(d)
                        }, t('book.doctor.choose', { name: d.name }))));
        box.append(card);
        firstFree(d.id).then((found) => {
            times.textContent = found.length
                // the free times of one day: the day once, then the times
                ? t('book.doctor.next', { day: date(found[0].start),
                                          times: new Intl.ListFormat(locale(), { type: 'unit' }).format(found.map((s) => time(s.start))) })
                : t('book.doctor.none');
        }).catch(() => { times.textContent = t('book.doctor.none'); });
    }
}

async function firstFree(doctor) {
    for (const day of nextDays()) {
        const f = await free(doctor, day);
        if (f.length) {
            return f.slice(0, 3);
        }
    }
    return [];
}

function pickDoctor(d) {
    st.doctor = d;
    st.slot = null;
    $('slot-doctor').textContent = d.name;
    $('days').replaceChildren(...nextDays().map((day) => el('button', {
        type: 'button', 'data-day': day, 'aria-pressed': String(day === st.day),
        onclick: (ev) => { st.day = day; pressed($('days'), ev.currentTarget); slots().catch(topError); }
    }, date(day + 'T12:00:00', { weekday: 'short', day: 'numeric', month: 'short' }))));
    st.day = st.day || nextDays()[0];
    pressed($('days'), $('days').querySelector(`[data-day="${st.day}"]`));
    show('slot');
    slots().catch(topError);
}

async function slots() {
    st.slot = null;
    const box = $('slots');
    box.replaceChildren(el('p', { class: 'muted' }, t('common.loading')));
    const list = await free(st.doctor.id, st.day);
    box.replaceChildren(...list.map((s) => el('button', {
        type: 'button', 'aria-pressed': 'false', 'data-slot': s.id,
        onclick: (ev) => { st.slot = s; pressed(box, ev.currentTarget); $('slot-error').hidden = true; }
    }, time(s.start))));
    if (!list.length) {
        box.replaceChildren(el('p', {}, t('book.slot.none')));
    }
}

function fieldError(field, text) {
    for (const f of ['name', 'phone', 'reason']) {
        const input = $(f);
        const msg = $(f + '-error');
        const on = f === field;
        msg.hidden = !on;
        msg.textContent = on ? text : '';
        input.setAttribute('aria-invalid', String(on));
        const desc = f === 'phone' ? ['phone-hint'] : [];
        if (on) {
            desc.push(f + '-error');
        }
        if (desc.length) {
            input.setAttribute('aria-describedby', desc.join(' '));
        } else {
            input.removeAttribute('aria-describedby');
        }
    }
    if (field) {
        $(field).focus();
        announce(text, true);
    }
}

async function submit(ev) {
    ev.preventDefault();
    topError(null);
    fieldError(null);
    const name = $('name').value.trim();
    const phone = $('phone').value.replace(/[\s()-]/g, '');
    if (!name) {
        fieldError('name', t('error.missing_field'));
        return;
    }
    if (!phone) {
        fieldError('phone', t('error.missing_field'));
        return;
    }
    const body = { slot: st.slot.id, patient: { name, phone } };
    if ($('reason').value.trim()) {
        body.reason = $('reason').value.trim();
    }
    $('book-submit').disabled = true;
    try {
        st.booked = await api('POST', '/appointments', { body });
        done();
    } catch (e) {
        if (e.status === 409 && e.code === 'slot_taken') {
            show('slot');
            await slots().catch(() => {});
            $('slot-error').textContent = e.text();
            $('slot-error').hidden = false;
            announce(e.text(), true);
        } else if (e.field === 'phone' || e.code === 'invalid_phone') {
            fieldError('phone', e.text());
        } else if (e.field && e.field.includes('name')) {
            fieldError('name', e.text());
        } else if (e.field === 'reason') {
            fieldError('reason', e.text());
        } else if (e.code === 'slot_in_past' || e.code === 'slot_too_far') {
            show('slot');
            await slots().catch(() => {});
            $('slot-error').textContent = e.text();
            $('slot-error').hidden = false;
        } else {
            topError(e);
        }
    } finally {
        $('book-submit').disabled = false;
    }
}

function visitLink(a) {
    // the server's join_url, but on the origin this page came from
    const u = new URL(a.join_url);
    return location.origin + u.pathname + u.search + u.hash;
}

function done() {
    const a = st.booked;
    $('done-when').textContent = when(a.start);
    $('done-doctor').textContent = st.doctor.name;
    $('open-visit').href = visitLink(a);
    $('join-link').value = visitLink(a);
    show('done');
    announce(t('book.done.saved'));
}

// RFC 5545: text escaped, lines folded at 75 octets, CRLF
function icsText(s) {
    return String(s).replace(/\\/g, '\\\\').replace(/;/g, '\\;').replace(/,/g, '\\,')
        .replace(/\r?\n/g, '\\n');
}

function fold(line) {
    const bytes = new TextEncoder();
    const out = [];
    let cur = '';
    for (const ch of line) {
        if (bytes.encode(cur + ch).length > (out.length ? 74 : 75)) {
            out.push(cur);
            cur = '';
        }
        cur += ch;
    }
    out.push(cur);
    return out.join('\r\n ');
}

function utc(iso) {
    return new Date(iso).toISOString().replace(/[-:]/g, '').replace(/\.\d+/, '');
}

export function ics(a, doctorName, link) {
    const lines = [
        'BEGIN:VCALENDAR', 'VERSION:2.0', 'PRODID:-//ngx_teleclinic//booking//EN',
        'CALSCALE:GREGORIAN', 'METHOD:PUBLISH', 'BEGIN:VEVENT',
        `UID:${a.id}@${location.hostname}`, `DTSTAMP:${utc(new Date().toISOString())}`,
        `DTSTART:${utc(a.start)}`, `DTEND:${utc(a.end)}`,
        'SUMMARY:' + icsText(t('book.ics.summary', { doctor: doctorName })),
        'DESCRIPTION:' + icsText(t('book.ics.description', { link })),
        'URL:' + link, 'END:VEVENT', 'END:VCALENDAR'
    ];
    return lines.map(fold).join('\r\n') + '\r\n';
}

function download() {
    const a = st.booked;
    const blob = new Blob([ics(a, st.doctor.name, visitLink(a))], { type: 'text/calendar;charset=utf-8' });
    const url = URL.createObjectURL(blob);
    const link = el('a', { href: url, download: 'appointment.ics' });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
}

async function copy() {
    const input = $('join-link');
    try {
        await navigator.clipboard.writeText(input.value);
    } catch (e) {
        input.select();
        document.execCommand('copy');
    }
    announce(t('book.done.copied'));
    $('copy-link').textContent = t('book.done.copied');
}

async function main() {
    await start();
    steps();
    for (const b of document.querySelectorAll('button.back')) {
        b.onclick = () => show(b.dataset.to);
    }
    $('slot-next').onclick = () => {
        if (!st.slot) {
            $('slot-error').textContent = t('book.slot.choose_first');
            $('slot-error').hidden = false;
            announce(t('book.slot.choose_first'), true);
            return;
        }
        $('chosen').textContent = t('book.details.chosen', { when: when(st.slot.start), doctor: st.doctor.name });
        show('details');
    };
    $('details').onsubmit = submit;
    $('ics').onclick = download;
    $('copy-link').onclick = copy;
    document.addEventListener('teleclinic:language', () => {
        steps();
        departments().catch(topError);
        if (st.booked) {
            done();
        }
    });
    try {
        await departments();
    } catch (e) {
        topError(e);
    }
    show('department');
}

main();
