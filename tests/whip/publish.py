"""A WHIP publisher that is not a browser: aiortc (its own ICE, DTLS, SRTP and encoders)
sends a steady colour (0x20A040) and silence to a WHIP endpoint, in one video codec.

With --moving, the picture moves (a sliding gradient) and carries the wall-clock time code of
crates/engine/src/media/time_code.rs at its 720p place, for the benchmarks
(bench/ingest.rs: CPU per input, and glass-to-glass latency of WHIP-in).

Prints one JSON line when the connection is up ({"state": "connected", ...}), then publishes
for SECONDS, ends the publish with DELETE and prints {"state": "done", ...}. Exits non-zero
with the server's answer when the publish is refused.

Usage: python publish.py WHIP_URL STREAM_KEY H264|VP8 SECONDS [--size WxH] [--moving]
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

# The time code (crates/engine/src/media/time_code.rs): 40 blocks of 16×16 luma, 32 bits of
# the Unix time in ms (mod 2^32) and an 8-bit check, at (576, 384) in a 1280×720 picture.
BLOCK, BLOCKS, ORIGIN = 16, 40, (576, 384)


def rotl(b, n):
    return ((b << n) | (b >> (8 - n))) & 0xFF


def stamp(luma, stride, value):
    b = value.to_bytes(4, "big")
    check = (b[0] ^ rotl(b[1], 1) ^ rotl(b[2], 2) ^ rotl(b[3], 3)) ^ 0xA5
    bits = (value << 8) | check
    for block in range(BLOCKS):
        level = 235 if (bits >> (BLOCKS - 1 - block)) & 1 else 16
        run = bytes([level]) * BLOCK
        for row in range(BLOCK):
            start = (ORIGIN[1] + row) * stride + ORIGIN[0] + block * BLOCK
            luma[start:start + BLOCK] = run


class Colour(VideoStreamTrack):
    """A steady colour at 30 fps; or, moving, a sliding gradient with the time code."""

    def __init__(self, moving):
        super().__init__()
        self.moving = moving
        self.n = 0
        # A diagonal gradient twice as wide as the picture, to slide across it.
        row = bytes((x * 3) % 220 + 16 for x in range(WIDTH * 2))
        self.gradient = [row[y % WIDTH:] + row[:y % WIDTH] for y in range(HEIGHT)]

    async def recv(self):
        pts, time_base = await self.next_timestamp()
        frame = VideoFrame(width=WIDTH, height=HEIGHT, format="yuv420p")
        if self.moving:
            shift = (self.n * 8) % WIDTH
            self.n += 1
            luma = bytearray(b"".join(r[shift:shift + WIDTH] for r in self.gradient))
            stamp(luma, WIDTH, int(time.time() * 1000) % (1 << 32))
            frame.planes[0].update(bytes(luma))
            for plane, value in zip(frame.planes[1:], (U, V)):
                plane.update(bytes([value]) * plane.buffer_size)
        else:
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


async def main(url, key, codec, seconds, moving):
    pc = RTCPeerConnection()
    video = pc.addTransceiver(Colour(moving), direction="sendonly")
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
    options = sys.argv[5:]
    if "--size" in options:
        WIDTH, HEIGHT = map(int, options[options.index("--size") + 1].split("x"))
    sys.exit(asyncio.run(main(url, key, codec, seconds, "--moving" in options)))
