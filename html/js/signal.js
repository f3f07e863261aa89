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
//   'back'    a connection was welcomed after 'lost', or again
//   'closed'  it will not be tried again: detail.reason is 'unauthorized',
//             'replaced' (4409: this person connected elsewhere),
//             'visit_over' or 'closed' (close() was called)
//
// With several nodes the welcome lists their URLs (`nodes`): a connection
// that drops is tried again at once on the next node, then round the list
// with the backoff; 1012 (the room moved) is tried again at once. While
// the nodes cannot reach each other (Redis is away) a node may answer the
// hello with `room_elsewhere` and the room's node: that one is tried
// next; a node that could not be reached is named in the next hello's
// `unreachable`, so that another makes the room.

const BACKOFF = [1000, 2000, 4000, 8000, 15000];

// the server's closes after which trying again cannot help
const FINAL = { 1008: 'unauthorized', 4409: 'replaced' };

// the URLs of a server's list of nodes that can be connected to
function nodeList(urls) {
    return urls.filter((u) => typeof u === 'string'
                              && /^https?:\/\/[^\s]+$/.test(u));
}

export class Signal extends EventTarget {
    constructor(token, { url } = {}) {
        super();
        this.token = token;
        this.url = url || (location.protocol === 'https:' ? 'wss://' : 'ws://')
                          + location.host + '/ws';
        this.nodes = [];
        this.turn = 0;
        this.unreachable = new Set();
        this.elsewhere = false;
        this.lostShown = false;
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
            ws = new WebSocket(this.target());
        } catch (e) {
            this.retry();
            return;
        }
        this.ws = ws;
        const node = this.nodes.length
                     ? this.nodes[this.turn % this.nodes.length] : null;
        let opened = false;
        ws.onopen = () => {
            opened = true;
            const hello = { v: 1, type: 'hello', token: this.token };
            if (this.unreachable.size) {
                hello.unreachable = [...this.unreachable].slice(-16);
            }
            ws.send(JSON.stringify(hello));
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
            if (msg.type === 'error' && msg.code === 'room_elsewhere'
                && Array.isArray(msg.nodes)) {
                // the server closes next; the room's node is the first
                this.nodes = nodeList(msg.nodes);
                this.turn = 0;
                this.elsewhere = this.nodes.length > 0;
                return;
            }
            if (msg.type === 'welcome') {
                if (Array.isArray(msg.nodes)) {
                    this.nodes = nodeList(msg.nodes);
                    this.turn = 0;
                }
                this.unreachable.clear();
                this.welcomed = true;
                this.tries = 0;
                if (this.everWelcomed || this.lostShown) {
                    this.emit('back', msg);
                }
                this.lostShown = false;
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
            if (!opened && node) {
                this.unreachable.add(node);
            }
            if (this.elsewhere) {
                // sent on, not lost: to the room's node, with the backoff,
                // as it may be gone too
                this.elsewhere = false;
                this.retry();
                return;
            }
            if (wasWelcomed || this.tries === 0) {
                this.lostShown = true;
                this.emit('lost', { code: ev.code });
            }
            if (ev.code === 1012 && wasWelcomed) {
                // the room moved to another node: this one relays it now
                this.open();
                return;
            }
            if (this.nodes.length > 1) {
                // this node may be gone: the next one, at once the first time
                this.turn++;
                if (wasWelcomed) {
                    this.open();
                    return;
                }
            }
            this.retry();
        };
    }

    // this page's node, or the one of the welcome's list whose turn it is
    target() {
        if (this.nodes.length === 0) {
            return this.url;
        }
        const base = new URL(this.nodes[this.turn % this.nodes.length]);
        const here = new URL(this.url);
        return (base.protocol === 'https:' ? 'wss://' : 'ws://') + base.host
               + here.pathname;
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
