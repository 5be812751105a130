//! Inputs the fuzz targets (`fuzz/`, cargo-fuzz) found crashing, replayed in a normal
//! `cargo test` through the same target bodies (`fuzz/src/<target>.rs`, included here),
//! so a fixed defect stays fixed without the nightly toolchain or libFuzzer. Each
//! reproducer is a file in `fuzz/regressions/<target>/`; every committed seed of
//! `fuzz/corpus/` is replayed too.
//!
//! Run every seed and reproducer by hand: `cargo test --test fuzz_regressions`; one
//! target's: `cargo test --test fuzz_regressions rtp`.

#[allow(dead_code)]
#[path = "../fuzz/src/lib.rs"]
mod fuzz;

use std::path::PathBuf;

/// The files of `fuzz/<dir>/<target>/`, sorted (none when it does not exist).
fn inputs(dir: &str, target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(dir)
        .join(target);
    let Ok(entries) = std::fs::read_dir(&path) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    files.sort();
    files
        .into_iter()
        .filter(|p| p.is_file())
        .map(|p| {
            let bytes = std::fs::read(&p).expect("readable input");
            (p, bytes)
        })
        .collect()
}

/// Replay every seed of `target` through `run`; returns how many ran.
fn replay_seeds(target: &str, run: fn(&[u8])) -> usize {
    let seeds = inputs("corpus", target);
    for (path, bytes) in &seeds {
        eprintln!("{}", path.display());
        run(bytes);
    }
    seeds.len()
}

/// The `rtp` harness is live: a viewer connected in memory receives what the publisher
/// sends, and RTCP the viewer sends with raw bytes (a PLI) reaches the publisher as a
/// keyframe request. Without this, a harness that never connects would fuzz nothing.
#[test]
fn rtp_harness_forwards_media_and_raw_rtcp() {
    use std::time::Duration;
    use str0m::format::Codec;
    use switchboard::ids::SessionKind;

    let mut w = fuzz::world::World::new();
    let publisher = w.join(SessionKind::Publisher, Codec::Vp8, &[]).unwrap();
    let viewer = w.join(SessionKind::Subscriber, Codec::Vp8, &[]).unwrap();
    assert!(w.connect(Duration::from_secs(5)), "the peers connect");
    w.run_for(Duration::from_millis(100));
    // A VP8 keyframe (640x360), then audio.
    let key = vec![
        0x90, 0x80, 0x01, 0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01,
    ];
    for (i, video) in [true, false, true].into_iter().enumerate() {
        let mut payload = key.clone();
        payload.resize(800, 0x55);
        let fields = fuzz::world::RtpFields {
            seq: 1000 + i as u64,
            timestamp: 90_000 + 3000 * i as u32,
            marker: true,
            payload,
        };
        w.write_rtp(publisher, video, None, fields);
        w.run_for(Duration::from_millis(30));
    }
    assert!(w.peers[viewer].received > 0, "the viewer received nothing");
    // The viewer's video SSRC as the room sends it.
    let mid = w.peers[viewer].mids.1;
    let ssrc = *w.peers[viewer]
        .rtc
        .direct_api()
        .stream_rx_by_mid(mid, None)
        .expect("the viewer receives video")
        .ssrc();
    let before = w.peers[publisher].keyframe_requests;
    // After the first 8 bytes of the compound (its first packet's header and sender
    // SSRC): a PLI (RFC 4585 §6.3.1) for that SSRC, written by hand.
    let mut pli = vec![0x81, 206, 0, 2, 0, 0, 0, 1];
    pli.extend_from_slice(&ssrc.to_be_bytes());
    w.run_for(Duration::from_secs(2));
    w.inject_rtcp(viewer, pli);
    assert!(!fuzz::inject::armed(), "the raw bytes were not sent");
    w.run_for(Duration::from_millis(300));
    assert!(
        w.peers[publisher].keyframe_requests > before,
        "the viewer's keyframe request did not reach the publisher"
    );
}

#[test]
fn offer_seeds() {
    assert!(replay_seeds("offer", fuzz::offer::run) > 0);
}

#[test]
fn datagram_seeds() {
    assert!(replay_seeds("datagram", fuzz::datagram::run) > 0);
}

#[test]
fn rtp_seeds() {
    assert!(replay_seeds("rtp", fuzz::rtp::run) > 0);
}

#[test]
fn codec_seeds() {
    assert!(replay_seeds("codec", fuzz::codec::run) > 0);
}

#[test]
fn depacketize_seeds() {
    assert!(replay_seeds("depacketize", fuzz::depacketize::run) > 0);
}

#[test]
fn json_seeds() {
    assert!(replay_seeds("json", fuzz::json::run) > 0);
}

#[test]
fn token_seeds() {
    assert!(replay_seeds("token", fuzz::token::run) > 0);
}

/// A viewer's automatic layer cap at `usize::MAX` overflowed `max + 1` in the
/// forwarder's layer ladder (a panic with overflow checks; in a release build the cap
/// wrapped to "no layer at all"). Fixed: the ladder saturates.
#[test]
fn json_max_spatial_layer_id_does_not_overflow() {
    fuzz::json::run(include_bytes!(
        "../fuzz/regressions/json/max-spatial-layer-id-overflow"
    ));
}

/// Found by the `rtp` target: a publisher's Opus payload of 1,984 bytes (it arrives in a
/// datagram well under the 2,048 bytes the receive path takes) made str0m 0.25 panic in
/// the viewer's send path (`streams/send.rs:743`, "range end index 1984 out of range for
/// slice of length 1972": its buffer is 2,000 bytes and the viewer's header takes 28),
/// inside the room's flush: the room task died. Input: time passes, a 2-byte video
/// packet, then the 1,984-byte audio packet. Fixed: the room drops (and counts) any
/// payload over `MAX_FORWARD_PAYLOAD` before it reaches a subscriber.
#[test]
fn rtp_oversize_payload_does_not_kill_the_room() {
    fuzz::rtp::run_with_max(
        include_bytes!("../fuzz/regressions/rtp/oversize-opus-1984"),
        fuzz::world::PUBLISHER_MAX_PAYLOAD,
    );
}

/// Found by the `offer` target in its first seconds: a WHEP offer whose payload type 102
/// is H.264 with `packetization-mode=1;profile-level-id=42e01f` on one m-line and, one
/// byte changed, `packetization-mode=1?profile-level-id=42e01f` on the next. str0m 0.25
/// locked 102 to the first configuration and panicked on the second ("Pt locked multiple
/// times: 102", `format/payload_params.rs:41`) inside the room's task: any client could
/// end any room. Fixed: the offer check refuses a payload type with two configurations
/// (RFC 8843 §9.1) before str0m sees the offer.
#[test]
fn offer_payload_type_with_two_configurations_is_refused() {
    fuzz::offer::run(include_bytes!(
        "../fuzz/regressions/offer/pt-two-configurations"
    ));
}

/// Found by the `datagram` target: a datagram whose first byte is in DTLS's range but
/// that otherwise looks like a STUN binding request yielded a USERNAME although it
/// classifies as DTLS (the harness checks that the two agree; the server looked at the
/// USERNAME only of what classifies as STUN). Fixed: `stun_username` takes only first
/// bytes 0–3 (RFC 7983 §7), like `classify`.
#[test]
fn datagram_username_only_from_stun() {
    fuzz::datagram::run(include_bytes!(
        "../fuzz/regressions/datagram/username-in-dtls-range"
    ));
}

/// Found by the `offer` target in a fresh-clone smoke run: an audio m-line carries an
/// `a=rtpmap:97 H264/90000` for a type it does not list, and the video m-line lists 97
/// with another `a=fmtp`. str0m 0.25 locked 97 on the first and panicked ("Pt locked
/// multiple times") on the second. Fixed: the offer check compares the configuration of
/// every payload type an m-line lists or configures, and refuses this one (422).
#[test]
fn an_unlisted_rtpmap_conflicting_with_a_later_m_line_is_refused() {
    let offer = include_bytes!("../fuzz/regressions/offer/unlisted-rtpmap-conflict");
    fuzz::offer::run(offer);
    let text = std::str::from_utf8(offer).expect("the reproducer is text");
    assert!(
        switchboard::room::offer_limits::check(text).is_err(),
        "the offer check lets the conflicting payload type through"
    );
}
