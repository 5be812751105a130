//! OBS Studio simulcast (OBS 32.1 and later) through a real `switchboard`
//! process over real UDP on loopback: an OBS-shaped WHIP publisher sends
//! H264 in three layers with numeric RIDs (`"0"` is the highest), and a WHEP
//! viewer is moved between them with the WHEP `layer` extension.
//!
//! Checked: the answer accepts every offered RID in order (OBS aborts
//! otherwise); the viewer settles on the highest layer by default; forced
//! layers (`encodingId`, `spatialLayerId`) and the return to automatic take
//! effect at a keyframe of the new layer, with one SSRC, contiguous sequence
//! numbers, forward-moving timestamps and intact payloads throughout; the
//! session's `stats` resource reports the layer being forwarded; and the
//! layer resource's errors are problem+json with the right status.

mod common;

use std::time::{Duration, Instant};

use common::{
    check_problem, sdp_sections, set_layer, video_stats, LayerSwitch, Peer, PublisherKind, Server,
};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The `rel` of the WHEP layer extension's `Link`.
const LAYER_REL: &str = "urn:ietf:params:whep:ext:core:layer";
/// RIDs of the OBS-shaped publisher, in offer order (highest first).
const RIDS: [&str; 3] = ["0", "1", "2"];
/// How long a layer must then be the only one received.
const HOLD: Duration = Duration::from_millis(1500);
/// The viewer starts on whatever its bandwidth estimate allows and climbs
/// to the highest layer as the estimate grows; it must be there by then.
const SETTLE_WITHIN: Duration = Duration::from_secs(25);
/// One RTP video frame at 30 fps in 90 kHz ticks; a switch may step the
/// timestamp by at most a second.
const MAX_SWITCH_TS_STEP: i64 = 90_000;

/// The video m-section of an SDP.
fn video_section(sdp: &str) -> Vec<&str> {
    sdp_sections(sdp)
        .into_iter()
        .find(|s| s[0].starts_with("m=video"))
        .unwrap_or_else(|| panic!("no m=video section:\n{sdp}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn obs_simulcast_offer_is_answered_with_every_rid() {
    let server = Server::start(&[]).await;
    let publisher = Peer::publish(&server, "obs-sim-answer", PublisherKind::ObsSimulcastH264)
        .await
        .unwrap_or_else(|e| panic!("WHIP publish: {e}\noffer:\n{}", e.offer));

    let offer = publisher.offer();
    let offered = video_section(offer);
    assert!(
        offered.contains(&"a=simulcast:send 0;1;2"),
        "offer lacks simulcast:\n{offer}"
    );
    assert!(!offer.contains("transport-cc"), "{offer}");

    let answer = publisher.answer();
    assert_eq!(publisher.answer_content_type(), Some("application/sdp"));
    let video = video_section(answer);
    assert!(
        video.contains(&"a=simulcast:recv 0;1;2"),
        "the answer must accept every offered RID in order (OBS aborts otherwise):\n{answer}"
    );
    for rid in RIDS {
        let line = format!("a=rid:{rid} recv");
        assert!(
            video.iter().any(|l| *l == line),
            "{line} missing:\n{answer}"
        );
    }
    assert!(
        video[0].starts_with("m=video 9 UDP/TLS/RTP/SAVPF 96"),
        "H264 must stay at payload type 96:\n{answer}"
    );

    // Every layer finds its send stream once connected.
    assert!(
        publisher.wait_connected(CONNECT_TIMEOUT).await,
        "publisher did not connect: {:#?}",
        publisher.report()
    );
    let (ok, r) = publisher
        .wait_for(Duration::from_secs(3), |r| {
            r.publisher.layers.iter().all(|l| l.counters.len() > 10)
        })
        .await;
    assert!(ok, "not every layer sent: {:#?}", r.publisher.layers);
    assert_eq!(r.publisher.missing_stream, 0, "a layer had no send stream");
    for (l, rid) in r.publisher.layers.iter().zip(RIDS) {
        assert_eq!(l.rid, rid);
    }
    publisher.stop().await;
}

/// What one step of the switching test measured.
struct Step {
    name: &'static str,
    /// From the preference POST to the first packet of the new layer.
    latency: Option<Duration>,
    /// From the start of the step to the last switch of it.
    settled_after: Option<Duration>,
    /// While the layer held: kbit/s of datagrams, and of RTP payload.
    wire_kbps: u64,
    media_kbps: u64,
    switches: Vec<LayerSwitch>,
    packets: u64,
    keyframe_requests: u64,
}

/// The checks every switch has to pass: the new layer starts with a
/// keyframe, from its STAP-A with SPS and PPS (without them the decoder
/// cannot use the IDR that follows); same SSRC; the sequence number continues by exactly one; the
/// timestamp moves forward, by at most a second; the payload is intact.
fn check_switch(step: &str, s: &LayerSwitch) {
    assert!(
        s.starts_keyframe,
        "{step}: the first packet of layer {} does not start a keyframe: {s:#?}",
        s.to
    );
    assert!(
        s.nal_types.starts_with(&[7, 8]),
        "{step}: layer {} does not start with SPS and PPS: {s:#?}",
        s.to
    );
    assert!(
        s.intact,
        "{step}: first packet of the new layer corrupt: {s:#?}"
    );
    if s.from.is_none() {
        return;
    }
    assert_eq!(
        Some(s.ssrc),
        s.prev_ssrc,
        "{step}: the viewer's SSRC changed at a switch: {s:#?}"
    );
    assert_eq!(
        s.prev_seq.map(|p| p + 1),
        Some(s.seq),
        "{step}: sequence numbers not contiguous across the switch: {s:#?}"
    );
    let step_ts = s.ts_step().unwrap_or(0);
    assert!(
        step_ts > 0 && step_ts <= MAX_SWITCH_TS_STEP,
        "{step}: RTP timestamp step {step_ts} at the switch: {s:#?}"
    );
}

/// Expected values of one step in `stats`.
struct Expect {
    rid: &'static str,
    /// Rank from the lowest bitrate.
    rank: u64,
    manual: bool,
    /// The layer may take detours before it settles (the bandwidth
    /// estimate is still climbing): wait until it has stayed for [`HOLD`].
    settle: bool,
}

/// Apply `body` (or nothing) and wait until the viewer receives only layer
/// `want`, then hold it for [`HOLD`], with every switch on the way checked.
#[allow(clippy::too_many_arguments)]
async fn step(
    name: &'static str,
    sub: &Peer,
    publisher: &Peer,
    layer_url: &str,
    stats_url: &str,
    body: Option<&str>,
    want: u8,
    within: Duration,
    expect: Expect,
) -> Step {
    let before = sub.report().subscriber.video;
    let requests_before = publisher.report().publisher.layers[want as usize].keyframe_requests;
    let t0 = Instant::now();
    if let Some(body) = body {
        set_layer(layer_url, body).await;
    }
    let n_before = before.layer_switches.len();
    let (ok, r) = sub
        .wait_for(within, |r| {
            let v = &r.subscriber.video;
            let Some(last) = v.layer_switches.last() else {
                return false;
            };
            v.current_layer == Some(want)
                && (last.at >= t0 || body.is_none())
                && (!expect.settle || last.at.elapsed() >= HOLD)
        })
        .await;
    let v = &r.subscriber.video;
    let (stats_now, _) = video_stats(stats_url).await;
    assert!(
        ok,
        "{name}: the viewer is not on layer {want} (RID {:?}) within {within:?}: current {:?}, \
         switches since the step {:#?}, stats {stats_now}",
        RIDS[want as usize],
        v.current_layer,
        &v.layer_switches[n_before.min(v.layer_switches.len())..]
    );
    // Stay there: no other layer's packets for a while.
    let settled_report = sub.report();
    let settled = settled_report.subscriber.video;
    tokio::time::sleep(HOLD).await;
    let after_report = sub.report();
    let after = after_report.subscriber.video;
    let media_bytes = (after.bytes - settled.bytes)
        + (after_report.subscriber.audio.bytes - settled_report.subscriber.audio.bytes);
    let wire_kbps = (after_report.bytes_in - settled_report.bytes_in) * 8 / HOLD.as_millis() as u64;
    let media_kbps = media_bytes * 8 / HOLD.as_millis() as u64;
    assert_eq!(
        after.layer_switches.len(),
        settled.layer_switches.len(),
        "{name}: layer {want} did not stick: {:#?}",
        &after.layer_switches[settled.layer_switches.len()..]
    );
    assert!(
        after.packets_of_layer(want) > settled.packets_of_layer(want) + 10,
        "{name}: layer {want} stopped flowing"
    );
    let switches: Vec<LayerSwitch> = after.layer_switches[n_before..].to_vec();
    for s in &switches {
        check_switch(name, s);
    }
    after.check_contiguous(name);

    let (whole, track) = video_stats(stats_url).await;
    let cur = &track["currentLayer"];
    assert_eq!(
        cur["encodingId"], expect.rid,
        "{name}: stats currentLayer: {whole}"
    );
    assert_eq!(
        cur["spatialLayerId"], expect.rank,
        "{name}: stats currentLayer rank: {whole}"
    );
    assert_eq!(
        track["targetLayer"]["encodingId"], expect.rid,
        "{name}: stats targetLayer: {whole}"
    );
    assert_eq!(
        track["manual"], expect.manual,
        "{name}: stats manual: {whole}"
    );
    assert!(
        whole["estimateBps"].is_u64() || whole["estimateBps"].is_null(),
        "{name}: estimateBps: {whole}"
    );

    let requests = publisher.report().publisher.layers[want as usize].keyframe_requests;
    let latency = switches
        .iter()
        .rev()
        .find(|s| s.to == want)
        .filter(|_| body.is_some())
        .map(|s| s.at.saturating_duration_since(t0));
    println!(
        "{name}: on layer {want} (RID {}) after {latency:?}; {} switch(es) {:?}; \
         keyframe requests to RID {} +{}; estimate {}; received {wire_kbps} kbit/s on the \
         wire for {media_kbps} kbit/s of RTP payload; stats {track}",
        expect.rid,
        switches.len(),
        switches
            .iter()
            .map(|s| (s.from, s.to, s.ts_step()))
            .collect::<Vec<_>>(),
        expect.rid,
        requests - requests_before,
        whole["estimateBps"],
    );
    Step {
        name,
        latency,
        settled_after: switches.last().map(|s| s.at.saturating_duration_since(t0)),
        switches,
        wire_kbps,
        media_kbps,
        packets: after.packets_of_layer(want) - before.packets_of_layer(want),
        keyframe_requests: requests - requests_before,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewer_switches_between_obs_layers() {
    let room = "obs-sim-switch";
    let server = Server::start(&[]).await;
    let publisher = Peer::publish(&server, room, PublisherKind::ObsSimulcastH264)
        .await
        .unwrap_or_else(|e| panic!("WHIP publish: {e}\noffer:\n{}", e.offer));
    assert!(
        publisher.wait_connected(CONNECT_TIMEOUT).await,
        "publisher did not connect: {:#?}",
        publisher.report()
    );
    let sub = Peer::subscribe(&server, room)
        .await
        .unwrap_or_else(|e| panic!("WHEP subscribe: {e}"));
    assert!(
        sub.wait_connected(CONNECT_TIMEOUT).await,
        "subscriber did not connect: {:#?}",
        sub.report()
    );
    let layer_url = sub.link_with_rel(LAYER_REL).unwrap_or_else(|| {
        panic!(
            "the WHEP 201 has no Link with rel=\"{LAYER_REL}\": {:?}",
            sub.links()
        )
    });
    assert_eq!(layer_url, format!("{}/layer", sub.location()));
    let stats_url = format!("{}/stats", sub.location());

    // Default: video flows and settles on the highest layer, RID "0".
    let settle = step(
        "default",
        &sub,
        &publisher,
        &layer_url,
        &stats_url,
        None,
        0,
        SETTLE_WITHIN,
        Expect {
            rid: "0",
            rank: 2,
            manual: false,
            settle: true,
        },
    )
    .await;
    let first = sub.report().subscriber.video;
    assert_eq!(
        first.first_starts_keyframe,
        Some(true),
        "the first video packet does not start a keyframe"
    );

    let (_, before) = video_stats(&stats_url).await;
    let down_before = before["switchesDown"].as_u64().expect("switchesDown");
    let up_before = before["switchesUp"].as_u64().expect("switchesUp");

    let lowest = step(
        "force encodingId 2",
        &sub,
        &publisher,
        &layer_url,
        &stats_url,
        Some(r#"{"encodingId": "2"}"#),
        2,
        Duration::from_secs(3),
        Expect {
            rid: "2",
            rank: 0,
            manual: true,
            settle: false,
        },
    )
    .await;
    let (_, s) = video_stats(&stats_url).await;
    let down = s["switchesDown"].as_u64().unwrap_or(0);
    assert!(down > down_before, "switchesDown did not grow: {s}");

    let middle = step(
        "force spatialLayerId 1",
        &sub,
        &publisher,
        &layer_url,
        &stats_url,
        Some(r#"{"spatialLayerId": 1}"#),
        1,
        Duration::from_secs(3),
        Expect {
            rid: "1",
            rank: 1,
            manual: true,
            settle: false,
        },
    )
    .await;
    let (_, s) = video_stats(&stats_url).await;
    let up_mid = s["switchesUp"].as_u64().unwrap_or(0);
    assert!(up_mid > up_before, "switchesUp did not grow: {s}");

    let auto = step(
        "back to automatic",
        &sub,
        &publisher,
        &layer_url,
        &stats_url,
        Some("{}"),
        0,
        Duration::from_secs(5),
        Expect {
            rid: "0",
            rank: 2,
            manual: false,
            settle: false,
        },
    )
    .await;
    let (_, s) = video_stats(&stats_url).await;
    assert!(
        s["switchesUp"].as_u64().unwrap_or(0) > up_mid,
        "switchesUp did not grow: {s}"
    );

    // A cap keeps the choice automatic but below it; naming the track by
    // its mid is the same as naming none when it is the only video track.
    // (Lifting it is not timed here: while capped the estimate decays
    // towards the capped rate, and climbing back is the estimator's pace.)
    let (_, track) = video_stats(&stats_url).await;
    let mid = track["mid"].as_str().expect("mid in stats").to_string();
    let cap_body = format!(r#"{{"mediaId": "{mid}", "maxSpatialLayerId": 1}}"#);
    let capped = step(
        "cap maxSpatialLayerId 1",
        &sub,
        &publisher,
        &layer_url,
        &stats_url,
        Some(&cap_body),
        1,
        Duration::from_secs(3),
        Expect {
            rid: "1",
            rank: 1,
            manual: false,
            settle: false,
        },
    )
    .await;
    for st in [&lowest, &middle, &auto, &capped] {
        assert!(
            st.latency.is_some(),
            "{}: no switch to the requested layer was seen",
            st.name
        );
        assert!(
            st.keyframe_requests > 0,
            "{}: the publisher got no keyframe request for the new layer's RID",
            st.name
        );
    }

    let metrics = server.metrics().await.expect("GET /metrics");
    assert!(
        metrics.contains("switchboard_keyframe_requests_total"),
        "/metrics lacks switchboard_keyframe_requests_total"
    );

    // Figures.
    publisher.pause_media();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let p = publisher.report().publisher;
    let v = sub.report().subscriber.video;
    v.check_contiguous("whole run");
    for (i, l) in p.layers.iter().enumerate() {
        println!(
            "publisher RID {}: {} pkts, {} bytes, {} frames, {} keyframes, {} keyframe requests; \
             viewer got {} pkts of it",
            l.rid,
            l.counters.len(),
            l.bytes,
            l.frames,
            l.keyframes_sent,
            l.keyframe_requests,
            v.packets_of_layer(i as u8),
        );
    }
    let trail: Vec<String> = settle
        .switches
        .iter()
        .map(|s| {
            let t = v
                .first_packet_at
                .map(|f| s.at.saturating_duration_since(f).as_millis());
            format!("{:?}->{} at +{t:?} ms", s.from, s.to)
        })
        .collect();
    println!("default layers after the first video packet: {trail:?}");
    let since_first = |t: &Instant| {
        v.first_packet_at
            .map(|f| t.saturating_duration_since(f).as_millis())
    };
    for l in &p.layers {
        let at: Vec<_> = l.keyframe_requested_at.iter().map(since_first).collect();
        let sent: Vec<_> = l.keyframe_sent_at.iter().map(since_first).collect();
        println!(
            "RID {}, ms after the first video packet: keyframe requests at {at:?}, \
             keyframes sent at {sent:?}",
            l.rid
        );
    }
    for st in [&settle, &lowest, &middle, &auto, &capped] {
        println!(
            "step {:?}: latency {:?}, last switch after {:?}, {} switch(es), {} pkts of the \
             layer, {} kbit/s received for {} kbit/s of payload",
            st.name,
            st.latency,
            st.settled_after,
            st.switches.len(),
            st.packets,
            st.wire_kbps,
            st.media_kbps,
        );
    }
    println!(
        "viewer video: {} pkts, {} keyframes, ssrc {:?}, latency mean {:?} max {:?} \
         (at +{:?} ms)",
        v.packets,
        v.keyframes,
        v.ssrcs,
        v.mean_latency(),
        v.max_latency(),
        v.latency_max_at.as_ref().and_then(since_first),
    );

    sub.stop().await;
    publisher.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layer_api_errors() {
    let room = "obs-sim-errors";
    let server = Server::start(&[]).await;
    let publisher = Peer::publish(&server, room, PublisherKind::ObsSimulcastH264)
        .await
        .unwrap_or_else(|e| panic!("WHIP publish: {e}"));
    let sub = Peer::subscribe(&server, room)
        .await
        .unwrap_or_else(|e| panic!("WHEP subscribe: {e}"));
    assert!(publisher.wait_connected(CONNECT_TIMEOUT).await);
    assert!(sub.wait_connected(CONNECT_TIMEOUT).await);
    // Let the layers be seen, so an unknown RID is unknown for that reason.
    let (flowing, _) = sub
        .wait_for(Duration::from_secs(5), |r| r.subscriber.video.packets > 0)
        .await;
    assert!(flowing, "no video reached the viewer");
    let layer_url = format!("{}/layer", sub.location());
    let json_ct = Some("application/json");

    let r = common::post_body(
        &layer_url,
        Some("text/plain"),
        r#"{"encodingId": "1"}"#,
        None,
    )
    .await
    .unwrap();
    check_problem("wrong content type", &r, 415);

    let r = common::post_body(&layer_url, json_ct, r#"{"encodingId": "1""#, None)
        .await
        .unwrap();
    check_problem("malformed JSON", &r, 400);

    let r = common::post_body(&layer_url, json_ct, r#"{"encodingId": "nope"}"#, None)
        .await
        .unwrap();
    check_problem("unknown RID", &r, 422);

    let r = common::post_body(
        &layer_url,
        json_ct,
        r#"{"mediaId": "99", "encodingId": "1"}"#,
        None,
    )
    .await
    .unwrap();
    check_problem("unknown mid", &r, 422);

    for (what, body) in [
        (
            "TID above 2",
            r#"{"encodingId": "1", "temporalLayerId": 3}"#,
        ),
        ("TID without a layer", r#"{"temporalLayerId": 0}"#),
        ("a zero size cap", r#"{"maxWidth": 0}"#),
    ] {
        let r = common::post_body(&layer_url, json_ct, body, None)
            .await
            .unwrap();
        check_problem(what, &r, 422);
    }

    let unknown = format!(
        "{}/whep/{room}/{:032x}/layer",
        server.base_url(),
        0xdead_u128
    );
    let r = common::post_body(&unknown, json_ct, r#"{"encodingId": "1"}"#, None)
        .await
        .unwrap();
    check_problem("unknown session", &r, 404);

    // The session is unharmed: a valid preference still works.
    set_layer(&layer_url, r#"{"encodingId": "1"}"#).await;

    sub.stop().await;
    publisher.stop().await;
}
