//! Active speaker detection from RFC 6464 audio levels (sans-IO).
//!
//! Each audio packet carries (RFC 6464, `urn:ietf:params:rtp-hdrext:ssrc-audio-level`) a
//! level 0..=127 in -dBov: 0 is the loudest, 127 digital silence. The detector converts it
//! to a linear amplitude `10^(-level/20)` (127 and a missing level count as 0.0), keeps
//! per track one sum and count per tick interval covering the smoothing window (bounded
//! memory, however many packets arrive), and on every tick computes each track's smoothed
//! level (the mean amplitude of its packets that arrived within `window` before the tick),
//! the set of speaking tracks and the active speaker, with hysteresis.
//!
//! Ticks lie on a fixed grid that starts at the first packet: tick `n` is due at
//! `epoch + n * tick`. The caller drives it like any sans-IO state machine: feed
//! [`SpeakerDetector::observe`], and call [`SpeakerDetector::handle_timeout`] when
//! [`SpeakerDetector::poll_timeout`] is due. This file never reads the clock.

use std::collections::BTreeMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Tuning of a [`SpeakerDetector`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct SpeakerConfig {
    /// Smoothing window (default 1 s): a track's level is the mean linear amplitude of its
    /// packets in the window. Rounded up to a whole number of ticks.
    pub window: Duration,
    /// Evaluation interval (default 200 ms).
    pub tick: Duration,
    /// Smoothed level (linear amplitude, 0.0..=1.0) at or above which a track is speaking
    /// (default 0.003 ≈ -50 dBov).
    pub threshold: f32,
    /// A challenger replaces the active speaker when its level exceeds the active one's
    /// times this (default 2.0, i.e. 6 dB) ...
    pub switch_ratio: f32,
    /// ... for this many consecutive ticks (default 2). An active speaker below
    /// `threshold` is replaced by any speaking challenger after the same number of ticks.
    pub switch_ticks: u32,
}

impl Default for SpeakerConfig {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(1),
            tick: Duration::from_millis(200),
            threshold: 0.003,
            switch_ratio: 2.0,
            switch_ticks: 2,
        }
    }
}

/// What a [`SpeakerDetector::handle_timeout`] call changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SpeakerChanges {
    /// The active speaker changed (including to or from none).
    pub active: bool,
    /// The set of tracks at or above the threshold changed.
    pub speaking: bool,
}

/// The sum and count of one tick interval's packet amplitudes.
#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    /// Tick interval `i` holds packets that arrived in `[epoch + i*tick, epoch + (i+1)*tick)`.
    interval: u64,
    sum: f64,
    count: u32,
}

/// One audio track.
#[derive(Debug)]
struct Track {
    /// A ring of `span + 2` buckets, indexed by `interval % len`.
    buckets: Vec<Bucket>,
    /// Smoothed level as of the last tick.
    level: f32,
    /// The last tick at which the level was at or above the threshold.
    last_spoke: Option<Instant>,
}

/// The tick grid: tick `n` is due at `epoch + n * tick`; `next` is the next one to run.
#[derive(Debug, Clone, Copy)]
struct Grid {
    epoch: Instant,
    next: u64,
}

/// Active speaker detector over audio tracks keyed by `K` (the caller's track handle).
#[derive(Debug)]
pub(crate) struct SpeakerDetector<K> {
    cfg: SpeakerConfig,
    /// `cfg.tick` in nanoseconds, at least 1 ms.
    tick_ns: u64,
    /// Tick intervals per window, 1..=65536.
    span: u64,
    tracks: BTreeMap<K, Track>,
    /// `None` while idle: no track and nothing left to report.
    grid: Option<Grid>,
    active: Option<K>,
    /// The active speaker as of the last tick (what the caller has been told).
    reported_active: Option<K>,
    /// Speaking tracks as of the last tick, in key order.
    speaking: Vec<K>,
    /// The track challenging the active speaker, and for how many consecutive ticks.
    challenger: Option<(K, u32)>,
}

impl<K: Copy + Eq + Hash + Ord> SpeakerDetector<K> {
    /// A detector with no tracks.
    pub(crate) fn new(cfg: SpeakerConfig) -> Self {
        let tick_ns = cfg.tick.as_nanos().clamp(1_000_000, u128::from(u64::MAX));
        let span = cfg.window.as_nanos().div_ceil(tick_ns).clamp(1, 1 << 16);
        Self {
            cfg,
            tick_ns: tick_ns as u64,
            span: span as u64,
            tracks: BTreeMap::new(),
            grid: None,
            active: None,
            reported_active: None,
            speaking: Vec::new(),
            challenger: None,
        }
    }

    /// One audio packet of track `key` arrived at `now`; `level` is the RFC 6464 level
    /// (0..=127 -dBov; `None`: the packet had none, counted as silence). A new key starts
    /// a track.
    pub(crate) fn observe(&mut self, now: Instant, key: K, level: Option<u8>) {
        let grid = *self.grid.get_or_insert(Grid {
            epoch: now,
            next: 1,
        });
        let interval = self.interval(grid.epoch, now);
        let len = self.ring_len();
        let track = self.tracks.entry(key).or_insert_with(|| Track {
            buckets: vec![Bucket::default(); len],
            level: 0.0,
            last_spoke: None,
        });
        let bucket = &mut track.buckets[(interval % len as u64) as usize];
        if bucket.interval < interval {
            *bucket = Bucket {
                interval,
                ..Bucket::default()
            };
        } else if bucket.interval > interval {
            return; // too old: its bucket already holds a later interval
        }
        bucket.sum += f64::from(amplitude(level));
        bucket.count = bucket.count.saturating_add(1);
    }

    /// The track is gone: forget it. If it was active, [`Self::active`] is `None` at once
    /// and the next tick picks another speaker or none (and reports the change).
    pub(crate) fn remove(&mut self, key: K) {
        self.tracks.remove(&key);
        if self.active == Some(key) {
            self.active = None;
        }
        if self.challenger.is_some_and(|(k, _)| k == key) {
            self.challenger = None;
        }
        self.settle();
    }

    /// When [`Self::handle_timeout`] is next due: the next tick of the grid. `None` while
    /// no track is known and no change is left to report.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.grid.map(|g| self.due_at(g, g.next))
    }

    /// Runs the evaluation tick(s) due at `now` (if the caller is late, the missed ticks
    /// run in order, at most a window's worth plus `switch_ticks` of them). Returns what
    /// changed: `active` when the active speaker changed, `speaking` when the set of
    /// tracks at or above the threshold changed.
    pub(crate) fn handle_timeout(&mut self, now: Instant) -> SpeakerChanges {
        let mut changes = SpeakerChanges::default();
        let Some(mut grid) = self.grid else {
            return changes;
        };
        let due = self.interval(grid.epoch, now);
        if due < grid.next {
            return changes;
        }
        let most = self.span + u64::from(self.cfg.switch_ticks) + 1;
        let first = grid.next.max(due.saturating_sub(most - 1));
        for n in first..=due {
            self.evaluate(n, self.due_at(grid, n), &mut changes);
        }
        grid.next = due + 1;
        self.grid = Some(grid);
        self.settle();
        changes
    }

    /// The active speaker: the last track that won the election, even if silent now.
    pub(crate) fn active(&self) -> Option<K> {
        self.active
    }

    /// Smoothed level of the track, linear amplitude 0.0..=1.0, as of the last tick (0.0
    /// for an unknown track).
    pub(crate) fn level(&self, key: K) -> f32 {
        self.tracks.get(&key).map_or(0.0, |t| t.level)
    }

    /// The last tick at which the track was speaking; `None`: never (or unknown track).
    pub(crate) fn last_spoke(&self, key: K) -> Option<Instant> {
        self.tracks.get(&key).and_then(|t| t.last_spoke)
    }

    /// Tracks at or above the threshold as of the last tick, loudest first (ties by key),
    /// with their smoothed levels.
    pub(crate) fn speakers(&self) -> Vec<(K, f32)> {
        let mut out: Vec<(K, f32)> = self
            .tracks
            .iter()
            .filter(|(_, t)| t.level >= self.cfg.threshold)
            .map(|(k, t)| (*k, t.level))
            .collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        out
    }

    /// Tick `n`, due at `at`: levels, speaking set, election.
    fn evaluate(&mut self, n: u64, at: Instant, changes: &mut SpeakerChanges) {
        let from = n.saturating_sub(self.span);
        let threshold = self.cfg.threshold;
        for track in self.tracks.values_mut() {
            let (sum, count) = track
                .buckets
                .iter()
                .filter(|b| (from..n).contains(&b.interval))
                .fold((0.0, 0u64), |(s, c), b| (s + b.sum, c + u64::from(b.count)));
            track.level = match count {
                0 => 0.0,
                c => (sum / c as f64) as f32,
            };
            if track.level >= threshold {
                track.last_spoke = Some(at);
            }
        }
        let speaking: Vec<K> = self
            .tracks
            .iter()
            .filter(|(_, t)| t.level >= threshold)
            .map(|(k, _)| *k)
            .collect();
        if speaking != self.speaking {
            changes.speaking = true;
            self.speaking = speaking;
        }
        self.elect();
        if self.active != self.reported_active {
            changes.active = true;
            self.reported_active = self.active;
        }
    }

    /// The election, on the levels of this tick.
    fn elect(&mut self) {
        let threshold = self.cfg.threshold;
        // The loudest speaking track other than `except` (ties: smallest key).
        let loudest = |except: Option<K>| {
            self.tracks
                .iter()
                .filter(|(k, t)| Some(**k) != except && t.level >= threshold)
                .max_by(|a, b| a.1.level.total_cmp(&b.1.level).then(b.0.cmp(a.0)))
                .map(|(k, t)| (*k, t.level))
        };
        let Some(active) = self.active else {
            self.active = loudest(None).map(|(k, _)| k);
            self.challenger = None;
            return;
        };
        let active_level = self.level(active);
        let challenger = loudest(Some(active))
            .filter(|&(_, level)| {
                active_level < threshold || level > active_level * self.cfg.switch_ratio
            })
            .map(|(k, _)| k);
        self.challenger = challenger.and_then(|c| {
            let ticks = match self.challenger {
                Some((k, ticks)) if k == c => ticks.saturating_add(1),
                _ => 1,
            };
            if ticks >= self.cfg.switch_ticks {
                self.active = Some(c);
                None
            } else {
                Some((c, ticks))
            }
        });
    }

    /// Stops the grid once there is no track and nothing left to report.
    fn settle(&mut self) {
        if self.tracks.is_empty() && self.reported_active.is_none() && self.speaking.is_empty() {
            self.grid = None;
            self.challenger = None;
        }
    }

    /// The tick interval `at` falls in.
    fn interval(&self, epoch: Instant, at: Instant) -> u64 {
        let n = at.saturating_duration_since(epoch).as_nanos() / u128::from(self.tick_ns);
        u64::try_from(n).unwrap_or(u64::MAX)
    }

    /// When tick `n` is due.
    fn due_at(&self, grid: Grid, n: u64) -> Instant {
        let ns = u128::from(self.tick_ns) * u128::from(n);
        grid.epoch + Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
    }

    /// Buckets per track: the window plus the interval being filled, plus one of slack
    /// for a caller that ticks late.
    fn ring_len(&self) -> usize {
        self.span as usize + 2
    }
}

/// Linear amplitude 0.0..=1.0 of an RFC 6464 level (-dBov): `10^(-level/20)`. 127 is
/// digital silence (RFC 6464 §3) and, like a missing level, counts as 0.0.
fn amplitude(level: Option<u8>) -> f32 {
    match level {
        Some(l) if l < 127 => 10f32.powf(-f32::from(l) / 20.0),
        _ => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PACKET: Duration = Duration::from_millis(20);
    const NONE: SpeakerChanges = SpeakerChanges {
        active: false,
        speaking: false,
    };
    const BOTH: SpeakerChanges = SpeakerChanges {
        active: true,
        speaking: true,
    };
    const SPEAKING: SpeakerChanges = SpeakerChanges {
        active: false,
        speaking: true,
    };
    const ACTIVE: SpeakerChanges = SpeakerChanges {
        active: true,
        speaking: false,
    };

    /// Defaults, but a window of one tick: a level counts for exactly one tick.
    fn one_tick_window() -> SpeakerConfig {
        SpeakerConfig {
            window: Duration::from_millis(200),
            ..SpeakerConfig::default()
        }
    }

    /// Runs ticks `ticks` (200 ms each, grid starting at `t0`): before tick `n`, feeds the
    /// ten 20 ms packets of interval `n - 1`, `packets(p)` giving packet `p`'s
    /// `(track, level)`s. Returns each tick's changes.
    fn run(
        d: &mut SpeakerDetector<u32>,
        t0: Instant,
        ticks: std::ops::RangeInclusive<u32>,
        packets: impl Fn(u32) -> Vec<(u32, Option<u8>)>,
    ) -> Vec<SpeakerChanges> {
        let mut out = Vec::new();
        for n in ticks {
            for p in (n - 1) * 10..n * 10 {
                for (key, level) in packets(p) {
                    d.observe(t0 + PACKET * p, key, level);
                }
            }
            let due = t0 + Duration::from_millis(200) * n;
            assert_eq!(d.poll_timeout(), Some(due));
            out.push(d.handle_timeout(due));
        }
        out
    }

    fn amp(level: u8) -> f32 {
        amplitude(Some(level))
    }

    #[test]
    fn beeping_track_becomes_active() {
        // Chromium's fake microphone: a short beep every ~500 ms, silence otherwise.
        let t0 = Instant::now();
        let mut d = SpeakerDetector::new(SpeakerConfig::default());
        assert_eq!(d.poll_timeout(), None);
        let beep = |p: u32| vec![(7, Some(if !p.is_multiple_of(25) { 127 } else { 10 }))];
        let changes = run(&mut d, t0, 1..=25, beep);
        assert_eq!(changes[0], BOTH, "active at the first tick");
        assert!(changes[1..].iter().all(|c| *c == NONE));
        assert_eq!(d.active(), Some(7));
        // Two beeps per full window of 50 packets.
        assert!((d.level(7) - 2.0 * amp(10) / 50.0).abs() < 1e-6);
        assert!(d.level(7) >= SpeakerConfig::default().threshold);
        assert_eq!(d.speakers(), vec![(7, d.level(7))]);
        assert_eq!(d.last_spoke(7), Some(t0 + Duration::from_secs(5)));
    }

    #[test]
    fn silence_never_becomes_active() {
        let t0 = Instant::now();
        let mut d = SpeakerDetector::new(SpeakerConfig::default());
        let changes = run(&mut d, t0, 1..=25, |_| vec![(1, Some(127)), (2, None)]);
        assert!(changes.iter().all(|c| *c == NONE));
        assert_eq!(d.active(), None);
        assert!(d.speakers().is_empty());
        assert_eq!((d.level(1), d.level(2)), (0.0, 0.0));
        assert_eq!(d.last_spoke(1), None);
    }

    #[test]
    fn challenger_louder_for_one_tick_does_not_take_over() {
        let t0 = Instant::now();
        let mut d = SpeakerDetector::new(one_tick_window());
        run(&mut d, t0, 1..=3, |_| vec![(1, Some(30)), (2, Some(127))]);
        assert_eq!(d.active(), Some(1));
        // Tick 4: 2 is 10 dB louder; tick 5: silent again.
        let c = run(&mut d, t0, 4..=4, |_| vec![(1, Some(30)), (2, Some(20))]);
        assert!(!c[0].active);
        run(&mut d, t0, 5..=5, |_| vec![(1, Some(30)), (2, Some(127))]);
        assert_eq!(d.active(), Some(1));
        // Louder for switch_ticks (2) consecutive ticks: takes over at the second.
        let c = run(&mut d, t0, 6..=7, |_| vec![(1, Some(30)), (2, Some(20))]);
        assert!(!c[0].active && c[1].active);
        assert_eq!(d.active(), Some(2));
    }

    #[test]
    fn slightly_louder_challenger_never_takes_over() {
        let t0 = Instant::now();
        let mut d = SpeakerDetector::new(SpeakerConfig::default());
        run(&mut d, t0, 1..=5, |_| vec![(1, Some(30))]);
        assert_eq!(d.active(), Some(1));
        // 4 dB louder (ratio 1.58 < 2) for 10 s.
        let c = run(&mut d, t0, 6..=55, |_| vec![(1, Some(30)), (2, Some(26))]);
        assert!(c.iter().all(|c| !c.active));
        assert_eq!(d.active(), Some(1));
        assert_eq!(d.speakers().iter().map(|s| s.0).collect::<Vec<_>>(), [2, 1]);
        // 20 dB louder with the default 1 s window: takes over within a window.
        let c = run(&mut d, t0, 56..=60, |_| vec![(1, Some(30)), (2, Some(10))]);
        assert!(c.iter().any(|c| c.active));
        assert_eq!(d.active(), Some(2));
    }

    #[test]
    fn silent_active_stays_until_another_speaks_for_switch_ticks() {
        let t0 = Instant::now();
        let mut d = SpeakerDetector::new(one_tick_window());
        run(&mut d, t0, 1..=2, |_| vec![(1, Some(30)), (2, Some(127))]);
        assert_eq!(d.active(), Some(1));
        // Nobody speaks: 1 stays active.
        let c = run(&mut d, t0, 3..=4, |_| vec![(1, Some(127)), (2, Some(127))]);
        assert_eq!(c[0], SPEAKING);
        assert_eq!(d.active(), Some(1));
        // 2 speaks (quietly, but above the threshold): takes over after 2 ticks.
        let c = run(&mut d, t0, 5..=6, |_| vec![(1, Some(127)), (2, Some(45))]);
        assert_eq!(c[0], SPEAKING);
        assert_eq!(c[1], ACTIVE);
        assert_eq!(d.active(), Some(2));
        assert_eq!(d.last_spoke(1), Some(t0 + Duration::from_millis(400)));
    }

    #[test]
    fn removed_active_is_replaced_by_a_speaking_track() {
        let t0 = Instant::now();
        let mut d = SpeakerDetector::new(SpeakerConfig::default());
        run(&mut d, t0, 1..=10, |_| vec![(1, Some(20)), (2, Some(30))]);
        assert_eq!(d.active(), Some(1));
        d.remove(1);
        assert_eq!(d.active(), None);
        let c = run(&mut d, t0, 11..=11, |_| vec![(2, Some(30))]);
        assert_eq!(c[0], BOTH);
        assert_eq!(d.active(), Some(2));
        assert_eq!(d.level(1), 0.0);
    }

    #[test]
    fn removing_the_last_track_reports_then_idles() {
        let t0 = Instant::now();
        let mut d = SpeakerDetector::new(SpeakerConfig::default());
        run(&mut d, t0, 1..=3, |_| vec![(1, Some(20))]);
        d.remove(1);
        let due = t0 + Duration::from_millis(800);
        assert_eq!(d.poll_timeout(), Some(due));
        assert_eq!(d.handle_timeout(due), BOTH);
        assert_eq!(d.poll_timeout(), None);
        // A new track starts a new grid.
        let t1 = t0 + Duration::from_secs(60);
        d.observe(t1, 2, Some(127));
        assert_eq!(d.poll_timeout(), Some(t1 + Duration::from_millis(200)));
        // Removing a silent last track leaves nothing to report.
        d.remove(2);
        assert_eq!(d.poll_timeout(), None);
    }

    #[test]
    fn speaking_changes_are_reported() {
        let t0 = Instant::now();
        let mut d = SpeakerDetector::new(one_tick_window());
        let talk = |p: u32| vec![(1, Some(if (10..30).contains(&p) { 30 } else { 127 }))];
        let c = run(&mut d, t0, 1..=5, talk);
        assert_eq!(c, [NONE, BOTH, NONE, SPEAKING, NONE]);
        assert_eq!(d.active(), Some(1));
        assert!(d.speakers().is_empty());
    }

    #[test]
    fn memory_is_bounded() {
        let t0 = Instant::now();
        let mut d = SpeakerDetector::new(SpeakerConfig::default());
        run(&mut d, t0, 1..=5_000, |p| vec![(1, Some((p % 128) as u8))]);
        // A burst of packets in one interval, and a late caller: still the same ring.
        for i in 0..100_000 {
            d.observe(
                t0 + Duration::from_secs(1_000) + Duration::from_nanos(i),
                1,
                Some(0),
            );
        }
        assert_eq!(d.tracks.len(), 1);
        assert_eq!(d.tracks[&1].buckets.len(), 5 + 2);
        assert!(!d.handle_timeout(t0 + Duration::from_secs(2_000)).active);
    }

    #[test]
    fn late_caller_runs_the_missed_ticks() {
        let t0 = Instant::now();
        let mut d = SpeakerDetector::new(SpeakerConfig::default());
        for p in 0..50 {
            d.observe(t0 + PACKET * p, 1, Some(20));
        }
        let c = d.handle_timeout(t0 + Duration::from_millis(1_050));
        assert_eq!(c, BOTH);
        assert_eq!(d.last_spoke(1), Some(t0 + Duration::from_secs(1)));
        assert_eq!(d.poll_timeout(), Some(t0 + Duration::from_millis(1_200)));
        // An hour late: only a bounded number of ticks run; the track fell silent.
        let c = d.handle_timeout(t0 + Duration::from_secs(3_600));
        assert_eq!(c, SPEAKING);
        assert_eq!(d.level(1), 0.0);
        assert_eq!(d.active(), Some(1));
    }

    #[test]
    fn rfc6464_levels_map_to_linear_amplitude() {
        assert_eq!(amplitude(Some(0)), 1.0);
        assert!((amplitude(Some(20)) - 0.1).abs() < 1e-6);
        assert!((amplitude(Some(50)) - 0.003_162).abs() < 1e-6);
        assert_eq!(amplitude(Some(127)), 0.0);
        assert_eq!(amplitude(Some(200)), 0.0);
        assert_eq!(amplitude(None), 0.0);
    }
}
