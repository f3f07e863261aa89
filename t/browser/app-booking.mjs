// The patient books through the pages: phone size in English, desktop in
// Chinese with large text and high contrast, a time taken meanwhile, a bad
// phone number, and 320 px wide without horizontal scroll.
import { launch, person, ok, note, done, accessible, screenshot,
         PHONE, NARROW, DESKTOP, BASE, appErrors, missingKeys } from '../lib/browser.mjs';
import { readFileSync } from 'node:fs';

const browser = await launch();

// a time taken meanwhile (409), a bad phone number (422)
const EXPECTED = [409, 422];

async function noScroll(page, state, width) {
    const w = await page.evaluate(() => document.documentElement.scrollWidth);
    ok(w <= width, `no horizontal scroll at ${width} px (${state}): ${w}`);
}

async function step(page, state, width) {
    await page.waitForTimeout(150);
    await accessible(page, state);
    await screenshot(page, state);
    if (width) {
        await noScroll(page, state, width);
    }
}

// walks the steps to the details view; returns the chosen slot id
async function toDetails(page, { department = 'dermatology', doctor = 'Dr. Anna Berg', width, tag }) {
    await page.goto('/');
    await page.waitForSelector('#departments button');
    await step(page, tag + '-department', width);
    await page.locator('#departments button', { hasText: /Dermatology|皮肤/ }).first().click();
    await page.waitForSelector('[data-view="doctor"]:not([hidden]) .card');
    await page.waitForFunction(() => !document.querySelector('#doctors .card p.muted')
        .textContent.match(/…/));
    await step(page, tag + '-doctor', width);
    const next = await page.locator('#doctors .card p.muted').first().textContent();
    ok(/\d/.test(next), `the doctor shows the next free times (${tag}): ${next}`);
    await page.locator('#doctors .card button').first().click();
    await page.waitForSelector('[data-view="slot"]:not([hidden]) #days button[aria-pressed="true"]');
    // tomorrow: a day with free times on weekdays and Saturdays
    await page.locator('#days button').nth(1).click();
    await page.waitForSelector('#slots button');
    let btn = page.locator('#slots button');
    if (await btn.count() === 0) {
        await page.locator('#days button').nth(2).click();
        await page.waitForSelector('#slots button');
    }
    await page.locator('#slots button').nth(2).click();
    ok(await page.locator('#slots button').nth(2).getAttribute('aria-pressed') === 'true',
       `the chosen time is pressed (${tag})`);
    await step(page, tag + '-slot', width);
    const slot = await page.locator('#slots button[aria-pressed="true"]').getAttribute('data-slot');
    await page.click('#slot-next');
    await page.waitForSelector('[data-view="details"]:not([hidden])');
    return slot;
}

// ---- phone size, English
{
    const page = await person(browser, { viewport: PHONE, name: 'en' });
    const slot = await toDetails(page, { tag: 'en', width: PHONE.width });
    ok(/Step 4 of 4/.test(await page.textContent('#step-4')), 'the step indicator says Step 4 of 4');
    await page.fill('#name', 'Jane Roe');
    await page.fill('#phone', '+49 30 1234567');
    await page.fill('#reason', 'rash on the arm');
    await step(page, 'en-details', PHONE.width);
    await page.click('#book-submit');
    await page.waitForSelector('[data-view="done"]:not([hidden])');
    await step(page, 'en-done', PHONE.width);
    const link = await page.inputValue('#join-link');
    ok(/\/visit\.html\?appointment=[0-9a-f]+#token=/.test(link), 'the confirmation shows the join link', link);
    ok(link.startsWith(BASE), 'the link is on this origin', link);

    const [dl] = await Promise.all([page.waitForEvent('download'), page.click('#ics')]);
    const ics = readFileSync(await dl.path(), 'utf8');
    const [, d, hm] = slot.match(/\.(\d{8})\.(\d{4})$/);
    const local = new Date(+d.slice(0, 4), +d.slice(4, 6) - 1, +d.slice(6, 8), +hm.slice(0, 2), +hm.slice(2));
    const want = local.toISOString().replace(/[-:]/g, '').replace(/\.\d+/, '');
    ok(ics.includes('\r\nDTSTART:' + want + '\r\n'), `the .ics has DTSTART:${want}`, ics);
    ok(ics.replace(/\r\n /g, '').includes(link), 'the .ics carries the join link');
    ok(/^BEGIN:VCALENDAR\r\n/.test(ics) && /END:VCALENDAR\r\n$/.test(ics) && /\r\nUID:/.test(ics),
       'the .ics is a VCALENDAR with CRLF lines and a UID');

    await page.click('#open-visit');
    await page.waitForURL(/visit\.html/);
    await page.waitForFunction(() => document.body.textContent.includes('Jane Roe'), null, { timeout: 5000 })
        .catch(() => {});
    ok((await page.textContent('body')).includes('Jane Roe'), 'the join link opens the appointment');
    await page.goto('/guide.html');
    await page.waitForSelector('h1:not(:empty)');
    await step(page, 'en-guide', PHONE.width);
    ok(/camera/i.test(await page.textContent('main')), 'the guide page loads');
    ok(appErrors(page, EXPECTED).length === 0, 'no console errors (en)', appErrors(page, EXPECTED));
    await page.context().close();
}

// ---- desktop, Chinese, large text and high contrast; a taken slot
{
    const page = await person(browser, { viewport: DESKTOP, locale: 'zh-CN', name: 'zh' });
    await page.goto('/');
    await page.waitForSelector('#mode-text');
    await page.click('#mode-text');
    await page.click('#mode-contrast');
    await page.reload();
    await page.waitForSelector('#departments button');
    const cls = await page.evaluate(() => document.documentElement.className);
    ok(/text-large/.test(cls) && /contrast-high/.test(cls), 'large text and high contrast persist after a reload', cls);
    ok(await page.getAttribute('#mode-text', 'aria-pressed') === 'true', 'the large-text button stays pressed');
    ok(await page.evaluate(() => document.documentElement.lang) === 'zh-CN', 'the page is in Chinese');
    const slot = await toDetails(page, { tag: 'zh' });
    await page.fill('#name', '王芳');
    await page.fill('#phone', '+86 138 0013 8000');
    // someone else books it meanwhile
    const r = await fetch(BASE + '/api/v1/appointments', {
        method: 'POST', headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ slot, patient: { name: 'Other', phone: '+4930999999' } })
    });
    ok(r.status === 201, 'the slot is booked through the API meanwhile');
    await page.click('#book-submit');
    await page.waitForSelector('[data-view="slot"]:not([hidden]) #slot-error:not([hidden])');
    ok((await page.textContent('#slot-error')).includes('请选择'), 'the page says the time was taken (zh)',
       await page.textContent('#slot-error'));
    ok(await page.locator(`#slots button[data-slot="${slot}"]`).count() === 0, 'the times are refreshed without it');
    await step(page, 'zh-taken');
    await page.locator('#slots button').first().click();
    await page.click('#slot-next');
    await page.click('#book-submit');
    await page.waitForSelector('[data-view="done"]:not([hidden])');
    await step(page, 'zh-done');
    ok(appErrors(page, EXPECTED).length === 0, 'no console errors (zh)', appErrors(page, EXPECTED));
    await page.context().close();
}

// ---- 320 px, a bad phone number at the field
{
    const page = await person(browser, { viewport: NARROW, name: 'narrow' });
    await toDetails(page, { tag: 'narrow', width: 320 });
    await page.fill('#name', 'Jane Roe');
    await page.fill('#phone', '12');
    await page.click('#book-submit');
    await page.waitForSelector('#phone-error:not([hidden])');
    ok(await page.getAttribute('#phone', 'aria-invalid') === 'true', 'the phone field is marked invalid');
    ok((await page.getAttribute('#phone', 'aria-describedby')).includes('phone-error'),
       'the error describes the field');
    ok(/country code/.test(await page.textContent('#phone-error')), 'the phone error says what to do');
    await step(page, 'narrow-phone-error', 320);
    await page.fill('#phone', '+49 30 1234567');
    await page.click('#book-submit');
    await page.waitForSelector('[data-view="done"]:not([hidden])');
    await step(page, 'narrow-done', 320);
    await page.goto('/guide.html');
    await page.waitForSelector('h1:not(:empty)');
    await noScroll(page, 'guide', 320);
    ok(appErrors(page, EXPECTED).length === 0, 'no console errors (narrow)', appErrors(page, EXPECTED));
    const missing = missingKeys(page);
    ok(missing.length === 0, 'no i18n key missing');
    await page.context().close();
}

await browser.close();
done();
