//! A room task that fails (panics) ends that room alone: its sessions end, the gauges
//! and counts it held come back, the registry and demux forget it, a request waiting on
//! it is answered "room failed" (not retried into a fresh room), the process keeps
//! serving other rooms, and a new room of the same name works.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::media::{Direction, MediaKind};
use str0m::Rtc;

use super::{Command, RoomContext, RoomError, Rooms};
use crate::conference::info::JoinOptions;
use crate::ids::SessionKind;
use crate::limits::RoomLimits;
use crate::metrics::Meters;
use crate::net::{RoomTable, UdpEndpoint};
use crate::room::{JoinError, Joined};

const OBS: &str = include_str!("../../tests/fixtures/obs-offer.sdp");

fn whep_offer() -> String {
    let mut rtc = Rtc::builder()
        .clear_codecs()
        .enable_opus(true, false)
        .enable_h264(true)
        .build(Instant::now());
    let mut api = rtc.sdp_api();
    api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
    api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    let (offer, _pending) = api.apply().expect("changes");
    offer.to_sdp_string()
}

fn registry() -> (Arc<Rooms>, Arc<RoomTable>, Meters) {
    let local = "127.0.0.1:0".parse().unwrap();
    let endpoint = UdpEndpoint::bind(local, vec![local]).expect("bind");
    let table = Arc::new(RoomTable::default());
    let meters = Meters::new();
    let ctx = RoomContext {
        endpoint,
        tcp: None,
        meters: meters.clone(),
        limits: RoomLimits::default(),
        webhooks: crate::webhook::Webhooks::disabled(),
        archive: crate::archive::Archive::disabled(),
    };
    (Rooms::new(Arc::clone(&table), ctx), table, meters)
}

async fn join(
    rooms: &Arc<Rooms>,
    room: &str,
    kind: SessionKind,
    offer: String,
) -> Result<Joined, JoinError> {
    rooms
        .request(room, true, |reply| Command::Join {
            kind,
            offer: offer.clone(),
            opts: JoinOptions::default(),
            reply,
        })
        .await
        .expect("room answers")
        .expect("created")
}

async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_room_ends_only_itself_and_its_name_can_be_used_again() {
    let (rooms, table, meters) = registry();
    let live = Arc::clone(&meters.live_sessions);
    join(&rooms, "doomed", SessionKind::Publisher, OBS.into())
        .await
        .expect("publisher joins");
    join(&rooms, "doomed", SessionKind::Subscriber, whep_offer())
        .await
        .expect("viewer joins");
    join(&rooms, "other", SessionKind::Subscriber, whep_offer())
        .await
        .expect("other room's viewer joins");
    assert_eq!(live.load(Ordering::Relaxed), 3);
    assert_eq!(rooms.len(), 2);
    assert_eq!(table.len(), 2);

    let res = rooms
        .request("doomed", false, |reply| Command::InjectPanic { reply })
        .await;
    assert!(
        matches!(res, Err(RoomError::Failed)),
        "a request whose room failed is answered so, not retried: {:?}",
        res.map(|_| ())
    );

    // The failed room's sessions are counted as ended, the registry and the demux
    // forget it (a drain waits for exactly this), the other room lives on.
    until("the failed room's sessions to be given back", || {
        live.load(Ordering::Relaxed) == 1
    })
    .await;
    until("the registry to forget the room", || rooms.len() == 1).await;
    assert!(!rooms.contains("doomed"));
    assert!(rooms.contains("other"));
    assert_eq!(table.len(), 1, "the failed room's demux key is removed");

    // The name works again: a fresh room.
    join(&rooms, "doomed", SessionKind::Publisher, OBS.into())
        .await
        .expect("a new room of the same name accepts a publisher");
    assert_eq!(live.load(Ordering::Relaxed), 2);
    assert_eq!(rooms.len(), 2);
}
