#!/usr/bin/env python3
"""aiortc (PyPI) participants exchanging data channel messages through a room.

  aiortc_data.py URL --people N --messages M

N participants join the WHEP endpoint URL (a `?name=pI` each) with data channels only:
`chat` (ordered, reliable) and `pos` (unordered, maxRetransmits 0). Once every channel is
open, each sends M chat messages `{"data": {"n": k}}` (one every 50 ms) and M positions,
plus one message directed `to` the next participant. Everyone then waits for what it
should get. Checks, per receiver: every other participant's chat lines, once each and in
order; the directed message only at its addressee; nothing of its own back; every
message names its sender. Prints progress on stderr and, last on stdout,
`RESULT {json}`. Exits 0 when it ran, 1 on an error."""

import argparse
import asyncio
import json
import sys
import urllib.parse

import aiortc
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

import whip


def log(*a):
    print("[aiortc-data]", *a, file=sys.stderr, flush=True)


class Person:
    def __init__(self, name, url):
        self.name = name
        sep = "&" if "?" in url else "?"
        self.url = f"{url}{sep}name={urllib.parse.quote(name)}"
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.chat = self.pc.createDataChannel("chat")
        self.pos = self.pc.createDataChannel("pos", ordered=False, maxRetransmits=0)
        self.opened = asyncio.Event()
        self.got = {"chat": [], "pos": []}
        self.errors = []
        self.session = None
        for ch in (self.chat, self.pos):
            ch.on("open", self._on_open)
            ch.on("message", self._make_handler(ch.label))

    def _on_open(self):
        if self.chat.readyState == "open" and self.pos.readyState == "open":
            self.opened.set()

    def _make_handler(self, label):
        def handle(message):
            try:
                m = json.loads(message)
            except ValueError:
                self.errors.append(f"not JSON on {label}: {message[:80]!r}")
                return
            if "error" in m:
                self.errors.append(f"refused on {label}: {m}")
                return
            self.got[label].append(m)

        return handle

    async def join(self):
        await self.pc.setLocalDescription(await self.pc.createOffer())
        loop = asyncio.get_running_loop()
        answer, self.session = await loop.run_in_executor(
            None, whip.post_offer, self.url, self.pc.localDescription.sdp
        )
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))

    async def close(self):
        await asyncio.get_running_loop().run_in_executor(None, whip.delete, self.session)
        await self.pc.close()


async def run(args):
    clock = whip.Clock()
    result = {"stack": "aiortc", "version": aiortc.__version__, "role": "data"}
    people = [Person(f"p{i}", args.url) for i in range(args.people)]
    try:
        await asyncio.gather(*(p.join() for p in people))
        waits = [asyncio.wait_for(p.opened.wait(), args.connect_timeout) for p in people]
        try:
            await asyncio.gather(*waits)
        except asyncio.TimeoutError:
            states = {p.name: (p.chat.readyState, p.pos.readyState) for p in people}
            raise RuntimeError(f"channels not open after {args.connect_timeout} s: {states}")
        result["open_ms"] = clock.ms()
        log("all channels open")
        for k in range(args.messages):
            for p in people:
                p.chat.send(json.dumps({"data": {"n": k, "text": f"line {k} from {p.name}"}}))
                p.pos.send(json.dumps({"data": {"n": k, "x": k * 3}}))
            await asyncio.sleep(0.05)
        for i, p in enumerate(people):
            to = people[(i + 1) % len(people)].name
            p.chat.send(json.dumps({"data": {"direct": True}, "to": [to]}))
        # One broken message: answered with an error, never relayed.
        people[0].chat.send("not json")
        want_chat = (args.people - 1) * args.messages + 1

        async def settled():
            while not (all(len(p.got["chat"]) >= want_chat for p in people) and people[0].errors):
                await asyncio.sleep(0.05)

        try:
            await asyncio.wait_for(settled(), args.timeout)
        except asyncio.TimeoutError:
            pass
        problems = []
        for i, p in enumerate(people):
            by_sender = {}
            directed = []
            for m in p.got["chat"]:
                if m.get("topic") != "chat" or "from" not in m:
                    problems.append(f"{p.name}: a message without from/topic: {m}")
                    continue
                if m.get("to"):
                    directed.append(m["from"])
                    continue
                by_sender.setdefault(m["from"], []).append(m["data"]["n"])
            if p.name in by_sender:
                problems.append(f"{p.name} got its own chat back")
            for q in people:
                if q is p:
                    continue
                got = by_sender.get(q.name, [])
                if got != list(range(args.messages)):
                    problems.append(f"{p.name}: chat from {q.name}: {len(got)} of {args.messages}, in order: {got == sorted(got)}")
            before = people[(i - 1) % len(people)].name
            if directed != [before]:
                problems.append(f"{p.name}: directed messages from {directed}, want [{before}]")
            if any(m.get("from") == p.name for m in p.got["pos"]):
                problems.append(f"{p.name} got its own positions back")
        if not any("invalid" in e for e in people[0].errors):
            problems.append(f"p0: no error reply to a broken message: {people[0].errors}")
        result["chat_received"] = [len(p.got["chat"]) for p in people]
        result["pos_received"] = [len(p.got["pos"]) for p in people]
        result["chat_expected"] = want_chat
        result["pos_sent_each"] = args.messages
        if problems:
            result["problems"] = problems[:20]
            raise RuntimeError(f"{len(problems)} problems, first: {problems[0]}")
    except Exception as e:  # noqa: BLE001
        result["error"] = str(e)
        log("error:", e)
    finally:
        await asyncio.gather(*(p.close() for p in people), return_exceptions=True)
    whip.emit(result)
    return 1 if "error" in result else 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("url")
    p.add_argument("--people", type=int, default=4)
    p.add_argument("--messages", type=int, default=20)
    p.add_argument("--connect-timeout", type=float, default=15)
    p.add_argument("--timeout", type=float, default=15)
    args = p.parse_args()
    sys.exit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
