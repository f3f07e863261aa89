// The device check before the waiting room: the camera's picture, a
// microphone level meter (an AudioContext analyser), a test tone for the
// speaker, and a choice of camera and microphone where there are several.
// Whatever is refused or missing, the person can go on with what works.
//
//   const check = await mountDeviceCheck(container, { onReady(stream) {} });

import { el } from './ui.js';
import { t } from './i18n.js';

let audioCtx = null;

// one AudioContext for the page (a tone, the chime, the meter)
export function audio() {
    if (!audioCtx) {
        audioCtx = new (window.AudioContext || window.webkitAudioContext)();
    }
    if (audioCtx.state === 'suspended') {
        audioCtx.resume().catch(() => {});
    }
    return audioCtx;
}

// a short tone or a sequence of them: [[hz, seconds], ...]
export function tones(list, volume = 0.25) {
    const ctx = audio();
    let at = ctx.currentTime + 0.02;
    for (const [hz, len] of list) {
        const o = ctx.createOscillator();
        const g = ctx.createGain();
        o.frequency.value = hz;
        g.gain.setValueAtTime(0, at);
        g.gain.linearRampToValueAtTime(volume, at + 0.02);
        g.gain.linearRampToValueAtTime(0, at + len);
        o.connect(g).connect(ctx.destination);
        o.start(at);
        o.stop(at + len + 0.05);
        at += len + 0.05;
    }
}

export async function getMedia({ camera, microphone } = {}) {
    const want = {
        audio: microphone ? { deviceId: { exact: microphone } } : true,
        video: camera ? { deviceId: { exact: camera } } : { facingMode: 'user' }
    };
    const result = { stream: new MediaStream(), audioError: null, videoError: null };
    try {
        result.stream = await navigator.mediaDevices.getUserMedia(want);
        return result;
    } catch (e) {
        // try each on its own: one may work without the other
    }
    for (const kind of ['audio', 'video']) {
        try {
            const s = await navigator.mediaDevices.getUserMedia({ [kind]: want[kind] });
            s.getTracks().forEach((tr) => result.stream.addTrack(tr));
        } catch (e) {
            result[kind + 'Error'] = e.name || 'Error';
        }
    }
    return result;
}

export function mountDeviceCheck(container, { connection } = {}) {
    const preview = el('video', { class: 'device-preview mirrored', id: 'preview', autoplay: true,
                                  playsinline: true, muted: true, 'aria-label': t('device.preview') });
    preview.muted = true;
    const camStatus = el('p', { id: 'cam-status' });
    const camSelect = el('select', { id: 'cam-select' });
    const camLabel = el('label', { for: 'cam-select', class: 'label' }, t('device.choose_camera'));
    const camChoice = el('div', { class: 'device-row', hidden: true }, camLabel, camSelect);
    const meter = el('meter', { id: 'mic-meter', min: '0', max: '100', value: '0',
                                'aria-labelledby': 'mic-meter-label' });
    const micStatus = el('p', { id: 'mic-status' });
    const micSelect = el('select', { id: 'mic-select' });
    const micChoice = el('div', { class: 'device-row', hidden: true },
                         el('label', { for: 'mic-select', class: 'label' }, t('device.choose_microphone')), micSelect);
    const tone = el('button', { type: 'button', id: 'test-sound', class: 'secondary' }, t('device.test_sound'));
    tone.onclick = () => tones([[660, 0.35], [880, 0.35]]);
    const conn = el('p', { id: 'conn-status' }, t('device.not_connected'));
    const help = el('div', { id: 'device-help', class: 'message warn', hidden: true },
                    el('p', { id: 'device-help-text' }, t('device.refused')),
                    el('p', {}, el('a', { href: '/guide.html' }, t('device.help'))));

    const root = el('div', { class: 'device-check' },
        help,
        el('div', { class: 'device-row card' },
           el('h2', {}, t('device.camera')), preview, camStatus, camChoice),
        el('div', { class: 'device-row card' },
           el('h2', {}, t('device.microphone')),
           el('label', { id: 'mic-meter-label', for: 'mic-meter' }, t('device.level')), meter,
           el('p', { class: 'hint' }, t('device.level_hint')), micStatus, micChoice),
        el('div', { class: 'device-row card' },
           el('h2', {}, t('device.speaker')), el('p', { class: 'hint' }, t('device.test_sound_hint')), tone),
        el('div', { class: 'device-row card' }, el('h2', {}, t('device.connection')), conn));
    container.replaceChildren(root);

    const state = { stream: null, raf: 0, source: null };

    function stopMeter() {
        cancelAnimationFrame(state.raf);
        clearInterval(state.raf);
        if (state.source) {
            state.source.disconnect();
            state.source = null;
        }
    }

    function startMeter(stream) {
        stopMeter();
        if (!stream.getAudioTracks().length) {
            return;
        }
        const ctx = audio();
        const src = ctx.createMediaStreamSource(stream);
        const an = ctx.createAnalyser();
        an.fftSize = 512;
        src.connect(an);
        state.source = src;
        const buf = new Uint8Array(an.fftSize);
        // a timer, not requestAnimationFrame: it keeps going in a
        // background tab and in tests
        state.raf = setInterval(() => {
            an.getByteTimeDomainData(buf);
            let peak = 0;
            for (const v of buf) {
                peak = Math.max(peak, Math.abs(v - 128));
            }
            meter.value = Math.min(100, Math.round(peak / 128 * 100 * 1.5));
        }, 100);
    }

    async function fill(select, kind, current) {
        const list = (await navigator.mediaDevices.enumerateDevices()).filter((d) => d.kind === kind);
        select.replaceChildren(...list.map((d, i) => el('option', { value: d.deviceId },
            d.label || `${t(kind === 'videoinput' ? 'device.camera' : 'device.microphone')} ${i + 1}`)));
        if (current) {
            select.value = current;
        }
        select.parentElement.hidden = list.length < 2;
    }

    async function open(choice = {}) {
        if (state.stream) {
            state.stream.getTracks().forEach((tr) => tr.stop());
        }
        const r = await getMedia(choice);
        state.stream = r.stream;
        const v = r.stream.getVideoTracks()[0];
        const a = r.stream.getAudioTracks()[0];
        preview.srcObject = v ? r.stream : null;
        preview.hidden = !v;
        preview.play().catch(() => {});
        // a short word per device; the help above says what to do
        camStatus.textContent = t(v ? 'device.camera_ok'
                                    : r.videoError === 'NotFoundError' ? 'device.camera_missing' : 'device.camera_refused');
        micStatus.textContent = t(a ? 'device.mic_ok'
                                    : r.audioError === 'NotFoundError' ? 'device.mic_missing' : 'device.mic_refused');
        help.hidden = !!(v && a);
        if (!help.hidden && (r.videoError === 'NotFoundError' || r.audioError === 'NotFoundError')
            && r.videoError !== 'NotAllowedError' && r.audioError !== 'NotAllowedError') {
            help.firstChild.textContent = t('device.missing');
        }
        startMeter(r.stream);
        await fill(camSelect, 'videoinput', v && v.getSettings().deviceId).catch(() => {});
        await fill(micSelect, 'audioinput', a && a.getSettings().deviceId).catch(() => {});
        return r;
    }

    camSelect.onchange = () => open({ camera: camSelect.value, microphone: micSelect.value || undefined });
    micSelect.onchange = () => open({ camera: camSelect.value || undefined, microphone: micSelect.value });

    return {
        open,
        setConnected(on) {
            conn.textContent = t(on ? 'device.connected' : 'device.not_connected');
        },
        // hands the stream over (the meter stops, the tracks stay on)
        take() {
            stopMeter();
            preview.srcObject = null;
            const s = state.stream;
            state.stream = null;
            return s || new MediaStream();
        },
        destroy() {
            stopMeter();
            if (state.stream) {
                state.stream.getTracks().forEach((tr) => tr.stop());
            }
            root.remove();
        }
    };
}
