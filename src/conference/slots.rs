//! Which room track goes into which of a viewer's WHEP slots (`docs/conference.md`).
//!
//! Every `recvonly` m-line of a viewer's WHEP offer is a **slot**. Given the slots as they
//! are now ([`SlotState`]: pin, pause, current track) and the tracks the viewer may see,
//! [`assign_video`] and [`assign_audio`] compute the next slot map. Both are pure and
//! deterministic: the same inputs give the same map, whatever the order of equal-ranked
//! candidates.
//!
//! The policy, for both kinds:
//! 1. a paused slot gets nothing;
//! 2. a pinned slot gets its pinned track when that track is a candidate, else it is
//!    treated as free; a pinned track is shown in no other slot (when several slots pin
//!    the same track, the first in slot order gets it; a paused slot's pin reserves
//!    nothing);
//! 3. the `n` free slots show the top `n` remaining candidates by rank (video:
//!    [`assign_video`]; audio: [`assign_audio`]);
//! 4. a free slot whose current track is still in the top `n` keeps it; the other top-`n`
//!    tracks fill the remaining free slots in slot order, best rank first. So a ranking
//!    change inside the shown set moves nothing, and a track entering the top `n` takes
//!    the slot of the one that left.
//!
//! `T` is the caller's track handle (an index or id); it only needs `Copy + Eq`.

use std::cmp::Ordering;
use std::time::Instant;

/// A pin: the viewer wants this participant's camera (or screen share) in this slot. On
/// an audio slot it names the participant's microphone, or its screen audio with
/// `screen: true`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    /// The pinned participant's identity.
    pub identity: String,
    /// `true`: the participant's screen share track; `false`: its camera (or microphone).
    pub screen: bool,
}

/// One slot as it is now.
#[derive(Debug, Clone)]
pub(crate) struct SlotState<T> {
    /// The viewer's pin on this slot, if any.
    pub pin: Option<Pin>,
    /// The viewer paused this slot: nothing is sent in it.
    pub paused: bool,
    /// The track the slot shows now; `None` when empty.
    pub current: Option<T>,
}

impl<T> Default for SlotState<T> {
    fn default() -> Self {
        Self {
            pin: None,
            paused: false,
            current: None,
        }
    }
}

/// A published video track that may be shown to this viewer (the caller has already
/// removed the viewer's own tracks and, for a viewer that watches one participant, all
/// others).
#[derive(Debug, Clone)]
pub(crate) struct VideoCandidate<T> {
    /// The caller's handle of the track.
    pub track: T,
    /// The publishing participant's identity.
    pub identity: String,
    /// `true` for a screen share, `false` for a camera.
    pub screen: bool,
    /// Join order of the track's participant (smaller = joined earlier); for a screen
    /// share, the order the share started.
    pub joined: u64,
    /// When the track's participant was last an active speaker; `None` = never.
    pub last_spoke: Option<Instant>,
}

/// A published audio track that may be heard by this viewer (already filtered like
/// [`VideoCandidate`]).
#[derive(Debug, Clone)]
pub(crate) struct AudioCandidate<T> {
    /// The caller's handle of the track.
    pub track: T,
    /// The publishing participant's identity.
    pub identity: String,
    /// `true` for a screen share's audio, `false` for a microphone.
    pub screen: bool,
    /// Join order of the track's participant (smaller = joined earlier).
    pub joined: u64,
    /// Smoothed loudness now, linear amplitude 0.0 (silent) ..= 1.0 (full scale), as
    /// measured from RFC 6464 audio levels (see `speaker.rs`).
    pub level: f32,
    /// When the track's participant was last an active speaker; `None` = never.
    pub last_spoke: Option<Instant>,
}

/// The video slot map: one entry per slot of `slots`, in slot order; `None` = empty. A
/// track appears in at most one slot.
///
/// Free slots are ranked: screen shares first (newest share, i.e. largest `joined`,
/// first), then by `last_spoke` most recent first (`Some` before `None`), then by `joined`
/// ascending, then by identity.
pub(crate) fn assign_video<T: Copy + Eq>(
    slots: &[SlotState<T>],
    candidates: &[VideoCandidate<T>],
) -> Vec<Option<T>> {
    let keys: Vec<Key<'_, T>> = candidates
        .iter()
        .map(|c| Key {
            track: c.track,
            identity: &c.identity,
            screen: c.screen,
        })
        .collect();
    assign(slots, &keys, |a, b| {
        video_rank(&candidates[a], &candidates[b])
    })
}

/// The audio slot map: one entry per slot of `slots`, in slot order; `None` = empty. A
/// track appears in at most one slot.
///
/// Free slots are ranked: tracks with `level > 0.0` first, loudest first; then by
/// `last_spoke` most recent first (`Some` before `None`), then by `joined` ascending, then
/// by identity (a microphone before screen audio of the same identity).
pub(crate) fn assign_audio<T: Copy + Eq>(
    slots: &[SlotState<T>],
    candidates: &[AudioCandidate<T>],
) -> Vec<Option<T>> {
    let keys: Vec<Key<'_, T>> = candidates
        .iter()
        .map(|c| Key {
            track: c.track,
            identity: &c.identity,
            screen: c.screen,
        })
        .collect();
    assign(slots, &keys, |a, b| {
        audio_rank(&candidates[a], &candidates[b])
    })
}

/// What the kind-independent assignment needs of a candidate.
struct Key<'a, T> {
    track: T,
    identity: &'a str,
    screen: bool,
}

/// The shared policy. `rank(a, b)` orders candidate indices, best first.
fn assign<T: Copy + Eq>(
    slots: &[SlotState<T>],
    keys: &[Key<'_, T>],
    rank: impl Fn(usize, usize) -> Ordering,
) -> Vec<Option<T>> {
    let mut out = vec![None; slots.len()];
    // Candidates still available; a repeated track counts once (its first entry).
    let mut available: Vec<bool> = (0..keys.len())
        .map(|i| !keys[..i].iter().any(|k| k.track == keys[i].track))
        .collect();

    // Pins first, in slot order: a second slot pinned to the same track is free.
    let mut free = Vec::new();
    for (s, slot) in slots.iter().enumerate() {
        if slot.paused {
            continue;
        }
        let pinned = slot.pin.as_ref().and_then(|pin| {
            (0..keys.len()).find(|&i| {
                available[i] && keys[i].identity == pin.identity && keys[i].screen == pin.screen
            })
        });
        match pinned {
            Some(i) => {
                available[i] = false;
                out[s] = Some(keys[i].track);
            }
            None => free.push(s),
        }
    }

    // The top n of the rest (stable sort: the comparator decides every real tie).
    let mut shown: Vec<usize> = (0..keys.len()).filter(|&i| available[i]).collect();
    shown.sort_by(|&a, &b| rank(a, b));
    shown.truncate(free.len());

    // Free slots keep a current track that is still shown ...
    let mut placed = vec![false; shown.len()];
    let mut open = Vec::new();
    for &s in &free {
        let keep = slots[s]
            .current
            .and_then(|t| shown.iter().position(|&i| keys[i].track == t))
            .filter(|&r| !placed[r]);
        match keep {
            Some(r) => {
                placed[r] = true;
                out[s] = Some(keys[shown[r]].track);
            }
            None => open.push(s),
        }
    }
    // ... and the other shown tracks fill the remaining free slots in slot order.
    let mut rest = shown
        .iter()
        .zip(&placed)
        .filter(|(_, &p)| !p)
        .map(|(&i, _)| keys[i].track);
    for s in open {
        out[s] = rest.next();
    }
    out
}

/// Video rank, best first: screen shares (newest first), recent speakers, join order.
fn video_rank<T>(a: &VideoCandidate<T>, b: &VideoCandidate<T>) -> Ordering {
    b.screen
        .cmp(&a.screen)
        .then_with(|| match a.screen && b.screen {
            true => b.joined.cmp(&a.joined),
            false => Ordering::Equal,
        })
        .then_with(|| recent_first(a.last_spoke, b.last_spoke))
        .then_with(|| a.joined.cmp(&b.joined))
        .then_with(|| a.identity.cmp(&b.identity))
}

/// Audio rank, best first: loudest, recent speakers, join order.
fn audio_rank<T>(a: &AudioCandidate<T>, b: &AudioCandidate<T>) -> Ordering {
    loudness(b.level)
        .total_cmp(&loudness(a.level))
        .then_with(|| recent_first(a.last_spoke, b.last_spoke))
        .then_with(|| a.joined.cmp(&b.joined))
        .then_with(|| a.identity.cmp(&b.identity))
        .then_with(|| a.screen.cmp(&b.screen))
}

/// A level usable for ranking: anything not above 0.0 (NaN included) is silence.
fn loudness(level: f32) -> f32 {
    if level > 0.0 {
        level
    } else {
        0.0
    }
}

/// Most recent first; `Some` before `None`.
fn recent_first(a: Option<Instant>, b: Option<Instant>) -> Ordering {
    b.cmp(&a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn video(track: u32, identity: &str, joined: u64) -> VideoCandidate<u32> {
        VideoCandidate {
            track,
            identity: identity.to_string(),
            screen: false,
            joined,
            last_spoke: None,
        }
    }

    fn screen(track: u32, identity: &str, started: u64) -> VideoCandidate<u32> {
        VideoCandidate {
            screen: true,
            ..video(track, identity, started)
        }
    }

    fn spoke(mut c: VideoCandidate<u32>, at: Instant) -> VideoCandidate<u32> {
        c.last_spoke = Some(at);
        c
    }

    fn audio(track: u32, identity: &str, joined: u64, level: f32) -> AudioCandidate<u32> {
        AudioCandidate {
            track,
            identity: identity.to_string(),
            screen: false,
            joined,
            level,
            last_spoke: None,
        }
    }

    /// Unpinned, unpaused slots showing `current`.
    fn slots(current: &[Option<u32>]) -> Vec<SlotState<u32>> {
        current
            .iter()
            .map(|&current| SlotState {
                current,
                ..SlotState::default()
            })
            .collect()
    }

    fn pin(identity: &str, screen: bool) -> Option<Pin> {
        Some(Pin {
            identity: identity.to_string(),
            screen,
        })
    }

    /// Runs `assign_video` repeatedly, feeding each result back as `current`.
    fn settle(
        slots: &mut [SlotState<u32>],
        candidates: &[VideoCandidate<u32>],
    ) -> Vec<Option<u32>> {
        let out = assign_video(slots, candidates);
        for (slot, track) in slots.iter_mut().zip(&out) {
            slot.current = *track;
        }
        out
    }

    #[test]
    fn one_publisher_fills_one_video_and_one_audio_slot() {
        let v = assign_video(&slots(&[None]), &[video(1, "alice", 0)]);
        let a = assign_audio(&slots(&[None]), &[audio(2, "alice", 0, 0.0)]);
        assert_eq!(v, [Some(1)]);
        assert_eq!(a, [Some(2)]);
    }

    #[test]
    fn video_fills_in_join_order() {
        let c = [
            video(3, "carol", 2),
            video(1, "alice", 0),
            video(2, "bob", 1),
        ];
        assert_eq!(assign_video(&slots(&[None, None]), &c), [Some(1), Some(2)]);
    }

    #[test]
    fn speaker_entering_replaces_least_ranked_in_place() {
        let t0 = Instant::now();
        let mut s = slots(&[None, None, None]);
        let mut c = vec![
            video(1, "a", 0),
            video(2, "b", 1),
            video(3, "c", 2),
            video(4, "d", 3),
        ];
        assert_eq!(settle(&mut s, &c), [Some(1), Some(2), Some(3)]);
        // d speaks: it enters; c (least ranked of the shown) leaves; d takes c's slot.
        c[3] = spoke(video(4, "d", 3), t0);
        assert_eq!(settle(&mut s, &c), [Some(1), Some(2), Some(4)]);
        // b speaks later: already shown, nothing moves.
        c[1] = spoke(video(2, "b", 1), t0 + Duration::from_secs(1));
        assert_eq!(settle(&mut s, &c), [Some(1), Some(2), Some(4)]);
        // c speaks last: a (never spoke, but earliest) is now least ranked and yields.
        c[2] = spoke(video(3, "c", 2), t0 + Duration::from_secs(2));
        assert_eq!(settle(&mut s, &c), [Some(3), Some(2), Some(4)]);
    }

    #[test]
    fn ranking_change_inside_visible_set_moves_nothing() {
        let t0 = Instant::now();
        let mut s = slots(&[Some(1), Some(2)]);
        let c = [
            video(1, "a", 0),
            spoke(video(2, "b", 1), t0),
            video(3, "c", 2),
        ];
        // b now ranks first, yet stays in slot 1.
        assert_eq!(settle(&mut s, &c), [Some(1), Some(2)]);
    }

    #[test]
    fn screen_share_takes_priority_newest_first() {
        let t0 = Instant::now();
        let c = [
            spoke(video(1, "a", 0), t0),
            video(2, "b", 1),
            screen(10, "b", 5),
            screen(11, "c", 7),
        ];
        assert_eq!(
            assign_video(&slots(&[None, None, None]), &c),
            [Some(11), Some(10), Some(1)]
        );
        assert_eq!(assign_video(&slots(&[None]), &c), [Some(11)]);
    }

    #[test]
    fn pin_wins_and_is_not_duplicated() {
        let mut s = slots(&[Some(1), Some(2), None]);
        s[2].pin = pin("a", false);
        let c = [video(1, "a", 0), video(2, "b", 1), video(3, "c", 2)];
        // a is pinned to slot 2: slot 0 loses it and shows c instead.
        assert_eq!(assign_video(&s, &c), [Some(3), Some(2), Some(1)]);
        // A second slot pinned to the same track is free.
        s[0].pin = pin("a", false);
        assert_eq!(assign_video(&s, &c), [Some(1), Some(2), Some(3)]);
    }

    #[test]
    fn pin_distinguishes_camera_and_screen() {
        let mut s = slots(&[None, None]);
        s[1].pin = pin("b", true);
        let c = [video(1, "a", 0), video(2, "b", 1), screen(10, "b", 3)];
        assert_eq!(assign_video(&s, &c), [Some(1), Some(10)]);
    }

    #[test]
    fn pin_of_absent_participant_falls_back() {
        let mut s = slots(&[None, None]);
        s[0].pin = pin("zed", false);
        s[1].pin = pin("a", true); // a shares no screen
        let c = [video(1, "a", 0), video(2, "b", 1)];
        assert_eq!(assign_video(&s, &c), [Some(1), Some(2)]);
    }

    #[test]
    fn paused_slot_is_empty() {
        let mut s = slots(&[Some(1), Some(2)]);
        s[0].paused = true;
        let c = [video(1, "a", 0), video(2, "b", 1), video(3, "c", 2)];
        // a was in the paused slot: it is the best free candidate, so slot 1 shows it.
        assert_eq!(assign_video(&s, &c), [None, Some(1)]);
        // A paused slot's pin reserves nothing either.
        s[0].pin = pin("a", false);
        assert_eq!(assign_video(&s, &c), [None, Some(1)]);
        s[1].current = Some(1);
        s[1].paused = true;
        assert_eq!(assign_video(&s, &c), [None, None]);
    }

    #[test]
    fn leaving_track_frees_its_slot_for_the_next() {
        let mut s = slots(&[None, None, None]);
        let c = [
            video(1, "a", 0),
            video(2, "b", 1),
            video(3, "c", 2),
            video(4, "d", 3),
        ];
        assert_eq!(settle(&mut s, &c), [Some(1), Some(2), Some(3)]);
        let without_b = [c[0].clone(), c[2].clone(), c[3].clone()];
        assert_eq!(settle(&mut s, &without_b), [Some(1), Some(4), Some(3)]);
    }

    #[test]
    fn more_slots_than_candidates_leaves_trailing_slots_empty() {
        let c = [video(2, "b", 1), video(1, "a", 0)];
        assert_eq!(
            assign_video(&slots(&[None, None, None, None]), &c),
            [Some(1), Some(2), None, None]
        );
        // A kept track stays put; the newcomer takes the first open slot.
        assert_eq!(
            assign_video(&slots(&[None, None, Some(2), None]), &c),
            [Some(1), None, Some(2), None]
        );
        assert_eq!(assign_video(&slots(&[]), &c), []);
        assert_eq!(assign_video::<u32>(&slots(&[None]), &[]), [None]);
    }

    #[test]
    fn duplicate_current_is_shown_once() {
        let c = [video(1, "a", 0), video(2, "b", 1)];
        assert_eq!(
            assign_video(&slots(&[Some(1), Some(1)]), &c),
            [Some(1), Some(2)]
        );
    }

    #[test]
    fn ties_break_by_identity_whatever_the_input_order() {
        let c = [video(2, "bob", 0), video(1, "alice", 0)];
        let mut r = c.clone();
        r.reverse();
        assert_eq!(assign_video(&slots(&[None]), &c), [Some(1)]);
        assert_eq!(assign_video(&slots(&[None]), &r), [Some(1)]);
    }

    #[test]
    fn audio_selects_the_loudest() {
        let t0 = Instant::now();
        let mut quiet = audio(4, "d", 3, 0.0);
        quiet.last_spoke = Some(t0);
        let c = [
            audio(1, "a", 0, 0.0),
            audio(2, "b", 1, 0.01),
            audio(3, "c", 2, 0.2),
            quiet,
        ];
        assert_eq!(
            assign_audio(&slots(&[None, None, None]), &c),
            [Some(3), Some(2), Some(4)]
        );
        let mut s = slots(&[None]);
        s[0].pin = pin("a", false);
        assert_eq!(assign_audio(&s, &c), [Some(1)]);
    }

    #[test]
    fn audio_is_stable() {
        let s = slots(&[Some(2), Some(3)]);
        // c overtakes b: both still heard, nothing moves.
        let c = [
            audio(1, "a", 0, 0.0),
            audio(2, "b", 1, 0.01),
            audio(3, "c", 2, 0.3),
        ];
        assert_eq!(assign_audio(&s, &c), [Some(2), Some(3)]);
        // a gets louder than b: a takes b's slot, c stays.
        let c = [
            audio(1, "a", 0, 0.05),
            audio(2, "b", 1, 0.01),
            audio(3, "c", 2, 0.3),
        ];
        assert_eq!(assign_audio(&s, &c), [Some(1), Some(3)]);
    }
}
