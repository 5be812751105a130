//! Tests for `allocator.rs`: table tests of the allocation rule and of the hysteresis, and
//! properties of both over random tracks and estimate sequences.

use super::*;
use proptest::prelude::*;

const K: u64 = 1_000;
const LADDER: [u64; 3] = [150 * K, 500 * K, 1_500 * K];
const SEC: Duration = Duration::from_secs(1);
const MS: Duration = Duration::from_millis(1);

fn video(id: u32, priority: u8, layers: &[u64]) -> TrackDemand {
    TrackDemand {
        id,
        audio: false,
        priority,
        layers: layers.to_vec(),
    }
}

fn audio(id: u32, bps: u64) -> TrackDemand {
    TrackDemand {
        id,
        audio: true,
        priority: 0,
        layers: vec![bps],
    }
}

#[test]
fn no_tracks_no_allocation() {
    assert_eq!(allocate(5_000 * K, &[]), Vec::<Option<usize>>::new());
    assert_eq!(desired_bitrate(&[]), 0);
    assert_eq!(allocated_bitrate(&[], &[]), 0);
}

#[test]
fn audio_is_allocated_even_above_the_estimate() {
    let tracks = [audio(1, 40 * K), video(2, 0, &LADDER), audio(3, 40 * K)];
    let a = allocate(10 * K, &tracks);
    assert_eq!(a, vec![Some(0), None, Some(0)]);
    assert_eq!(allocated_bitrate(&tracks, &a), 80 * K);
    // Video only gets what audio leaves.
    assert_eq!(allocate(229 * K, &tracks), vec![Some(0), None, Some(0)]);
    assert_eq!(allocate(230 * K, &tracks), vec![Some(0), Some(0), Some(0)]);
}

#[test]
fn exactly_the_lowest_layers() {
    let tracks = [video(1, 0, &LADDER), video(2, 0, &LADDER)];
    assert_eq!(allocate(300 * K, &tracks), vec![Some(0), Some(0)]);
    assert_eq!(allocate(300 * K - 1, &tracks), vec![Some(0), None]);
    assert_eq!(allocate(150 * K - 1, &tracks), vec![None, None]);
}

#[test]
fn upgrades_go_one_step_per_pass() {
    // 1.2 M: lowest layers 300 k, then each climbs to 500 k (+350 k each, 1.0 M in all);
    // the next step (+1.0 M) does not fit in the 200 k left.
    let tracks = [video(1, 0, &LADDER), video(2, 0, &LADDER)];
    let a = allocate(1_200 * K, &tracks);
    assert_eq!(a, vec![Some(1), Some(1)]);
    assert_eq!(allocated_bitrate(&tracks, &a), 1_000 * K);
    assert_eq!(allocate(2_000 * K, &tracks), vec![Some(2), Some(1)]);
    assert_eq!(allocate(3_000 * K, &tracks), vec![Some(2), Some(2)]);
    // Three equal tracks, equal steps: the extra step goes to the first.
    let ladder = [100 * K, 200 * K, 300 * K, 400 * K];
    let tracks = [
        video(1, 0, &ladder),
        video(2, 0, &ladder),
        video(3, 0, &ladder),
    ];
    assert_eq!(allocate(700 * K, &tracks), vec![Some(2), Some(1), Some(1)]);
}

#[test]
fn priority_orders_both_stages() {
    let tracks = [video(1, 1, &LADDER), video(2, 5, &LADDER)];
    // 650 k: both lowest (300 k), then only the priority-5 track's step (350 k) fits.
    assert_eq!(allocate(650 * K, &tracks), vec![Some(0), Some(1)]);
    // 200 k: only one lowest layer fits, and it goes to priority 5.
    assert_eq!(allocate(200 * K, &tracks), vec![None, Some(0)]);
    // Equal priorities: input order.
    let tied = [video(1, 3, &LADDER), video(2, 3, &LADDER)];
    assert_eq!(allocate(650 * K, &tied), vec![Some(1), Some(0)]);
    assert_eq!(allocate(200 * K, &tied), vec![Some(0), None]);
}

#[test]
fn a_cheaper_track_still_fits_after_a_dearer_one_did_not() {
    let tracks = [video(1, 9, &[500 * K]), video(2, 0, &[100 * K, 300 * K])];
    assert_eq!(allocate(400 * K, &tracks), vec![None, Some(1)]);
    // Not monotone per track: 100 k more lets the priority-9 track in, and nothing is left for
    // the other. The total still rises.
    assert_eq!(allocate(500 * K, &tracks), vec![Some(0), None]);
    assert_eq!(allocate(600 * K, &tracks), vec![Some(0), Some(0)]);
}

#[test]
fn viewer_caps_come_as_truncated_ladders() {
    // Track 1 is shown as a thumbnail: only its lowest layer is offered.
    let tracks = [video(1, 9, &LADDER[..1]), video(2, 0, &LADDER)];
    assert_eq!(allocate(10_000 * K, &tracks), vec![Some(0), Some(2)]);
    assert_eq!(desired_bitrate(&tracks), 1_650 * K);
    assert_eq!(allocate(700 * K, &tracks), vec![Some(0), Some(1)]);
}

#[test]
fn degenerate_inputs_do_not_panic() {
    let tracks = [
        video(1, 0, &[]),
        audio(2, u64::MAX),
        TrackDemand {
            audio: true,
            ..video(3, 0, &[])
        },
        video(4, 0, &[0, u64::MAX]),
        video(5, 0, &[900, 100, 800]),
    ];
    // The audio track takes everything: only a zero-rate lowest layer still fits.
    for estimate in [0, 1_000, u64::MAX] {
        let a = allocate(estimate, &tracks);
        assert_eq!(a, vec![None, Some(0), None, Some(0), None]);
        assert_eq!(allocated_bitrate(&tracks, &a), u64::MAX);
    }
    assert_eq!(desired_bitrate(&tracks), u64::MAX);
    let a = allocate(u64::MAX, &tracks[3..]);
    // The step to u64::MAX never fits next to the 900 already spent.
    assert_eq!(a, vec![Some(0), Some(2)]);
    assert_eq!(allocated_bitrate(&tracks[3..], &a), 800);
    // A ladder that is not ascending: the step down is free, the total stays in budget.
    let odd = [video(1, 0, &[900, 100, 800])];
    assert_eq!(allocate(900, &odd), vec![Some(1)]);
    assert_eq!(allocate(1_600, &odd), vec![Some(2)]);
    assert_eq!(allocated_bitrate(&odd, &[Some(2)]), 800);
    // Mismatched lengths and indices outside the ladder count as nothing.
    assert_eq!(allocated_bitrate(&odd, &[Some(3), Some(0)]), 0);
    assert_eq!(allocated_bitrate(&odd, &[]), 0);
}

// ---- Hysteresis -----------------------------------------------------------------------------

fn allocator() -> (Allocator, Instant) {
    (Allocator::new(AllocatorConfig::default()), Instant::now())
}

#[test]
fn default_config() {
    let c = AllocatorConfig::default();
    assert_eq!((c.up_hold, c.up_headroom), (2 * SEC, 1.1));
    let (a, _) = allocator();
    assert_eq!(a.config(), c);
    assert!(a.allocation().is_empty());
}

#[test]
fn a_new_track_gets_its_allocation_at_once() {
    let (mut a, t0) = allocator();
    let tracks = [audio(1, 40 * K), video(2, 0, &LADDER)];
    assert_eq!(a.update(t0, 2_000 * K, &tracks), &[Some(0), Some(2)]);
    let more = [audio(1, 40 * K), video(2, 0, &LADDER), video(3, 0, &LADDER)];
    assert_eq!(
        a.update(t0 + MS, 5_000 * K, &more),
        &[Some(0), Some(2), Some(2)]
    );
    assert_eq!(a.allocation(), &[Some(0), Some(2), Some(2)]);
}

#[test]
fn a_drop_applies_at_once() {
    let (mut a, t0) = allocator();
    let tracks = [video(1, 0, &LADDER)];
    assert_eq!(a.update(t0, 2_000 * K, &tracks), &[Some(2)]);
    assert_eq!(a.update(t0 + MS, 600 * K, &tracks), &[Some(1)]);
    assert_eq!(a.update(t0 + 2 * MS, 100 * K, &tracks), &[None]);
}

#[test]
fn a_rise_waits_for_up_hold_of_headroom() {
    let (mut a, t0) = allocator();
    let tracks = [video(1, 0, &LADDER)];
    assert_eq!(a.update(t0, 200 * K, &tracks), &[Some(0)]);
    assert_eq!(a.update(t0 + SEC, 2_000 * K, &tracks), &[Some(0)]);
    assert_eq!(a.update(t0 + 2 * SEC, 2_000 * K, &tracks), &[Some(0)]);
    assert_eq!(a.update(t0 + 3 * SEC - MS, 2_000 * K, &tracks), &[Some(0)]);
    assert_eq!(a.update(t0 + 3 * SEC, 2_000 * K, &tracks), &[Some(2)]);
}

#[test]
fn a_paused_track_resumes_only_after_the_hold() {
    let (mut a, t0) = allocator();
    let tracks = [video(1, 0, &LADDER)];
    assert_eq!(a.update(t0, 100 * K, &tracks), &[None]);
    assert_eq!(a.update(t0 + SEC, 200 * K, &tracks), &[None]);
    assert_eq!(a.update(t0 + 3 * SEC, 200 * K, &tracks), &[Some(0)]);
}

#[test]
fn keeping_the_lowest_layers_resumes_at_once() {
    let (mut a, t0) = allocator();
    let tracks = [audio(1, 40 * K), video(2, 0, &LADDER), video(3, 0, &[])];
    assert_eq!(a.update(t0, 100 * K, &tracks), &[Some(0), None, None]);
    // Exactly the lowest layers, no headroom, no hold: resumed now; an empty ladder stays
    // unallocatable.
    let floor = 190 * K;
    let kept = a.update_keeping_lowest(t0 + MS, floor, &tracks);
    assert_eq!(kept, &[Some(0), Some(0), None]);
    // And it stays there under the same budget with plain updates.
    assert_eq!(
        a.update(t0 + SEC, floor, &tracks),
        &[Some(0), Some(0), None]
    );
    // Above the floor it is the plain rule.
    let kept = a.update_keeping_lowest(t0 + 2 * SEC, 5_000 * K, &tracks);
    assert_eq!(kept, &[Some(0), Some(0), None]);
}

#[test]
fn a_rise_needs_headroom() {
    let (mut a, t0) = allocator();
    let tracks = [video(1, 0, &LADDER)];
    assert_eq!(a.update(t0, 200 * K, &tracks), &[Some(0)]);
    // Exactly the 500 k layer: allowed by the estimate, but without the 10 % margin.
    for s in 1..10 {
        assert_eq!(a.update(t0 + s * SEC, 500 * K, &tracks), &[Some(0)]);
    }
    // 550 k = 500 k × 1.1 does not exceed it; 551 k does.
    for s in 10..14 {
        assert_eq!(a.update(t0 + s * SEC, 550 * K, &tracks), &[Some(0)]);
    }
    assert_eq!(a.update(t0 + 20 * SEC, 551 * K, &tracks), &[Some(0)]);
    assert_eq!(a.update(t0 + 22 * SEC, 551 * K, &tracks), &[Some(1)]);
}

#[test]
fn a_dip_restarts_the_hold() {
    let (mut a, t0) = allocator();
    let tracks = [video(1, 0, &LADDER)];
    assert_eq!(a.update(t0, 200 * K, &tracks), &[Some(0)]);
    assert_eq!(a.update(t0 + SEC, 2_000 * K, &tracks), &[Some(0)]);
    // A dip that does not force a step down still breaks the wait.
    assert_eq!(a.update(t0 + 2 * SEC, 300 * K, &tracks), &[Some(0)]);
    assert_eq!(a.update(t0 + 2500 * MS, 2_000 * K, &tracks), &[Some(0)]);
    assert_eq!(a.update(t0 + 3500 * MS, 2_000 * K, &tracks), &[Some(0)]);
    assert_eq!(a.update(t0 + 4 * SEC, 2_000 * K, &tracks), &[Some(0)]);
    assert_eq!(a.update(t0 + 4500 * MS, 2_000 * K, &tracks), &[Some(2)]);
}

#[test]
fn a_rise_goes_to_what_was_allowed_throughout() {
    let (mut a, t0) = allocator();
    let tracks = [video(1, 0, &LADDER)];
    assert_eq!(a.update(t0, 200 * K, &tracks), &[Some(0)]);
    assert_eq!(a.update(t0 + SEC, 2_000 * K, &tracks), &[Some(0)]);
    assert_eq!(a.update(t0 + 2 * SEC, 700 * K, &tracks), &[Some(0)]);
    assert_eq!(a.update(t0 + 3 * SEC, 2_000 * K, &tracks), &[Some(1)]);
    // The top layer has been allowed since t0 + 3 s only.
    assert_eq!(a.update(t0 + 4 * SEC, 2_000 * K, &tracks), &[Some(1)]);
    assert_eq!(a.update(t0 + 5 * SEC, 2_000 * K, &tracks), &[Some(2)]);
}

#[test]
fn vanished_tracks_are_forgotten() {
    let (mut a, t0) = allocator();
    let one = [video(1, 0, &LADDER)];
    let two = [video(1, 0, &LADDER), video(2, 0, &LADDER)];
    assert_eq!(a.update(t0, 400 * K, &two), &[Some(0), Some(0)]);
    assert_eq!(a.update(t0 + MS, 400 * K, &one), &[Some(0)]);
    // Track 2 returns as a new track: its allocation at once, no hold.
    assert_eq!(a.update(t0 + 2 * MS, 3_000 * K, &two), &[Some(0), Some(2)]);
}

#[test]
fn a_shrunk_ladder_steps_down_at_once() {
    let (mut a, t0) = allocator();
    assert_eq!(a.update(t0, 5_000 * K, &[video(1, 0, &LADDER)]), &[Some(2)]);
    let capped = [video(1, 0, &LADDER[..2])];
    assert_eq!(a.update(t0 + MS, 5_000 * K, &capped), &[Some(1)]);
    assert_eq!(
        a.update(t0 + 2 * MS, 5_000 * K, &[video(1, 0, &[])]),
        &[None]
    );
}

#[test]
fn odd_configs_are_tamed() {
    let t0 = Instant::now();
    let tracks = [video(1, 0, &LADDER)];
    for headroom in [f64::NAN, 0.5, -1.0, 1.0] {
        let mut a = Allocator::new(AllocatorConfig {
            up_hold: Duration::ZERO,
            up_headroom: headroom,
        });
        assert_eq!(a.update(t0, 200 * K, &tracks), &[Some(0)]);
        assert_eq!(
            a.update(t0 + MS, 500 * K, &tracks),
            &[Some(1)],
            "{headroom}"
        );
    }
    let mut a = Allocator::new(AllocatorConfig {
        up_hold: Duration::ZERO,
        up_headroom: f64::INFINITY,
    });
    assert_eq!(a.update(t0, 200 * K, &tracks), &[Some(0)]);
    assert_eq!(
        a.update(t0 + SEC, u64::MAX, &tracks),
        &[Some(0)],
        "never climbs"
    );
    // Time going backwards neither panics nor completes a wait early.
    let (mut a, t1) = allocator();
    let t1 = t1 + 10 * SEC;
    assert_eq!(a.update(t1, 200 * K, &tracks), &[Some(0)]);
    assert_eq!(a.update(t1, 2_000 * K, &tracks), &[Some(0)]);
    assert_eq!(a.update(t1 - 5 * SEC, 2_000 * K, &tracks), &[Some(0)]);
    assert_eq!(a.update(t1 + 2 * SEC, 2_000 * K, &tracks), &[Some(2)]);
}

// ---- Properties -----------------------------------------------------------------------------

/// An ascending ladder of 1 to 4 layers.
fn ladder() -> impl Strategy<Value = Vec<u64>> {
    prop::collection::vec(20 * K..3_000 * K, 1..=4).prop_map(|mut l| {
        l.sort_unstable();
        l
    })
}

fn track() -> impl Strategy<Value = TrackDemand> {
    prop_oneof![
        1 => (8 * K..128 * K).prop_map(|bps| audio(0, bps)),
        4 => (0u8..3, ladder()).prop_map(|(p, l)| video(0, p, &l)),
    ]
}

fn tracks() -> impl Strategy<Value = Vec<TrackDemand>> {
    prop::collection::vec(track(), 0..7).prop_map(|mut ts| {
        for (i, t) in ts.iter_mut().enumerate() {
            t.id = i as u32;
        }
        ts
    })
}

fn audio_bps(tracks: &[TrackDemand]) -> u64 {
    tracks.iter().filter(|t| t.audio).map(|t| t.layers[0]).sum()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn allocation_respects_the_budget_and_is_maximal(
        tracks in tracks(),
        estimate in 0u64..12_000 * K,
    ) {
        let a = allocate(estimate, &tracks);
        prop_assert_eq!(a.len(), tracks.len());
        let audio = audio_bps(&tracks);
        let total = allocated_bitrate(&tracks, &a);
        let budget = estimate.saturating_sub(audio);
        // Video never exceeds what audio leaves; only audio may overshoot the estimate.
        prop_assert!(total - audio <= budget);
        prop_assert!(total <= estimate.max(audio));
        let left = budget - (total - audio);
        let lowest_running: u64 = tracks.iter().zip(&a)
            .filter(|(t, k)| !t.audio && k.is_some())
            .map(|(t, _)| t.layers[0])
            .sum();
        for (t, k) in tracks.iter().zip(&a) {
            if t.audio {
                prop_assert_eq!(*k, Some(0));
                continue;
            }
            match *k {
                // A paused track could not have been fed even by undoing every upgrade, so no
                // track is upgraded while another could have had its lowest layer.
                None => prop_assert!(t.layers[0] > budget - lowest_running),
                // Maximal: no further single step fits.
                Some(k) if k + 1 < t.layers.len() => {
                    prop_assert!(t.layers[k + 1] - t.layers[k] > left);
                }
                Some(_) => {}
            }
        }
    }

    #[test]
    fn upgrades_follow_priority_for_equal_ladders(
        ladder in ladder(),
        priorities in prop::collection::vec(0u8..3, 1..6),
        estimate in 0u64..12_000 * K,
    ) {
        let tracks: Vec<TrackDemand> = priorities.iter().enumerate()
            .map(|(i, &p)| video(i as u32, p, &ladder))
            .collect();
        let a = allocate(estimate, &tracks);
        for i in 0..tracks.len() {
            for j in 0..tracks.len() {
                // i is served before j: higher priority, or equal priority and earlier.
                let before = (tracks[i].priority, std::cmp::Reverse(i))
                    > (tracks[j].priority, std::cmp::Reverse(j));
                if before {
                    prop_assert!(a[i] >= a[j], "{:?} {:?}", tracks, a);
                }
            }
        }
    }

    #[test]
    fn more_bandwidth_never_lowers_the_total(
        tracks in tracks(),
        low in 0u64..12_000 * K,
        extra in 0u64..3_000 * K,
    ) {
        let a = allocated_bitrate(&tracks, &allocate(low, &tracks));
        let b = allocated_bitrate(&tracks, &allocate(low + extra, &tracks));
        prop_assert!(b >= a, "{} at {} but {} at {}", a, low, b, low + extra);
        // The first track served (highest priority, earliest) is never paused by more bandwidth.
        let first = tracks.iter().enumerate().filter(|(_, t)| !t.audio)
            .max_by_key(|(i, t)| (t.priority, std::cmp::Reverse(*i)))
            .map(|(i, _)| i);
        if let Some(i) = first {
            let (x, y) = (allocate(low, &tracks)[i], allocate(low + extra, &tracks)[i]);
            prop_assert!(x.is_none() || y.is_some());
        }
    }

    #[test]
    fn unlimited_bandwidth_gives_everything(tracks in tracks()) {
        let a = allocate(desired_bitrate(&tracks), &tracks);
        for (t, k) in tracks.iter().zip(&a) {
            prop_assert_eq!(*k, Some(t.layers.len() - 1));
        }
        prop_assert_eq!(allocated_bitrate(&tracks, &a), desired_bitrate(&tracks));
    }

    #[test]
    fn hysteresis_stays_under_the_ceiling_and_climbs_only_after_the_hold(
        tracks in tracks(),
        steps in prop::collection::vec((0u64..1_500, 0u64..8_000 * K), 1..60),
    ) {
        let config = AllocatorConfig::default();
        let mut alloc = Allocator::new(config);
        let start = Instant::now();
        let mut now = start;
        // Per update: time, and per track the layer allowed for climbing.
        let mut history: Vec<(Instant, Vec<Option<usize>>)> = Vec::new();
        let mut prev: Option<Vec<Option<usize>>> = None;
        for (dt, estimate) in steps {
            now += Duration::from_millis(dt);
            let ceiling = allocate(estimate, &tracks);
            let climb = (estimate as f64 / config.up_headroom) as u64;
            let allowed: Vec<Option<usize>> = allocate(climb, &tracks).into_iter()
                .zip(&ceiling).map(|(h, &c)| h.min(c)).collect();
            history.push((now, allowed));
            let got = alloc.update(now, estimate, &tracks).to_vec();
            prop_assert_eq!(got.len(), tracks.len());
            // Never above the ceiling: steps down apply at once.
            for (g, c) in got.iter().zip(&ceiling) {
                prop_assert!(g <= c);
            }
            let audio = audio_bps(&tracks);
            prop_assert!(allocated_bitrate(&tracks, &got) <= estimate.max(audio));
            match &prev {
                None => prop_assert_eq!(&got, &ceiling, "first update: allocation at once"),
                Some(prev) => for i in 0..tracks.len() {
                    if got[i] <= prev[i] {
                        continue;
                    }
                    // A rise: some update at least up_hold ago began a run, up to now, in
                    // which every update allowed at least the new layer.
                    let run_start = history.iter().rev()
                        .take_while(|(_, allowed)| allowed[i] >= got[i])
                        .last()
                        .map(|(t, _)| *t);
                    prop_assert!(
                        run_start.is_some_and(|t| now.duration_since(t) >= config.up_hold),
                        "track {} rose {:?} -> {:?} too early", i, prev[i], got[i]
                    );
                },
            }
            prev = Some(got);
        }
    }
}
