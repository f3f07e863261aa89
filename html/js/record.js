// The doctor's side panel for the visit record (docs/api.md "The visit
// record"), in a narrow column beside the call or alone:
//
//   const r = mountRecord(container, { appointment, token, signal, call });
//   ...
//   r.destroy();
//
// The note is saved as the doctor types (debounced, on blur, before the
// record is closed and when the panel goes), and a change made while a
// save is in flight is sent after it, so no typing is lost.  Medicines
// come from the formulary search (a combobox), examinations from the
// catalogue, follow-ups by kind.  With signal and call (a live call) the
// snapshot button asks the patient's consent over the WebSocket and keeps
// one still frame on yes.  Closing makes the record final: then it is
// read-only and takes addenda only.  The record names drugs and exams
// itself, from the formulary, in each of its languages.

import { announce, el } from './ui.js';
import { t, date, time, when, named } from './i18n.js';
import { api, seg, ApiError } from './api.js';

const FIELDS = ['complaint', 'history', 'findings', 'diagnosis', 'advice'];
const MAX = 4000;
const NEAR = 3600;
const DEBOUNCE = 800;
const SEARCH_DEBOUNCE = 250;
const CONSENT_WAIT = 60000;
const KINDS = ['payment', 'pharmacy', 'exam', 'revisit'];
// errors after which the same save may work a little later
const TRANSIENT = new Set(['network', 'busy', 'rate_limited', 'zone_full', 'storage_unavailable']);

let mounts = 0;

// the exam catalogue, shared by every panel of the page
let examList = null;

function errText(e) {
    if (e instanceof ApiError) {
        if (e.code === 'visit_not_held') {
            return t('record.not_held');
        }
        return e.text();
    }
    return t('error.unknown');
}

function drugLabel(d) {
    return [named(d, d.id), d.strength, d.form].filter(Boolean).join(', ');
}

// consentWait: how long to wait for the patient's answer (tests shorten it)
export function mountRecord(container, { appointment, token, signal = null, call = null,
                                         consentWait = CONSENT_WAIT }) {
    const n = ++mounts;
    const id = (s) => `rec${n}-${s}`;
    const base = `/appointments/${seg(appointment)}/record`;
    const live = !!(signal && call);

    let rec = null;              // the record as last read or answered
    let loadError = null;
    const draft = Object.fromEntries(FIELDS.map((f) => [f, '']));
    let dirty = false;
    let saving = null;           // the save in flight (a promise)
    let saveTimer = null;
    let retryWait = 1000;
    let saved = { key: null, vars: null };   // the indicator's state
    let destroyed = false;

    // the drug search and the chosen drug
    let results = [];
    let active = -1;
    let searchTimer = null;
    let searchSeq = 0;
    let chosen = null;

    // the snapshot: one request at a time
    let pending = null;          // {timer} while waiting for the answer
    let snapState = null;        // {key, vars, kind}
    const thumbs = new Map();    // snapshot id -> object URL

    let nodes = {};
    const root = el('section', { class: 'record', 'aria-labelledby': id('heading') });
    container.append(root);

    // ---- the note, saved as the doctor types
    function indicator(key, vars = null) {
        saved = { key, vars };
        if (nodes.saved) {
            nodes.saved.textContent = key ? t(key, vars || undefined) : '';
            nodes.saved.dataset.state = key ? key.split('.').pop() : '';
        }
    }

    function changed() {
        dirty = true;
        clearTimeout(saveTimer);
        saveTimer = setTimeout(save, DEBOUNCE);
    }

    // saves the note now; resolves once nothing typed is left unsaved (or
    // a save failed); a change during the save in flight is sent after it
    async function save() {
        clearTimeout(saveTimer);
        saveTimer = null;
        if (saving) {
            return saving;
        }
        if (!dirty || !rec || rec.status === 'final' || destroyed) {
            return;
        }
        saving = (async () => {
            // goes on after destroy(): what was typed before the panel
            // went is still sent
            while (dirty) {
                dirty = false;
                const body = { ...draft };
                indicator('record.saving');
                try {
                    const r = await api('PUT', `${base}/note`, { token, body });
                    rec.note = r.note;
                    rec.status = r.status;
                    retryWait = 1000;
                    indicator('record.saved', { time: time(new Date().toISOString()) });
                } catch (e) {
                    dirty = true;
                    if (e instanceof ApiError && TRANSIENT.has(e.code) || e.status >= 500) {
                        indicator('record.retrying');
                        saveTimer = setTimeout(save, retryWait);
                        retryWait = Math.min(retryWait * 2, 30000);
                    } else {
                        indicator('record.not_saved', { error: errText(e) });
                    }
                    return;
                }
            }
        })();
        try {
            await saving;
        } finally {
            saving = null;
        }
    }

    // the page goes: what is not saved yet leaves with the page
    function onPageHide() {
        if (dirty && rec && rec.status !== 'final') {
            fetch(`/api/v1${base}/note`, { method: 'PUT', keepalive: true, cache: 'no-store',
                headers: { Authorization: 'Bearer ' + token, 'Content-Type': 'application/json' },
                body: JSON.stringify(draft) }).catch(() => {});
            dirty = false;
        }
    }
    window.addEventListener('pagehide', onPageHide);

    function noteField(f) {
        const ta = el('textarea', { id: id('note-' + f), name: f, maxlength: String(MAX), rows: '3',
                                    'aria-describedby': id('count-' + f) });
        ta.value = draft[f];
        const count = el('span', { class: 'record-count', id: id('count-' + f) });
        const counted = () => {
            const len = ta.value.length;
            count.hidden = len < NEAR;
            count.textContent = len >= NEAR ? t('record.count', { n: len, max: MAX }) : '';
            count.classList.toggle('record-count-full', len >= MAX);
        };
        counted();
        ta.addEventListener('input', () => { draft[f] = ta.value; counted(); changed(); });
        ta.addEventListener('blur', () => { if (dirty) save(); });
        if (rec && rec.status === 'final') {
            ta.readOnly = true;
        }
        return el('div', { class: 'record-field' },
            el('label', { for: ta.id }, t('record.field.' + f)), ta, count);
    }

    // ---- names of drugs and exams: the record gives them (from the
    // formulary of now); an entry taken out of the file since shows its id
    function drugName(p) {
        return p.name ? drugLabel(p) : p.drug;
    }

    async function loadExams() {
        if (!examList) {
            try {
                examList = await api('GET', '/exams', { token });
            } catch (e) {
                examList = null;
                return;
            }
        }
        if (!destroyed) {
            examOptions();
        }
    }

    // ---- the drug search: a combobox over GET /formulary?q=
    function openList(open) {
        nodes.search.setAttribute('aria-expanded', String(open));
        nodes.listbox.hidden = !open;
        if (!open) {
            active = -1;
            nodes.search.removeAttribute('aria-activedescendant');
        }
    }

    function showResults() {
        const lb = nodes.listbox;
        lb.replaceChildren(...results.map((d, i) => {
            const o = el('li', { role: 'option', id: id('opt-' + i), 'aria-selected': String(i === active),
                                 class: 'record-option', 'data-drug': d.id },
                el('span', { class: 'record-option-name' }, d.name),
                el('span', { class: 'record-option-detail' }, [d.strength, d.form].filter(Boolean).join(', ')));
            // keep the focus in the input: mousedown would move it
            o.addEventListener('mousedown', (ev) => ev.preventDefault());
            o.addEventListener('click', () => pick(i));
            return o;
        }));
        if (active >= 0) {
            nodes.search.setAttribute('aria-activedescendant', id('opt-' + active));
            lb.children[active].scrollIntoView({ block: 'nearest' });
        } else {
            nodes.search.removeAttribute('aria-activedescendant');
        }
        openList(results.length > 0);
    }

    async function search() {
        const q = nodes.search.value.trim();
        const seq = ++searchSeq;
        if (!q) {
            results = [];
            nodes.searchStatus.textContent = '';
            showResults();
            return;
        }
        try {
            const list = await api('GET', `/formulary?q=${encodeURIComponent(q)}`, { token });
            if (seq !== searchSeq || destroyed) {
                return;
            }
            results = list;
            active = -1;
            nodes.searchStatus.textContent = list.length ? t('rx.results', { n: list.length }) : t('rx.no_results');
            showResults();
        } catch (e) {
            if (seq === searchSeq) {
                results = [];
                showResults();
                nodes.searchStatus.textContent = errText(e);
            }
        }
    }

    function move(by) {
        if (!results.length) {
            return;
        }
        active = active < 0 ? (by > 0 ? 0 : results.length - 1)
            : (active + by + results.length) % results.length;
        showResults();
    }

    function pick(i) {
        chosen = results[i];
        openList(false);
        nodes.search.value = '';
        results = [];
        nodes.searchStatus.textContent = '';
        rxForm();
        nodes.rxForm.querySelector('input').focus();
    }

    function searchKey(ev) {
        if (ev.key === 'ArrowDown') {
            ev.preventDefault();
            if (nodes.listbox.hidden && results.length) {
                openList(true);
            }
            move(1);
        } else if (ev.key === 'ArrowUp') {
            ev.preventDefault();
            move(-1);
        } else if (ev.key === 'Enter') {
            if (!nodes.listbox.hidden && active >= 0) {
                ev.preventDefault();
                pick(active);
            }
        } else if (ev.key === 'Escape') {
            if (!nodes.listbox.hidden) {
                ev.preventDefault();
                openList(false);
            }
        }
    }

    function rxForm() {
        const f = nodes.rxForm;
        if (!f) {
            return;
        }
        f.hidden = !chosen;
        if (!chosen) {
            return;
        }
        nodes.rxDrug.textContent = drugLabel(chosen);
        nodes.rxError.hidden = true;
    }

    async function addRx(ev) {
        ev.preventDefault();
        const f = nodes.rxForm;
        const v = (name) => f.elements[name].value.trim();
        const body = { drug: chosen.id, dose: v('dose'), frequency: v('frequency') };
        if (v('days')) body.days = Number(v('days'));
        if (v('quantity')) body.quantity = Number(v('quantity'));
        if (v('note')) body.note = v('note');
        for (const name of ['dose', 'frequency']) {
            f.elements[name].setAttribute('aria-invalid', String(!body[name]));
        }
        if (!body.dose || !body.frequency) {
            formError(nodes.rxError, t('rx.need_dose'));
            f.elements[!body.dose ? 'dose' : 'frequency'].focus();
            return;
        }
        try {
            await api('POST', `${base}/prescriptions`, { token, body });
        } catch (e) {
            formError(nodes.rxError, e.code === 'unknown_drug' ? t('rx.unknown_drug') : errText(e));
            return;
        }
        announce(t('rx.added', { drug: chosen.name }));
        chosen = null;
        f.reset();
        rxForm();
        await reload();
        nodes.search.focus();
    }

    // ---- exam orders: the catalogue in a select with a filter
    function examOptions() {
        if (!nodes.examSelect) {
            return;
        }
        const q = nodes.examFilter.value.trim().toLowerCase();
        const sel = nodes.examSelect;
        const keep = sel.value;
        const list = (examList || []).filter((x) => !q || x.name.toLowerCase().includes(q)
                                                 || x.id.includes(q));
        sel.replaceChildren(el('option', { value: '' }, list.length ? t('order.choose') : t('order.none_match')),
            ...list.map((x) => el('option', { value: x.id }, x.name)));
        if (list.some((x) => x.id === keep)) {
            sel.value = keep;
        } else if (q && list.length) {
            sel.value = list[0].id;
        }
    }

    async function addOrder(ev) {
        ev.preventDefault();
        const exam = nodes.examSelect.value;
        // the name as chosen, for the announcement
        const name = nodes.examSelect.selectedOptions[0].textContent;
        nodes.examSelect.setAttribute('aria-invalid', String(!exam));
        if (!exam) {
            formError(nodes.orderError, t('order.choose_first'));
            nodes.examSelect.focus();
            return;
        }
        const note = nodes.orderForm.elements.note.value.trim();
        try {
            await api('POST', `${base}/orders`, { token, body: note ? { exam, note } : { exam } });
        } catch (e) {
            formError(nodes.orderError, errText(e));
            return;
        }
        announce(t('order.added', { exam: name }));
        nodes.orderForm.reset();
        nodes.orderError.hidden = true;
        examOptions();
        await reload();
    }

    // ---- follow-ups
    async function addFollowup(ev) {
        ev.preventDefault();
        const f = nodes.fuForm;
        const kind = f.elements.kind.value;
        const body = { kind };
        if (f.elements.note.value.trim()) body.note = f.elements.note.value.trim();
        if (f.elements.due.value) body.due = f.elements.due.value;
        try {
            await api('POST', `${base}/followups`, { token, body });
        } catch (e) {
            formError(nodes.fuError, errText(e));
            return;
        }
        announce(t('fu.added', { kind: t('fu.kind.' + kind) }));
        f.reset();
        nodes.fuError.hidden = true;
        await reload();
    }

    async function remove(kind, item, label) {
        try {
            rec = await api('DELETE', `${base}/${kind}/${seg(item.id)}`, { token });
            keepDraft();
        } catch (e) {
            if (e.code !== 'not_found') {
                formError(kind === 'prescriptions' ? nodes.rxError : nodes.orderError, errText(e));
                return;
            }
            await reload();
        }
        announce(t('record.removed', { item: label }));
        lists();
        const heading = kind === 'prescriptions' ? nodes.rxHeading : nodes.orderHeading;
        heading.focus();
    }

    // ---- the snapshot, with the patient's consent
    function snap(key, vars = null, kind = 'info') {
        snapState = key ? { key, vars, kind } : null;
        if (nodes.snapStatus) {
            nodes.snapStatus.textContent = key ? t(key, vars || undefined) : '';
            nodes.snapStatus.className = 'record-snap-status' + (key ? ` message ${kind}` : '');
        }
        if (nodes.snapButton) {
            nodes.snapButton.disabled = !!pending;
        }
    }

    function askSnapshot() {
        if (pending) {
            return;
        }
        if (!signal.send({ type: 'snapshot_request', call: call.id })) {
            snap('record.snap_no_connection', null, 'error');
            return;
        }
        pending = { timer: setTimeout(() => { pending = null; snap('record.snap_no_answer', null, 'warn'); }, consentWait) };
        snap('record.snap_waiting');
    }

    async function onConsent(e) {
        const m = e.detail || {};
        if (!pending || m.call !== call.id) {
            return;
        }
        clearTimeout(pending.timer);
        if (!m.granted) {
            pending = null;
            snap('record.snap_refused', null, 'warn');
            return;
        }
        snap('record.snap_taking');
        try {
            const blob = await call.snapshot();
            const type = blob.type === 'image/png' ? 'image/png' : 'image/jpeg';
            await api('POST', `${base}/snapshots?request=${encodeURIComponent(m.request)}`,
                      { token, body: blob, type });
            pending = null;
            snap('record.snap_kept', null, 'ok');
            await reload();
        } catch (err) {
            pending = null;
            snap('record.snap_failed', { error: errText(err) }, 'error');
        }
    }

    function onSignalError(e) {
        const m = e.detail || {};
        if (pending && ['not_connected', 'not_in_call'].includes(m.code)) {
            clearTimeout(pending.timer);
            pending = null;
            snap(m.code === 'not_connected' ? 'record.snap_patient_gone' : 'record.snap_no_call', null, 'error');
        }
    }

    if (live) {
        signal.addEventListener('snapshot_consent', onConsent);
        signal.addEventListener('error', onSignalError);
    }

    function thumbnail(s, i) {
        const img = el('img', { class: 'record-thumb', alt: t('record.snap_alt', { n: i + 1, time: time(s.taken) }) });
        const show = (url) => { img.src = url; };
        if (thumbs.has(s.id)) {
            show(thumbs.get(s.id));
        } else {
            fetch(`/api/v1${base}/snapshots/${seg(s.id)}`, { headers: { Authorization: 'Bearer ' + token }, cache: 'no-store' })
                .then((r) => (r.ok ? r.blob() : Promise.reject(new Error(r.status))))
                .then((b) => {
                    if (destroyed) return;
                    const url = URL.createObjectURL(b);
                    thumbs.set(s.id, url);
                    show(url);
                })
                .catch(() => { img.alt = t('record.snap_missing', { n: i + 1 }); });
        }
        return el('li', {}, el('figure', {}, img, el('figcaption', {}, t('record.snap_caption', { n: i + 1, time: time(s.taken) }))));
    }

    // ---- close and addenda
    async function closeRecord() {
        nodes.closeDialog.close();
        nodes.closeError.hidden = true;
        await save();
        try {
            rec = await api('POST', `${base}/close`, { token });
            keepDraft();
        } catch (e) {
            formError(nodes.closeError, errText(e));
            nodes.closeButton.focus();
            return;
        }
        announce(t('record.closed_now'));
        build();
        if (nodes.addendumForm) {
            nodes.heading.focus();
        }
    }

    async function addAddendum(ev) {
        ev.preventDefault();
        const ta = nodes.addendumForm.elements.text;
        const text = ta.value.trim();
        ta.setAttribute('aria-invalid', String(!text));
        if (!text) {
            formError(nodes.addendumError, t('record.addendum_empty'));
            ta.focus();
            return;
        }
        try {
            await api('POST', `${base}/addenda`, { token, body: { text } });
        } catch (e) {
            formError(nodes.addendumError, errText(e));
            return;
        }
        ta.value = '';
        nodes.addendumError.hidden = true;
        announce(t('record.addendum_added'));
        await reload();
    }

    function formError(box, text) {
        box.textContent = text;
        box.hidden = false;
    }

    // ---- drawing
    function item(text, extra, onRemove, label) {
        const li = el('li', { class: 'record-item' },
            el('div', { class: 'record-item-text' }, el('strong', {}, text),
               ...extra.filter(Boolean).map((x) => el('span', { class: 'record-item-detail' }, x))));
        if (onRemove && rec.status !== 'final') {
            li.append(el('button', { type: 'button', class: 'secondary record-remove',
                                     'aria-label': t('record.remove_label', { item: label || text }),
                                     onclick: onRemove }, t('record.remove')));
        }
        return li;
    }

    function list(node, items, empty) {
        node.replaceChildren(...(items.length ? items : [el('li', { class: 'record-empty' }, t(empty))]));
    }

    function lists() {
        if (!rec || !nodes.rxList) {
            return;
        }
        list(nodes.rxList, rec.prescriptions.map((p) => {
            const name = drugName(p);
            const bits = [[p.dose, p.frequency].filter(Boolean).join(', '),
                [p.days ? t('rx.days_n', { n: p.days }) : '', p.quantity ? t('rx.quantity_n', { n: p.quantity }) : '']
                    .filter(Boolean).join(' · '), p.note];
            return item(name, bits, () => remove('prescriptions', p, name), name);
        }), 'rx.empty');
        list(nodes.orderList, rec.orders.map((o) => {
            const name = named(o, o.exam);
            return item(name, [o.note], () => remove('orders', o, name), name);
        }), 'order.empty');
        list(nodes.fuList, rec.followups.map((f) => item(t('fu.kind.' + f.kind),
            [f.note, f.due ? t('fu.due_on', { date: date(f.due + 'T12:00:00', { year: 'numeric', month: 'long', day: 'numeric' }) }) : ''])),
             'fu.empty');
        if (nodes.snapList) {
            nodes.snapList.replaceChildren(...(rec.snapshots || []).map(thumbnail));
            nodes.snapList.hidden = !(rec.snapshots || []).length;
        }
        nodes.addendaList.replaceChildren(...(rec.addenda || []).map((a) => el('li', { class: 'record-item' },
            el('div', { class: 'record-item-text' },
               el('span', { class: 'record-item-detail' }, when(a.at)),
               el('span', { class: 'record-addendum-text' }, a.text)))));
        nodes.addendaSection.hidden = rec.status !== 'final' && !(rec.addenda || []).length;
    }

    function section(key, ...children) {
        const h = el('h3', { id: id('h-' + key), tabindex: '-1' }, t(key));
        return [el('section', { class: 'record-section', 'aria-labelledby': h.id }, h, ...children), h];
    }

    function build() {
        nodes = {};
        const final = rec && rec.status === 'final';
        const heading = el('h2', { id: id('heading'), tabindex: '-1' }, t('record.heading'));
        nodes.heading = heading;
        const head = el('div', { class: 'record-head' }, heading,
            rec && !loadError ? el('p', { class: 'record-status' + (final ? ' record-final' : '') },
                     final ? t('record.status_final', { when: when(rec.closed) }) : t('record.status_open')) : null);
        if (loadError) {
            root.replaceChildren(head, el('p', { class: 'message error', role: 'alert' }, loadError),
                el('button', { type: 'button', class: 'secondary', onclick: () => { loadError = null; start(); } }, t('common.retry')));
            return;
        }
        if (!rec) {
            root.replaceChildren(head, el('p', {}, t('common.loading')));
            return;
        }

        // the note
        nodes.saved = el('p', { class: 'record-saved', role: 'status', 'aria-live': 'polite', id: id('saved') });
        const note = el('section', { class: 'record-section record-note', 'aria-labelledby': id('h-note') },
            el('div', { class: 'record-note-head' },
               el('h3', { id: id('h-note') }, t('record.note')), final ? null : nodes.saved),
            ...FIELDS.map(noteField));

        // the snapshot
        let snapSection = null;
        if (live && !final) {
            nodes.snapButton = el('button', { type: 'button', class: 'secondary', id: id('snap'),
                                              onclick: askSnapshot }, t('record.snap_ask'));
            nodes.snapStatus = el('p', { class: 'record-snap-status', role: 'status', 'aria-live': 'polite' });
            nodes.snapList = el('ul', { class: 'record-thumbs' });
            [snapSection] = section('record.snapshots', el('p', { class: 'hint' }, t('record.snap_hint')),
                                    nodes.snapButton, nodes.snapStatus, nodes.snapList);
        } else if ((rec.snapshots || []).length) {
            nodes.snapList = el('ul', { class: 'record-thumbs' });
            [snapSection] = section('record.snapshots', nodes.snapList);
        }

        // prescriptions
        nodes.rxList = el('ul', { class: 'record-list', id: id('rx-list') });
        let rxAdd = null;
        if (!final) {
            nodes.search = el('input', { type: 'text', id: id('search'), role: 'combobox', autocomplete: 'off',
                                         'aria-autocomplete': 'list', 'aria-expanded': 'false',
                                         'aria-controls': id('listbox'), 'aria-describedby': id('search-status') });
            nodes.listbox = el('ul', { role: 'listbox', id: id('listbox'), class: 'record-listbox', hidden: true,
                                       'aria-label': t('rx.results_label') });
            nodes.searchStatus = el('p', { class: 'hint', id: id('search-status'), 'aria-live': 'polite' });
            nodes.search.addEventListener('input', () => {
                clearTimeout(searchTimer);
                searchTimer = setTimeout(search, SEARCH_DEBOUNCE);
            });
            nodes.search.addEventListener('keydown', searchKey);
            nodes.search.addEventListener('blur', () => setTimeout(() => { if (!destroyed) openList(false); }, 150));
            const input = (name, key, attrs = {}) => el('div', { class: 'record-field' },
                el('label', { for: id('rx-' + name) }, t(key)),
                el('input', { id: id('rx-' + name), name, ...attrs }));
            nodes.rxDrug = el('p', { class: 'record-chosen', id: id('rx-drug') });
            nodes.rxError = el('p', { class: 'message error', role: 'alert', hidden: true });
            nodes.rxForm = el('form', { class: 'record-form card', hidden: true, 'aria-labelledby': id('rx-drug'),
                                        onsubmit: addRx },
                nodes.rxDrug,
                input('dose', 'rx.dose', { type: 'text', maxlength: '200', required: true }),
                input('frequency', 'rx.frequency', { type: 'text', maxlength: '200', required: true }),
                el('div', { class: 'record-pair' },
                   input('days', 'rx.days', { type: 'number', min: '1', max: '366', inputmode: 'numeric' }),
                   input('quantity', 'rx.quantity', { type: 'number', min: '1', max: '10000', inputmode: 'numeric' })),
                input('note', 'rx.note', { type: 'text', maxlength: '1000' }),
                nodes.rxError,
                el('div', { class: 'actions' },
                   el('button', { type: 'submit' }, t('rx.add')),
                   el('button', { type: 'button', class: 'secondary',
                                  onclick: () => { chosen = null; nodes.rxForm.reset(); rxForm(); nodes.search.focus(); } },
                      t('rx.cancel'))));
            rxAdd = el('div', { class: 'record-add' },
                el('label', { for: nodes.search.id }, t('rx.search')),
                el('div', { class: 'record-combo' }, nodes.search, nodes.listbox),
                nodes.searchStatus, nodes.rxForm);
        }
        let rxSection;
        [rxSection, nodes.rxHeading] = section('rx.heading', nodes.rxList, rxAdd);

        // orders
        nodes.orderList = el('ul', { class: 'record-list', id: id('order-list') });
        let orderAdd = null;
        if (!final) {
            nodes.examFilter = el('input', { type: 'search', id: id('exam-filter'), autocomplete: 'off' });
            nodes.examFilter.addEventListener('input', examOptions);
            nodes.examSelect = el('select', { id: id('exam'), name: 'exam' });
            nodes.orderError = el('p', { class: 'message error', role: 'alert', hidden: true });
            nodes.orderForm = el('form', { class: 'record-form', onsubmit: addOrder },
                el('label', { for: nodes.examFilter.id }, t('order.filter')), nodes.examFilter,
                el('label', { for: nodes.examSelect.id }, t('order.exam')), nodes.examSelect,
                el('label', { for: id('order-note') }, t('order.note')),
                el('input', { type: 'text', id: id('order-note'), name: 'note', maxlength: '1000' }),
                nodes.orderError,
                el('div', { class: 'actions' }, el('button', { type: 'submit' }, t('order.add'))));
            orderAdd = nodes.orderForm;
        } else {
            nodes.orderError = el('p', { hidden: true });
        }
        let orderSection;
        [orderSection, nodes.orderHeading] = section('order.heading', nodes.orderList, orderAdd);

        // follow-ups
        nodes.fuList = el('ul', { class: 'record-list', id: id('fu-list') });
        let fuAdd = null;
        if (!final) {
            nodes.fuError = el('p', { class: 'message error', role: 'alert', hidden: true });
            nodes.fuForm = el('form', { class: 'record-form', onsubmit: addFollowup },
                el('label', { for: id('fu-kind') }, t('fu.kind')),
                el('select', { id: id('fu-kind'), name: 'kind' },
                   ...KINDS.map((k) => el('option', { value: k }, t('fu.kind.' + k)))),
                el('label', { for: id('fu-note') }, t('fu.note')),
                el('input', { type: 'text', id: id('fu-note'), name: 'note', maxlength: '1000' }),
                el('label', { for: id('fu-due') }, t('fu.due')),
                el('input', { type: 'date', id: id('fu-due'), name: 'due' }),
                nodes.fuError,
                el('div', { class: 'actions' }, el('button', { type: 'submit' }, t('fu.add'))));
            fuAdd = nodes.fuForm;
        }
        const [fuSection] = section('fu.heading', nodes.fuList, fuAdd);

        // addenda (once final)
        nodes.addendaList = el('ul', { class: 'record-list record-addenda' });
        let addendumAdd = null;
        if (final) {
            nodes.addendumError = el('p', { class: 'message error', role: 'alert', hidden: true });
            nodes.addendumForm = el('form', { class: 'record-form', onsubmit: addAddendum },
                el('label', { for: id('addendum') }, t('record.addendum')),
                el('textarea', { id: id('addendum'), name: 'text', rows: '3', maxlength: String(MAX) }),
                nodes.addendumError,
                el('div', { class: 'actions' }, el('button', { type: 'submit' }, t('record.addendum_add'))));
            addendumAdd = nodes.addendumForm;
        }
        [nodes.addendaSection] = section('record.addenda', el('p', { class: 'hint' }, t('record.addenda_hint')),
                                         nodes.addendaList, addendumAdd);

        // close
        let closeSection = null;
        if (!final) {
            nodes.closeError = el('p', { class: 'message error', role: 'alert', hidden: true });
            nodes.closeButton = el('button', { type: 'button', class: 'big', id: id('close'),
                                               onclick: () => nodes.closeDialog.showModal() }, t('record.close'));
            nodes.closeDialog = el('dialog', { class: 'record-dialog', 'aria-labelledby': id('close-q') },
                el('h2', { id: id('close-q') }, t('record.close_question')),
                el('p', {}, t('record.close_text')),
                el('div', { class: 'actions' },
                   el('button', { type: 'button', id: id('close-yes'), onclick: closeRecord }, t('record.close_yes')),
                   el('button', { type: 'button', class: 'secondary', id: id('close-no'),
                                  onclick: () => nodes.closeDialog.close() }, t('record.close_no'))));
            closeSection = el('div', { class: 'record-close' }, nodes.closeError, nodes.closeButton, nodes.closeDialog);
        }

        root.replaceChildren(...[head, note, snapSection, rxSection, orderSection, fuSection,
                                 nodes.addendaSection, closeSection].filter(Boolean));
        root.classList.toggle('record-is-final', !!final);
        if (saved.key) {
            indicator(saved.key, saved.vars);
        }
        if (snapState) {
            snap(snapState.key, snapState.vars, snapState.kind);
        }
        rxForm();
        examOptions();
        lists();
    }

    // the record from the server; the note being typed stays as typed
    function keepDraft() {
        if (!dirty && !saving) {
            for (const f of FIELDS) {
                draft[f] = (rec.note && rec.note[f]) || '';
            }
        }
    }

    async function reload() {
        try {
            rec = await api('GET', base, { token });
        } catch (e) {
            return;
        }
        keepDraft();
        lists();
    }

    async function start() {
        build();
        try {
            rec = await api('GET', base, { token });
        } catch (e) {
            loadError = errText(e);
            build();
            return;
        }
        if (destroyed) {
            return;
        }
        keepDraft();
        build();
        loadExams();
    }

    // a language switch: everything drawn again, the typing kept
    const onLanguage = () => {
        const focused = document.activeElement && root.contains(document.activeElement)
            ? document.activeElement.id : null;
        build();
        if (focused && document.getElementById(focused)) {
            document.getElementById(focused).focus();
        }
    };
    document.addEventListener('teleclinic:language', onLanguage);

    start();

    return {
        // saves what was typed (it goes on after the panel is gone)
        destroy() {
            // a save in flight sends the rest after it (the loop in save())
            if (dirty && rec && rec.status !== 'final' && !saving) {
                save();
            }
            destroyed = true;
            clearTimeout(searchTimer);
            if (pending) {
                clearTimeout(pending.timer);
            }
            if (live) {
                signal.removeEventListener('snapshot_consent', onConsent);
                signal.removeEventListener('error', onSignalError);
            }
            document.removeEventListener('teleclinic:language', onLanguage);
            window.removeEventListener('pagehide', onPageHide);
            for (const url of thumbs.values()) {
                URL.revokeObjectURL(url);
            }
            root.remove();
        },
        // for the console: resolves once the note typed so far is saved
        flush: () => save()
    };
}
