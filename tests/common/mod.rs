//! Shared harness for the integration tests that run the real `switchboard`
//! binary: process control ([`server`]), WHIP/WHEP peers over real UDP
//! ([`peer`], driven by [`driver`]), synthetic media and its checks
//! ([`media`]), the figures peers collect ([`report`]), and small HTTP
//! helpers for signalling.

#![allow(dead_code, unused_imports)]

mod driver;
pub mod media;
pub mod peer;
mod publisher;
pub mod report;
pub mod server;

use std::time::Duration;

use serde_json::Value;
use switchboard_kit::whip::WhipClient;

pub use peer::{Peer, PublisherKind, Role, SignalError};
pub use report::{
    KindReport, LayerSent, LayerSwitch, PeerReport, PublisherReport, SubscriberReport,
};
pub use server::Server;

/// The OBS Studio style WHIP offer (H264 + Opus, no candidates).
pub const OBS_OFFER: &str = include_str!("../fixtures/obs-offer.sdp");

/// The WHIP/WHEP client of the tests: no proxy, and no redirects followed (tests look
/// at the 307 itself).
pub fn whip_client(token: Option<&str>) -> WhipClient {
    WhipClient::new(
        Duration::from_secs(10),
        token.map(str::to_string),
        "switchboard-tests",
        false,
    )
    .expect("HTTP client")
}

/// An HTTP client that never goes through a proxy and never follows redirects.
pub fn http_client() -> reqwest::Client {
    whip_client(None).http().clone()
}

/// Status, headers and body of a response.
pub use switchboard_kit::whip::Reply as HttpReply;
/// Join a Location or Link target (relative or absolute) onto a URL.
pub use switchboard_kit::whip::{resolve, split_links};

async fn read(resp: reqwest::Response) -> Result<HttpReply, String> {
    HttpReply::read(resp).await.map_err(|e| e.to_string())
}

/// `POST base_url + path` with an `application/sdp` body.
pub async fn post_sdp(
    base_url: &str,
    path: &str,
    sdp: &str,
    token: Option<&str>,
) -> Result<HttpReply, String> {
    whip_client(token)
        .post_sdp(&format!("{base_url}{path}"), sdp.to_string())
        .await
        .map_err(|e| e.to_string())
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
    read(resp).await
}

/// `DELETE url`.
pub async fn delete(url: &str, token: Option<&str>) -> Result<HttpReply, String> {
    let mut req = http_client().delete(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.map_err(|e| format!("DELETE {url}: {e}"))?;
    read(resp).await
}

/// `GET url`.
pub async fn get(url: &str) -> Result<HttpReply, String> {
    let resp = http_client()
        .get(url)
        .send()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    read(resp).await
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
