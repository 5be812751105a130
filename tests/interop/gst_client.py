#!/usr/bin/env python3
"""GStreamer webrtcbin as a WHIP publisher or a WHEP player, by hand (GStreamer 1.22 has
no whipclientsink): webrtcbin with max-bundle, the offer POSTed once ICE gathering is
complete, the answer set. webrtcbin keeps its own default DTLS certificate (RSA-2048).

  gst_client.py publish URL --codec vp8|h264      runs until SIGTERM/SIGINT, then DELETE
  gst_client.py play URL --codec vp8|h264 --seconds S
                                                   offers that codec, measures S s of media
                                                   from the first frame, then DELETE

Prints progress on stderr and, last on stdout, `RESULT {json}`: connected_ms (POST to
ICE connected), first_frame_ms, video_frames/fps over the window, the codec seen on the
received pad, audio_seconds decoded, width/height, session (the server's session id).
Exits 0 when it ran (the test judges the figures), 1 on an error."""

import argparse
import signal
import sys
import threading

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstWebRTC", "1.0")
gi.require_version("GstSdp", "1.0")
from gi.repository import GLib, Gst, GstSdp, GstWebRTC  # noqa: E402

import whip  # noqa: E402

VIDEO = {
    "vp8": (
        "vp8enc deadline=1 target-bitrate=800000 keyframe-max-dist=60 cpu-used=8 ! rtpvp8pay pt=96 mtu=1200",
        "application/x-rtp,media=video,encoding-name=VP8,payload=96,clock-rate=90000",
    ),
    "h264": (
        "x264enc tune=zerolatency speed-preset=ultrafast bitrate=800 key-int-max=60 "
        "! video/x-h264,profile=constrained-baseline "
        "! rtph264pay pt=102 config-interval=-1 aggregate-mode=zero-latency mtu=1200",
        "application/x-rtp,media=video,encoding-name=H264,payload=102,clock-rate=90000",
    ),
}
# What a player offers per codec (recvonly: no payloader to take the format from).
PLAYER_VIDEO = {
    "vp8": VIDEO["vp8"][1],
    "h264": VIDEO["h264"][1] + ",packetization-mode=(string)1,profile-level-id=(string)42e01f",
}
OPUS = "application/x-rtp,media=audio,encoding-name=OPUS,payload=111,clock-rate=48000,encoding-params=(string)2"


def log(*a):
    print("[gst]", *a, file=sys.stderr, flush=True)


class Client:
    def __init__(self, args):
        self.args = args
        self.clock = whip.Clock()
        self.loop = GLib.MainLoop()
        self.session_url = None
        self.posted_ms = None
        self.result = {"stack": "gstreamer", "version": Gst.version_string(), "role": args.role}
        self.frames = 0
        self.window_frames = 0
        self.first_frame_ms = None
        self.window_end_ms = None
        self.audio_ns = 0
        self.codec = None
        self.size = None
        self.offer_sent = False
        self.lock = threading.Lock()

    # ---- pipeline ----

    def build(self):
        a = self.args
        if a.role == "publish":
            enc, caps = VIDEO[a.codec]
            desc = (
                "webrtcbin name=w bundle-policy=max-bundle "
                "videotestsrc is-live=true pattern=ball ! video/x-raw,width=640,height=360,framerate=30/1 "
                f"! videoconvert ! queue ! {enc} ! {caps} ! w. "
                "audiotestsrc is-live=true wave=sine ! audioconvert ! audioresample ! opusenc "
                f"! rtpopuspay pt=111 ! {OPUS} ! w. "
            )
            self.pipe = Gst.parse_launch(desc)
            self.w = self.pipe.get_by_name("w")
            for i in range(2):
                t = self.w.emit("get-transceiver", i)
                if t is not None:
                    t.set_property("direction", GstWebRTC.WebRTCRTPTransceiverDirection.SENDONLY)
        else:
            self.pipe = Gst.Pipeline.new("player")
            self.w = Gst.ElementFactory.make("webrtcbin", "w")
            self.w.set_property("bundle-policy", GstWebRTC.WebRTCBundlePolicy.MAX_BUNDLE)
            self.pipe.add(self.w)
            recv = GstWebRTC.WebRTCRTPTransceiverDirection.RECVONLY
            # The codec the player expects (webrtcbin 1.22 offers one format per
            # transceiver made from caps).
            self.w.emit("add-transceiver", recv, Gst.Caps.from_string(PLAYER_VIDEO[a.codec]))
            self.w.emit("add-transceiver", recv, Gst.Caps.from_string(OPUS))
            self.w.connect("pad-added", self.on_pad)
        self.w.connect("on-negotiation-needed", self.on_negotiation_needed)
        self.w.connect("notify::ice-gathering-state", self.on_gathering)
        self.w.connect("notify::ice-connection-state", self.on_ice)
        bus = self.pipe.get_bus()
        bus.add_signal_watch()
        bus.connect("message::error", self.on_error)

    def on_error(self, _bus, msg):
        err, dbg = msg.parse_error()
        self.fail(f"pipeline error: {err.message} ({dbg})")

    # ---- signalling ----

    def on_negotiation_needed(self, _w):
        promise = Gst.Promise.new_with_change_func(self.on_offer, None)
        self.w.emit("create-offer", None, promise)

    def on_offer(self, promise, _data):
        reply = promise.get_reply()
        offer = reply.get_value("offer")
        self.w.emit("set-local-description", offer, Gst.Promise.new())
        # Gathering may already be complete; otherwise on_gathering sends it.
        GLib.timeout_add(3000, self.send_offer)

    def on_gathering(self, _w, _pspec):
        if self.w.get_property("ice-gathering-state") == GstWebRTC.WebRTCICEGatheringState.COMPLETE:
            GLib.idle_add(self.send_offer)

    def send_offer(self):
        with self.lock:
            if self.offer_sent:
                return False
            self.offer_sent = True
        sdp = self.w.get_property("local-description").sdp.as_text()
        self.posted_ms = self.clock.ms()
        try:
            answer, self.session_url = whip.post_offer(self.args.url, sdp)
        except Exception as e:  # noqa: BLE001
            self.fail(str(e))
            return False
        self.result["session"] = whip.session_id(self.session_url)
        self.result["answer_codecs"] = whip.answer_codecs(answer)
        ok, msg = GstSdp.SDPMessage.new_from_text(answer)
        desc = GstWebRTC.WebRTCSessionDescription.new(GstWebRTC.WebRTCSDPType.ANSWER, msg)
        self.w.emit("set-remote-description", desc, Gst.Promise.new())
        log("answer set", self.result["session"])
        return False

    def on_ice(self, _w, _pspec):
        state = self.w.get_property("ice-connection-state")
        log("ice", state.value_nick)
        if state in (GstWebRTC.WebRTCICEConnectionState.CONNECTED, GstWebRTC.WebRTCICEConnectionState.COMPLETED):
            self.result.setdefault("connected_ms", self.clock.ms() - (self.posted_ms or 0))
            if self.args.role == "publish":
                print("READY", flush=True)
        elif state == GstWebRTC.WebRTCICEConnectionState.FAILED:
            GLib.idle_add(lambda: self.fail("ICE failed"))

    # ---- player ----

    def on_pad(self, _w, pad):
        if pad.get_direction() != Gst.PadDirection.SRC:
            return
        s = pad.get_current_caps().get_structure(0)
        media, name = s.get_string("media"), s.get_string("encoding-name")
        log("pad", media, name)
        if media == "video":
            self.codec = name.lower()
        dec = Gst.ElementFactory.make("decodebin")
        dec.connect("pad-added", self.on_decoded_pad)
        self.pipe.add(dec)
        dec.sync_state_with_parent()
        pad.link(dec.get_static_pad("sink"))

    def on_decoded_pad(self, _dec, pad):
        caps = pad.get_current_caps() or pad.query_caps(None)
        kind = caps.get_structure(0).get_name()
        sink = Gst.ElementFactory.make("fakesink")
        sink.set_property("sync", False)
        self.pipe.add(sink)
        sink.sync_state_with_parent()
        pad.link(sink.get_static_pad("sink"))
        if kind.startswith("video/"):
            pad.add_probe(Gst.PadProbeType.BUFFER, self.on_video)
        elif kind.startswith("audio/"):
            pad.add_probe(Gst.PadProbeType.BUFFER, self.on_audio)

    def on_video(self, pad, info):
        now = self.clock.ms()
        with self.lock:
            self.frames += 1
            if self.first_frame_ms is None:
                self.first_frame_ms = now
                self.window_end_ms = now + int(self.args.seconds * 1000)
                s = pad.get_current_caps().get_structure(0)
                self.size = (s.get_value("width"), s.get_value("height"))
                GLib.timeout_add(int(self.args.seconds * 1000) + 50, self.finish)
            elif now <= self.window_end_ms:
                self.window_frames += 1
        return Gst.PadProbeReturn.OK

    def on_audio(self, _pad, info):
        buf = info.get_buffer()
        with self.lock:
            if self.first_frame_ms is not None and self.clock.ms() <= self.window_end_ms:
                self.audio_ns += buf.duration if buf.duration != Gst.CLOCK_TIME_NONE else 0
        return Gst.PadProbeReturn.OK

    def finish(self):
        with self.lock:
            r = self.result
            r["codec"] = self.codec
            r["first_frame_ms"] = self.first_frame_ms - (self.posted_ms or 0)
            r["video_frames"] = self.window_frames
            r["fps"] = round(self.window_frames / self.args.seconds, 1)
            r["audio_seconds"] = round(self.audio_ns / 1e9, 2)
            r["width"], r["height"] = self.size or (None, None)
        self.stop()
        return False

    # ---- lifecycle ----

    def fail(self, message):
        self.result["error"] = message
        log("error:", message)
        self.stop()
        return False

    def stop(self):
        whip.delete(self.session_url)
        self.session_url = None
        self.pipe.set_state(Gst.State.NULL)
        self.loop.quit()
        return False

    def run(self):
        self.build()
        self.pipe.set_state(Gst.State.PLAYING)
        GLib.timeout_add(int(self.args.timeout * 1000), self.on_timeout)
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, self.stop)
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGINT, self.stop)
        self.loop.run()
        whip.emit(self.result)
        return 1 if "error" in self.result else 0

    def on_timeout(self):
        if self.args.role == "publish":
            return self.stop()
        if "fps" not in self.result:
            return self.fail(f"no result within {self.args.timeout} s (frames so far: {self.frames})")
        return False


def main():
    p = argparse.ArgumentParser()
    p.add_argument("role", choices=["publish", "play"])
    p.add_argument("url")
    p.add_argument("--codec", choices=sorted(VIDEO), default="vp8")
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--timeout", type=float, default=60, help="give up after this long (s)")
    args = p.parse_args()
    Gst.init(None)
    sys.exit(Client(args).run())


if __name__ == "__main__":
    main()
