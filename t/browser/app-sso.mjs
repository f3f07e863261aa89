// The console signs in by the hospital's SSO where there is one: the
// test's nginx takes the doctor's id from a header (t/114), which the
// browser sends as the SSO in front would have set it.
import { launch, person, ok, done, accessible, screenshot, DESKTOP } from '../lib/browser.mjs';

const browser = await launch();

try {
    const sso = await person(browser, { viewport: DESKTOP, name: 'doctor-sso' });
    await sso.context().setExtraHTTPHeaders({ 'X-Test-SSO-User': 'jonas-weber' });
    const asked = [];
    sso.on('request', (q) => { if (q.url().includes('/api/v1/doctor/login')) asked.push(q.method()); });
    await sso.goto('/doctor.html');
    await sso.waitForSelector('[data-view="console"]:not([hidden])', { timeout: 15000 });
    ok(/Jonas Weber/.test(await sso.textContent('#console-doctor')), 'the SSO-named doctor has the console');
    ok(await sso.isHidden('[data-view="signin"]'), 'without the password form');
    ok(asked.join(',') === 'GET,POST', 'the console asked how, then signed in with an empty body', asked);
    await accessible(sso, 'console by SSO');
    await screenshot(sso, 'console-by-sso');

    const other = await person(browser, { viewport: DESKTOP, name: 'doctor-no-sso' });
    await other.goto('/doctor.html');
    await other.waitForSelector('[data-view="signin"]:not([hidden])', { timeout: 15000 });
    ok(true, 'no SSO name: the password form');

    const ghost = await person(browser, { viewport: DESKTOP, name: 'doctor-ghost' });
    await ghost.context().setExtraHTTPHeaders({ 'X-Test-SSO-User': 'not-a-doctor' });
    await ghost.goto('/doctor.html');
    await ghost.waitForSelector('[data-view="signin"]:not([hidden])', { timeout: 15000 });
    ok(true, 'an SSO name not in the directory: the password form, no console');
    ok(sso.consoleErrors.length === 0, 'no console errors', sso.consoleErrors);
} finally {
    await browser.close();
}
done();
