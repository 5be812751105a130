//! WHIP/WHEP over HTTP: endpoint URL templates, the offer POST (201 + answer +
//! `Location`), the final DELETE, and the local address peers should bind.
//!
//! Any answer but a 201 with a body and a `Location` is a [`SignalError`] that keeps the
//! status and the problem detail (RFC 9457 `title`/`detail`, or the start of the body);
//! nothing here panics on what a server sends. Never touches an `Rtc` or UDP media.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, LOCATION};

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
}

/// The HTTP side of the tool: one client shared by every session.
#[derive(Clone)]
pub struct Signaling {
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

impl Signaling {
    /// A client with a per-request `timeout`, no proxies, and the bearer `token`.
    pub fn new(timeout: Duration, token: Option<String>) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("switchboard-load/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(Signaling { client, token })
    }

    /// POST `offer` to `url` (`application/sdp`); a 201 with an answer and a Location.
    pub async fn post_offer(&self, url: &str, offer: String) -> Result<Created, SignalError> {
        let mut req = self
            .client
            .post(url)
            .header(CONTENT_TYPE, "application/sdp")
            .body(offer);
        if let Some(t) = &self.token {
            req = req.header(AUTHORIZATION, format!("Bearer {t}"));
        }
        let resp = req.send().await.map_err(|e| SignalError {
            status: None,
            detail: format!("POST {url}: {}", error_chain(&e)),
        })?;
        let status = resp.status().as_u16();
        let final_url = resp.url().clone();
        let location = resp
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let is_problem = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.contains("json"));
        let body = resp.text().await.map_err(|e| SignalError {
            status: Some(status),
            detail: format!("reading the body: {}", error_chain(&e)),
        })?;
        if status != 201 {
            return Err(SignalError {
                status: Some(status),
                detail: problem_detail(&body, is_problem),
            });
        }
        let location = location.ok_or_else(|| SignalError {
            status: Some(status),
            detail: "201 without a Location header".into(),
        })?;
        let location = final_url
            .join(&location)
            .map_err(|e| SignalError {
                status: Some(status),
                detail: format!("Location {location:?} is not a URL: {e}"),
            })?
            .to_string();
        if body.trim().is_empty() {
            return Err(SignalError {
                status: Some(status),
                detail: "201 without an SDP answer".into(),
            });
        }
        Ok(Created {
            answer: body,
            location,
        })
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
    fn loopback_routes_from_loopback() {
        let ip = local_ip_towards("http://127.0.0.1:9").unwrap();
        assert!(ip.is_loopback());
        assert!(local_ip_towards("not a url").is_err());
    }
}
