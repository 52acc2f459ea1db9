"""A WHIP publisher that is not a browser: aiortc (its own ICE, DTLS, SRTP and encoders)
sends a steady colour (0x20A040) and silence to a WHIP endpoint, in one video codec.

Prints one JSON line when the connection is up ({"state": "connected", ...}), then publishes
for SECONDS, ends the publish with DELETE and prints {"state": "done", ...}. Exits non-zero
with the server's answer when the publish is refused.

Usage: python publish.py WHIP_URL STREAM_KEY H264|VP8 SECONDS
"""

import asyncio
import fractions
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack
from av import VideoFrame

# 0x20A040 in BT.601 limited range.
Y, U, V = 111, 105, 79
WIDTH, HEIGHT = 640, 360


class Colour(VideoStreamTrack):
    """A steady colour at 30 fps."""

    async def recv(self):
        pts, time_base = await self.next_timestamp()
        frame = VideoFrame(width=WIDTH, height=HEIGHT, format="yuv420p")
        for plane, value in zip(frame.planes, (Y, U, V)):
            plane.update(bytes([value]) * plane.buffer_size)
        frame.pts = pts
        frame.time_base = time_base
        return frame


def http(method, url, key, body=None):
    request = urllib.request.Request(url, data=body, method=method)
    request.add_header("Authorization", f"Bearer {key}")
    if body is not None:
        request.add_header("Content-Type", "application/sdp")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


async def main(url, key, codec, seconds):
    pc = RTCPeerConnection()
    video = pc.addTransceiver(Colour(), direction="sendonly")
    pc.addTransceiver(AudioStreamTrack(), direction="sendonly")
    wanted = f"video/{codec}"
    video.setCodecPreferences(
        [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType == wanted]
    )
    await pc.setLocalDescription(await pc.createOffer())
    loop = asyncio.get_running_loop()
    status, headers, answer = await loop.run_in_executor(
        None, http, "POST", url, key, pc.localDescription.sdp.encode()
    )
    if status != 201:
        print(json.dumps({"state": "refused", "status": status, "detail": answer}), flush=True)
        await pc.close()
        return 1
    location = urllib.parse.urljoin(url, headers.get("Location", ""))
    connected = asyncio.Event()

    @pc.on("connectionstatechange")
    def changed():
        if pc.connectionState == "connected":
            connected.set()

    started = time.monotonic()
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    await asyncio.wait_for(connected.wait(), 15)
    print(json.dumps({
        "state": "connected",
        "after_ms": round((time.monotonic() - started) * 1000),
        "codec": wanted,
        "location": location,
    }), flush=True)
    await asyncio.sleep(seconds)
    status, _, _ = await loop.run_in_executor(None, http, "DELETE", location, key)
    await pc.close()
    print(json.dumps({"state": "done", "delete": status}), flush=True)
    return 0


if __name__ == "__main__":
    url, key, codec, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    sys.exit(asyncio.run(main(url, key, codec, seconds)))
