//! Target `json`: the JSON bodies the API parses, and what a parsed body does to a room.
//!
//! Input: `[selector: u8][JSON body]`. The selector picks the body type:
//! * 0: a WHEP layer request (`api::preferences::LayerRequest`), applied to a viewer
//!   of a simulcast publisher (`Room::handle_set_layer`, the forwarder's preferences and
//!   allocation; e.g. `{"maxSpatialLayerId": 18446744073709551615}`);
//! * 1: slot preferences (`api::slot_prefs::Body`), validated (`slot_prefs::split`)
//!   and applied (`Room::handle_preferences`);
//! * 2: a mute request (`api::rooms::MuteRequest`), applied (`Room::mute`);
//! * 3: token claims (`auth::Claims`);
//! * 4: a data channel message (`data::DataRelay::handle_message`), from one of three
//!   participants on a topic all of them have open: relayed to the other two or refused
//!   with one reply, never echoed, never more than that.
//!
//! The room is connected in memory ([`super::world`]) and media flows for a moment
//! before and after the body is applied, so the allocator runs with the new preference.

use std::time::Duration;

use str0m::format::Codec;
use str0m::media::Rid;
use switchboard::api::preferences::LayerRequest;
use switchboard::api::rooms::MuteRequest;
use switchboard::api::slot_prefs::{self, Body};
use switchboard::auth::Claims;
use switchboard::ids::SessionKind;

use super::world::{RtpFields, World};

/// Run one input.
pub fn run(data: &[u8]) {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    match selector % 5 {
        0 => {
            let Ok(req) = serde_json::from_slice::<LayerRequest>(body) else {
                return;
            };
            let pref = req.preference();
            let mut w = world();
            let session = w.peers[1].session.clone();
            let now = w.now;
            let mid = serde_json::from_slice::<serde_json::Value>(body)
                .ok()
                .and_then(|v| v.get("mediaId").and_then(|m| m.as_str().map(str::to_owned)));
            let _ = w
                .room
                .handle_set_layer(now, &session, mid.as_deref(), &pref);
            media(&mut w);
        }
        1 => {
            let Ok(body) = serde_json::from_slice::<Body>(body) else {
                return;
            };
            let requests = match body {
                Body::Many { slots } => slots,
                Body::One(r) => vec![r],
            };
            let Ok((prefs, caps)) = slot_prefs::split(requests) else {
                return;
            };
            let mut w = world();
            let session = w.peers[1].session.clone();
            let now = w.now;
            let _ = w.room.handle_preferences(now, &session, &prefs, &caps);
            media(&mut w);
        }
        2 => {
            let Ok(req) = serde_json::from_slice::<MuteRequest>(body) else {
                return;
            };
            let mut w = world();
            let now = w.now;
            let _ = w.room.mute(now, "peer0", &req.track, req.muted);
            media(&mut w);
        }
        3 => {
            let _ = serde_json::from_slice::<Claims>(body);
        }
        _ => data_message(body),
    }
}

/// A data channel message from participant 1 of 3 on `chat`: either relayed to the two
/// others, or refused with one error reply to the sender (and never echoed).
fn data_message(body: &[u8]) {
    use std::time::Instant;
    use switchboard::data::{ChannelKey, DataLimits, DataOutput, DataRelay, Relayed};
    use switchboard::ids::ParticipantId;

    let mut relay = DataRelay::new(DataLimits::default());
    for (id, who) in [(1, "alice"), (2, "bob"), (3, "carol")] {
        relay.handle_open(
            ParticipantId(id),
            who.into(),
            who.into(),
            ChannelKey(0),
            "chat",
            true,
        );
    }
    let in_room = |who: &str| ["alice", "bob", "carol"].contains(&who);
    let got = relay.handle_message(
        Instant::now(),
        ParticipantId(1),
        ChannelKey(0),
        false,
        body,
        in_room,
    );
    let mut outputs = Vec::new();
    while let Some(o) = relay.poll_output() {
        outputs.push(o);
    }
    match got {
        Relayed::To(n) => {
            assert!(n <= 2, "{n} receivers of 2 others");
            assert_eq!(outputs.len(), n);
            for o in &outputs {
                let DataOutput::Deliver { to, text, .. } = o else {
                    panic!("a relayed message closes nothing");
                };
                assert_ne!(*to, ParticipantId(1), "echoed to the sender");
                let v: serde_json::Value = serde_json::from_str(text).expect("relayed JSON parses");
                assert_eq!(v["from"], "alice");
            }
        }
        Relayed::Refused(_) => {
            assert_eq!(outputs.len(), 1, "one error reply");
            assert!(
                matches!(&outputs[0], DataOutput::Deliver { to, .. } if *to == ParticipantId(1))
            );
        }
    }
}

/// A simulcast VP8 publisher (`q`, `h`, `f`) and one viewer, connected, with a moment of
/// media on every layer.
fn world() -> World {
    let mut w = World::new();
    w.join(SessionKind::Publisher, Codec::Vp8, &["q", "h", "f"])
        .expect("the publisher joins");
    w.join(SessionKind::Subscriber, Codec::Vp8, &[])
        .expect("the viewer joins");
    assert!(w.connect(Duration::from_secs(5)), "the peers connect");
    media(&mut w);
    w
}

/// One keyframe (with a VP8 keyframe header: 640x360) on each layer, then a few delta
/// frames, 30 ms apart.
fn media(w: &mut World) {
    for frame in 0..4u32 {
        for (i, rid) in ["q", "h", "f"].into_iter().enumerate() {
            let mut payload = vec![0x90, 0x80, (frame & 0x7f) as u8];
            if frame == 0 {
                payload.extend_from_slice(&[
                    0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01,
                ]);
            } else {
                payload.extend_from_slice(&[0x11, 0x02, 0x00]);
            }
            payload.resize(200 * (i + 1), 0x55);
            let fields = RtpFields {
                seq: 1000 + u64::from(frame),
                timestamp: 90_000 + frame * 3000,
                marker: true,
                payload,
            };
            w.write_rtp(0, true, Some(Rid::from(rid)), fields);
        }
        w.run_for(Duration::from_millis(30));
    }
}
