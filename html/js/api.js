// The module's HTTP API (docs/api.md) from the browser: JSON in and out,
// the token in the Authorization header only (never in a URL), errors as
// ApiError with the server's code, so pages can say what went wrong in
// the person's language (i18n keys error.CODE).

import { t, has } from './i18n.js';

export class ApiError extends Error {
    constructor(status, code, message, field) {
        super(message);
        this.status = status;
        this.code = code;
        this.field = field;
    }

    // what to show: our own words for the code, else the server's message
    text() {
        if (has('error.' + this.code)) {
            return t('error.' + this.code);
        }
        return this.message || t('error.unknown');
    }
}

export async function api(method, path, { token, body, type } = {}) {
    const headers = {};
    if (token) {
        headers.Authorization = 'Bearer ' + token;
    }
    let payload;
    if (body instanceof Blob) {
        headers['Content-Type'] = type || body.type;
        payload = body;
    } else if (body !== undefined) {
        headers['Content-Type'] = 'application/json';
        payload = JSON.stringify(body);
    }

    let r;
    try {
        r = await fetch('/api/v1' + path, { method, headers, body: payload,
                                             cache: 'no-store' });
    } catch (e) {
        throw new ApiError(0, 'network', e.message);
    }

    let json = null;
    try {
        json = await r.json();
    } catch (e) {
        json = null;
    }
    if (!r.ok) {
        const err = (json && json.error) || {};
        throw new ApiError(r.status, err.code || 'http_' + r.status,
                           err.message || r.statusText, err.field);
    }
    return json;
}

// the ID part of a path, escaped
export function seg(s) {
    return encodeURIComponent(s);
}
