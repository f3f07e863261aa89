// The waiting room and call protocol (docs/protocol.md) over the module's
// WebSocket: says hello with the token, turns each server message into an
// event named by its type, and reconnects by itself when the connection
// drops (a phone changing networks, a page coming back from sleep), so the
// server's rejoin brings a call back without the person doing anything.
//
//   const s = new Signal(token);
//   s.addEventListener('queue', (e) => show(e.detail.position));
//   s.connect();
//   s.send({ type: 'accept', call: id });
//
// Events: one per message type ('welcome', 'queue', 'ring', 'call',
// 'signal', 'peer', 'ended', 'call_state', 'visit', 'snapshot_request',
// 'snapshot_consent', 'error'), with the message as detail; and
//   'lost'    the connection dropped; it is being tried again
//   'back'    a later connection was welcomed again
//   'closed'  it will not be tried again: detail.reason is 'unauthorized',
//             'replaced' (4409: this person connected elsewhere),
//             'visit_over' or 'closed' (close() was called)

const BACKOFF = [1000, 2000, 4000, 8000, 15000];

// the server's closes after which trying again cannot help
const FINAL = { 1008: 'unauthorized', 4409: 'replaced' };

export class Signal extends EventTarget {
    constructor(token, { url } = {}) {
        super();
        this.token = token;
        this.url = url || (location.protocol === 'https:' ? 'wss://' : 'ws://')
                          + location.host + '/ws';
        this.ws = null;
        this.welcomed = false;
        this.everWelcomed = false;
        this.stopped = false;
        this.tries = 0;
        this.timer = null;
        this.onOnline = () => this.retryNow();
    }

    get connected() {
        return this.welcomed;
    }

    connect() {
        this.stopped = false;
        window.addEventListener('online', this.onOnline);
        this.open();
    }

    open() {
        clearTimeout(this.timer);
        this.timer = null;
        let ws;
        try {
            ws = new WebSocket(this.url);
        } catch (e) {
            this.retry();
            return;
        }
        this.ws = ws;
        ws.onopen = () => {
            ws.send(JSON.stringify({ v: 1, type: 'hello', token: this.token }));
        };
        ws.onmessage = (ev) => {
            let msg;
            try {
                msg = JSON.parse(ev.data);
            } catch (e) {
                return;
            }
            if (!msg || typeof msg.type !== 'string') {
                return;
            }
            if (msg.type === 'welcome') {
                this.welcomed = true;
                this.tries = 0;
                if (this.everWelcomed) {
                    this.emit('back', msg);
                }
                this.everWelcomed = true;
            }
            this.emit(msg.type, msg);
            if (msg.type === 'error' && msg.code === 'visit_over') {
                this.finish('visit_over');
            }
        };
        ws.onclose = (ev) => {
            if (this.ws !== ws) {
                return;
            }
            this.ws = null;
            const wasWelcomed = this.welcomed;
            this.welcomed = false;
            if (this.stopped) {
                return;
            }
            if (FINAL[ev.code]) {
                this.finish(FINAL[ev.code]);
                return;
            }
            if (wasWelcomed || this.tries === 0) {
                this.emit('lost', { code: ev.code });
            }
            this.retry();
        };
    }

    retry() {
        if (this.stopped || this.timer) {
            return;
        }
        const wait = BACKOFF[Math.min(this.tries, BACKOFF.length - 1)];
        this.tries++;
        this.timer = setTimeout(() => { this.timer = null; this.open(); }, wait);
    }

    // the network came back: do not wait out the backoff
    retryNow() {
        if (!this.stopped && !this.ws) {
            this.open();
        }
    }

    finish(reason) {
        this.stopped = true;
        clearTimeout(this.timer);
        window.removeEventListener('online', this.onOnline);
        if (this.ws) {
            const ws = this.ws;
            this.ws = null;
            ws.close(1000);
        }
        this.welcomed = false;
        this.emit('closed', { reason });
    }

    close() {
        this.finish('closed');
    }

    // sends one message of version 1; false when there is no connection
    send(msg) {
        if (!this.ws || this.ws.readyState !== WebSocket.OPEN) {
            return false;
        }
        this.ws.send(JSON.stringify({ v: 1, ...msg }));
        return true;
    }

    emit(type, detail) {
        this.dispatchEvent(new CustomEvent(type, { detail }));
    }
}
