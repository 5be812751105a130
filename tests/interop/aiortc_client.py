#!/usr/bin/env python3
"""aiortc (PyPI) as a WHIP publisher or a WHEP player.

  aiortc_client.py publish URL --codec vp8|h264     aiortc's test tracks (640x480 video at
                                                    30 fps, audio); runs until SIGTERM/SIGINT,
                                                    then DELETE
  aiortc_client.py play URL --seconds S --video-slots V --audio-slots A
                                                    V video and A audio recvonly m-lines;
                                                    measures S s from the first frame

aiortc offers without trickle (its offer carries every candidate) and sends REMB, not
TWCC. Prints progress on stderr and, last on stdout, `RESULT {json}` (see gst_client.py;
`video_tracks`: frames per video slot). Exits 0 when it ran, 1 on an error."""

import argparse
import asyncio
import signal
import sys

import aiortc
from aiortc import (
    AudioStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
    VideoStreamTrack,
)
from aiortc.mediastreams import MediaStreamError

import whip

# Seconds at the end of a player's window whose frame rate is reported on its own.
TAIL_SECONDS = 5


def watch_payload_types(pc, seen):
    """Count received video RTP packets per codec name: each receiver's negotiated
    payload types (aiortc keeps them privately) mapped from the packets' type."""
    for t in pc.getTransceivers():
        if t.kind != "video":
            continue
        r = t.receiver
        codecs = getattr(r, "_RTCRtpReceiver__codecs", {})
        inner = r._handle_rtp_packet

        async def handle(packet, arrival_time_ms, inner=inner, codecs=codecs):
            c = codecs.get(packet.payload_type)
            if c is not None and c.mimeType.lower() != "video/rtx":
                name = c.mimeType.split("/")[-1].lower()
                seen[name] = seen.get(name, 0) + 1
            return await inner(packet, arrival_time_ms)

        r._handle_rtp_packet = handle


def log(*a):
    print("[aiortc]", *a, file=sys.stderr, flush=True)


async def run(args):
    clock = whip.Clock()
    result = {"stack": "aiortc", "version": aiortc.__version__, "role": args.role}
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    session_url = None
    connected = asyncio.Event()
    failed = asyncio.Event()
    posted_ms = 0
    ice_ms = {}

    @pc.on("iceconnectionstatechange")
    def on_ice():
        log("ice", pc.iceConnectionState)
        if pc.iceConnectionState == "completed":
            ice_ms.setdefault("t", clock.ms())

    @pc.on("connectionstatechange")
    def on_state():
        log("connection", pc.connectionState)
        if pc.connectionState == "connected":
            result.setdefault("connected_ms", clock.ms() - posted_ms)
            if "t" in ice_ms:
                result.setdefault("client_dtls_ms", clock.ms() - ice_ms["t"])
            connected.set()
        elif pc.connectionState == "failed":
            failed.set()

    seen_pts = {}  # video codec name -> packets received with its payload type
    video = {}  # slot index -> frames in window
    tail = {}  # slot index -> frames in the window's last TAIL_SECONDS
    audio = {"seconds": 0.0}
    first = {}
    done = asyncio.Event()

    async def consume(track, slot):
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            now = clock.ms()
            if track.kind == "video":
                if "ms" not in first:
                    first["ms"] = now
                    first["end"] = now + args.seconds * 1000
                    result["width"], result["height"] = frame.width, frame.height
                    asyncio.get_running_loop().call_later(args.seconds + 0.05, done.set)
                elif now <= first["end"]:
                    video[slot] = video.get(slot, 0) + 1
                    if now > first["end"] - TAIL_SECONDS * 1000:
                        tail[slot] = tail.get(slot, 0) + 1
            elif "ms" in first and now <= first["end"]:
                audio["seconds"] += frame.samples / frame.sample_rate

    if args.role == "publish":
        vt = pc.addTransceiver(VideoStreamTrack(), direction="sendonly")
        pc.addTransceiver(AudioStreamTrack(), direction="sendonly")
        caps = RTCRtpSender.getCapabilities("video").codecs
        want = [c for c in caps if c.mimeType.lower() == f"video/{args.codec}"]
        # H.264: constrained baseline (42e01f) first, as browsers offer it; the server
        # forwards a publisher's profile only to viewers that negotiated the same one.
        want.sort(key=lambda c: "42e01f" not in (c.parameters or {}).get("profile-level-id", ""))
        rtx = [c for c in caps if c.mimeType.lower() == "video/rtx"]
        vt.setCodecPreferences(want + rtx)
    else:
        slots = 0

        @pc.on("track")
        def on_track(track):
            nonlocal slots
            log("track", track.kind)
            asyncio.ensure_future(consume(track, slots))
            slots += 1

        for _ in range(args.video_slots):
            pc.addTransceiver("video", direction="recvonly")
        for _ in range(args.audio_slots):
            pc.addTransceiver("audio", direction="recvonly")

    try:
        await pc.setLocalDescription(await pc.createOffer())
        posted_ms = clock.ms()
        answer, session_url = await asyncio.get_running_loop().run_in_executor(
            None, whip.post_offer, args.url, pc.localDescription.sdp
        )
        result["session"] = whip.session_id(session_url)
        result["answer_codecs"] = whip.answer_codecs(answer)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        if args.role == "play":
            watch_payload_types(pc, seen_pts)
        waits = [asyncio.ensure_future(e.wait()) for e in (connected, failed)]
        await asyncio.wait(waits, timeout=args.connect_timeout, return_when=asyncio.FIRST_COMPLETED)
        for w in waits:
            w.cancel()
        if not connected.is_set():
            raise RuntimeError(f"not connected after {args.connect_timeout} s (ICE {pc.iceConnectionState})")
        if args.role == "publish":
            print("READY", flush=True)
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            loop.add_signal_handler(signal.SIGTERM, stop.set)
            loop.add_signal_handler(signal.SIGINT, stop.set)
            try:
                await asyncio.wait_for(stop.wait(), timeout=args.timeout)
            except asyncio.TimeoutError:
                pass
        else:
            try:
                await asyncio.wait_for(done.wait(), timeout=args.timeout)
            except asyncio.TimeoutError:
                raise RuntimeError(f"no video frame within {args.timeout} s")
            frames = max(video.values(), default=0)
            result["first_frame_ms"] = first["ms"] - posted_ms
            result["video_frames"] = frames
            result["video_tracks"] = [video.get(i, 0) for i in range(slots)]
            result["fps"] = round(frames / args.seconds, 1)
            # The window's end: a viewer that loses its video late (a REMB-only viewer
            # whose only layer was paused) shows here, not in the average.
            tail_seconds = min(TAIL_SECONDS, args.seconds)
            result["fps_tail"] = round(max(tail.values(), default=0) / tail_seconds, 1)
            result["audio_seconds"] = round(audio["seconds"], 2)
            # The codec of the video packets that arrived (by payload type).
            result["codec"] = max(seen_pts, key=seen_pts.get) if seen_pts else None
            result["video_packets_by_codec"] = seen_pts
    except Exception as e:  # noqa: BLE001
        result["error"] = str(e)
        log("error:", e)
    finally:
        await asyncio.get_running_loop().run_in_executor(None, whip.delete, session_url)
        await pc.close()
    whip.emit(result)
    return 1 if "error" in result else 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("role", choices=["publish", "play"])
    p.add_argument("url")
    p.add_argument("--codec", choices=["vp8", "h264"], default="vp8")
    p.add_argument("--seconds", type=float, default=5)
    p.add_argument("--video-slots", type=int, default=1)
    p.add_argument("--audio-slots", type=int, default=1)
    p.add_argument("--connect-timeout", type=float, default=15)
    p.add_argument("--timeout", type=float, default=60, help="give up after this long (s)")
    args = p.parse_args()
    sys.exit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
