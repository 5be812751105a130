// Server-sent events over fetch: the WHEP session's event stream (docs/conference.md).
//
// EventSource cannot send an Authorization header, so the stream is read with fetch and
// a ReadableStream, and parsed as the HTML Living Standard (§9.2.6) says: lines end in
// CRLF, LF or CR; `event`, `data`, `id` and `retry` fields; `:` starts a comment; an
// empty line dispatches. A dropped stream is opened again after the last `retry`
// (3 s by default); the server then starts with the current state again.
//
//   const stream = openEventStream(url, {
//     token,
//     onEvent: (name, data, raw) => {},   // data: parsed JSON, or null when it is not JSON
//     onGone: (status) => {},            // 404/410: the session no longer exists; not retried
//     onState: (state) => {},            // 'connecting' | 'open' | 'waiting' | 'closed'
//   });
//   stream.close();                       // no more events, no more reconnects
//
// A `reconnect` event is passed on like any other; the stream then ends and is not
// opened again (the caller sets up a new session, whose stream replaces this one).

import { authHeaders } from './whip-whep.js';

const DEFAULT_RETRY_MS = 3000;
/** Upper bound for the wait after repeated failures (the server's retry is the lower one). */
const MAX_RETRY_MS = 30_000;

/**
 * An incremental parser: feed() it decoded text as it arrives; it calls
 * onMessage({ event, data, id }) per dispatched event and onRetry(ms) for `retry` fields.
 */
export class EventStreamParser {
  constructor({ onMessage, onRetry }) {
    this.onMessage = onMessage;
    this.onRetry = onRetry;
    this.buffer = '';
    this.pendingCR = false;
    this.reset();
    this.lastEventId = '';
  }

  reset() {
    this.eventType = '';
    this.data = [];
  }

  feed(text) {
    let chunk = text;
    // a CR at the end of the previous chunk may be the first half of a CRLF
    if (this.pendingCR && chunk.startsWith('\n')) chunk = chunk.slice(1);
    this.pendingCR = false;
    this.buffer += chunk;
    let start = 0;
    for (let i = 0; i < this.buffer.length; i++) {
      const c = this.buffer[i];
      if (c !== '\n' && c !== '\r') continue;
      this.line(this.buffer.slice(start, i));
      if (c === '\r') {
        if (i + 1 === this.buffer.length) this.pendingCR = true;
        else if (this.buffer[i + 1] === '\n') i++;
      }
      start = i + 1;
    }
    this.buffer = this.buffer.slice(start);
  }

  line(line) {
    if (line === '') {
      this.dispatch();
      return;
    }
    if (line.startsWith(':')) return; // comment (keep-alive)
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    switch (field) {
      case 'event':
        this.eventType = value;
        break;
      case 'data':
        this.data.push(value);
        break;
      case 'id':
        if (!value.includes('\0')) this.lastEventId = value;
        break;
      case 'retry':
        if (/^\d+$/.test(value)) this.onRetry?.(Number(value));
        break;
      default:
        break; // unknown fields are ignored
    }
  }

  dispatch() {
    if (!this.data.length) {
      this.reset();
      return;
    }
    const message = { event: this.eventType || 'message', data: this.data.join('\n'), id: this.lastEventId };
    this.reset();
    this.onMessage(message);
  }
}

/** Opens the event stream at `url`; see the top of this file. */
export function openEventStream(url, { token, onEvent, onGone, onState } = {}) {
  let closed = false;
  let ended = false; // a `reconnect` event came: the stream ends for good
  let retryMs = DEFAULT_RETRY_MS;
  let failures = 0;
  let controller = null;
  let timer = null;

  const setState = (s) => onState?.(s);

  const deliver = ({ event, data }) => {
    if (closed) return;
    let parsed = null;
    try {
      parsed = JSON.parse(data);
    } catch {
      // not JSON: hand over the raw text only
    }
    if (event === 'reconnect') ended = true;
    try {
      onEvent?.(event, parsed, data);
    } catch (err) {
      console.error(`event ${event}:`, err);
    }
  };

  const connect = async () => {
    if (closed) return;
    setState('connecting');
    controller = new AbortController();
    const parser = new EventStreamParser({
      onMessage: deliver,
      onRetry: (ms) => {
        retryMs = ms;
      },
    });
    let gotBytes = false;
    try {
      const response = await fetch(url, {
        headers: { Accept: 'text/event-stream', ...authHeaders(token) },
        cache: 'no-store',
        signal: controller.signal,
      });
      if (response.status === 404 || response.status === 410) {
        closed = true;
        setState('closed');
        onGone?.(response.status);
        return;
      }
      if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
      setState('open');
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        if (!gotBytes) {
          gotBytes = true;
          failures = 0;
        }
        parser.feed(decoder.decode(value, { stream: true }));
        if (closed) {
          reader.cancel().catch(() => {});
          return;
        }
      }
      parser.feed(decoder.decode());
    } catch (err) {
      if (closed) return;
      if (!gotBytes) failures++;
      console.warn(`event stream: ${err?.message || err}`);
    }
    if (closed || ended) {
      setState('closed');
      return;
    }
    // dropped: open it again after `retry`, backing off while it keeps failing
    setState('waiting');
    const wait = Math.min(MAX_RETRY_MS, retryMs * 2 ** Math.min(failures, 4));
    timer = setTimeout(connect, wait);
  };

  connect();
  return {
    close() {
      closed = true;
      clearTimeout(timer);
      controller?.abort();
      setState('closed');
    },
  };
}
