// Chat, raised hands and emoji reactions of the conference page, over data channels
// (docs/conference.md, "Data channels" and "The conference page"). They travel on a
// WHEP session of their own that carries data only: an RTCPeerConnection with no
// transceivers and two channels opened before the offer, POSTed to the page's WHEP
// endpoint (same room, same ?name= and token). The media sessions stay as they are, and
// a chat that fails never touches the call.
//
//   label `chat`       ordered, reliable        {"data": {"text": "…"}}  (trimmed, 1..2000)
//   label `reactions`  unordered, no resends    {"data": {"emoji": "👍"}}, {"data": {"hand": true|false}}
//
// The server hands each message to every other participant as {"from", "name", "topic",
// "data"} (never back to the sender: own chat lines are added here), and answers a
// refused one with {"error", "detail"}. A raised hand is sent again every 5 s while it is
// up (the channel does not resend, and a later joiner learns of it); a lowered one twice.
//
//   const chat = new RoomChat();          // finds its elements in room.html by id
//   chat.addEventListener('change', (e) => e.detail.what);  // 'state' | 'messages' | 'marks'
//   chat.start(conference);               // after the join: opens the data session
//   chat.restart();                       // after the conference reconnected (new node)
//   chat.prune(conference.participants);  // hands and reactions of those gone go
//   await chat.stop({ keepalive });       // DELETE of the data session (leave, unload)
//   chat.marks                            // { hand(identity), reaction(identity) } for tiles
//   chat.snapshot()                       // { chat: { state, messages, unread }, reactions, hands }

import { play } from './whip-whep.js';
import { el } from './ui.js';

/** The reaction buttons, in order. */
export const REACTIONS = Object.freeze(['👍', '👏', '😂', '❤️', '🎉', '😮']);
/** Longest chat line, in UTF-16 code units (the input's maxlength). */
export const MAX_TEXT = 2000;
const MAX_MESSAGES = 200;
const MAX_REACTIONS = 50;
/** Longest emoji string taken from a peer (a flag or a family is several code points). */
const MAX_EMOJI = 16;
/** How long a reaction stays on its sender's tile. */
export const REACTION_MS = 3000;
const HAND_REPEAT_MS = 5000;
const HAND_LOWER_AGAIN_MS = 1000;
const NOTICE_MS = 8000;
/** Waits before the data session is set up again after it dropped; then it stays down. */
const RETRY_MS = [1000, 3000, 10_000, 30_000];

const $ = (id) => document.getElementById(id);

/** The trimmed text of a chat message's data, or null when the data has another shape. */
export function chatText(data) {
  if (!data || typeof data !== 'object' || typeof data.text !== 'string') return null;
  const text = data.text.trim();
  return text.length >= 1 && text.length <= MAX_TEXT ? text : null;
}

/** { emoji } or { hand } from a reactions message's data, or null for another shape. */
export function reactionOf(data) {
  if (!data || typeof data !== 'object') return null;
  if (typeof data.emoji === 'string' && data.emoji.length >= 1 && data.emoji.length <= MAX_EMOJI) return { emoji: data.emoji };
  if (typeof data.hand === 'boolean') return { hand: data.hand };
  return null;
}

/** "HH:MM", local time. */
export function clock(at) {
  const d = new Date(at);
  return `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`;
}

/**
 * Draws `marks` ({ hand(identity), reaction(identity) }) of `identity` on a tile: a ✋
 * badge among its `badges` while the hand is up, the emoji of a recent reaction over it.
 * `identity` null: neither.
 */
export function showMarks(root, badges, identity, marks) {
  const hand = Boolean(identity && marks?.hand(identity));
  let badge = badges.querySelector('.hand');
  if (hand && !badge) {
    badge = el('span', 'badge-icon hand', '✋');
    badge.title = 'Hand raised';
    badges.prepend(badge);
  } else if (!hand && badge) {
    badge.remove();
  }
  const reaction = identity ? marks?.reaction(identity) : null;
  const shown = root.querySelector(':scope > .tile-reaction');
  if (!reaction) {
    shown?.remove();
    return;
  }
  if (shown?.dataset.key === reaction.key) return;
  // a new element for a new reaction: its animation starts over
  const overlay = el('div', 'tile-reaction', reaction.emoji);
  overlay.dataset.key = reaction.key;
  overlay.setAttribute('aria-hidden', 'true');
  if (shown) shown.replaceWith(overlay);
  else root.append(overlay);
}

export class RoomChat extends EventTarget {
  constructor() {
    super();
    this.ui = {
      panel: $('chat-panel'),
      toggle: $('chat-toggle'),
      unread: $('chat-unread'),
      close: $('chat-close'),
      state: $('chat-state'),
      notice: $('chat-notice'),
      list: $('chat-list'),
      form: $('chat-form'),
      input: $('chat-input'),
      send: $('chat-send'),
      reactions: $('reactions'),
      hand: $('hand'),
    };
    this.conf = null;
    this.state = 'closed'; // 'connecting' | 'open' | 'failed' | 'closed'
    this.session = null; // the data session (whip-whep.js play()), with .channels
    this.epoch = 0; // bumped per session and on stop: late callbacks of older ones do nothing
    this.retries = 0;
    this.retryTimer = null;
    this.messages = []; // { from, name, text, at, mine }
    this.unread = 0;
    this.reactions = []; // received: { from, emoji, at }
    this.hands = new Map(); // identity → true (received)
    this.ownHand = false;
    this.handTimer = null;
    this.lastReaction = new Map(); // identity → { emoji, key, timer } while shown
    this.reactionSeq = 0;
    this.noticeTimer = null;
    this.transientNotice = '';
    this.sessionNotice = '';
    this.marks = Object.freeze({
      hand: (identity) => (this.isOwn(identity) ? this.ownHand : this.hands.has(identity)),
      reaction: (identity) => this.lastReaction.get(identity) ?? null,
    });

    this.ui.input.maxLength = MAX_TEXT;
    this.ui.reactions.replaceChildren(...REACTIONS.map((emoji) => {
      const b = el('button', 'reaction-button', emoji);
      b.type = 'button';
      b.dataset.emoji = emoji;
      b.title = `React with ${emoji}`;
      b.addEventListener('click', () => this.react(emoji));
      return b;
    }));
    this.ui.toggle.addEventListener('click', () => this.setOpen(this.ui.panel.hidden));
    this.ui.close.addEventListener('click', () => this.setOpen(false));
    this.ui.form.addEventListener('submit', (event) => {
      event.preventDefault();
      this.sendText(this.ui.input.value);
    });
    this.ui.hand.addEventListener('click', () => this.setHand(!this.ownHand));
    this.renderControls();
  }

  emit(what) {
    this.dispatchEvent(new CustomEvent('change', { detail: { what } }));
  }

  isOwn(identity) {
    return Boolean(this.conf) && identity === this.conf.identity;
  }

  get isOpen() {
    return !this.ui.panel.hidden;
  }

  /** The hook's view: { chat: { state, messages, unread }, reactions, hands }. */
  snapshot() {
    return {
      chat: { state: this.state, messages: this.messages.map((m) => ({ ...m })), unread: this.unread },
      reactions: this.reactions.map((r) => ({ ...r })),
      hands: Object.fromEntries([...this.hands.keys()].map((identity) => [identity, true])),
    };
  }

  // -------------------------------------------------------------------------
  // the data session

  /** A new call: empty panel, then the data session. */
  start(conf) {
    this.stop();
    this.conf = conf;
    this.messages = [];
    this.unread = 0;
    this.reactions = [];
    this.ui.list.replaceChildren();
    clearTimeout(this.noticeTimer);
    this.transientNotice = '';
    this.retries = 0;
    this.connect();
  }

  /** After the conference moved (a `reconnect`): a new data session beside the new media ones. */
  restart() {
    if (!this.conf || this.state === 'closed') return;
    this.retries = 0;
    this.connect();
  }

  setState(state, notice = '') {
    this.state = state;
    this.sessionNotice = notice;
    this.renderControls();
    this.emit('state');
  }

  /** Opens a data session; the current one (if any) goes once the new one is set up. */
  async connect() {
    clearTimeout(this.retryTimer);
    const epoch = ++this.epoch;
    const conf = this.conf;
    if (this.state !== 'open') this.setState('connecting');
    const channels = {};
    let session;
    try {
      session = await play(conf.endpoint('whep'), {
        token: conf.token,
        audioSlots: 0,
        videoSlots: 0,
        // ICE restarts keep the data channels; a new POST would not (this class opens
        // a new data session itself when the supervisor gives up)
        reconnect: { newSession: false },
        onPeerConnection: (pc) => {
          channels.chat = pc.createDataChannel('chat');
          channels.reactions = pc.createDataChannel('reactions', { ordered: false, maxRetransmits: 0 });
        },
      });
    } catch (err) {
      if (epoch === this.epoch) this.lost(`the data session was refused (${err?.message || err})`, err?.status);
      return;
    }
    if (epoch !== this.epoch) {
      session.stop();
      return;
    }
    const old = this.session;
    session.channels = channels;
    this.session = session;
    old?.stop();
    const current = () => epoch === this.epoch && this.session === session;
    for (const channel of Object.values(channels)) {
      channel.addEventListener('open', () => {
        if (current() && Object.values(channels).every((c) => c.readyState === 'open')) this.opened();
      });
      channel.addEventListener('close', () => {
        if (current()) this.lost(`the ${channel.label} channel closed`);
      });
      channel.addEventListener('message', (event) => {
        if (current()) this.receive(channel.label, event.data);
      });
    }
    session.pc.addEventListener('connectionstatechange', () => {
      // a connection that was up is the reconnect supervisor's first (whip-whep.js)
      if (current() && session.pc.connectionState === 'failed' && session.reconnectState !== 'reconnecting') {
        this.lost('its connection failed');
      }
    });
    session.addEventListener('reconnectfailed', () => {
      if (current()) this.lost('its connection failed');
    });
  }

  opened() {
    this.retries = 0;
    this.setState('open');
    // a hand raised before a reconnect is still up
    if (this.ownHand) this.send('reactions', { hand: true });
  }

  /** The data session is gone or was refused: tried again a few times, else chat stays off. */
  lost(reason, status) {
    const session = this.session;
    this.session = null;
    this.epoch++;
    session?.stop();
    // a refusal the same request would get again (4xx but 408 and 429) is final
    const final = status >= 400 && status < 500 && status !== 408 && status !== 429;
    const wait = final ? undefined : RETRY_MS[this.retries];
    this.retries += 1;
    this.setState('failed', `Chat is unavailable: ${reason}.${wait ? ' Trying again…' : ''} The call goes on without it.`);
    if (wait) this.retryTimer = setTimeout(() => this.connect(), wait);
  }

  /** Ends the data session (DELETE); with { keepalive } while the page unloads. */
  stop({ keepalive = false } = {}) {
    this.epoch++;
    clearTimeout(this.retryTimer);
    clearTimeout(this.handTimer);
    const session = this.session;
    this.session = null;
    this.ownHand = false;
    this.hands.clear();
    for (const r of this.lastReaction.values()) clearTimeout(r.timer);
    this.lastReaction.clear();
    if (this.state !== 'closed') this.setState('closed');
    this.emit('marks');
    return session ? session.stop({ keepalive }) : Promise.resolve();
  }

  /** Sends `data` on the channel `topic`; false when it is not open. */
  send(topic, data) {
    const channel = this.session?.channels[topic];
    if (channel?.readyState !== 'open') return false;
    try {
      channel.send(JSON.stringify({ data }));
      return true;
    } catch {
      return false;
    }
  }

  // -------------------------------------------------------------------------
  // what arrives

  receive(topic, raw) {
    let msg;
    try {
      msg = typeof raw === 'string' ? JSON.parse(raw) : null;
    } catch {
      return;
    }
    if (!msg || typeof msg !== 'object' || Array.isArray(msg)) return;
    if (typeof msg.error === 'string') {
      const detail = typeof msg.detail === 'string' && msg.detail ? `: ${msg.detail}` : '';
      this.showNotice(`The server refused a ${topic} message (${msg.error}${detail}).`);
      return;
    }
    if (typeof msg.from !== 'string' || !msg.from) return;
    const name = typeof msg.name === 'string' && msg.name ? msg.name : msg.from;
    if (topic === 'chat') {
      const text = chatText(msg.data);
      if (text != null) this.addMessage({ from: msg.from, name, text, at: Date.now(), mine: false });
    } else if (topic === 'reactions') {
      const r = reactionOf(msg.data);
      if (r?.emoji != null) {
        this.reactions.push({ from: msg.from, emoji: r.emoji, at: Date.now() });
        if (this.reactions.length > MAX_REACTIONS) this.reactions.splice(0, this.reactions.length - MAX_REACTIONS);
        this.showReaction(msg.from, r.emoji);
      } else if (r?.hand != null && r.hand !== this.hands.has(msg.from)) {
        if (r.hand) this.hands.set(msg.from, true);
        else this.hands.delete(msg.from);
        this.emit('marks');
      }
    }
  }

  /** Shows `emoji` on the tile of `identity` for REACTION_MS. */
  showReaction(identity, emoji) {
    const previous = this.lastReaction.get(identity);
    clearTimeout(previous?.timer);
    const entry = { emoji, key: String(++this.reactionSeq) };
    entry.timer = setTimeout(() => {
      if (this.lastReaction.get(identity) !== entry) return;
      this.lastReaction.delete(identity);
      this.emit('marks');
    }, REACTION_MS);
    this.lastReaction.set(identity, entry);
    this.emit('marks');
  }

  /** Hands and reactions of those who left go (`participants`: identity → Participant). */
  prune(participants) {
    let changed = false;
    for (const map of [this.hands, this.lastReaction]) {
      for (const [identity, value] of map) {
        if (participants.has(identity) || this.isOwn(identity)) continue;
        clearTimeout(value?.timer);
        map.delete(identity);
        changed = true;
      }
    }
    if (changed) this.emit('marks');
  }

  // -------------------------------------------------------------------------
  // what the participant does

  sendText(value) {
    const text = String(value ?? '').trim();
    if (!text) return false;
    if (text.length > MAX_TEXT) {
      this.showNotice(`A message has at most ${MAX_TEXT} characters.`);
      return false;
    }
    if (!this.send('chat', { text })) {
      this.showNotice('Chat is not connected: the message was not sent.');
      return false;
    }
    this.ui.input.value = '';
    this.addMessage({ from: this.conf.identity, name: this.conf.name, text, at: Date.now(), mine: true });
    return true;
  }

  react(emoji) {
    if (!this.send('reactions', { emoji })) return;
    if (this.conf) this.showReaction(this.conf.identity, emoji); // on the own tile
  }

  /** Raises or lowers the own hand; a raised hand is repeated until lowered. */
  setHand(up) {
    if (up && this.state !== 'open') return;
    clearTimeout(this.handTimer);
    this.ownHand = up;
    this.send('reactions', { hand: up });
    const repeat = () => {
      this.send('reactions', { hand: up });
      if (up) this.handTimer = setTimeout(repeat, HAND_REPEAT_MS);
    };
    this.handTimer = setTimeout(repeat, up ? HAND_REPEAT_MS : HAND_LOWER_AGAIN_MS);
    this.renderControls();
    this.emit('marks');
  }

  // -------------------------------------------------------------------------
  // the panel

  setOpen(on) {
    this.ui.panel.hidden = !on;
    this.ui.toggle.setAttribute('aria-expanded', String(on));
    if (on) {
      this.unread = 0;
      this.ui.list.scrollTop = this.ui.list.scrollHeight;
      this.ui.input.focus();
    }
    this.renderControls();
  }

  addMessage(m) {
    const list = this.ui.list;
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
    this.messages.push(m);
    const li = el('li', m.mine ? 'chat-line mine' : 'chat-line');
    const head = el('div', 'chat-meta');
    const who = el('span', 'chat-name', m.mine ? 'You' : m.name);
    who.title = m.from;
    const time = el('time', 'chat-time', clock(m.at));
    time.dateTime = new Date(m.at).toISOString();
    head.append(who, time);
    li.append(head, el('p', 'chat-text', m.text));
    list.append(li);
    while (this.messages.length > MAX_MESSAGES) {
      this.messages.shift();
      list.firstElementChild?.remove();
    }
    if (!m.mine && !this.isOpen) this.unread += 1;
    if (m.mine || atBottom) list.scrollTop = list.scrollHeight;
    this.renderControls();
    this.emit('messages');
  }

  /** A refused message or a send that failed: shown over the list for a while. */
  showNotice(text) {
    clearTimeout(this.noticeTimer);
    this.transientNotice = text;
    this.noticeTimer = setTimeout(() => {
      this.transientNotice = '';
      this.renderNotice();
    }, NOTICE_MS);
    this.renderNotice();
  }

  /** The line over the list: a transient notice, else the session's trouble, else none. */
  renderNotice() {
    const text = this.transientNotice || this.sessionNotice;
    this.ui.notice.textContent = text;
    this.ui.notice.hidden = !text;
  }

  renderControls() {
    const open = this.state === 'open';
    const { ui } = this;
    ui.unread.textContent = this.unread > 99 ? '99+' : String(this.unread);
    ui.unread.hidden = this.unread === 0;
    ui.toggle.setAttribute('aria-pressed', String(this.isOpen));
    ui.toggle.title = this.unread ? `Chat: ${this.unread} unread` : 'Chat';
    ui.toggle.classList.toggle('trouble', this.state === 'failed');
    ui.state.textContent = { connecting: 'connecting…', failed: 'unavailable', closed: 'off' }[this.state] ?? '';
    ui.send.disabled = !open;
    for (const b of ui.reactions.querySelectorAll('button')) b.disabled = !open;
    ui.hand.disabled = !open && !this.ownHand;
    ui.hand.setAttribute('aria-pressed', String(this.ownHand));
    ui.hand.textContent = this.ownHand ? '✋ Lower hand' : '✋ Raise hand';
    ui.hand.title = this.ownHand ? 'Lower your hand' : 'Raise your hand';
    this.renderNotice();
  }
}
