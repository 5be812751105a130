//! Shared harness for the integration tests that run the real `switchboard`
//! binary: process control ([`server`]), WHIP/WHEP peers over real UDP
//! ([`peer`], driven by [`driver`]), synthetic media and its checks
//! ([`media`]), the figures peers collect ([`report`]), and small HTTP
//! helpers for signalling.

#![allow(dead_code, unused_imports)]

mod driver;
pub mod media;
pub mod peer;
pub mod report;
pub mod server;

use std::time::Duration;

use serde_json::Value;

pub use peer::{Peer, PublisherKind, Role, SignalError};
pub use report::{
    KindReport, LayerSent, LayerSwitch, PeerReport, PublisherReport, SubscriberReport,
};
pub use server::Server;

/// The OBS Studio style WHIP offer (H264 + Opus, no candidates).
pub const OBS_OFFER: &str = include_str!("../fixtures/obs-offer.sdp");

/// An HTTP client that never goes through a proxy and never follows redirects (tests
/// look at the 307 itself).
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .expect("HTTP client")
}

/// Status, headers and body of a response.
#[derive(Debug, Clone)]
pub struct HttpReply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl HttpReply {
    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    async fn from_response(resp: reqwest::Response) -> Result<HttpReply, String> {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.text().await.map_err(|e| format!("read body: {e}"))?;
        Ok(HttpReply {
            status,
            headers,
            body,
        })
    }
}

/// Join a Location (relative or absolute) onto the server's base URL.
pub fn resolve(base_url: &str, location: &str) -> String {
    if location.starts_with("http://") || location.starts_with("https://") {
        location.to_string()
    } else if location.starts_with('/') {
        format!("{base_url}{location}")
    } else {
        format!("{base_url}/{location}")
    }
}

/// `POST base_url + path` with an `application/sdp` body.
pub async fn post_sdp(
    base_url: &str,
    path: &str,
    sdp: &str,
    token: Option<&str>,
) -> Result<HttpReply, String> {
    let mut req = http_client()
        .post(format!("{base_url}{path}"))
        .header("content-type", "application/sdp")
        .body(sdp.to_string());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.map_err(|e| format!("POST {path}: {e}"))?;
    HttpReply::from_response(resp).await
}

/// `POST url` with `body` of type `content_type` (none when `None`).
pub async fn post_body(
    url: &str,
    content_type: Option<&str>,
    body: &str,
    token: Option<&str>,
) -> Result<HttpReply, String> {
    let mut req = http_client().post(url).body(body.to_string());
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.map_err(|e| format!("POST {url}: {e}"))?;
    HttpReply::from_response(resp).await
}

/// The links of one `Link` header value (RFC 8288 §3): each target with
/// its `rel` relation types. Lenient: enough for the headers tests see.
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
                rels.extend(
                    value
                        .trim()
                        .trim_matches('"')
                        .split_whitespace()
                        .map(str::to_string),
                );
            }
        }
        out.push((target, rels));
        rest = &after[params_end..];
    }
    out
}

/// `DELETE url`.
pub async fn delete(url: &str, token: Option<&str>) -> Result<HttpReply, String> {
    let mut req = http_client().delete(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.map_err(|e| format!("DELETE {url}: {e}"))?;
    HttpReply::from_response(resp).await
}

/// `GET url`.
pub async fn get(url: &str) -> Result<HttpReply, String> {
    let resp = http_client()
        .get(url)
        .send()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    HttpReply::from_response(resp).await
}

/// The `m=` sections of an SDP, each as its list of lines.
pub fn sdp_sections(sdp: &str) -> Vec<Vec<&str>> {
    let mut out: Vec<Vec<&str>> = Vec::new();
    for line in sdp.lines().map(str::trim_end) {
        if line.starts_with("m=") {
            out.push(vec![line]);
        } else if let Some(cur) = out.last_mut() {
            cur.push(line);
        }
    }
    out
}

/// Wait until `cond` returns true, polling every `every`, for at most
/// `timeout`. Returns whether it did.
pub async fn eventually<F, Fut>(timeout: Duration, every: Duration, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if cond().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(every).await;
    }
}

/// A JSON response body.
pub fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// `GET stats`: the video track's entry.
pub async fn video_stats(url: &str) -> (Value, Value) {
    let reply = get(url).await.expect("GET stats");
    assert_eq!(reply.status, 200, "GET {url}: {}", reply.body);
    let ct = reply.header("content-type").unwrap_or("");
    assert!(
        ct.starts_with("application/json"),
        "stats content type {ct}"
    );
    let v = json(&reply.body);
    let track = v["tracks"]
        .as_array()
        .and_then(|ts| ts.iter().find(|t| t["kind"] == "video"))
        .unwrap_or_else(|| panic!("no video track in stats: {v}"))
        .clone();
    (v, track)
}

/// `POST` a layer preference; expects 204.
pub async fn set_layer(url: &str, body: &str) {
    let reply = post_body(url, Some("application/json"), body, None)
        .await
        .expect("POST layer");
    assert_eq!(
        reply.status, 204,
        "POST {url} {body}: {} {}",
        reply.status, reply.body
    );
}

/// Checks an error reply: status and problem+json body.
pub fn check_problem(what: &str, reply: &HttpReply, status: u16) {
    assert_eq!(reply.status, status, "{what}: {}", reply.body);
    let ct = reply.header("content-type").unwrap_or("");
    assert!(
        ct.starts_with("application/problem+json"),
        "{what}: content type {ct:?}"
    );
    let v = json(&reply.body);
    assert_eq!(v["status"], status, "{what}: problem body {v}");
}

#[cfg(test)]
mod self_check {
    use std::time::Instant;

    #[test]
    fn link_headers_split_into_targets_and_rels() {
        let links = super::split_links(
            "<stun:stun.example.net>; rel=\"ice-server\", \
             </whep/r/s/layer>; rel=\"urn:ietf:params:whep:ext:core:layer\"",
        );
        assert_eq!(links.len(), 2, "{links:?}");
        assert_eq!(links[0].0, "stun:stun.example.net");
        assert_eq!(links[0].1, vec!["ice-server".to_string()]);
        assert_eq!(links[1].0, "/whep/r/s/layer");
        assert_eq!(
            links[1].1,
            vec!["urn:ietf:params:whep:ext:core:layer".to_string()]
        );
    }

    use str0m::change::SdpOffer;
    use str0m::Rtc;

    #[test]
    fn obs_fixture_is_an_offer_an_ice_lite_answerer_accepts() {
        assert!(super::OBS_OFFER.ends_with("\r\n"));
        assert!(!super::OBS_OFFER.replace("\r\n", "").contains('\n'));
        assert!(!super::OBS_OFFER.contains("a=candidate"));
        let offer = SdpOffer::from_sdp_string(super::OBS_OFFER).expect("fixture parses");
        let mut rtc = Rtc::builder()
            .set_ice_lite(true)
            .set_rtp_mode(true)
            .build(Instant::now());
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .expect("fixture accepted")
            .to_sdp_string();
        let sections = super::sdp_sections(&answer);
        assert_eq!(sections.len(), 2, "{answer}");
        assert!(sections[0][0].starts_with("m=audio 9 UDP/TLS/RTP/SAVPF 111"));
        assert!(sections[1][0].starts_with("m=video 9 UDP/TLS/RTP/SAVPF 96"));
        for s in &sections {
            assert!(s.contains(&"a=recvonly"), "{answer}");
        }
    }
}
