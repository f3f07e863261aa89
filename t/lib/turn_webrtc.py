#!/usr/bin/python3
"""Two WebRTC peers (aiortc) that may reach each other only through TURN.

Used by t/045-turn-webrtc.t; run with Debian's /usr/bin/python3 and its
python3-aiortc (1.4.0).  Both peers get the TURN server as their only ICE
server, with REST-style credentials made from the shared secret (username
"expiry:NAME", password base64(HMAC-SHA1(secret, username))), and gather
relay candidates only: aiortc lacks RTCConfiguration.iceTransportPolicy,
so every ICE gatherer's aioice connection is set to TransportPolicy.RELAY
right after it is made.  The caller sends a synthetic video track (video
only: aiortc 1.4.0 mishandles header extensions when audio and video
share a bundle); the callee decodes it.  Signaling is in-process.

Prints one JSON object on stdout:
  connected    the ICE state reached "completed"
  local, remote  the type and address of the callee's nominated pair's
               candidates ("relay 127.0.0.1:61234")
  candidates   the types of every candidate either peer offered
  frames       decoded frames at each of the two checkpoints, SECONDS
               apart: media flows when the second is larger
  error        what went wrong, when something did
Exits 0 when it got that far, 1 on error.

usage: turn_webrtc.py HOST PORT SECRET udp|tcp [SECONDS]
"""

import asyncio
import base64
import hashlib
import hmac
import json
import sys
import time

from aioice import TransportPolicy
from aiortc import (RTCConfiguration, RTCIceServer, RTCPeerConnection,
                    VideoStreamTrack)
from aiortc import rtcicetransport


def relay_only():
    """Every ICE gatherer made from now on offers relay candidates only."""
    init = rtcicetransport.RTCIceGatherer.__init__

    def relay_init(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self._connection._transport_policy = TransportPolicy.RELAY

    rtcicetransport.RTCIceGatherer.__init__ = relay_init


def credentials(secret, name):
    username = '%d:%s' % (int(time.time()) + 3600, name)
    mac = hmac.new(secret.encode(), username.encode(), hashlib.sha1)
    return username, base64.b64encode(mac.digest()).decode()


def ice_connection(pc):
    """The aioice connection under the peer connection's one transport."""
    for t in pc.getTransceivers():
        return t.receiver.transport.transport.iceGatherer._connection
    return None


def candidate_types(sdp):
    types = []
    for line in sdp.splitlines():
        if line.startswith('a=candidate:'):
            f = line.split()
            types.append(f[f.index('typ') + 1] if 'typ' in f else '?')
    return types


async def call(host, port, secret, transport, seconds):
    result = {'connected': False, 'frames': [0, 0], 'candidates': []}

    def peer(name):
        username, password = credentials(secret, name)
        url = 'turn:%s:%d?transport=%s' % (host, port, transport)
        server = RTCIceServer(urls=url, username=username,
                              credential=password)
        return RTCPeerConnection(RTCConfiguration(iceServers=[server]))

    caller = peer('caller')
    callee = peer('callee')
    frames = [0]
    done = asyncio.Event()

    @callee.on('track')
    def on_track(track):
        async def consume():
            while True:
                try:
                    await track.recv()
                except Exception:
                    return
                frames[0] += 1

        asyncio.ensure_future(consume())

    @callee.on('iceconnectionstatechange')
    def on_state():
        if callee.iceConnectionState in ('completed', 'failed', 'closed'):
            done.set()

    try:
        caller.addTrack(VideoStreamTrack())

        await caller.setLocalDescription(await caller.createOffer())
        result['candidates'] += candidate_types(caller.localDescription.sdp)

        await callee.setRemoteDescription(caller.localDescription)
        await callee.setLocalDescription(await callee.createAnswer())
        result['candidates'] += candidate_types(callee.localDescription.sdp)

        await caller.setRemoteDescription(callee.localDescription)

        await asyncio.wait_for(done.wait(), 20)
        result['connected'] = callee.iceConnectionState == 'completed'

        if not result['connected']:
            result['error'] = 'ICE ' + callee.iceConnectionState
            return result

        pair = ice_connection(callee)._nominated.get(1)
        for side, c in (('local', pair.local_candidate),
                        ('remote', pair.remote_candidate)):
            result[side] = '%s %s:%d' % (c.type, c.host, c.port)

        # the first frames, then SECONDS more
        for i in range(100):
            if frames[0]:
                break
            await asyncio.sleep(0.1)

        result['frames'][0] = frames[0]
        await asyncio.sleep(seconds)
        result['frames'][1] = frames[0]

    except Exception as e:
        result['error'] = '%s: %s' % (type(e).__name__, e)

    finally:
        await caller.close()
        await callee.close()

    return result


def main():
    if len(sys.argv) < 5 or sys.argv[4] not in ('udp', 'tcp'):
        sys.stderr.write(__doc__)
        return 2

    host, port, secret, transport = sys.argv[1:5]
    seconds = float(sys.argv[5]) if len(sys.argv) > 5 else 2

    relay_only()

    result = asyncio.run(call(host, int(port), secret, transport, seconds))
    print(json.dumps(result), flush=True)

    return 1 if 'error' in result else 0


if __name__ == '__main__':
    sys.exit(main())
