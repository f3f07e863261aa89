// Applied in <head> before the first paint (a classic script, not a
// module, so it runs at once): the large-text and high-contrast modes
// this device remembers, so a page never flashes in the other look.
(function () {
    'use strict';
    var c = document.documentElement.classList;
    try {
        if (localStorage.getItem('teleclinic.text') === 'large') {
            c.add('text-large');
        }
        if (localStorage.getItem('teleclinic.contrast') === 'high') {
            c.add('contrast-high');
        }
    } catch (e) {
        // storage refused (private mode): the default look
    }
}());
