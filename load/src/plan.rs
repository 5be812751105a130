//! The sessions of a scenario, in ramp order: what each one is ([`Planned`]) and where
//! it POSTs. Pure: no I/O.
//!
//! Conference mappings ([`Mapping`]):
//! - `room` (default): one conference room `{room}` with many publishers, as Switchboard
//!   has (`docs/conference.md`). Participant `i` publishes with WHIP `?name=p{i}` and
//!   watches with one WHEP session `?name=p{i}` whose offer has `K` `recvonly` video
//!   m-lines and `min(K, 3)` audio ones: the server fills those slots with the other
//!   participants' media, never `p{i}`'s own.
//! - `rooms`: for servers with one publisher per room, P rooms `{room}-{i}`: participant
//!   `i` publishes to its own room and watches the rooms of the `K` participants after
//!   it (`i+1 … i+K`, wrapping) with one plain WHEP session each, so every publisher
//!   has `K` viewers.
//!
//! The `data` scenario: participant `i` has one data-only WHEP session `?name=p{i}` in
//! the room `{room}` (its offer has only `m=application`, see [`crate::data`]).

use crate::cli::{Cli, Mapping, Scenario};
use crate::peer::{PeerSpec, Role, Slots};
use switchboard_kit::whip as signaling;

/// Most audio slots a `room`-mapped conference viewer asks for.
const MAX_AUDIO_SLOTS: u32 = 3;

/// One session to create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Planned {
    /// Publisher (WHIP) or viewer (WHEP).
    pub role: Role,
    /// Room name.
    pub room: String,
    /// Endpoint URL to POST to.
    pub url: String,
    /// A publisher's id (in every payload it sends); a viewer's own participant.
    pub participant: Option<u32>,
    /// The m-lines of the offer (a viewer's slots).
    pub slots: Slots,
}

impl Planned {
    /// What the peer needs to know.
    pub fn spec(&self) -> PeerSpec {
        PeerSpec {
            role: self.role,
            participant: self.participant,
            slots: self.slots,
        }
    }
}

/// A conference's shape: its mapping, how many others each participant watches (`K`),
/// and the slots of a viewer's offer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    /// One room or one room per participant.
    pub mapping: Mapping,
    /// Participants.
    pub participants: u32,
    /// Others each participant watches.
    pub watch: u32,
    /// The m-lines of each viewer's offer.
    pub slots: Slots,
}

/// The shape of the conference scenario (`None` for the others).
pub fn conference_shape(cli: &Cli) -> Option<Shape> {
    match &cli.scenario {
        Scenario::Broadcast { .. } | Scenario::Data { .. } => None,
        Scenario::Conference {
            participants,
            watch,
            mapping,
        } => Some(shape_of(*participants, *watch, *mapping)),
    }
}

fn shape_of(p: u32, watch: Option<u32>, mapping: Mapping) -> Shape {
    let k = watch
        .unwrap_or(p.saturating_sub(1))
        .min(p.saturating_sub(1));
    let slots = match mapping {
        Mapping::Room => Slots {
            video: k,
            audio: k.min(MAX_AUDIO_SLOTS),
        },
        Mapping::Rooms => Slots::ONE,
    };
    Shape {
        mapping,
        participants: p,
        watch: k,
        slots,
    }
}

/// The identity of participant `i` in a `room`-mapped conference or the `data` scenario.
pub fn participant_name(i: u32) -> String {
    format!("p{i}")
}

/// The sessions of the scenario: publishers first, in ramp order.
pub fn plan(cli: &Cli) -> Vec<Planned> {
    let base = cli.base_url();
    let session = |role, room: String, participant, slots, name: Option<String>| {
        let template = match role {
            Role::Publisher => &cli.whip_url,
            Role::Viewer | Role::Data => &cli.whep_url,
        };
        let mut url = signaling::endpoint(template, base, &room);
        if let Some(n) = name {
            url = signaling::with_query(&url, "name", &n);
        }
        Planned {
            role,
            room,
            url,
            participant,
            slots,
        }
    };
    let shape = match &cli.scenario {
        Scenario::Conference {
            participants,
            watch,
            mapping,
        } => shape_of(*participants, *watch, *mapping),
        Scenario::Broadcast { viewers } => {
            let one =
                |role, participant| session(role, cli.room.clone(), participant, Slots::ONE, None);
            return std::iter::once(one(Role::Publisher, Some(0)))
                .chain((0..*viewers).map(|_| one(Role::Viewer, None)))
                .collect();
        }
        Scenario::Data { participants, .. } => {
            let none = Slots { video: 0, audio: 0 };
            return (0..*participants)
                .map(|i| {
                    let name = Some(participant_name(i));
                    session(Role::Data, cli.room.clone(), Some(i), none, name)
                })
                .collect();
        }
    };
    let (p, k) = (shape.participants, shape.watch);
    match shape.mapping {
        Mapping::Room => {
            let member = |role, i: u32, slots| {
                let name = Some(participant_name(i));
                session(role, cli.room.clone(), Some(i), slots, name)
            };
            let publishers = (0..p).map(|i| member(Role::Publisher, i, Slots::ONE));
            // K = 0 (a conference of one): nobody to watch, no viewers.
            let viewers = (0..p)
                .filter(|_| k > 0)
                .map(|i| member(Role::Viewer, i, shape.slots));
            publishers.chain(viewers).collect()
        }
        Mapping::Rooms => {
            let room = |i: u32| format!("{}-{i}", cli.room);
            let publishers =
                (0..p).map(|i| session(Role::Publisher, room(i), Some(i), Slots::ONE, None));
            let viewers = (0..p).flat_map(|i| (1..=k).map(move |d| (i, (i + d) % p)));
            publishers
                .chain(
                    viewers.map(|(i, j)| session(Role::Viewer, room(j), Some(i), Slots::ONE, None)),
                )
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn cli(args: &[&str]) -> Cli {
        let mut all = vec!["switchboard-load", "--url", "http://h:1", "--room", "r"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).unwrap()
    }

    #[test]
    fn broadcast_is_one_publisher_then_viewers() {
        let p = plan(&cli(&["broadcast", "--viewers", "3"]));
        assert_eq!(p.len(), 4);
        assert_eq!(p[0].role, Role::Publisher);
        assert_eq!(p[0].url, "http://h:1/whip/r");
        assert!(p[1..]
            .iter()
            .all(|s| s.role == Role::Viewer && s.url == "http://h:1/whep/r"));
    }

    #[test]
    fn conference_rooms_maps_onto_one_publisher_rooms() {
        let p = plan(&cli(&[
            "conference",
            "--participants",
            "3",
            "--watch",
            "1",
            "--mapping",
            "rooms",
        ]));
        let rooms: Vec<(Role, &str, Option<u32>)> = p
            .iter()
            .map(|s| (s.role, s.room.as_str(), s.participant))
            .collect();
        assert_eq!(
            rooms,
            vec![
                (Role::Publisher, "r-0", Some(0)),
                (Role::Publisher, "r-1", Some(1)),
                (Role::Publisher, "r-2", Some(2)),
                (Role::Viewer, "r-1", Some(0)),
                (Role::Viewer, "r-2", Some(1)),
                (Role::Viewer, "r-0", Some(2)),
            ]
        );
        assert!(p
            .iter()
            .all(|s| s.slots == Slots::ONE && !s.url.contains('?')));
        assert_eq!(p[3].url, "http://h:1/whep/r-1");
        // Default: everyone watches everyone else.
        assert_eq!(
            plan(&cli(&[
                "conference",
                "--participants",
                "4",
                "--mapping",
                "rooms"
            ]))
            .len(),
            4 + 12
        );
    }

    #[test]
    fn conference_room_is_one_room_with_named_participants_and_slots() {
        let p = plan(&cli(&["conference", "--participants", "6", "--watch", "4"]));
        assert_eq!(p.len(), 12);
        for (i, s) in p.iter().enumerate() {
            let n = (i % 6) as u32;
            let (role, path, slots) = if i < 6 {
                (Role::Publisher, "whip", Slots::ONE)
            } else {
                (Role::Viewer, "whep", Slots { video: 4, audio: 3 })
            };
            assert_eq!(s.role, role, "{s:?}");
            assert_eq!(s.room, "r");
            assert_eq!(s.url, format!("http://h:1/{path}/r?name=p{n}"));
            assert_eq!(s.participant, Some(n));
            assert_eq!(s.slots, slots, "{s:?}");
        }
        // Default K: all others; fewer than 3 others means fewer audio slots.
        let p = plan(&cli(&["conference", "--participants", "3"]));
        assert_eq!(p.len(), 6);
        assert_eq!(p[3].slots, Slots { video: 2, audio: 2 });
        // A template with a query of its own gets `&name=`.
        let p = plan(&cli(&[
            "--whep-url",
            "{url}/whep/{room}?participant=x",
            "conference",
            "--participants",
            "2",
        ]));
        assert_eq!(p[2].url, "http://h:1/whep/r?participant=x&name=p0");
        assert_eq!(p[0].url, "http://h:1/whip/r?name=p0");
        // A conference of one has no one to watch.
        assert_eq!(plan(&cli(&["conference", "--participants", "1"])).len(), 1);
        let shape = conference_shape(&cli(&["conference", "--participants", "5"])).unwrap();
        assert_eq!((shape.mapping, shape.watch), (Mapping::Room, 4));
    }

    #[test]
    fn data_is_one_data_only_whep_session_per_participant() {
        let p = plan(&cli(&["data", "--participants", "3"]));
        assert_eq!(p.len(), 3);
        for (i, s) in p.iter().enumerate() {
            assert_eq!(s.role, Role::Data);
            assert_eq!(s.url, format!("http://h:1/whep/r?name=p{i}"));
            assert_eq!(s.participant, Some(i as u32));
            assert_eq!(s.slots, Slots { video: 0, audio: 0 });
        }
        assert!(conference_shape(&cli(&["data"])).is_none());
    }
}
