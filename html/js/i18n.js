// The app's strings: one message table per language (html/i18n/LANG.js),
// chosen by the person's earlier choice on this device, else by the
// browser's languages, else English.  Pages name their strings with
// data-i18n attributes; code asks t().  No text of the app lives elsewhere.

const LANGS = { en: 'en', zh: 'zh-CN' };
const KEY = 'teleclinic.lang';

let table = {};
let current = 'en';

function pick() {
    const saved = localStorage.getItem(KEY);
    if (saved && LANGS[saved]) {
        return saved;
    }
    for (const l of navigator.languages || [navigator.language || 'en']) {
        const base = l.toLowerCase().split('-')[0];
        if (LANGS[base]) {
            return base;
        }
    }
    return 'en';
}

export async function load(lang = pick()) {
    current = LANGS[lang] ? lang : 'en';
    table = (await import(`../i18n/${current}.js`)).default;
    document.documentElement.lang = LANGS[current];
    return current;
}

export function lang() {
    return current;
}

// the BCP 47 tag for Intl and speechSynthesis
export function locale() {
    return LANGS[current];
}

export function choose(lang) {
    localStorage.setItem(KEY, lang);
}

// t('queue.position', {n: 3}): the string with {n} replaced; a missing key
// shows as itself, so a gap is visible in the page and in the tests
export function t(key, vars) {
    let s = table[key];
    if (s === undefined) {
        console.error('i18n: no string ' + key + ' in ' + current);
        return key;
    }
    if (vars) {
        s = s.replace(/\{(\w+)\}/g, (m, k) => (k in vars ? String(vars[k]) : m));
    }
    return s;
}

export function has(key) {
    return key in table;
}

// fills every element under root that names a string:
//   data-i18n="key"                       its text
//   data-i18n-attr="aria-label:key;placeholder:key2"   attributes
export function apply(root = document) {
    for (const el of root.querySelectorAll('[data-i18n]')) {
        el.textContent = t(el.dataset.i18n);
    }
    for (const el of root.querySelectorAll('[data-i18n-attr]')) {
        for (const pair of el.dataset.i18nAttr.split(';')) {
            const [attr, key] = pair.split(':');
            el.setAttribute(attr.trim(), t(key.trim()));
        }
    }
}

// dates and times in the page's language and the browser's time zone
export function date(iso, opts = { weekday: 'long', day: 'numeric', month: 'long' }) {
    return new Intl.DateTimeFormat(locale(), opts).format(new Date(iso));
}

export function time(iso) {
    return new Intl.DateTimeFormat(locale(), { hour: '2-digit', minute: '2-digit' })
        .format(new Date(iso));
}

export function when(iso) {
    return date(iso, { weekday: 'long', day: 'numeric', month: 'long',
                       hour: '2-digit', minute: '2-digit' });
}

// a drug's or an exam's name in the page's language: the record and the
// formulary give the name and its translations by language ("names")
export function named(item, id) {
    const names = item.names || {};
    return names[current] || item.name || id || '';
}
