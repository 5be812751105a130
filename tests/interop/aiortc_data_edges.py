#!/usr/bin/env python3
"""aiortc (PyPI) against the edges of the data channel contract (docs/conference.md,
"Data channels"): channels beside media, the room API's send, every refusal.

  aiortc_data_edges.py BASE ROOM        BASE: http://host:port of an open server

Participants of room ROOM (`?name=` is the identity):

  alice  WHIP: aiortc's AudioStreamTrack (silence) sendonly + a `chat` channel
  bob    WHEP: recvonly video and audio slots + a `chat` channel
  carol  WHEP, data only: `chat` and `_events`
  dave   WHEP, data only: `chat` and `_events`; sends every refused message
  erin   WHEP, data only, joins last: 18 channels `t0`..`t17`

Phases, in order:
  1. everyone's channels open; the answers accept `m=application` (and alice's audio);
     alice, bob and carol chat (each line reaches every other `chat` holder, once,
     never back to its sender) and carol sends one line `to` alice only; bob's audio
     slot plays alice's track.
  2. erin joins: carol's and dave's `_events` get `participant-joined` (erin); the
     server closes erin's channels past 16 (`too_many_channels`).
  3. room API: `POST /api/rooms/ROOM/data` to `chat` (every holder gets it from
     `server`, the reply counts them), `to` bob (only bob), a topic nobody holds (0),
     `_events` (422), `to` an unknown identity (404); to erin's `t0` (1: erin) and to
     a channel the server closed (0).
  4. dave's refusals, one at a time (error replies are limited to 2 a second per
     session, so each waits for the previous reply and 0.55 s more): `too_large`,
     `binary`, five `invalid` (not JSON, a JSON array, no `data`, `to` a string, `to`
     naming 65), `unknown_recipient`, `reserved` (on `_events`); then a
     burst of 300 messages: `rate_limited`. Each reply comes on the channel it refuses;
     nothing refused reaches the others (checked after a final line from dave that
     follows every relayed one on the receivers' ordered channels).

Prints progress on stderr and, last on stdout, `RESULT {json}` (`problems`: every check
that failed). Exits 0 when everything held, 1 otherwise."""

import argparse
import asyncio
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import aiortc
from aiortc import AudioStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

import whip

BURST = 300
EXTRA_CHANNELS = 18  # erin's; the server keeps 16
MAX_CHANNELS = 16
# Error replies: at most 2 a second per session (a bucket of one).
REPLY_GAP = 0.55


def log(*a):
    print("[aiortc-data-edges]", *a, file=sys.stderr, flush=True)


def m_lines(sdp):
    """[(kind, port)] of an SDP's m-lines."""
    out = []
    for line in sdp.splitlines():
        if line.startswith("m="):
            parts = line[2:].split()
            out.append((parts[0], int(parts[1])))
    return out


class Peer:
    """One session: its channels, what they got, the error replies."""

    def __init__(self, name, url, labels, media=None):
        self.name = name
        self.url = f"{url}?name={urllib.parse.quote(name)}"
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.session = None
        self.answer = None
        self.audio_frames = 0
        self.got = {}  # label -> [message]
        self.errors = []  # (label, reply)
        self.odd = []  # what the contract does not allow the server to send
        if media == "publish":
            self.pc.addTransceiver(AudioStreamTrack(), direction="sendonly")
        elif media == "play":
            self.pc.addTransceiver("video", direction="recvonly")
            self.pc.addTransceiver("audio", direction="recvonly")
            self.pc.on("track", self._on_track)
        self.ch = {}
        for label in labels:
            c = self.pc.createDataChannel(label)
            self.ch[label] = c
            self.got[label] = []
            c.on("message", self._handler(label))

    def _on_track(self, track):
        async def consume():
            while True:
                try:
                    await track.recv()
                except MediaStreamError:
                    return
                if track.kind == "audio":
                    self.audio_frames += 1

        asyncio.ensure_future(consume())

    def _handler(self, label):
        def handle(message):
            if isinstance(message, bytes):
                self.odd.append(f"{self.name}: binary on {label}")
                return
            try:
                m = json.loads(message)
            except ValueError:
                self.odd.append(f"{self.name}: not JSON on {label}: {message[:80]!r}")
                return
            if not isinstance(m, dict):
                self.odd.append(f"{self.name}: not an object on {label}: {message[:80]!r}")
            elif "error" in m:
                self.errors.append((label, m))
            else:
                self.got[label].append(m)

        return handle

    def states(self):
        return [c.readyState for c in self.ch.values()]

    def open(self):
        return all(s == "open" for s in self.states())

    def send(self, label, payload):
        self.ch[label].send(payload if isinstance(payload, (str, bytes)) else json.dumps(payload))

    def chat_from(self, sender):
        return [m for m in self.got.get("chat", []) if m.get("from") == sender]

    async def join(self):
        await self.pc.setLocalDescription(await self.pc.createOffer())
        loop = asyncio.get_running_loop()
        self.answer, self.session = await loop.run_in_executor(
            None, whip.post_offer, self.url, self.pc.localDescription.sdp
        )
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=self.answer, type="answer"))

    async def close(self):
        await asyncio.get_running_loop().run_in_executor(None, whip.delete, self.session)
        await self.pc.close()


async def until(pred, timeout, step=0.02):
    """Wait until pred() holds; returns whether it did within timeout seconds."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(step)
    return True


def post_json(url, body, timeout=5):
    """POST a JSON body; returns (status, parsed body or text)."""
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, text = resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read().decode(errors="replace")
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


def counters(base):
    """The data relay's drop and close counters from /metrics: {(metric, reason): n}."""
    with urllib.request.urlopen(f"{base}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    out = {}
    for line in text.splitlines():
        for metric in ("switchboard_data_messages_dropped_total", "switchboard_data_channels_closed_total"):
            if line.startswith(metric + "{") and 'reason="' in line:
                reason = line.split('reason="', 1)[1].split('"', 1)[0]
                out[(metric, reason)] = out.get((metric, reason), 0) + float(line.rsplit(" ", 1)[1])
    return out


async def run(args):
    clock = whip.Clock()
    result = {"stack": "aiortc", "version": aiortc.__version__, "role": "data-edges"}
    problems = []
    base = args.base.rstrip("/")
    whip_url, whep_url = f"{base}/whip/{args.room}", f"{base}/whep/{args.room}"
    alice = Peer("alice", whip_url, ["chat"], media="publish")
    bob = Peer("bob", whep_url, ["chat"], media="play")
    carol = Peer("carol", whep_url, ["chat", "_events"])
    dave = Peer("dave", whep_url, ["chat", "_events"])
    erin = Peer("erin", whep_url, [f"t{i}" for i in range(EXTRA_CHANNELS)])
    first = [alice, bob, carol, dave]
    chatters = [alice, bob, carol, dave]
    loop = asyncio.get_running_loop()
    try:
        counted_before = await loop.run_in_executor(None, counters, base)
        # --- 1. channels beside media -------------------------------------------------
        await asyncio.gather(*(p.join() for p in first))
        for p in first:
            kinds = m_lines(p.answer)
            result.setdefault("answers", {})[p.name] = kinds
            if not any(k == "application" and port != 0 for k, port in kinds):
                problems.append(f"{p.name}: the answer does not accept m=application: {kinds}")
            if p is alice and not any(k == "audio" and port != 0 for k, port in kinds):
                problems.append(f"alice: the WHIP answer does not accept the audio m-line: {kinds}")
        if not await until(lambda: all(p.open() for p in first), args.connect_timeout):
            raise RuntimeError(f"channels not open after {args.connect_timeout} s: "
                               + str({p.name: p.states() for p in first}))
        result["open_ms"] = clock.ms()
        log("channels open (alice WHIP+audio, bob WHEP+slots, carol, dave)")
        for p in (alice, bob, carol):
            p.send("chat", {"data": {"text": f"hello from {p.name}"}})
        carol.send("chat", {"data": {"text": "only for alice"}, "to": ["alice"]})
        senders = {"alice": 1, "bob": 1, "carol": 2}

        def chat_done():
            return all(
                len(p.chat_from(s)) >= (n if s != "carol" or p is alice else 1)
                for p in chatters for s, n in senders.items() if s != p.name
            )

        await until(chat_done, 5)
        await asyncio.sleep(0.2)  # anything extra (an echo) would show by now
        chat = {}
        for p in chatters:
            lines = {s: [m["data"].get("text") for m in p.chat_from(s)] for s in senders if s != p.name}
            chat[p.name] = lines
            if p.chat_from(p.name):
                problems.append(f"{p.name} got its own chat back")
            for s in senders:
                if s == p.name:
                    continue
                want = [f"hello from {s}"] + (["only for alice"] if s == "carol" and p is alice else [])
                if lines[s] != want:
                    problems.append(f"{p.name}: chat from {s}: {lines[s]}, want {want}")
            for m in p.got["chat"]:
                if m.get("topic") != "chat":
                    problems.append(f"{p.name}: a chat message with topic {m.get('topic')!r}")
            directed = [m for m in p.chat_from("carol") if "to" in m]
            if p is alice and [m["to"] for m in directed] != [["alice"]]:
                problems.append(f"alice: the directed line arrived as {directed}")
        result["chat"] = chat
        # bob's audio slot plays alice's silence while the channels run.
        await until(lambda: bob.audio_frames >= 25, 5)
        result["bob_audio_frames"] = bob.audio_frames
        if bob.audio_frames < 25:
            problems.append(f"bob (WHEP with slots and a channel): {bob.audio_frames} audio frames of alice's track")
        log("chat ok so far; bob audio frames", bob.audio_frames)

        # --- 2. _events, too_many_channels -------------------------------------------
        await erin.join()
        ok = await until(
            lambda: erin.states().count("open") == MAX_CHANNELS
            and erin.states().count("closed") == EXTRA_CHANNELS - MAX_CHANNELS,
            args.connect_timeout,
        )
        await asyncio.sleep(0.3)  # no more closes after that
        st = erin.states()
        result["erin_channels"] = {s: st.count(s) for s in sorted(set(st))}
        result["erin_closed"] = [lbl for lbl, c in erin.ch.items() if c.readyState == "closed"]
        want_closed = [f"t{i}" for i in range(MAX_CHANNELS, EXTRA_CHANNELS)]
        if not ok or result["erin_closed"] != want_closed:
            problems.append(f"erin opened {EXTRA_CHANNELS} channels: {result['erin_channels']}, closed "
                            f"{result['erin_closed']}, want the server to close {want_closed} (past {MAX_CHANNELS})")

        def joined(p, who):
            return [m for m in p.got["_events"]
                    if m.get("data", {}).get("event") == "participant-joined"
                    and m["data"].get("data", {}).get("identity") == who]

        await until(lambda: joined(carol, "erin") and joined(dave, "erin"), 5)
        for p in (carol, dave):
            names = [f'{m.get("data", {}).get("event")}:{(m.get("data", {}).get("data") or {}).get("identity", "")}'
                     for m in p.got["_events"]]
            result.setdefault("events", {})[p.name] = names
            if not joined(p, "erin"):
                problems.append(f"{p.name}: no participant-joined of erin on _events (got {names})")
            for m in p.got["_events"]:
                if m.get("from") != "server" or m.get("topic") != "_events" or "event" not in m.get("data", {}):
                    problems.append(f"{p.name}: on _events, not a server event: {m}")
        log("erin:", result["erin_channels"], "events:", result.get("events"))

        # --- 3. the room API's send --------------------------------------------------
        api = f"{base}/api/rooms/{args.room}/data"

        async def post(body):
            return await loop.run_in_executor(None, post_json, api, body)

        calls = [
            ("all", {"topic": "chat", "data": {"notice": "all"}}, 200, {"receivers": 4}),
            ("bob", {"topic": "chat", "data": {"notice": "bob"}, "to": ["bob"]}, 200, {"receivers": 1}),
            ("nobody", {"topic": "no-such-topic", "data": 1}, 200, {"receivers": 0}),
            ("events", {"topic": "_events", "data": {"x": 1}}, 422, None),
            ("unknown", {"topic": "chat", "data": {"notice": "x"}, "to": ["nobody"]}, 404, None),
            # erin's channels the server kept are in the relay, the closed ones are not.
            ("erin_kept", {"topic": "t0", "data": {"notice": "t0"}}, 200, {"receivers": 1}),
            ("erin_closed", {"topic": f"t{EXTRA_CHANNELS - 1}", "data": 1}, 200, {"receivers": 0}),
        ]
        result["api"] = {}
        for key, body, status, want in calls:
            got_status, got = await post(body)
            result["api"][key] = [got_status, got if got_status == 200 else None]
            if got_status != status or (want is not None and got != want):
                problems.append(f"POST {api} {json.dumps(body)}: {got_status} {got}, want {status} {want or ''}")

        def notices(p):
            return [m["data"]["notice"] for m in p.got["chat"]
                    if m.get("from") == "server" and isinstance(m.get("data"), dict) and "notice" in m["data"]]

        want_notices = {p.name: ["all", "bob"] if p is bob else ["all"] for p in chatters}
        await until(lambda: all(len(notices(p)) >= len(want_notices[p.name]) for p in chatters) and erin.got["t0"], 5)
        await asyncio.sleep(0.2)
        result["server_notices"] = {p.name: notices(p) for p in chatters}
        erin_got = {lbl: msgs for lbl, msgs in erin.got.items() if msgs}
        if erin_got != {"t0": [{"from": "server", "topic": "t0", "data": {"notice": "t0"}}]}:
            problems.append(f"erin: server messages {erin_got}, want one on t0")
        for p in chatters:
            if notices(p) != want_notices[p.name]:
                problems.append(f"{p.name}: server messages {notices(p)}, want {want_notices[p.name]}")
            for m in p.got["chat"]:
                if m.get("from") == "server" and m.get("topic") != "chat":
                    problems.append(f"{p.name}: a server message with topic {m.get('topic')!r}")
        log("room API:", result["api"])

        # --- 4. refusals ---------------------------------------------------------------
        pad = "x" * (17 * 1024)
        refusals = [
            ("too_large", "chat", json.dumps({"data": {"refused": "too_large", "pad": pad}}), "too_large"),
            ("binary", "chat", b'{"data": {"refused": "binary"}}', "binary"),
            ("not_json", "chat", "not json {", "invalid"),
            ("no_data", "chat", json.dumps({"refused": "no_data"}), "invalid"),
            ("json_array", "chat", json.dumps([{"data": {"refused": "json_array"}}]), "invalid"),
            ("to_not_array", "chat", json.dumps({"data": {"refused": "to_not_array"}, "to": "carol"}), "invalid"),
            ("to_65", "chat", json.dumps({"data": {"refused": "to_65"}, "to": ["carol"] * 65}), "invalid"),
            ("unknown_recipient", "chat",
             json.dumps({"data": {"refused": "unknown_recipient"}, "to": ["carol", "nobody"]}), "unknown_recipient"),
            ("reserved", "_events", json.dumps({"data": {"refused": "reserved"}}), "reserved"),
        ]
        result["refusals"] = {}
        await asyncio.sleep(REPLY_GAP)
        for key, label, payload, reason in refusals:
            n = len(dave.errors)
            dave.send(label, payload)
            await until(lambda: len(dave.errors) > n, 3)
            replies = dave.errors[n:]
            result["refusals"][key] = [f"{lbl}:{r.get('error')}" for lbl, r in replies]
            if [(lbl, r.get("error")) for lbl, r in replies] != [(label, reason)]:
                problems.append(f"dave sent {key} on {label}: replies {replies}, want one {reason!r} on {label}")
            elif not isinstance(replies[0][1].get("detail"), str):
                problems.append(f"dave sent {key}: the reply has no detail: {replies[0][1]}")
            await asyncio.sleep(REPLY_GAP)
        log("refusals:", result["refusals"])

        n = len(dave.errors)
        t0 = time.monotonic()
        for k in range(BURST):
            dave.send("chat", {"data": {"burst": k}})
        await until(lambda: len(dave.errors) > n, 3)
        # Past the limit refusals are only counted: at most a reply per 0.5 s arrives.
        await asyncio.sleep(1.2)
        burst_replies = [(lbl, r.get("error")) for lbl, r in dave.errors[n:]]
        result["burst_replies"] = len(burst_replies)
        if not burst_replies or any(x != ("chat", "rate_limited") for x in burst_replies):
            problems.append(f"dave sent {BURST} messages at once: replies {burst_replies}, want rate_limited on chat")
        elif len(burst_replies) > 2 * (time.monotonic() - t0) + 1:
            problems.append(f"{len(burst_replies)} error replies in {time.monotonic() - t0:.1f} s (limit: 2 a second)")
        dave.send("chat", {"data": {"end": True}})  # the bucket has refilled by now
        others = [alice, bob, carol]

        def ended(p):
            return any(isinstance(m.get("data"), dict) and m["data"].get("end") for m in p.chat_from("dave"))

        if not await until(lambda: all(ended(p) for p in others), 5):
            problems.append(f"dave's last line did not reach {[p.name for p in others if not ended(p)]}")
        await asyncio.sleep(0.2)
        relayed = {}
        for p in others:
            from_dave = [m["data"] for m in p.chat_from("dave") if isinstance(m.get("data"), dict)]
            leaked = [d.get("refused") for d in from_dave if "refused" in d]
            if leaked:
                problems.append(f"{p.name} got refused messages of dave: {leaked}")
            burst = [d["burst"] for d in from_dave if "burst" in d]
            relayed[p.name] = len(burst)
            if burst != sorted(set(burst)):
                problems.append(f"{p.name}: dave's burst out of order or repeated")
            if p.errors:
                problems.append(f"{p.name} got error replies meant for another: {p.errors}")
            if any(m.get("data", {}).get("refused") for m in p.got.get("_events", [])):
                problems.append(f"{p.name}: a message on _events was relayed")
        result["burst_relayed"] = relayed
        counts = set(relayed.values())
        if len(counts) != 1 or not (100 <= counts.pop() < BURST):
            problems.append(f"burst of {BURST}: relayed {relayed}, want the same count, from 100 (the burst) "
                            f"to under {BURST}, at every receiver")
        if any(m.get("data", {}).get("refused") for m in carol.got["_events"] + dave.got["_events"]):
            problems.append("a message sent on _events came back on _events")
        for p in first + [erin]:
            problems.extend(p.odd)
        # Every refusal is counted, answered or not (/metrics, docs/security.md).
        counted_after = await loop.run_in_executor(None, counters, base)
        delta = {f"{m.split('_')[-2]}:{r}": round(n - counted_before.get((m, r), 0))
                 for (m, r), n in counted_after.items() if n != counted_before.get((m, r), 0)}
        result["counted"] = delta
        want_counted = {"dropped:too_large": 1, "dropped:binary": 1, "dropped:invalid": 5,
                        "dropped:unknown_recipient": 1, "dropped:reserved": 1,
                        "dropped:rate_limited": BURST - max(relayed.values(), default=0),
                        "closed:too_many_channels": EXTRA_CHANNELS - MAX_CHANNELS}
        if delta != want_counted:
            problems.append(f"/metrics counted {delta}, want {want_counted}")
        log("burst: relayed", relayed, "replies", result["burst_replies"])
    except Exception as e:  # noqa: BLE001
        problems.append(f"{type(e).__name__}: {e}")
    finally:
        await asyncio.gather(*(p.close() for p in first + [erin]), return_exceptions=True)
    result["ms"] = clock.ms()
    if problems:
        result["problems"] = problems[:30]
        result["error"] = f"{len(problems)} problems, first: {problems[0]}"
        log("error:", result["error"])
    whip.emit(result)
    return 1 if "error" in result else 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("base", help="http://host:port of the server")
    p.add_argument("room")
    p.add_argument("--connect-timeout", type=float, default=15)
    args = p.parse_args()
    sys.exit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
