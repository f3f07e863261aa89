// One video call over WebRTC, signalled through the waiting room's
// WebSocket (docs/protocol.md "The call"): the doctor makes the offer, the
// patient answers; SDP and ICE candidates travel as 'signal' messages.
//
//   const call = new Call(signal, { role: 'patient', localStream });
//   signal.addEventListener('call', (e) => call.start(e.detail));
//
// The page passes every 'call' message of this call to start(), the first
// and the later ones with rejoin: true (a participant came back after a
// reload or a network change).  A page that was reloaded makes a new Call
// and its start() a fresh RTCPeerConnection; the side that stayed gets
// 'call' with rejoin too and builds a fresh connection as well, and the
// doctor's side makes the offer again (with an ICE restart), so the call
// comes back without anyone doing anything.  The Call itself listens to
// the signal's 'signal', 'peer' and 'ended' messages of its call.
//
// A page that awaits something (the camera) between the 'call' message and
// new Call() can lose the doctor's offer: holdSignals(signal) keeps every
// 'signal' message from the page's start, and start() takes the held ones
// of its call (new Call(signal, { held })).
//
// Events: 'state' {state}, 'remote' {stream}, 'local' {stream} (the camera
// or the screen changed), 'quality' {rtt, loss, bitrate, level}, 'ended'
// {reason}.  window.teleclinicCall is the current call (the tests read its
// pc's getStats).

const STATS_EVERY = 2000;

// keeps the 'signal' messages that arrive before the page has its Call
export function holdSignals(signal) {
    let list = [];
    let holding = true;
    signal.addEventListener('signal', (e) => {
        if (!holding) {
            return;
        }
        list.push(e.detail);
        if (list.length > 200) {
            list.shift();
        }
    });
    return {
        take(call) {
            const mine = list.filter((m) => m.call === call);
            list = [];
            holding = false;
            return mine;
        }
    };
}

export class Call extends EventTarget {
    constructor(signal, { role, localStream = null, held = null } = {}) {
        super();
        this.held = held;
        this.signal = signal;
        this.role = role;
        this.localStream = localStream || new MediaStream();
        this.remoteStream = null;
        this.id = null;
        this.appointment = null;
        this.offerer = false;
        this.state = 'connecting';
        this.pc = null;
        this.pending = [];
        this.config = null;
        this.statsTimer = null;
        this.last = null;
        this.rebuiltAt = 0;
        this.screen = null;
        this.cameraTrack = null;
        this.muted = false;
        this.cameraOff = false;
        this.facing = 'user';
        this.chain = Promise.resolve();
        this.onSignal = (e) => this.take(e.detail);
        this.onPeer = (e) => this.handlePeer(e.detail);
        this.onEnded = (e) => {
            if (e.detail.call === this.id) {
                this.end(e.detail.reason || 'hangup');
            }
        };
        this.onLost = () => {
            if (this.state !== 'ended') {
                this.setState('reconnecting');
            }
        };
        signal.addEventListener('signal', this.onSignal);
        signal.addEventListener('peer', this.onPeer);
        signal.addEventListener('ended', this.onEnded);
        signal.addEventListener('lost', this.onLost);
        window.teleclinicCall = this;
    }

    // the server's 'call' message: the first one, or a later one with
    // rejoin: true (fresh TURN credentials)
    start(msg) {
        if (this.state === 'ended') {
            return;
        }
        this.id = msg.call;
        this.appointment = msg.appointment;
        this.offerer = !!msg.offerer;
        this.config = { iceServers: (msg.ice_servers || []).map((s) => ({ ...s })) };
        if (this.pc && !msg.rejoin) {
            return;
        }
        if (this.pc) {
            this.setState('reconnecting');
        }
        this.build();
        if (this.offerer) {
            this.offer(!!msg.rejoin);
        }
        if (this.held) {
            const held = this.held;
            this.held = null;
            for (const m of held.take(this.id)) {
                this.take(m);
            }
        }
    }

    build() {
        if (this.pc) {
            this.closePc();
        }
        this.rebuiltAt = Date.now();
        this.pending = [];
        const pc = new RTCPeerConnection(this.config);
        this.pc = pc;
        const video = this.screen || this.localStream.getVideoTracks()[0];
        for (const track of this.localStream.getAudioTracks()) {
            pc.addTrack(track, this.localStream);
        }
        if (video) {
            pc.addTrack(video, this.localStream);
        }
        // a side without camera or microphone still receives both
        if (!this.localStream.getAudioTracks().length) {
            pc.addTransceiver('audio', { direction: 'recvonly' });
        }
        if (!video) {
            pc.addTransceiver('video', { direction: 'recvonly' });
        }
        const remote = new MediaStream();
        this.remoteStream = remote;
        pc.ontrack = (ev) => {
            if (this.pc !== pc) {
                return;
            }
            for (const old of remote.getTracks().filter((t) => t.kind === ev.track.kind)) {
                remote.removeTrack(old);
            }
            remote.addTrack(ev.track);
            this.emit('remote', { stream: remote });
        };
        pc.onicecandidate = (ev) => {
            if (this.pc === pc && ev.candidate) {
                this.send({ candidate: ev.candidate.toJSON() });
            }
        };
        pc.onconnectionstatechange = () => {
            if (this.pc !== pc) {
                return;
            }
            const s = pc.connectionState;
            if (s === 'connected') {
                this.setState('connected');
                this.signal.send({ type: 'media', call: this.id, state: 'connected' });
            } else if (s === 'failed') {
                this.signal.send({ type: 'media', call: this.id, state: 'failed' });
                this.setState('reconnecting');
                if (this.offerer) {
                    this.offer(true);
                }
            } else if (s === 'disconnected') {
                this.setState('reconnecting');
            }
        };
        clearInterval(this.statsTimer);
        this.statsTimer = setInterval(() => this.stats(), STATS_EVERY);
    }

    async offer(restart) {
        const pc = this.pc;
        try {
            const o = await pc.createOffer(restart ? { iceRestart: true } : {});
            if (this.pc !== pc) {
                return;
            }
            await pc.setLocalDescription(o);
            this.send({ sdp: { type: pc.localDescription.type, sdp: pc.localDescription.sdp } });
        } catch (e) {
            console.warn('offer', e);
        }
    }

    send(data) {
        this.signal.send({ type: 'signal', call: this.id, data });
    }

    // one message at a time, in order (an offer, then its candidates)
    take(msg) {
        this.chain = this.chain.then(() => this.handleSignal(msg));
        return this.chain;
    }

    async handleSignal(msg) {
        if (msg.call !== this.id || !this.pc || this.state === 'ended') {
            return;
        }
        const pc = this.pc;
        const data = msg.data || {};
        try {
            if (data.sdp) {
                if (data.sdp.type === 'offer') {
                    if (this.offerer) {
                        return;
                    }
                    await pc.setRemoteDescription(data.sdp);
                    await this.flush(pc);
                    const a = await pc.createAnswer();
                    await pc.setLocalDescription(a);
                    this.send({ sdp: { type: pc.localDescription.type, sdp: pc.localDescription.sdp } });
                } else if (data.sdp.type === 'answer') {
                    if (pc.signalingState !== 'have-local-offer') {
                        return;
                    }
                    await pc.setRemoteDescription(data.sdp);
                    await this.flush(pc);
                }
            } else if (data.candidate) {
                if (!pc.remoteDescription) {
                    this.pending.push(data.candidate);
                } else {
                    await pc.addIceCandidate(data.candidate).catch(() => {});
                }
            }
        } catch (e) {
            console.warn('signal', e);
        }
    }

    async flush(pc) {
        const list = this.pending;
        this.pending = [];
        for (const c of list) {
            await pc.addIceCandidate(c).catch(() => {});
        }
    }

    handlePeer(msg) {
        if (msg.call !== this.id || this.state === 'ended') {
            return;
        }
        if (msg.state === 'left') {
            this.setState('reconnecting');
        } else if (msg.state === 'joined' && this.offerer) {
            // the 'call' with rejoin usually rebuilds at the same moment;
            // otherwise restart ICE on the connection we have
            setTimeout(() => {
                if (Date.now() - this.rebuiltAt > 1500 && this.pc) {
                    this.offer(true);
                }
            }, 500);
        }
    }

    setState(state) {
        if (this.state === state || this.state === 'ended') {
            return;
        }
        this.state = state;
        this.emit('state', { state });
    }

    async stats() {
        const pc = this.pc;
        if (!pc || this.state === 'ended') {
            return;
        }
        let report;
        try {
            report = await pc.getStats();
        } catch (e) {
            return;
        }
        let rtt = null;
        let lost = 0;
        let received = 0;
        let bytes = 0;
        const pairs = [];
        let selectedId = null;
        report.forEach((s) => {
            if (s.type === 'transport' && s.selectedCandidatePairId) {
                selectedId = s.selectedCandidatePairId;
            }
            if (s.type === 'candidate-pair') {
                pairs.push(s);
            }
            if (s.type === 'inbound-rtp') {
                lost += s.packetsLost || 0;
                received += s.packetsReceived || 0;
                bytes += s.bytesReceived || 0;
            }
        });
        const pair = pairs.find((p) => p.id === selectedId)
                     || pairs.find((p) => p.nominated && p.state === 'succeeded');
        if (pair && typeof pair.currentRoundTripTime === 'number') {
            rtt = pair.currentRoundTripTime;
        }
        const now = performance.now();
        let loss = 0;
        let bitrate = 0;
        if (this.last && this.last.pc === pc) {
            const dl = lost - this.last.lost;
            const dr = received - this.last.received;
            loss = dl + dr > 0 ? Math.max(0, dl) / (dl + dr) : 0;
            bitrate = Math.max(0, (bytes - this.last.bytes) * 8 / ((now - this.last.at) / 1000));
        }
        this.last = { pc, lost, received, bytes, at: now };
        let level = 'good';
        if ((rtt !== null && rtt > 0.6) || loss > 0.08 || this.state !== 'connected') {
            level = 'poor';
        } else if ((rtt !== null && rtt > 0.25) || loss > 0.02) {
            level = 'fair';
        }
        this.emit('quality', { rtt, loss, bitrate, level });
    }

    mute(on) {
        this.muted = !!on;
        for (const t of this.localStream.getAudioTracks()) {
            t.enabled = !this.muted;
        }
    }

    camera(off) {
        this.cameraOff = !!off;
        for (const t of this.localStream.getVideoTracks()) {
            t.enabled = !this.cameraOff;
        }
    }

    videoSender() {
        return this.pc && this.pc.getSenders().find((s) => s.track && s.track.kind === 'video');
    }

    async replaceCamera(track) {
        const old = this.localStream.getVideoTracks()[0];
        if (old) {
            this.localStream.removeTrack(old);
            old.stop();
        }
        track.enabled = !this.cameraOff;
        this.localStream.addTrack(track);
        const sender = this.videoSender();
        if (sender && !this.screen) {
            await sender.replaceTrack(track);
        }
        this.emit('local', { stream: this.localStream });
    }

    // the next camera: by device where there are several, else the other
    // side of a phone (facingMode user/environment)
    async switchCamera() {
        const cams = (await navigator.mediaDevices.enumerateDevices())
            .filter((d) => d.kind === 'videoinput');
        const now = this.localStream.getVideoTracks()[0];
        const nowId = now && now.getSettings().deviceId;
        let constraints;
        if (cams.length > 1 && nowId) {
            const i = cams.findIndex((d) => d.deviceId === nowId);
            constraints = { deviceId: { exact: cams[(i + 1) % cams.length].deviceId } };
        } else {
            this.facing = this.facing === 'user' ? 'environment' : 'user';
            constraints = { facingMode: { ideal: this.facing } };
        }
        if (now) {
            now.stop();
        }
        const s = await navigator.mediaDevices.getUserMedia({ video: constraints });
        await this.replaceCamera(s.getVideoTracks()[0]);
    }

    async shareScreen(on) {
        const sender = this.videoSender();
        if (on && !this.screen) {
            const s = await navigator.mediaDevices.getDisplayMedia({ video: true });
            const track = s.getVideoTracks()[0];
            this.screen = track;
            track.addEventListener('ended', () => this.shareScreen(false));
            if (sender) {
                await sender.replaceTrack(track);
            }
            this.emit('local', { stream: this.localStream, screen: true });
        } else if (!on && this.screen) {
            const track = this.screen;
            this.screen = null;
            track.stop();
            if (sender) {
                await sender.replaceTrack(this.localStream.getVideoTracks()[0] || null);
            }
            this.emit('local', { stream: this.localStream, screen: false });
        }
    }

    get sharing() {
        return !!this.screen;
    }

    hangup() {
        if (this.state !== 'ended') {
            this.signal.send({ type: 'hangup', call: this.id });
            this.end('hangup');
        }
    }

    // one JPEG still of the remote video
    async snapshot() {
        const v = document.createElement('video');
        v.muted = true;
        v.playsInline = true;
        v.srcObject = this.remoteStream;
        await v.play();
        if (!v.videoWidth) {
            await new Promise((r) => v.addEventListener('resize', r, { once: true }));
        }
        const c = document.createElement('canvas');
        c.width = v.videoWidth;
        c.height = v.videoHeight;
        c.getContext('2d').drawImage(v, 0, 0, c.width, c.height);
        v.srcObject = null;
        return new Promise((resolve, reject) => c.toBlob(
            (b) => (b ? resolve(b) : reject(new Error('snapshot'))), 'image/jpeg', 0.9));
    }

    closePc() {
        const pc = this.pc;
        this.pc = null;
        if (pc) {
            pc.ontrack = pc.onicecandidate = pc.onconnectionstatechange = null;
            pc.close();
        }
    }

    end(reason) {
        if (this.state === 'ended') {
            return;
        }
        clearInterval(this.statsTimer);
        if (this.screen) {
            this.screen.stop();
            this.screen = null;
        }
        this.closePc();
        this.state = 'ended';
        this.signal.removeEventListener('signal', this.onSignal);
        this.signal.removeEventListener('peer', this.onPeer);
        this.signal.removeEventListener('ended', this.onEnded);
        this.signal.removeEventListener('lost', this.onLost);
        this.emit('state', { state: 'ended' });
        this.emit('ended', { reason });
    }

    emit(type, detail) {
        this.dispatchEvent(new CustomEvent(type, { detail }));
    }
}
