//! Target `offer`: the whole offer path without sockets. The bytes are an SDP offer
//! (lossy UTF-8, as an HTTP body the API would refuse otherwise); it goes through the
//! pure inspection (`signaling::inspect_offer`, `validate`, `publisher_video_codec`) and
//! then into a fresh sans-IO `Room` as a WHIP publisher and as a WHEP subscriber
//! (`Room::handle_join`: inspection, admission, str0m's parse and acceptance, the
//! answer). Every answer the room gives must parse as SDP again.

use std::time::Instant;

use str0m::change::SdpAnswer;
use switchboard::conference::info::JoinOptions;
use switchboard::ids::SessionKind;
use switchboard::limits::RoomLimits;
use switchboard::metrics::Meters;
use switchboard::net::RoomKey;
use switchboard::room::signaling;
use switchboard::room::{Room, RoomOutput};

/// Largest offer fed to the room (the API refuses larger bodies before any parsing).
const MAX_OFFER: usize = 64 * 1024;

/// Run one input.
pub fn run(data: &[u8]) {
    if data.len() > MAX_OFFER {
        return;
    }
    let sdp = String::from_utf8_lossy(data);
    let lines = signaling::inspect_offer(&sdp);
    for kind in [SessionKind::Publisher, SessionKind::Subscriber] {
        let _ = signaling::validate(kind, &lines);
    }
    let _ = signaling::publisher_video_codec(&lines);

    let now = Instant::now();
    let mut room = Room::new(
        "fuzz".into(),
        RoomKey(7),
        vec!["10.0.0.1:3478".parse().expect("address")],
        RoomLimits::default(),
        Meters::new(),
    );
    for (i, kind) in [SessionKind::Publisher, SessionKind::Subscriber]
        .into_iter()
        .enumerate()
    {
        let opts = JoinOptions {
            identity: Some(format!("peer{i}")),
            ..Default::default()
        };
        if let Ok(joined) = room.handle_join(now, kind, &sdp, &opts) {
            if let Err(e) = SdpAnswer::from_sdp_string(&joined.answer) {
                panic!(
                    "the room answered SDP that does not parse: {e}\n{}",
                    joined.answer
                );
            }
        }
    }
    room.handle_timeout(now);
    while !matches!(room.poll_output(), RoomOutput::Timeout(_)) {}
}
