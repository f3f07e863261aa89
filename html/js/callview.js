// The call on screen: the other person's video large, one's own small
// (muted, mirrored), large labelled buttons (microphone, camera, switch
// camera where there is another, share the screen where the browser can,
// hang up), the connection quality in words and a symbol (not colour
// alone), and a state line (connecting, reconnecting) that is announced.
//
//   const view = mountCallView(container, call, { role: 'patient' });
//   view.destroy();

import { el, announce } from './ui.js';
import { t } from './i18n.js';

const SYMBOL = { good: '●●●', fair: '●●○', poor: '●○○' };

function isPhone() {
    return /Android|iPhone|iPad|Mobile/i.test(navigator.userAgent)
           || (navigator.maxTouchPoints > 0 && matchMedia('(pointer: coarse)').matches);
}

// the view's styles, for a page that does not link them itself
function styles() {
    if (!document.querySelector('link[href="/call.css"]')) {
        document.head.append(el('link', { rel: 'stylesheet', href: '/call.css' }));
    }
}

export function mountCallView(container, call, { role = 'patient' } = {}) {
    styles();
    const remote = el('video', { class: 'call-remote', autoplay: true, playsinline: true,
                                 'aria-label': t(role === 'doctor' ? 'call.remote_patient' : 'call.remote_doctor') });
    const local = el('video', { class: 'call-local', autoplay: true, playsinline: true, muted: true,
                                'aria-label': t('call.local') });
    local.muted = true;
    const stateLine = el('p', { class: 'call-state', id: 'call-state' });
    const quality = el('p', { class: 'call-quality', id: 'call-quality' });
    const qSym = el('span', { class: 'q-symbol', 'aria-hidden': 'true' });
    const qText = el('span', { class: 'q-text' });
    quality.append(qSym, ' ', qText);

    const button = (id, key, cls) => el('button', { type: 'button', id, class: cls }, t(key));
    const mute = button('call-mute', 'call.mute', 'secondary');
    mute.setAttribute('aria-pressed', 'false');
    const cam = button('call-camera', 'call.camera_off', 'secondary');
    cam.setAttribute('aria-pressed', 'false');
    const sw = button('call-switch', 'call.switch_camera', 'secondary');
    sw.hidden = true;
    const share = button('call-share', 'call.share', 'secondary');
    share.setAttribute('aria-pressed', 'false');
    share.hidden = !(navigator.mediaDevices && navigator.mediaDevices.getDisplayMedia) || isPhone();
    const hang = button('call-hangup', 'call.hangup', 'danger');

    mute.onclick = () => {
        const on = mute.getAttribute('aria-pressed') !== 'true';
        call.mute(on);
        mute.setAttribute('aria-pressed', String(on));
        announce(t(on ? 'call.muted' : 'call.unmuted'));
    };
    cam.onclick = () => {
        const off = cam.getAttribute('aria-pressed') !== 'true';
        call.camera(off);
        cam.setAttribute('aria-pressed', String(off));
        announce(t(off ? 'call.camera_is_off' : 'call.camera_is_on'));
    };
    sw.onclick = async () => {
        try {
            await call.switchCamera();
            announce(t('call.switched'));
        } catch (e) {
            announce(t('call.switch_failed'), true);
        }
    };
    share.onclick = async () => {
        const on = !call.sharing;
        try {
            await call.shareScreen(on);
        } catch (e) {
            return;
        }
    };
    hang.onclick = () => call.hangup();

    const controls = el('div', { class: 'call-controls', role: 'group', 'aria-label': t('call.controls') },
                        mute, cam, sw, share, hang);
    const stage = el('div', { class: 'call-stage' }, remote, local);
    const root = el('section', { class: 'call-view', 'aria-label': t('call.heading') },
                    el('h2', { class: 'visually-hidden' }, t('call.heading')),
                    stage, el('div', { class: 'call-status' }, stateLine, quality), controls);
    container.replaceChildren(root);

    const setState = (state, speak) => {
        stateLine.textContent = t('call.state.' + state);
        root.dataset.state = state;
        if (speak) {
            announce(t('call.state.' + state), state === 'reconnecting');
        }
    };
    const setLocal = () => {
        local.srcObject = call.localStream;
        local.classList.toggle('mirrored', !call.sharing);
        share.setAttribute('aria-pressed', String(call.sharing));
        share.textContent = t(call.sharing ? 'call.share_stop' : 'call.share');
    };
    const setRemote = (stream) => {
        if (remote.srcObject !== stream) {
            remote.srcObject = stream;
        }
        remote.play().catch(() => {});
    };
    const onState = (e) => setState(e.detail.state, true);
    const onRemote = (e) => setRemote(e.detail.stream);
    const onLocal = () => setLocal();
    const onQuality = (e) => {
        const q = e.detail;
        qSym.textContent = SYMBOL[q.level];
        qText.textContent = t('call.quality.' + q.level);
        quality.dataset.level = q.level;
    };
    call.addEventListener('state', onState);
    call.addEventListener('remote', onRemote);
    call.addEventListener('local', onLocal);
    call.addEventListener('quality', onQuality);
    setState(call.state, false);
    setLocal();
    if (call.remoteStream) {
        setRemote(call.remoteStream);
    }
    qSym.textContent = '○○○';
    qText.textContent = t('call.quality.unknown');

    if (navigator.mediaDevices && navigator.mediaDevices.enumerateDevices) {
        navigator.mediaDevices.enumerateDevices().then((list) => {
            const cams = list.filter((d) => d.kind === 'videoinput').length;
            sw.hidden = !(cams > 1 || (cams > 0 && isPhone()));
        }).catch(() => {});
    }

    return {
        root,
        destroy() {
            call.removeEventListener('state', onState);
            call.removeEventListener('remote', onRemote);
            call.removeEventListener('local', onLocal);
            call.removeEventListener('quality', onQuality);
            remote.srcObject = null;
            local.srcObject = null;
            root.remove();
        }
    };
}
