// What every page shares: the bar with the language switch and the
// large-text and high-contrast modes (remembered on this device), the
// announcer that tells screen readers of status changes (aria-live), and
// small DOM helpers.

import { load, apply, t, lang, choose } from './i18n.js';

const MODES = { text: 'large', contrast: 'high' };

// applied before the first paint by the page's <script> in <head> too
export function modes() {
    for (const m in MODES) {
        document.documentElement.classList.toggle(
            m + '-' + MODES[m], localStorage.getItem('teleclinic.' + m) === MODES[m]);
    }
}

function toggle(button, m) {
    const on = localStorage.getItem('teleclinic.' + m) !== MODES[m];
    if (on) {
        localStorage.setItem('teleclinic.' + m, MODES[m]);
    } else {
        localStorage.removeItem('teleclinic.' + m);
    }
    button.setAttribute('aria-pressed', String(on));
    modes();
}

// the bar's signs for a phone, drawn (no text of their own, so that the
// button's name is all that is said): [path, filled] in a 24 x 24 box
const SIGNS = {
    text: [['M2 20 8.5 4 15 20M4.6 14h7.8M15.5 20l3.75-9L23 20M16.8 17h4.9', false]],
    contrast: [['M12 3a9 9 0 1 0 0 18 9 9 0 1 0 0-18z', false], ['M12 3a9 9 0 0 0 0 18z', true]]
};

function sign(name) {
    const ns = 'http://www.w3.org/2000/svg';
    const svg = document.createElementNS(ns, 'svg');
    svg.setAttribute('viewBox', '0 0 24 24');
    svg.setAttribute('class', 'bar-icon');
    svg.setAttribute('aria-hidden', 'true');
    svg.setAttribute('focusable', 'false');
    for (const [d, filled] of SIGNS[name]) {
        const p = document.createElementNS(ns, 'path');
        p.setAttribute('d', d);
        if (filled) {
            p.setAttribute('class', 'filled');
        }
        svg.append(p);
    }
    return svg;
}

// a bar button: its words, and for a mode the sign that a phone shows
// instead of them (teleclinic.css); the name is the words either way
function barButton(attrs, key, mode) {
    return el('button', { type: 'button', 'aria-label': t(key), class: mode ? 'bar-mode' : null, ...attrs },
              el('span', { class: 'bar-text' }, t(key)), mode ? sign(mode) : null);
}

function bar() {
    const nav = document.getElementById('bar');
    if (!nav) {
        return;
    }
    nav.setAttribute('aria-label', t('bar.label'));
    nav.replaceChildren();

    const other = lang() === 'zh' ? 'en' : 'zh';
    const l = barButton({ class: 'bar-lang', lang: other === 'zh' ? 'zh-CN' : 'en', id: 'lang-switch' },
                        'bar.other_language');
    l.onclick = async () => {
        choose(other);
        await start();
        document.dispatchEvent(new CustomEvent('teleclinic:language'));
    };

    const big = barButton({ id: 'mode-text',
                            'aria-pressed': String(localStorage.getItem('teleclinic.text') === 'large') },
                          'bar.large_text', 'text');
    big.onclick = () => toggle(big, 'text');

    const hc = barButton({ id: 'mode-contrast',
                           'aria-pressed': String(localStorage.getItem('teleclinic.contrast') === 'high') },
                         'bar.high_contrast', 'contrast');
    hc.onclick = () => toggle(hc, 'contrast');

    nav.append(l, big, hc);
}

// loads the language, fills the page's strings and the bar; a page calls
// it first and again listens for 'teleclinic:language' to redraw its parts
export async function start() {
    modes();
    await load();
    apply();
    bar();
    const title = document.querySelector('title[data-i18n]');
    if (title) {
        document.title = t(title.dataset.i18n);
    }
}

// status changes for screen readers: polite by default, assertive for
// what needs the person now (a call ringing, the connection lost)
export function announce(text, urgent = false) {
    const id = urgent ? 'announce-urgent' : 'announce';
    let region = document.getElementById(id);
    if (!region) {
        region = el('div', { id, class: 'visually-hidden',
                             'aria-live': urgent ? 'assertive' : 'polite',
                             role: urgent ? 'alert' : 'status' });
        document.body.append(region);
    }
    // a change of text is what screen readers announce
    region.textContent = '';
    setTimeout(() => { region.textContent = text; }, 50);
}

// el('button', {class: 'x', onclick: f}, 'text', child...)
export function el(tag, attrs = {}, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
        if (v === undefined || v === null || v === false) {
            continue;
        }
        if (k.startsWith('on') && typeof v === 'function') {
            e.addEventListener(k.substring(2), v);
        } else if (k === 'class') {
            e.className = v;
        } else {
            e.setAttribute(k, v === true ? '' : v);
        }
    }
    e.append(...children.filter((c) => c !== undefined && c !== null));
    return e;
}

export function $(id) {
    return document.getElementById(id);
}

// shows one of the elements with data-view in a page, hides the others,
// and moves focus to its heading so keyboard and screen reader users
// land where the page changed
export function show(view) {
    for (const v of document.querySelectorAll('[data-view]')) {
        v.hidden = v.dataset.view !== view;
    }
    const h = document.querySelector(`[data-view="${view}"] h1, [data-view="${view}"] h2`);
    if (h) {
        h.setAttribute('tabindex', '-1');
        h.focus({ preventScroll: false });
    }
}
