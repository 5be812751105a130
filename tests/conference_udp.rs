//! Conferences against the real server over UDP on loopback: identities keep a viewer
//! from receiving its own media, `?participant=` watches one participant, slots and
//! participants are told on the WHEP event stream (current state first, then changes),
//! slot preferences by PATCH JSON.

mod common;

use std::time::Duration;

use common::peer::{Peer, PublisherKind};
use common::Server;
use serde_json::Value;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const REL_EVENTS: &str = "urn:ietf:params:whep:ext:core:server-sent-events";

/// A WHEP session's event stream, parsed into (event name, JSON data).
struct Events {
    response: reqwest::Response,
    buffer: String,
    seen: Vec<(String, Value)>,
}

impl Events {
    async fn open(server: &Server, viewer: &Peer) -> Events {
        let url = viewer.link_with_rel(REL_EVENTS).expect("events Link");
        let response = common::http_client()
            .get(common::resolve(server.base_url(), &url))
            .send()
            .await
            .expect("GET events");
        assert_eq!(response.status(), 200);
        Events {
            response,
            buffer: String::new(),
            seen: Vec::new(),
        }
    }

    /// Read until an event `name` whose data satisfies `pred` arrives (within 10 s).
    async fn until(&mut self, name: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let start = self.seen.len();
        let found = tokio::time::timeout(Duration::from_secs(10), async {
            let mut checked = start;
            loop {
                while checked < self.seen.len() {
                    let (n, v) = &self.seen[checked];
                    checked += 1;
                    if n == name && pred(v) {
                        return v.clone();
                    }
                }
                let chunk = self.response.chunk().await.expect("read").expect("open");
                self.buffer.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = self.buffer.find("\n\n") {
                    let block: String = self.buffer.drain(..end + 2).collect();
                    let mut name = "message".to_string();
                    let mut data = String::new();
                    for line in block.lines() {
                        if let Some(n) = line.strip_prefix("event: ") {
                            name = n.to_string();
                        } else if let Some(d) = line.strip_prefix("data: ") {
                            data.push_str(d);
                        }
                    }
                    if let Ok(v) = serde_json::from_str(&data) {
                        self.seen.push((name, v));
                    }
                }
            }
        })
        .await;
        let names: Vec<&str> = self.seen.iter().map(|(n, _)| n.as_str()).collect();
        found.unwrap_or_else(|_| panic!("no matching {name} event; seen {names:?}"))
    }
}

/// Identities in the video and audio slots of a `slots` event.
fn slot_identities(v: &Value, kind: &str) -> Vec<Option<String>> {
    v["slots"]
        .as_array()
        .expect("slots")
        .iter()
        .filter(|s| s["kind"] == kind)
        .map(|s| s["identity"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_get_everybody_but_themselves_and_follow_the_room() {
    let server = Server::start(&[]).await;
    let a = Peer::publish(&server, "conf?name=a", PublisherKind::BrowserVp8)
        .await
        .expect("a publishes");
    let b = Peer::publish(&server, "conf?name=b", PublisherKind::BrowserVp8)
        .await
        .expect("b publishes");
    // a watches the room: one audio and one video slot, so it must get b, never itself.
    let va = Peer::subscribe(&server, "conf?name=a")
        .await
        .expect("a watches");
    // Somebody who watches only a.
    let only_a = Peer::subscribe(&server, "conf?participant=a")
        .await
        .expect("watch a");
    for p in [&a, &b, &va, &only_a] {
        assert!(p.wait_connected(CONNECT_TIMEOUT).await, "connects");
    }
    let mut events = Events::open(&server, &va).await;
    let session = events.until("session", |_| true).await;
    assert_eq!(session["identity"], "a");
    let everyone = events.until("participants", |_| true).await;
    let ids: Vec<&str> = everyone["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["identity"].as_str().unwrap())
        .collect();
    // In join order; the anonymous viewer of only a is a (watching) participant too.
    assert_eq!(ids.len(), 3, "{everyone}");
    assert_eq!(ids[..2], ["a", "b"], "{everyone}");
    assert!(ids[2].starts_with("anon-"), "{everyone}");
    assert_eq!(everyone["participants"][2]["publishing"], false);
    let tracks = &everyone["participants"][1]["tracks"];
    assert!(
        tracks.to_string().contains("camera-video") && tracks.to_string().contains("camera-audio"),
        "{tracks}"
    );
    let own_slots = events.until("slots", |_| true).await;
    assert_eq!(
        slot_identities(&own_slots, "video"),
        [Some("b".to_string())],
        "{own_slots}"
    );
    assert_eq!(
        slot_identities(&own_slots, "audio"),
        [Some("b".to_string())],
        "{own_slots}"
    );
    events.until("viewers", |v| v["count"] == 2).await;

    // Media flows into the slots.
    let (flowing, r) = va
        .wait_for(CONNECT_TIMEOUT, |r| {
            r.subscriber.video.packets > 30 && r.subscriber.audio.packets > 10
        })
        .await;
    assert!(flowing, "a receives b's media: {:?}", r.subscriber);
    let (flowing, _) = only_a
        .wait_for(CONNECT_TIMEOUT, |r| r.subscriber.video.packets > 30)
        .await;
    assert!(flowing, "the single-participant viewer receives a");
    let mut only_a_events = Events::open(&server, &only_a).await;
    let slots = only_a_events.until("slots", |_| true).await;
    assert_eq!(
        slot_identities(&slots, "video"),
        [Some("a".to_string())],
        "{slots}"
    );

    // Slot preferences: pause, resume, cap; refused requests change nothing.
    let session_url = common::resolve(server.base_url(), va.location());
    let mid = own_slots["slots"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "video")
        .map(|s| s["mid"].as_str().unwrap().to_owned())
        .unwrap();
    let patch = |body: String| {
        let url = session_url.clone();
        async move {
            let r = common::http_client()
                .patch(url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .expect("PATCH");
            let status = r.status().as_u16();
            if status != 204 {
                println!("PATCH {status}: {}", r.text().await.unwrap_or_default());
            }
            status
        }
    };
    assert_eq!(
        patch(format!(r#"{{"mid":"{mid}","paused":true}}"#)).await,
        204
    );
    let paused = events
        .until("slots", |v| {
            v["slots"].to_string().contains("\"paused\":true")
        })
        .await;
    assert_eq!(slot_identities(&paused, "video"), [None], "{paused}");
    assert_eq!(
        patch(format!(
            r#"{{"mid":"{mid}","paused":false,"maxWidth":320}}"#
        ))
        .await,
        204
    );
    events
        .until("slots", |v| {
            slot_identities(v, "video") == [Some("b".to_string())]
        })
        .await;
    assert_eq!(patch(r#"{"mid":"99","paused":true}"#.into()).await, 422);
    assert_eq!(
        patch(format!(r#"{{"mid":"{mid}","pin":"nobody"}}"#)).await,
        422
    );
    assert_eq!(patch("{not json".into()).await, 400);

    // A third participant joins; b leaves and its slot is freed at once.
    let c = Peer::publish(&server, "conf?name=c", PublisherKind::BrowserVp8)
        .await
        .expect("c publishes");
    events
        .until("participant-joined", |v| v["identity"] == "c")
        .await;
    assert_eq!(b.stop().await, Some(200));
    events
        .until("participant-left", |v| v["identity"] == "b")
        .await;
    let after = events
        .until("slots", |v| !v.to_string().contains("\"identity\":\"b\""))
        .await;
    assert_eq!(
        slot_identities(&after, "video"),
        [Some("c".to_string())],
        "{after}"
    );
    // A viewer never gets its own media: still no slot with a.
    assert!(!after.to_string().contains("\"identity\":\"a\""), "{after}");
    for p in [a, c, va, only_a] {
        p.stop().await;
    }
}
