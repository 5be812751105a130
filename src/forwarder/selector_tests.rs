//! Tests for `selector.rs`: table tests of each rule, properties over random packet sequences
//! interleaved with target changes, and a decodability property over a modelled VP8 encoder.

use super::*;
use proptest::prelude::*;

const FWD: Decision = Decision::Forward {
    switched_spatial: false,
};
const SWITCH: Decision = Decision::Forward {
    switched_spatial: true,
};
const PAUSED: Decision = Decision::Drop(DropCause::Paused);
const OTHER: Decision = Decision::Drop(DropCause::OtherSpatial);
const WAITING: Decision = Decision::Drop(DropCause::WaitingKeyframe);
const FILTERED: Decision = Decision::Drop(DropCause::TemporalFiltered);

fn layer(spatial: u8, temporal: u8) -> Layer {
    Layer { spatial, temporal }
}

/// A keyframe start (TID 0) on `spatial`.
fn key(spatial: u8) -> PacketInfo {
    PacketInfo {
        spatial,
        tid: Some(0),
        keyframe: true,
        frame_start: true,
        layer_sync: true,
    }
}

/// A delta-frame start on `spatial` with temporal layer `tid`.
fn start(spatial: u8, tid: u8) -> PacketInfo {
    PacketInfo {
        spatial,
        tid: Some(tid),
        keyframe: false,
        frame_start: true,
        layer_sync: false,
    }
}

/// A layer-sync (Y=1) delta-frame start.
fn sync(spatial: u8, tid: u8) -> PacketInfo {
    PacketInfo {
        layer_sync: true,
        ..start(spatial, tid)
    }
}

/// A packet in the middle of a frame.
fn mid(spatial: u8, tid: u8) -> PacketInfo {
    PacketInfo {
        frame_start: false,
        ..start(spatial, tid)
    }
}

/// A selector forwarding `at`, reached through a keyframe.
fn forwarding(at: Layer) -> LayerSelector {
    let mut s = LayerSelector::new();
    s.set_target(Some(at));
    assert_eq!(s.select(&key(at.spatial)), SWITCH);
    assert_eq!(s.current(), Some(at));
    s
}

#[test]
fn new_selector_is_paused() {
    let mut s = LayerSelector::new();
    assert_eq!(
        (s.target(), s.current(), s.waiting_for_keyframe()),
        (None, None, None)
    );
    assert_eq!(s.select(&key(0)), PAUSED);
    assert_eq!(s.select(&start(1, 0)), PAUSED);
    assert_eq!(s.current(), None);
    assert_eq!(LayerSelector::default(), s);
}

#[test]
fn start_waits_for_a_keyframe_of_the_target_layer() {
    let mut s = LayerSelector::new();
    s.set_target(Some(layer(1, 2)));
    assert_eq!(s.waiting_for_keyframe(), Some(1));
    assert_eq!(s.select(&start(1, 0)), WAITING);
    assert_eq!(s.select(&sync(1, 1)), WAITING);
    assert_eq!(s.select(&key(0)), WAITING, "keyframe of another layer");
    assert_eq!(s.select(&key(2)), WAITING, "keyframe of another layer");
    assert_eq!(s.current(), None);
    assert_eq!(s.select(&key(1)), SWITCH);
    assert_eq!(s.current(), Some(layer(1, 2)));
    assert_eq!(s.waiting_for_keyframe(), None);
    assert_eq!(s.select(&mid(1, 0)), FWD);
    assert_eq!(s.select(&start(1, 2)), FWD);
    assert_eq!(s.select(&start(0, 0)), OTHER);
    assert_eq!(s.select(&key(2)), OTHER);
}

#[test]
fn switch_up_keeps_the_current_layer_until_the_target_keyframe() {
    let mut s = forwarding(layer(0, 2));
    s.set_target(Some(layer(2, 2)));
    assert_eq!(s.waiting_for_keyframe(), Some(2));
    assert_eq!(s.select(&start(0, 1)), FWD, "no freeze while waiting");
    assert_eq!(s.select(&start(2, 0)), OTHER);
    assert_eq!(s.select(&start(1, 0)), OTHER);
    assert_eq!(s.select(&key(1)), OTHER, "intermediate layers never switch");
    assert_eq!(s.current(), Some(layer(0, 2)));
    assert_eq!(s.select(&key(2)), SWITCH);
    assert_eq!(s.current(), Some(layer(2, 2)));
    assert_eq!(s.waiting_for_keyframe(), None);
    assert_eq!(
        s.select(&mid(0, 0)),
        OTHER,
        "old layer dropped after the switch"
    );
    assert_eq!(s.select(&key(0)), OTHER);
    assert_eq!(s.select(&mid(2, 0)), FWD);
}

#[test]
fn switch_down_works_the_same_way() {
    let mut s = forwarding(layer(2, 0));
    s.set_target(Some(layer(0, 1)));
    assert_eq!(s.waiting_for_keyframe(), Some(0));
    assert_eq!(s.select(&start(2, 0)), FWD);
    assert_eq!(s.select(&start(0, 0)), OTHER);
    assert_eq!(s.select(&key(0)), SWITCH);
    assert_eq!(
        s.current(),
        Some(layer(0, 1)),
        "temporal cap taken from the target"
    );
    assert_eq!(s.select(&start(2, 0)), OTHER);
    assert_eq!(s.select(&start(0, 1)), FWD);
}

#[test]
fn retargeting_back_to_the_current_layer_cancels_the_wait() {
    let mut s = forwarding(layer(1, 0));
    s.set_target(Some(layer(2, 0)));
    assert_eq!(s.waiting_for_keyframe(), Some(2));
    s.set_target(Some(layer(1, 0)));
    assert_eq!(s.waiting_for_keyframe(), None);
    assert_eq!(s.select(&key(2)), OTHER);
    assert_eq!(
        s.select(&key(1)),
        FWD,
        "keyframe of the current layer is no switch"
    );
    assert_eq!(s.current(), Some(layer(1, 0)));
}

#[test]
fn pause_drops_everything_and_resume_needs_a_keyframe() {
    let mut s = forwarding(layer(1, 1));
    s.set_target(None);
    assert_eq!((s.current(), s.waiting_for_keyframe()), (None, None));
    assert_eq!(s.select(&key(1)), PAUSED);
    assert_eq!(s.select(&start(1, 0)), PAUSED);
    s.set_target(Some(layer(1, 1)));
    assert_eq!(s.waiting_for_keyframe(), Some(1));
    assert_eq!(s.select(&start(1, 0)), WAITING);
    assert_eq!(s.select(&key(1)), SWITCH);
}

#[test]
fn reset_waits_for_a_keyframe_again() {
    let mut s = forwarding(layer(0, 0));
    s.reset();
    assert_eq!(s.target(), Some(layer(0, 0)));
    assert_eq!((s.current(), s.waiting_for_keyframe()), (None, Some(0)));
    assert_eq!(s.select(&start(0, 0)), WAITING);
    assert_eq!(s.select(&key(0)), SWITCH);
}

#[test]
fn temporal_decrease_waits_for_the_next_frame_start() {
    let mut s = forwarding(layer(0, 2));
    assert_eq!(s.select(&start(0, 2)), FWD);
    s.set_target(Some(layer(0, 0)));
    assert_eq!(
        s.select(&mid(0, 2)),
        FWD,
        "the frame in flight is completed"
    );
    assert_eq!(s.current(), Some(layer(0, 2)));
    assert_eq!(s.select(&start(0, 1)), FILTERED);
    assert_eq!(s.current(), Some(layer(0, 0)));
    assert_eq!(s.select(&mid(0, 1)), FILTERED);
    assert_eq!(s.select(&start(0, 2)), FILTERED);
    assert_eq!(s.select(&start(0, 0)), FWD);
}

#[test]
fn temporal_increase_climbs_one_layer_per_sync_frame() {
    let mut s = forwarding(layer(0, 0));
    s.set_target(Some(layer(0, 2)));
    assert_eq!(s.select(&start(0, 1)), FILTERED, "TL1 without Y");
    assert_eq!(s.select(&start(0, 0)), FWD);
    assert_eq!(
        s.current(),
        Some(layer(0, 0)),
        "a TL0 start is no switch-up point"
    );
    assert_eq!(s.select(&sync(0, 2)), FILTERED, "TL1 not synced yet");
    assert_eq!(s.current(), Some(layer(0, 0)));
    assert_eq!(s.select(&mid(0, 1)), FILTERED);
    let mut mid_sync = sync(0, 1);
    mid_sync.frame_start = false;
    assert_eq!(
        s.select(&mid_sync),
        FILTERED,
        "Y only counts at a frame start"
    );
    assert_eq!(s.select(&sync(0, 1)), FWD);
    assert_eq!(s.current(), Some(layer(0, 1)));
    assert_eq!(s.select(&mid(0, 1)), FWD);
    assert_eq!(s.select(&start(0, 2)), FILTERED, "TL2 without Y");
    assert_eq!(s.select(&start(0, 1)), FWD);
    assert_eq!(s.select(&sync(0, 2)), FWD);
    assert_eq!(s.current(), Some(layer(0, 2)));
    assert_eq!(s.select(&start(0, 2)), FWD);
}

#[test]
fn temporal_increase_stops_at_the_target() {
    let mut s = forwarding(layer(0, 0));
    s.set_target(Some(layer(0, 1)));
    assert_eq!(s.select(&sync(0, 1)), FWD);
    assert_eq!(s.select(&sync(0, 2)), FILTERED);
    assert_eq!(s.current(), Some(layer(0, 1)));
}

#[test]
fn keyframe_moves_the_temporal_cap_straight_to_the_target() {
    let mut s = forwarding(layer(1, 0));
    s.set_target(Some(layer(1, 2)));
    let mut k = key(1);
    k.layer_sync = false;
    assert_eq!(s.select(&k), FWD);
    assert_eq!(s.current(), Some(layer(1, 2)));
    assert_eq!(s.select(&start(1, 2)), FWD);
    s.set_target(Some(layer(1, 0)));
    assert_eq!(s.select(&key(1)), FWD);
    assert_eq!(s.current(), Some(layer(1, 0)));
}

#[test]
fn keyframe_flag_counts_as_frame_start() {
    let mut s = forwarding(layer(0, 2));
    s.set_target(Some(layer(0, 0)));
    let mut k = key(0);
    k.frame_start = false;
    assert_eq!(s.select(&k), FWD);
    assert_eq!(s.current(), Some(layer(0, 0)));
    let mut s = LayerSelector::new();
    s.set_target(Some(layer(1, 1)));
    assert_eq!(s.select(&k), WAITING);
    k.spatial = 1;
    assert_eq!(s.select(&k), SWITCH);
}

#[test]
fn packets_without_temporal_info_are_never_filtered() {
    let no_tid = |frame_start| PacketInfo {
        spatial: 0,
        tid: None,
        keyframe: false,
        frame_start,
        layer_sync: false,
    };
    let mut s = forwarding(layer(0, 0));
    assert_eq!(s.select(&no_tid(false)), FWD);
    s.set_target(Some(layer(0, 2)));
    assert_eq!(s.select(&no_tid(false)), FWD);
    assert_eq!(s.current(), Some(layer(0, 0)), "not at a frame start");
    assert_eq!(s.select(&no_tid(true)), FWD);
    assert_eq!(
        s.current(),
        Some(layer(0, 2)),
        "no temporal structure to break"
    );
    let mut first = no_tid(true);
    first.keyframe = true;
    let mut s = LayerSelector::new();
    s.set_target(Some(layer(0, 0)));
    assert_eq!(s.select(&first), SWITCH);
}

#[test]
fn extreme_values_do_not_panic() {
    let top = layer(u8::MAX, u8::MAX);
    let mut s = forwarding(top);
    assert_eq!(s.select(&sync(u8::MAX, u8::MAX)), FWD);
    s.set_target(Some(layer(u8::MAX, u8::MAX - 1)));
    assert_eq!(s.select(&sync(u8::MAX, u8::MAX)), FILTERED);
    s.set_target(Some(top));
    assert_eq!(s.select(&sync(u8::MAX, u8::MAX)), FWD);
    assert_eq!(s.current(), Some(top));
    assert!(FWD.is_forward() && SWITCH.is_forward() && !OTHER.is_forward());
}

// ---- Properties over random sequences -------------------------------------------------------

#[derive(Clone, Debug)]
enum Op {
    Packet(PacketInfo),
    SetTarget(Option<Layer>),
    Reset,
}

fn packet() -> impl Strategy<Value = PacketInfo> {
    (
        0u8..3,
        prop_oneof![3 => (0u8..3).prop_map(Some), 1 => Just(None)],
        prop::bool::weighted(0.1),
        prop::bool::weighted(0.4),
        prop::bool::weighted(0.3),
    )
        .prop_map(
            |(spatial, tid, keyframe, frame_start, layer_sync)| PacketInfo {
                spatial,
                tid,
                keyframe,
                frame_start,
                layer_sync,
            },
        )
}

fn target() -> impl Strategy<Value = Option<Layer>> {
    prop_oneof![
        1 => Just(None),
        6 => (0u8..3, 0u8..3).prop_map(|(s, t)| Some(layer(s, t))),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        30 => packet().prop_map(Op::Packet),
        3 => target().prop_map(Op::SetTarget),
        1 => Just(Op::Reset),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn invariants_hold_on_random_sequences(ops in prop::collection::vec(op(), 0..300)) {
        let mut s = LayerSelector::new();
        for op in ops {
            let p = match op {
                Op::Packet(p) => p,
                Op::SetTarget(t) => {
                    s.set_target(t);
                    prop_assert_eq!(s.target(), t);
                    if t.is_none() {
                        prop_assert_eq!(s.current(), None);
                    }
                    continue;
                }
                Op::Reset => {
                    s.reset();
                    prop_assert_eq!(s.current(), None);
                    continue;
                }
            };
            let target = s.target();
            let before = s.current();
            let d = s.select(&p);
            let after = s.current();
            prop_assert_eq!(s.target(), target, "select never changes the target");
            // (d) While paused nothing is forwarded.
            if target.is_none() {
                prop_assert_eq!(d, PAUSED);
                prop_assert_eq!(after, None);
                continue;
            }
            if d.is_forward() {
                // (a) Only the layer that is current after the call is forwarded.
                let cur = after.ok_or_else(|| TestCaseError::fail("forwarded with no current"))?;
                prop_assert_eq!(cur.spatial, p.spatial);
                // (c) Nothing above the temporal cap is forwarded.
                if let Some(tid) = p.tid {
                    prop_assert!(tid <= cur.temporal);
                }
            }
            // (b) The spatial layer changes exactly on a switching Forward, which happens only
            // on a keyframe of the target layer, and lands exactly on the target.
            let switched = d == SWITCH;
            prop_assert_eq!(before.map(|l| l.spatial) != after.map(|l| l.spatial), switched);
            let usable_key = |t: Option<Layer>| {
                t.is_some_and(|t| {
                    p.keyframe && p.spatial == t.spatial && p.tid.unwrap_or(0) <= t.temporal
                })
            };
            if switched {
                prop_assert!(usable_key(target));
                prop_assert_eq!(after, target);
            }
            // The temporal cap moves only at frame starts, upwards only at safe points, and
            // never past the target.
            if let (Some(b), Some(a), false) = (before, after, switched) {
                if a.temporal != b.temporal {
                    prop_assert!(p.frame_start || p.keyframe);
                }
                if a.temporal > b.temporal {
                    let t = target.map_or(0, |t| t.temporal);
                    prop_assert!(a.temporal <= t);
                    prop_assert!(
                        p.keyframe
                            || p.tid.is_none()
                            || (p.layer_sync && p.tid == Some(b.temporal + 1)
                                && a.temporal == b.temporal + 1)
                    );
                }
            }
            // Nothing current means nothing forwarded and a keyframe request outstanding.
            if after.is_none() {
                prop_assert!(!d.is_forward());
                prop_assert_eq!(s.waiting_for_keyframe(), target.map(|t| t.spatial));
            }
            // A keyframe of the target layer always brings the selector exactly to the target.
            if usable_key(target) {
                prop_assert_eq!(after, target);
                prop_assert_eq!(s.waiting_for_keyframe(), None);
            }
        }
    }
}

// ---- Decodability over a modelled VP8 encoder -----------------------------------------------

/// One frame of a modelled encoder: which layer, TID, keyframe, and which temporal layers'
/// latest frames it references (a bit mask over TIDs ≤ its own).
#[derive(Clone, Debug)]
struct FrameSpec {
    spatial: u8,
    tid: u8,
    keyframe: bool,
    refs: u8,
    packets: usize,
    retarget_after_first: Option<Option<Layer>>,
}

fn frame_spec() -> impl Strategy<Value = FrameSpec> {
    (
        0u8..3,
        0u8..3,
        prop::bool::weighted(0.08),
        1u8..8,
        1usize..4,
        prop::option::weighted(0.15, target()),
    )
        .prop_map(
            |(spatial, tid, keyframe, refs, packets, retarget)| FrameSpec {
                spatial,
                tid: if keyframe { 0 } else { tid },
                keyframe,
                refs,
                packets,
                retarget_after_first: retarget,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// Every frame the subscriber receives completely can be decoded: its references were all
    /// received since the decoder's last keyframe. Frames are only ever cut short by a switch
    /// away from their layer or a pause, never by temporal filtering.
    #[test]
    fn forwarded_frames_are_decodable(
        first in target(),
        frames in prop::collection::vec(frame_spec(), 0..200),
    ) {
        // Encoder state per layer: the latest frame id of each TID (a keyframe fills all).
        let mut latest: [[Option<usize>; 3]; 3] = [[None; 3]; 3];
        // Decoder state: frame ids it holds since its last keyframe.
        let mut decoded: Vec<usize> = Vec::new();
        // TID of each frame generated so far, by id.
        let mut tids: Vec<u8> = Vec::new();
        let mut s = LayerSelector::new();
        s.set_target(first);
        for (id, f) in frames.iter().enumerate() {
            let sp = usize::from(f.spatial);
            let keyframe = f.keyframe || latest[sp][0].is_none();
            let tid = if keyframe { 0 } else { f.tid };
            let refs: Vec<usize> = if keyframe {
                Vec::new()
            } else {
                // References among the latest frames of TIDs ≤ its own; at least one.
                let mask = match f.refs & ((2u8 << tid) - 1) {
                    0 => 1,
                    m => m,
                };
                (0..=tid)
                    .filter(|u| mask & (1 << u) != 0)
                    .filter_map(|u| latest[sp][usize::from(u)])
                    .collect()
            };
            let layer_sync = !keyframe && refs.iter().all(|r| tids.get(*r) == Some(&0));
            let mut verdicts = Vec::with_capacity(f.packets);
            for i in 0..f.packets {
                let p = PacketInfo {
                    spatial: f.spatial,
                    tid: Some(tid),
                    keyframe: keyframe && i == 0,
                    frame_start: i == 0,
                    layer_sync,
                };
                verdicts.push(s.select(&p));
                if i == 0 {
                    if let Some(t) = f.retarget_after_first {
                        s.set_target(t);
                    }
                }
            }
            let forwarded = verdicts.iter().take_while(|d| d.is_forward()).count();
            for d in &verdicts[forwarded..] {
                prop_assert!(
                    !d.is_forward(),
                    "a frame resumed after a dropped packet: {:?}", verdicts
                );
                if forwarded > 0 {
                    prop_assert!(
                        matches!(d, Decision::Drop(DropCause::OtherSpatial | DropCause::Paused)),
                        "frame torn by {:?}", d
                    );
                }
            }
            if forwarded == f.packets {
                if keyframe {
                    decoded.clear();
                } else {
                    for r in &refs {
                        prop_assert!(decoded.contains(r), "frame {} needs {} (not received)", id, r);
                    }
                }
                decoded.push(id);
            }
            // The encoder's reference buffers.
            if keyframe {
                latest[sp] = [Some(id); 3];
            } else {
                latest[sp][usize::from(tid)] = Some(id);
            }
            tids.push(tid);
        }
    }
}
