"""WHIP/WHEP over HTTP for the interop clients (RFC 9725 §4.2, draft-ietf-wish-whep):
POST the offer, read the answer and the session URL, DELETE it at the end; and the
one-line JSON result each client prints last."""

import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request


def post_offer(endpoint, sdp, timeout=10):
    """POST `sdp` to `endpoint`; returns (answer SDP, absolute session URL).

    Raises RuntimeError with the status and problem body unless the answer is a 201."""
    req = urllib.request.Request(
        endpoint,
        data=sdp.encode(),
        method="POST",
        headers={"Content-Type": "application/sdp"},
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status = resp.status
            location = resp.headers.get("Location")
            body = resp.read().decode()
    except urllib.error.HTTPError as e:
        raise RuntimeError(f"POST {endpoint}: {e.code} {e.read().decode(errors='replace')}")
    if status != 201 or not location:
        raise RuntimeError(f"POST {endpoint}: {status}, Location {location!r}")
    return body, urllib.parse.urljoin(endpoint, location)


def delete(session_url, timeout=5):
    """DELETE the session (best effort)."""
    if not session_url:
        return
    try:
        req = urllib.request.Request(session_url, method="DELETE")
        urllib.request.urlopen(req, timeout=timeout).read()
    except Exception:  # noqa: BLE001 - the server may be gone already
        pass


def session_id(session_url):
    """The last path segment of the session URL: what the server logs as `session`."""
    return session_url.rstrip("/").rsplit("/", 1)[-1] if session_url else None


def answer_codecs(answer):
    """Encoding names of the answer's m-lines, per kind, in order: {"video": [...], ...}."""
    out, kind, order, maps = {}, None, [], {}
    lines = answer.splitlines() + ["m=end 0 x"]
    for line in lines:
        if line.startswith("m="):
            if kind in ("audio", "video"):
                names = [maps[pt] for pt in order if pt in maps and maps[pt] not in ("rtx", "red", "ulpfec")]
                out.setdefault(kind, []).append(names[0] if names else None)
            parts = line[2:].split()
            kind, order, maps = parts[0], parts[3:], {}
        elif line.startswith("a=rtpmap:"):
            pt, rest = line[len("a=rtpmap:"):].split(" ", 1)
            maps[pt] = rest.split("/")[0].lower()
    return out


def emit(result):
    """Print the result as the last stdout line, `RESULT {json}`."""
    print("RESULT " + json.dumps(result), flush=True)


class Clock:
    """Milliseconds since the client started."""

    def __init__(self):
        self.t0 = time.monotonic()

    def ms(self):
        return round((time.monotonic() - self.t0) * 1000)


def fail(result, message):
    result["error"] = message
    emit(result)
    sys.exit(1)
