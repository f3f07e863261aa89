// English: every string of the app (html/js/i18n.js).  Keys are grouped by
// the part of the app that shows them; zh.js has the same keys.
export default {
    // ---- every page
    'app.name': 'Video consultation',
    'app.skip': 'Skip to the content',
    'bar.label': 'Display and language',
    'bar.other_language': '中文',
    'bar.large_text': 'Larger text',
    'bar.high_contrast': 'High contrast',
    'common.loading': 'Loading…',
    'common.close': 'Close',
    'common.back': 'Back',
    'common.next': 'Next',
    'common.yes': 'Yes',
    'common.no': 'No',
    'common.retry': 'Try again',
    'common.guide_link': 'How a video consultation works',

    // ---- errors by the server's code (docs/api.md, docs/protocol.md)
    'error.unknown': 'Something went wrong. Please try again.',
    'error.network': 'No connection to the clinic. Check your internet connection and try again.',
    'error.unauthorized': 'This link is no longer valid. Use the newest link you received.',
    'error.forbidden': 'You may not see this.',
    'error.not_found': 'Not found.',
    'error.slot_taken': 'Someone has just booked this time. Please choose another one.',
    'error.slot_in_past': 'This time has already passed. Please choose another one.',
    'error.slot_too_far': 'This day is too far ahead to book.',
    'error.invalid_phone': 'Please enter the mobile number with the country code, e.g. +49 30 1234567.',
    'error.invalid_length': 'This text is too long or empty.',
    'error.invalid_characters': 'This text contains characters that cannot be used.',
    'error.missing_field': 'Please fill in this field.',
    'error.not_cancellable': 'This appointment can no longer be cancelled.',
    'error.rate_limited': 'Too many tries. Please wait a moment and try again.',
    'error.zone_full': 'The clinic is very busy. Please try again in a few minutes.',
    'error.storage_unavailable': 'The clinic cannot save this now. Please try again in a few minutes.',
    'error.bad_credentials': 'The doctor or the password is wrong.',
    'error.too_many_attempts': 'Too many wrong passwords. Please wait a few minutes.',
    'error.busy': 'Busy. Please try again in a moment.',
    'error.record_final': 'The record is closed; add an addendum instead.',
    'error.visit_not_held': 'The visit has not taken place yet.',
    'error.no_consent': 'The patient has not agreed to a picture.',
    'error.already_rated': 'You have already rated this visit. Thank you!',
    'error.no_record': 'The summary is not ready yet.',
    'error.too_early': 'The waiting room is not open yet.',
    'error.visit_over': 'This appointment is over.',

    // ---- booking, guide, my appointment, summary and rating (patient)
    'book.title': 'Book a video consultation',

    // ---- waiting room, device check, call, snapshot consent (both)
    'wait.title': 'Waiting room',

    // ---- doctor's console and the visit record
    'doctor.title': 'Doctor’s console',
};
