// The HTTP side of WHIP and WHEP (RFC 9725) for the browser clients: errors with RFC 9457
// problem details, `Link` headers (RFC 8288) and the ICE servers they name (RFC 9725
// §4.6), bearer tokens. No peer connection here.

/**
 * An HTTP error from a WHIP/WHEP endpoint, carrying RFC 9457 problem details when present,
 * and retryAfterS: the response's `Retry-After` in seconds (429, 503), else undefined.
 */
export class ProblemError extends Error {
  constructor({ status, title, detail, type, instance, retryAfterS }) {
    super(detail ? `${title}: ${detail}` : title);
    this.name = 'ProblemError';
    this.status = status;
    this.title = title;
    this.detail = detail;
    this.type = type;
    this.instance = instance;
    this.retryAfterS = retryAfterS;
  }
}

/** Layer extension of WHEP (draft-ietf-wish-whep): the `Link` relation that names it. */
export const LAYER_REL = 'urn:ietf:params:whep:ext:core:layer';

/** Server-sent events extension of WHEP: the `Link` relation that names the event stream. */
export const EVENTS_REL = 'urn:ietf:params:whep:ext:core:server-sent-events';

/**
 * Splits an HTTP `Link` header value (RFC 8288) into [{ uri, rel, params }].
 * Handles several links in one value and quoted parameters containing `,` or `;`.
 * `rel` may hold several space-separated relation types; `params` keeps every
 * parameter (lower-cased names, unquoted values).
 */
export function parseLinkHeader(value) {
  const links = [];
  if (!value) return links;
  let i = 0;
  const n = value.length;
  const skipSpace = () => {
    while (i < n && /[\s]/.test(value[i])) i++;
  };
  while (i < n) {
    skipSpace();
    if (value[i] === ',') {
      i++;
      continue;
    }
    if (value[i] !== '<') {
      // malformed: skip to the next link
      while (i < n && value[i] !== ',') i++;
      continue;
    }
    const close = value.indexOf('>', i + 1);
    if (close < 0) break;
    const link = { uri: value.slice(i + 1, close).trim(), rel: '', params: {} };
    i = close + 1;
    for (;;) {
      skipSpace();
      if (value[i] !== ';') break;
      i++;
      skipSpace();
      let name = '';
      while (i < n && !/[=;,\s]/.test(value[i])) name += value[i++];
      skipSpace();
      let paramValue = '';
      if (value[i] === '=') {
        i++;
        skipSpace();
        if (value[i] === '"') {
          i++;
          while (i < n && value[i] !== '"') {
            if (value[i] === '\\' && i + 1 < n) i++;
            paramValue += value[i++];
          }
          i++; // closing quote
        } else {
          while (i < n && !/[;,\s]/.test(value[i])) paramValue += value[i++];
        }
      }
      if (name) {
        const key = name.toLowerCase();
        if (!(key in link.params)) link.params[key] = paramValue;
      }
    }
    link.rel = link.params.rel || '';
    links.push(link);
    while (i < n && value[i] !== ',') i++;
  }
  return links;
}

/** The absolute URL of the first link whose `rel` contains `rel`, or null. */
export function findLink(links, rel, base) {
  const link = links.find((l) => l.rel.split(/\s+/).includes(rel));
  if (!link) return null;
  try {
    return new URL(link.uri, base).href;
  } catch {
    return null;
  }
}

/**
 * RTCIceServer entries from parsed `Link` headers with rel="ice-server" (RFC 9725 §4.6):
 * `{ urls }` for stun:/stuns:, `{ urls, username, credential }` for turn:/turns: (a TURN
 * link without both is skipped: RTCPeerConnection refuses it).
 */
export function iceServersFromLinks(links) {
  const servers = [];
  for (const link of links) {
    if (!link.rel.split(/\s+/).includes('ice-server')) continue;
    const scheme = /^([a-z]+):/i.exec(link.uri)?.[1]?.toLowerCase();
    if (scheme === 'stun' || scheme === 'stuns') servers.push({ urls: link.uri });
    else if ((scheme === 'turn' || scheme === 'turns') && link.params.username && link.params.credential) {
      servers.push({ urls: link.uri, username: link.params.username, credential: link.params.credential });
    }
  }
  return servers;
}

/** `{ Authorization: 'Bearer …' }` for a token, `{}` without one. */
export function authHeaders(token) {
  return token ? { Authorization: `Bearer ${token}` } : {};
}

/** A ProblemError from a non-2xx response (RFC 9457 body when there is one). */
export async function problemFromResponse(response) {
  const fallback = {
    status: response.status,
    title: response.statusText || `HTTP ${response.status}`,
    detail: undefined,
    retryAfterS: retryAfterSeconds(response.headers.get('Retry-After')),
  };
  let text = '';
  try {
    text = await response.text();
  } catch {
    return new ProblemError(fallback);
  }
  const type = response.headers.get('Content-Type') || '';
  if (/json/i.test(type)) {
    try {
      const body = JSON.parse(text);
      return new ProblemError({
        status: body.status ?? response.status,
        title: body.title || fallback.title,
        detail: body.detail,
        type: body.type,
        instance: body.instance,
        retryAfterS: fallback.retryAfterS,
      });
    } catch {
      // fall through to the plain-text form
    }
  }
  return new ProblemError({ ...fallback, detail: text.trim().slice(0, 500) || undefined });
}

/** A `Retry-After` value in delay-seconds (RFC 9110 §10.2.3), else undefined (absent, or a date). */
export function retryAfterSeconds(value) {
  if (!value || !/^\s*\d+\s*$/.test(value)) return undefined;
  return Number.parseInt(value, 10);
}
