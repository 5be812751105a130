//! The one WHIP/WHEP HTTP client (RFC 9725) of Switchboard's client side: endpoint URL
//! templates, the offer POST (201 + answer + `Location`, §4.2), the `Link` headers of
//! ICE servers and extensions (RFC 8288), the final DELETE (§4.3), and the local address
//! peers should bind.
//!
//! [`WhipClient::post_sdp`] hands back the whole [`Reply`] for tests that look at every
//! header; [`Reply::created`] turns it into a [`Created`] session or a [`SignalError`]
//! that keeps the status and the problem detail (RFC 9457 `title`/`detail`, or the start
//! of the body). Nothing here panics on what a server sends. Never touches an `Rtc` or
//! UDP media.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

use reqwest::header::{HeaderMap, AUTHORIZATION, CONTENT_TYPE, ETAG, LINK, LOCATION};

/// Longest problem detail kept from an error body, in characters.
const MAX_DETAIL: usize = 300;

/// A failed exchange with the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignalError {
    /// HTTP status, when the server answered.
    pub status: Option<u16>,
    /// What went wrong: the problem detail, or a description.
    pub detail: String,
}

impl std::fmt::Display for SignalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.status {
            Some(s) => write!(f, "HTTP {s}: {}", self.detail),
            None => write!(f, "{}", self.detail),
        }
    }
}

/// What a successful POST returned.
#[derive(Clone, Debug)]
pub struct Created {
    /// The SDP answer.
    pub answer: String,
    /// The session resource URL (`Location`, resolved against the request URL).
    pub location: String,
    /// The session's entity tag (RFC 9725 §4.3.1), if the server sent one.
    pub etag: Option<String>,
}

/// Status, headers and body of a response, and the URL that answered (after any
/// redirect the client followed).
#[derive(Clone, Debug)]
pub struct Reply {
    /// HTTP status code.
    pub status: u16,
    /// Response headers.
    pub headers: HeaderMap,
    /// Response body as text.
    pub body: String,
    /// The URL that answered.
    pub url: String,
}

impl Reply {
    /// Read a whole response. Errors: the body could not be read.
    pub async fn read(resp: reqwest::Response) -> Result<Reply, SignalError> {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let url = resp.url().to_string();
        let body = resp.text().await.map_err(|e| SignalError {
            status: Some(status),
            detail: format!("reading the body: {}", error_chain(&e)),
        })?;
        Ok(Reply {
            status,
            headers,
            body,
            url,
        })
    }

    /// A header's value as text (the first, when repeated).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Every `Link` of every `Link` header, in order, as (target resolved against the
    /// answering URL, its `rel` relation types).
    pub fn links(&self) -> Vec<(String, Vec<String>)> {
        self.headers
            .get_all(LINK)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(split_links)
            .map(|(target, rels)| (resolve(&self.url, &target), rels))
            .collect()
    }

    /// The answer to an offer POST: a 201 with a `Location` and an SDP body, else a
    /// [`SignalError`] with the status and the problem detail.
    pub fn created(&self) -> Result<Created, SignalError> {
        let status = self.status;
        let fail = |detail: String| SignalError {
            status: Some(status),
            detail,
        };
        if status != 201 {
            let is_problem = self
                .header("content-type")
                .is_some_and(|ct| ct.contains("json"));
            return Err(fail(problem_detail(&self.body, is_problem)));
        }
        let location = self
            .header(LOCATION.as_str())
            .ok_or_else(|| fail("201 without a Location header".into()))?;
        let base = reqwest::Url::parse(&self.url).map_err(|e| fail(format!("{e}")))?;
        let location = base
            .join(location)
            .map_err(|e| fail(format!("Location {location:?} is not a URL: {e}")))?
            .to_string();
        if self.body.trim().is_empty() {
            return Err(fail("201 without an SDP answer".into()));
        }
        Ok(Created {
            answer: self.body.clone(),
            location,
            etag: self.header(ETAG.as_str()).map(str::to_string),
        })
    }
}

/// Join a reference (a `Location` or a `Link` target: absolute, or relative as RFC 3986
/// §5.2 resolves it) onto `base`; `reference` unchanged when `base` is not a URL.
pub fn resolve(base: &str, reference: &str) -> String {
    match reqwest::Url::parse(base).and_then(|b| b.join(reference)) {
        Ok(u) => u.to_string(),
        Err(_) => reference.to_string(),
    }
}

/// The links of one `Link` header value (RFC 8288 §3): each target as written with its
/// `rel` relation types. Lenient: a malformed part ends the list, never a panic.
pub fn split_links(header: &str) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    let mut rest = header;
    while let Some(open) = rest.find('<') {
        let Some(len) = rest[open..].find('>') else {
            break;
        };
        let target = rest[open + 1..open + len].to_string();
        let after = &rest[open + len + 1..];
        let params_end = after.find('<').unwrap_or(after.len());
        let mut rels = Vec::new();
        for param in after[..params_end].split(';') {
            let param = param.trim().trim_end_matches(',').trim();
            let Some((name, value)) = param.split_once('=') else {
                continue;
            };
            if name.trim().eq_ignore_ascii_case("rel") {
                let value = value.trim().trim_matches('"');
                rels.extend(value.split_whitespace().map(str::to_string));
            }
        }
        out.push((target, rels));
        rest = &after[params_end..];
    }
    out
}

/// A WHIP/WHEP client: one HTTP client shared by every session it signals.
#[derive(Clone)]
pub struct WhipClient {
    client: reqwest::Client,
    token: Option<String>,
}

/// Fill `{url}` and `{room}` in an endpoint template.
pub fn endpoint(template: &str, base_url: &str, room: &str) -> String {
    template.replace("{url}", base_url).replace("{room}", room)
}

/// Append `key=value` (percent-encoded) to the query of `url`: after `?` when it has no
/// query yet, else after `&`; a `#fragment` stays at the end.
pub fn with_query(url: &str, key: &str, value: &str) -> String {
    let (base, fragment) = match url.split_once('#') {
        Some((b, f)) => (b, format!("#{f}")),
        None => (url, String::new()),
    };
    let sep = if !base.contains('?') {
        "?"
    } else if base.ends_with(['?', '&']) {
        ""
    } else {
        "&"
    };
    format!(
        "{base}{sep}{}={}{fragment}",
        percent_encode(key),
        percent_encode(value)
    )
}

/// Percent-encode everything but RFC 3986 unreserved characters.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl WhipClient {
    /// A client with a per-request `timeout`, no proxies, the bearer `token`, and
    /// `user_agent`. `follow_redirects`: follow a 307 to another node (up to 10), as a
    /// WHIP client should (RFC 9725 §4.5); off for tests that look at the 307 itself.
    pub fn new(
        timeout: Duration,
        token: Option<String>,
        user_agent: &str,
        follow_redirects: bool,
    ) -> Result<Self, String> {
        let redirects = if follow_redirects {
            reqwest::redirect::Policy::limited(10)
        } else {
            reqwest::redirect::Policy::none()
        };
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(redirects)
            .user_agent(user_agent)
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(WhipClient { client, token })
    }

    /// The HTTP client itself, for requests other than WHIP's.
    pub fn http(&self) -> &reqwest::Client {
        &self.client
    }

    /// POST `sdp` to `url` as `application/sdp`; the whole reply, whatever its status.
    /// Errors: no reply (connection, timeout) or an unreadable body.
    pub async fn post_sdp(&self, url: &str, sdp: String) -> Result<Reply, SignalError> {
        let mut req = self
            .client
            .post(url)
            .header(CONTENT_TYPE, "application/sdp")
            .body(sdp);
        if let Some(t) = &self.token {
            req = req.header(AUTHORIZATION, format!("Bearer {t}"));
        }
        let resp = req.send().await.map_err(|e| SignalError {
            status: None,
            detail: format!("POST {url}: {}", error_chain(&e)),
        })?;
        Reply::read(resp).await
    }

    /// POST `offer` to `url`: a 201 with an answer and a Location, else the error.
    pub async fn post_offer(&self, url: &str, offer: String) -> Result<Created, SignalError> {
        self.post_sdp(url, offer).await?.created()
    }

    /// DELETE a session resource; `Ok(status)` for any 2xx.
    pub async fn delete(&self, location: &str) -> Result<u16, SignalError> {
        let mut req = self.client.delete(location);
        if let Some(t) = &self.token {
            req = req.header(AUTHORIZATION, format!("Bearer {t}"));
        }
        let resp = req.send().await.map_err(|e| SignalError {
            status: None,
            detail: format!("DELETE {location}: {}", error_chain(&e)),
        })?;
        let status = resp.status().as_u16();
        if resp.status().is_success() {
            Ok(status)
        } else {
            let body = resp.text().await.unwrap_or_default();
            Err(SignalError {
                status: Some(status),
                detail: problem_detail(&body, true),
            })
        }
    }
}

/// `title: detail` of a problem+json body, else the start of the body.
pub fn problem_detail(body: &str, maybe_json: bool) -> String {
    if maybe_json {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(body) {
            let title = v.get("title").and_then(|t| t.as_str());
            let detail = v.get("detail").and_then(|t| t.as_str());
            match (title, detail) {
                (Some(t), Some(d)) => return truncate(&format!("{t}: {d}")),
                (Some(s), None) | (None, Some(s)) => return truncate(s),
                (None, None) => {}
            }
        }
    }
    let text = body.trim();
    if text.is_empty() {
        "(empty body)".into()
    } else {
        truncate(text)
    }
}

fn truncate(s: &str) -> String {
    match s.char_indices().nth(MAX_DETAIL) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// The error and its sources, `: `-joined (reqwest's own Display says little).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        out.push_str(": ");
        out.push_str(&s.to_string());
        src = s.source();
    }
    out
}

/// The local address that routes to the host of `url` (a connected UDP socket's
/// local address; nothing is sent). Loopback for a loopback server.
pub fn local_ip_towards(url: &str) -> Result<IpAddr, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("{url:?}: {e}"))?;
    let host = parsed
        .host_str()
        .ok_or_else(|| format!("{url:?} has no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']');
    let port = parsed.port_or_known_default().unwrap_or(80);
    let target: SocketAddr = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("resolve {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host} resolves to nothing"))?;
    let any: SocketAddr = if target.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let sock = std::net::UdpSocket::bind(any).map_err(|e| format!("bind: {e}"))?;
    sock.connect(target)
        .map_err(|e| format!("no route to {target}: {e}"))?;
    sock.local_addr()
        .map(|a| a.ip())
        .map_err(|e| format!("local address: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_fill_url_and_room() {
        assert_eq!(
            endpoint("{url}/whip/{room}", "http://h:8080", "r-1"),
            "http://h:8080/whip/r-1"
        );
        assert_eq!(
            endpoint("https://x/live/{room}/whep", "", "a"),
            "https://x/live/a/whep"
        );
    }

    #[test]
    fn query_parameters_are_appended() {
        assert_eq!(
            with_query("http://h/whip/r", "name", "p1"),
            "http://h/whip/r?name=p1"
        );
        assert_eq!(
            with_query("http://h/whip/r?a=1", "name", "p1"),
            "http://h/whip/r?a=1&name=p1"
        );
        assert_eq!(
            with_query("http://h/w?", "name", "p1"),
            "http://h/w?name=p1"
        );
        assert_eq!(
            with_query("http://h/w?a=1&", "n", "x"),
            "http://h/w?a=1&n=x"
        );
        assert_eq!(
            with_query("http://h/w#f", "name", "a b&c"),
            "http://h/w?name=a%20b%26c#f"
        );
    }

    #[test]
    fn problem_details_are_read_or_quoted() {
        let body = r#"{"type":"about:blank","title":"Conflict","status":409,"detail":"room has a publisher"}"#;
        assert_eq!(problem_detail(body, true), "Conflict: room has a publisher");
        assert_eq!(problem_detail("nope\n", false), "nope");
        assert_eq!(problem_detail("", true), "(empty body)");
        assert_eq!(
            problem_detail(&"x".repeat(1000), false).chars().count(),
            MAX_DETAIL + 1
        );
    }

    #[test]
    fn links_and_locations_resolve_against_the_answering_url() {
        let h = r#"<stun:stun.example.net>; rel="ice-server", </x/ext>; rel="urn:ietf:params:whep:ext:core:layer""#;
        let links = split_links(h);
        assert_eq!(links.len(), 2);
        assert_eq!(
            links[0],
            ("stun:stun.example.net".into(), vec!["ice-server".into()])
        );
        assert_eq!(resolve("http://h:1/whip/r", "/x/ext"), "http://h:1/x/ext");
        assert_eq!(resolve("http://h:1/whip/r", "s/1"), "http://h:1/whip/s/1");
        assert_eq!(resolve("http://h:1/a", "https://o/b"), "https://o/b");
        assert!(split_links("<unterminated").is_empty());
        let mut headers = HeaderMap::new();
        headers.append(LOCATION, "/whip/r/s1".parse().unwrap());
        headers.append(ETAG, "\"e1\"".parse().unwrap());
        headers.append(LINK, "</whip/r/s1/layer>; rel=\"urn:x\"".parse().unwrap());
        let reply = Reply {
            status: 201,
            headers,
            body: "v=0\r\n".into(),
            url: "http://h:1/whip/r".into(),
        };
        let created = reply.created().unwrap();
        assert_eq!(created.location, "http://h:1/whip/r/s1");
        assert_eq!(created.etag.as_deref(), Some("\"e1\""));
        assert_eq!(reply.links()[0].0, "http://h:1/whip/r/s1/layer");
        let refused = Reply {
            status: 409,
            body: r#"{"title":"Conflict","detail":"taken"}"#.into(),
            headers: HeaderMap::new(),
            ..reply
        };
        assert_eq!(refused.created().unwrap_err().status, Some(409));
    }

    #[test]
    fn loopback_routes_from_loopback() {
        let ip = local_ip_towards("http://127.0.0.1:9").unwrap();
        assert!(ip.is_loopback());
        assert!(local_ip_towards("not a url").is_err());
    }
}
