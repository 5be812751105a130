//! A conference of six through a sans-IO `Room` in deterministic virtual time
//! (`docs/conference.md`): participants p1..p6 each publish Opus + VP8 with one WHIP
//! session and watch with one WHEP session of three video and two audio slots, all under
//! their identity. Every payload carries its publisher's id, so each packet a viewer
//! receives is traced to its source and to the slot (MID) it arrived in.
//!
//! Everybody is silent (RFC 6464 level 127) but the speaker: p5 speaks from 4 s, p6 from
//! 9 s (p5 falls silent), p1 deletes both sessions at 14 s. Checked: nobody ever receives
//! its own media; every viewer receives video from exactly three and audio from exactly
//! two others, as its `slots` events say; a speaker becomes `active-speaker` within about
//! a second, takes an audio slot and the video slot of the least recently active
//! participant shown, nothing else moves, and its media follows (video from a keyframe);
//! a leaver's slots go to the best-ranked participant not shown; `participant-joined`,
//! `participant-left` and `viewers` are as they should be; a second run gives the same
//! room events. Prints the latencies (run with `--nocapture`) and collects every failed
//! check before failing.

mod sim;

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use sim::conference::{map_at, Arrival, SlotMap, Tag};
use sim::link::LinkConfig;
use sim::media::SINGLE;
use sim::{Failures, Sim};
use switchboard::conference::info::Audience;

const S: Duration = Duration::from_secs(1);
/// One-way delay of every link.
const DELAY: Duration = Duration::from_millis(10);
/// Beyond the link delay, how late a packet forwarded before a slot change may arrive
/// (the server's pacer may hold it a little).
const SLACK: Duration = Duration::from_millis(50);
const PARTICIPANTS: u64 = 6;
const VIDEO_SLOTS: usize = 3;
const AUDIO_SLOTS: usize = 2;
/// RFC 6464: 127 -dBov is digital silence; 20 -dBov is a speaker close to the mic.
const SILENT: u8 = 127;
const LOUD: u8 = 20;
/// Participant `i` joins at `(i - 1) * JOIN_EVERY`.
const JOIN_EVERY: Duration = Duration::from_millis(200);
/// (speaker, from when); the one before falls silent then.
const SPEECHES: [(u64, Duration); 2] = [(5, Duration::from_secs(4)), (6, Duration::from_secs(9))];
const LEAVER: u64 = 1;
const LEAVE_AT: Duration = Duration::from_secs(14);
const END: Duration = Duration::from_secs(17);
/// Windows without any change: each viewer's media must match its slot map there.
/// Seconds from, to.
const QUIET: [(u64, u64); 4] = [(3, 4), (8, 9), (13, 14), (16, 17)];
/// The server's speaker detection (1 s window, 200 ms ticks, 6 dB for two ticks to
/// switch) must name a new speaker within this.
const ACTIVE_WITHIN: Duration = Duration::from_millis(1200);
/// A slot's new track must arrive within this of the `slots` event (keyframe request,
/// the publisher's next frame, two link delays).
const MEDIA_WITHIN: Duration = Duration::from_millis(300);

fn link() -> LinkConfig {
    LinkConfig::ideal(DELAY)
}

fn name(id: u64) -> String {
    format!("p{id}")
}

fn ms(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}

/// One speech of [`SPEECHES`]: which, by whom, from when, from which event on.
#[derive(Debug, Clone, Copy)]
struct Speech {
    nth: usize,
    speaker: u64,
    from: Duration,
    mark: usize,
}

/// One participant's two sessions (indices into `Sim::peers`).
#[derive(Debug, Clone, Copy)]
struct Who {
    id: u64,
    publisher: usize,
    viewer: usize,
}

/// The run: the world afterwards, the participants, and where in `Sim::events` each
/// speech (in `SPEECHES` order) and the leave began.
struct Run {
    sim: Sim,
    people: Vec<Who>,
    speech_marks: Vec<usize>,
    leave_mark: usize,
}

fn run_conference() -> Run {
    let mut sim = Sim::new();
    let mut people = Vec::new();
    for id in 1..=PARTICIPANTS {
        sim.run_until(sim.at(JOIN_EVERY * (id as u32 - 1)));
        let publisher = sim.join_publisher(&name(id), &[SINGLE], link(), link());
        sim.peers[publisher].tag = Tag {
            publisher: id,
            audio_level: Some(SILENT),
        };
        let viewer = sim.join_viewer(&name(id), VIDEO_SLOTS, AUDIO_SLOTS, link(), link());
        people.push(Who {
            id,
            publisher,
            viewer,
        });
    }
    let mut speech_marks = Vec::new();
    let mut previous: Option<u64> = None;
    for (speaker, from) in SPEECHES {
        sim.run_until(sim.at(from));
        speech_marks.push(sim.events.len());
        if let Some(p) = previous {
            sim.peers[people[p as usize - 1].publisher].tag.audio_level = Some(SILENT);
        }
        sim.peers[people[speaker as usize - 1].publisher]
            .tag
            .audio_level = Some(LOUD);
        previous = Some(speaker);
    }
    sim.run_until(sim.at(LEAVE_AT));
    let leave_mark = sim.events.len();
    let leaver = people[LEAVER as usize - 1];
    assert!(sim.leave(leaver.publisher), "the leaver's WHIP session");
    assert!(sim.leave(leaver.viewer), "the leaver's WHEP session");
    sim.run_until(sim.at(END));
    Run {
        sim,
        people,
        speech_marks,
        leave_mark,
    }
}

/// Slot ranking of the scenario's model (`docs/conference.md`) once the first `spoken`
/// speeches began: the most recent speaker first, then join order. Larger is better.
fn rank(identity: &str, spoken: usize) -> (Option<usize>, Reverse<u64>) {
    let id: u64 = identity[1..].parse().expect("pN");
    let spoke = SPEECHES[..spoken].iter().position(|(s, _)| *s == id);
    (spoke, Reverse(id))
}

#[test]
fn six_participants_follow_the_speaker() {
    let wall = Instant::now();
    let Run {
        mut sim,
        people,
        speech_marks,
        leave_mark,
    } = run_conference();
    let run_wall = wall.elapsed();
    let mut fail = Failures::default();

    for w in &people {
        let maps = sim.slot_maps(w.viewer);
        let line: Vec<String> = maps
            .iter()
            .map(|m| {
                let ids = m.slots.iter().map(|s| s.identity.as_deref().unwrap_or("-"));
                let ids: Vec<&str> = ids.collect();
                format!("{}: {}", ms(sim.elapsed(m.at)), ids.join(","))
            })
            .collect();
        println!(
            "{} slots (video x3, audio x2): {}",
            name(w.id),
            line.join(" | ")
        );
    }
    check_room_events(&sim, &mut fail);

    // Media: never one's own, always what the slot map says.
    let mut media: HashMap<u64, Vec<Arrival>> = HashMap::new();
    for w in &people {
        let all = sim.arrivals(w.viewer);
        let who = name(w.id);
        let own: Vec<&Arrival> = all.iter().filter(|a| a.from == w.id).collect();
        fail.check(
            own.is_empty(),
            format!(
                "{who} received {} packets of its own media, the first at {:?}",
                own.len(),
                own.first().map(|a| sim.elapsed(a.at))
            ),
        );
        let unknown = all.iter().filter(|a| a.mid.is_none()).count();
        fail.check(
            unknown == 0,
            format!("{who}: {unknown} packets of unknown SSRCs"),
        );
        let peer = &sim.peers[w.viewer];
        fail.check(
            peer.received.corrupt.is_empty() && peer.received.unknown == 0,
            format!("{who}: corrupt or unknown packets"),
        );
        let got: Vec<Arrival> = all.into_iter().filter(|a| a.in_order).collect();
        check_follows_map(&sim, w, &got, &mut fail);
        media.insert(w.id, got);
    }
    check_quiet_windows(&sim, &people, &media, &mut fail);
    for (nth, &(speaker, from)) in SPEECHES.iter().enumerate() {
        let mark = speech_marks[nth];
        let speech = Speech {
            nth,
            speaker,
            from,
            mark,
        };
        check_speech(&sim, &people, &media, &speech, &mut fail);
    }
    check_leave(&sim, &people, leave_mark, &mut fail);

    // The same scenario replays to the same room events.
    let again = run_conference().sim;
    fail.check(
        sim.replayable_events() == again.replayable_events(),
        "the room events did not replay identically".into(),
    );
    println!(
        "two runs of {END:?} virtual time: {run_wall:?} wall for the first; driver {:?}; \
         {} room events",
        sim.stats,
        sim.events.len()
    );
    fail.finish();
}

/// `participant-joined` once per identity in join order, `viewers` counting WHEP
/// sessions, `participant-updated` then `participant-left` for the leaver; only `slots`
/// and `layer` go to one viewer.
fn check_room_events(sim: &Sim, fail: &mut Failures) {
    let all = |n: &'static str| sim.events.iter().filter(move |e| e.name == n);
    let joined: Vec<&str> = all("participant-joined")
        .filter_map(|e| e.data["identity"].as_str())
        .collect();
    let expected: Vec<String> = (1..=PARTICIPANTS).map(name).collect();
    fail.check(
        joined == expected,
        format!("participant-joined for {joined:?}, expected each of {expected:?} once"),
    );
    let counts: Vec<u64> = all("viewers")
        .filter_map(|e| e.data["count"].as_u64())
        .collect();
    let mut want: Vec<u64> = (1..=PARTICIPANTS).collect();
    want.push(PARTICIPANTS - 1);
    fail.check(
        counts == want,
        format!("viewers counts {counts:?}, expected {want:?}"),
    );
    let gone = name(LEAVER);
    let left: Vec<(&str, Instant)> = all("participant-left")
        .filter_map(|e| Some((e.data["identity"].as_str()?, e.at)))
        .collect();
    fail.check(
        left == [(gone.as_str(), sim.at(LEAVE_AT))],
        format!("participant-left {left:?}, expected {gone} at {LEAVE_AT:?}"),
    );
    let unpublished = all("participant-updated").any(|e| {
        e.at == sim.at(LEAVE_AT) && e.data["identity"] == gone && e.data["publishing"] == false
    });
    fail.check(
        unpublished,
        format!("no participant-updated (publishing: false) when {gone} deleted its WHIP session"),
    );
    for e in sim.events.iter().filter(|e| e.audience != Audience::All) {
        let per_viewer = e.name == "slots" || e.name == "layer";
        fail.check(per_viewer, format!("{} event for one viewer only", e.name));
    }
}

/// Every packet a viewer received in order on a slot came from the slot's identity at
/// its arrival, or at the time it was forwarded (a change may overtake packets in flight).
fn check_follows_map(sim: &Sim, w: &Who, got: &[Arrival], fail: &mut Failures) {
    let maps = sim.slot_maps(w.viewer);
    let mut wrong = 0;
    for a in got {
        let Some(mid) = a.mid.as_deref() else {
            continue;
        };
        let sent = a.at.checked_sub(DELAY + SLACK).unwrap_or(a.at);
        let mut allowed: BTreeSet<Option<&str>> = BTreeSet::new();
        allowed.insert(map_at(&maps, sent).and_then(|m| m.owner(mid)));
        for m in maps.iter().filter(|m| m.at > sent && m.at <= a.at) {
            allowed.insert(m.owner(mid));
        }
        let slot = map_at(&maps, a.at).and_then(|m| m.slots.iter().find(|s| s.mid == mid));
        let kind_ok = slot.is_none_or(|s| s.video == a.video);
        if !allowed.contains(&Some(name(a.from).as_str())) || !kind_ok {
            if wrong < 3 {
                let kind = if a.video { "video" } else { "audio" };
                let what = format!(
                    "{}: {kind} from {} on mid {mid} at {}, but the slot shows {allowed:?}",
                    name(w.id),
                    name(a.from),
                    ms(sim.elapsed(a.at))
                );
                fail.check(false, what);
            }
            wrong += 1;
        }
    }
    let what = format!("{}: {wrong} packets off the slot map", name(w.id));
    fail.check(wrong == 0, what);
}

/// In each quiet window every present viewer's slot map holds still, shows three
/// others' video and two others' audio, and each slot receives its track at full rate.
fn check_quiet_windows(
    sim: &Sim,
    people: &[Who],
    media: &HashMap<u64, Vec<Arrival>>,
    fail: &mut Failures,
) {
    for (from, to) in QUIET.map(|(a, b)| (S * a as u32, S * b as u32)) {
        let (a, b) = (sim.at(from), sim.at(to));
        for w in people.iter().filter(|w| w.id != LEAVER || to <= LEAVE_AT) {
            let who = format!("{} in [{from:?}, {to:?})", name(w.id));
            let maps = sim.slot_maps(w.viewer);
            let changes = maps.iter().filter(|m| m.at > a && m.at < b).count();
            fail.check(changes == 0, format!("{who}: {changes} slot changes"));
            let Some(map) = map_at(&maps, a) else {
                fail.check(false, format!("{who}: no slots event"));
                continue;
            };
            let inside: Vec<&Arrival> = media[&w.id]
                .iter()
                .filter(|x| x.at >= a && x.at < b)
                .collect();
            for (video, n) in [(true, VIDEO_SLOTS), (false, AUDIO_SLOTS)] {
                let kind = if video { "video" } else { "audio" };
                let shown = map.shown(video);
                let want: BTreeSet<String> = shown.iter().map(|s| s.to_string()).collect();
                fail.check(
                    shown.len() == n && want.len() == n,
                    format!("{who}: {kind} slots show {shown:?}"),
                );
                let from: BTreeSet<String> = inside
                    .iter()
                    .filter(|x| x.video == video)
                    .map(|x| name(x.from))
                    .collect();
                fail.check(
                    from == want,
                    format!("{who}: {kind} received from {from:?}, slots show {want:?}"),
                );
            }
            let secs = (to - from).as_secs_f64();
            for slot in &map.slots {
                let n = inside
                    .iter()
                    .filter(|x| x.mid.as_deref() == Some(slot.mid.as_str()))
                    .count();
                // 30 fps x 4 packets, or 50 audio packets, per second.
                let rate = if slot.video { 120.0 } else { 50.0 };
                fail.check(
                    n as f64 >= 0.9 * rate * secs,
                    format!(
                        "{who}: {n} packets on mid {} ({:?})",
                        slot.mid, slot.identity
                    ),
                );
            }
        }
    }
}

/// The last map before event `mark` and the first from it on.
fn around(maps: &[SlotMap], mark: usize) -> (Option<&SlotMap>, Option<&SlotMap>) {
    let before = maps.iter().rev().find(|m| m.event < mark);
    (before, maps.iter().find(|m| m.event >= mark))
}

/// A speech (events from index `mark` on): `active-speaker` names the speaker within
/// [`ACTIVE_WITHIN`]; every other viewer's next `slots` event puts its audio in a slot
/// and, if not shown, its video in the slot of the least recently active participant
/// shown, moving nothing else; its media arrives there (video from a keyframe).
fn check_speech(
    sim: &Sim,
    people: &[Who],
    media: &HashMap<u64, Vec<Arrival>>,
    speech: &Speech,
    fail: &mut Failures,
) {
    let Speech {
        nth,
        speaker,
        from,
        mark,
    } = *speech;
    let start = sim.at(from);
    let who = name(speaker);
    let active: Vec<(Duration, Option<&str>)> = sim.events[mark..]
        .iter()
        .filter(|e| e.name == "active-speaker")
        .map(|e| (e.at - start, e.data["identity"].as_str()))
        .collect();
    let named = active.first().filter(|(_, i)| *i == Some(who.as_str()));
    let active_after = named.map(|(d, _)| *d);
    fail.check(
        active_after.is_some_and(|d| d <= ACTIVE_WITHIN),
        format!("{who} speaks from {from:?}: active-speaker events after it {active:?}"),
    );
    let (mut slot_after, mut video_after, mut audio_after) = (vec![], vec![], vec![]);
    for w in people.iter().filter(|w| w.id != speaker) {
        let viewer = name(w.id);
        let maps = sim.slot_maps(w.viewer);
        let (Some(before), Some(after)) = around(&maps, mark) else {
            fail.check(false, format!("{viewer}: no slots event when {who} spoke"));
            continue;
        };
        let at = after.at;
        slot_after.push(at - start);
        fail.check(
            at - start <= ACTIVE_WITHIN,
            format!(
                "{viewer}: slots changed {} after {who} began",
                ms(at - start)
            ),
        );
        for video in [true, false] {
            let kind = if video { "video" } else { "audio" };
            let was = before.shown(video);
            let changed: Vec<(&str, Option<&str>, Option<&str>)> = before
                .slots
                .iter()
                .zip(&after.slots)
                .filter(|(b, a)| b.video == video && b != a)
                .map(|(b, a)| (a.mid.as_str(), b.identity.as_deref(), a.identity.as_deref()))
                .collect();
            let out = match was.contains(&who.as_str()) {
                true => None,
                false => was.iter().copied().min_by_key(|i| rank(i, nth)),
            };
            let ok = match out {
                None => changed.is_empty(),
                Some(out) => changed.len() == 1 && changed[0].1 == Some(out),
            } && changed.iter().all(|c| c.2 == Some(who.as_str()));
            fail.check(
                ok,
                format!(
                    "{viewer}: {who} speaks: {kind} slots {was:?} became {:?}, expected {who} \
                     to replace {out:?} and nothing else to move",
                    after.shown(video)
                ),
            );
            let Some(&(mid, _, _)) = changed.first() else {
                continue;
            };
            let first = media[&w.id]
                .iter()
                .find(|x| x.at >= at && x.mid.as_deref() == Some(mid) && x.from == speaker);
            let Some(first) = first else {
                fail.check(
                    false,
                    format!("{viewer}: no {kind} from {who} on mid {mid}"),
                );
                continue;
            };
            fail.check(
                first.at - at <= MEDIA_WITHIN && (!video || first.keyframe),
                format!(
                    "{viewer}: first {kind} of {who} on mid {mid} {} after the slots event, \
                     keyframe start: {}",
                    ms(first.at - at),
                    first.keyframe
                ),
            );
            let d = first.at - start;
            if video {
                video_after.push(d);
            } else {
                audio_after.push(d);
            }
        }
    }
    let span = |v: &[Duration]| match (v.iter().min(), v.iter().max()) {
        (Some(a), Some(b)) => format!("{}..{}", ms(*a), ms(*b)),
        _ => "none".into(),
    };
    println!(
        "{who} speaks from {from:?}: active-speaker after {}; slots events after {} \
         (5 viewers); first packet in the new slot after: video {}, audio {}",
        active_after.map_or("never".into(), ms),
        span(&slot_after),
        span(&video_after),
        span(&audio_after)
    );
}

/// The leaver's DELETEs (events from `mark` on): every other viewer's next `slots` event
/// shows it nowhere, and the best-ranked participant not shown takes each freed slot.
fn check_leave(sim: &Sim, people: &[Who], mark: usize, fail: &mut Failures) {
    let gone = name(LEAVER);
    for w in people.iter().filter(|w| w.id != LEAVER) {
        let viewer = name(w.id);
        let maps = sim.slot_maps(w.viewer);
        let (Some(before), after) = around(&maps, mark) else {
            fail.check(false, format!("{viewer}: no slots before the leave"));
            continue;
        };
        let had = before
            .slots
            .iter()
            .any(|s| s.identity.as_deref() == Some(&gone));
        let Some(after) = after else {
            fail.check(
                !had,
                format!("{viewer} showed {gone}: no slots event after it left"),
            );
            continue;
        };
        fail.check(
            after.at == sim.at(LEAVE_AT),
            format!(
                "{viewer}: slots event {} after the leave",
                ms(after.at - sim.at(LEAVE_AT))
            ),
        );
        for video in [true, false] {
            let kind = if video { "video" } else { "audio" };
            let was = before.shown(video);
            let fill = (1..=PARTICIPANTS)
                .filter(|&i| i != LEAVER && i != w.id)
                .map(name)
                .filter(|n| !was.contains(&n.as_str()))
                .max_by_key(|i| rank(i, SPEECHES.len()));
            let slots = |m: &SlotMap| -> Vec<Option<String>> {
                let of_kind = m.slots.iter().filter(|s| s.video == video);
                of_kind.map(|s| s.identity.clone()).collect()
            };
            let expected: Vec<Option<String>> = slots(before)
                .into_iter()
                .map(|i| {
                    if i.as_ref() == Some(&gone) {
                        fill.clone()
                    } else {
                        i
                    }
                })
                .collect();
            let got = slots(after);
            fail.check(
                got == expected,
                format!("{viewer}: {gone} left: {kind} slots {was:?} became {got:?}, expected {expected:?}"),
            );
        }
        println!(
            "{viewer}: after {gone} left: video {:?}, audio {:?}",
            after.shown(true),
            after.shown(false)
        );
    }
}
