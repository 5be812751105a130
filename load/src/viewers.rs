//! The report's per-viewer part: one [`ViewerEntry`] per WHEP session with one
//! [`SlotEntry`] per stream (SSRC) it received, and the run-wide slot totals
//! ([`SlotTotals`]). Computes; does no I/O.

use std::time::Instant;

use serde::Serialize;

use crate::scenario::SessionResult;
use switchboard_kit::recv::Histogram;
use switchboard_kit::recv::{RecvStats, SlotStats};

/// Share of `part` in `whole`, percent.
pub fn pct(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 * 100.0 / whole as f64)
}

/// Microseconds from `a` to `b` (0 when `b` is earlier).
pub fn us_between(a: Instant, b: Instant) -> u64 {
    b.saturating_duration_since(a).as_micros() as u64
}

/// One stream (SSRC) a viewer received: a WHEP slot.
#[derive(Clone, Debug, Serialize)]
pub struct SlotEntry {
    /// The SSRC.
    pub ssrc: u32,
    /// `audio` or `video`.
    pub kind: &'static str,
    /// Publisher ids seen on it, in order of first appearance.
    pub sources: Vec<u32>,
    /// RTP packets counted in the window.
    pub window_packets: u64,
    /// Loss in the window, percent.
    pub loss_percent: Option<f64>,
    /// 201 → first complete keyframe, ms (video).
    pub first_keyframe_ms: Option<f64>,
    /// Freezes in the window.
    pub freezes: u64,
    /// Spatial layer changes in the window.
    pub layer_switches: u64,
    /// Source changes in the window.
    pub source_switches: u64,
    /// Spatial layer index of the last video packet.
    pub final_layer: Option<u8>,
}

/// Per-viewer summary.
#[derive(Clone, Debug, Serialize)]
pub struct ViewerEntry {
    /// Room watched.
    pub room: String,
    /// The viewer's own participant (conference), whose media it must never receive.
    pub participant: Option<u32>,
    /// Connected.
    pub connected: bool,
    /// RTP packets received in the window.
    pub window_packets: u64,
    /// Loss in the window, percent.
    pub loss_percent: Option<f64>,
    /// Median one-way latency, ms.
    pub latency_p50_ms: Option<f64>,
    /// 99th percentile one-way latency, ms.
    pub latency_p99_ms: Option<f64>,
    /// 201 → a complete keyframe in every video slot it asked for, ms.
    pub first_keyframe_ms: Option<f64>,
    /// Freezes in the window.
    pub freezes: u64,
    /// Spatial layer changes in the window.
    pub layer_switches: u64,
    /// Slot source changes in the window.
    pub source_switches: u64,
    /// Packets of its own participant's media (whole session; must be 0).
    pub own_packets: u64,
    /// Video packets received per spatial layer index (0 = lowest).
    pub layer_packets: [u64; 4],
    /// Spatial layer index of the last video packet.
    pub final_layer: Option<u8>,
    /// Video m-lines (slots) it offered.
    pub video_slots_offered: u32,
    /// Audio m-lines (slots) it offered.
    pub audio_slots_offered: u32,
    /// Every stream it received.
    pub slots: Vec<SlotEntry>,
}

/// Run-wide slot figures, summed over viewers.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SlotTotals {
    /// Video slots the viewers offered.
    pub video_offered: u64,
    /// Video streams (SSRCs) the viewers received.
    pub video_receiving: u64,
    /// Of those, with a complete keyframe.
    pub video_with_keyframe: u64,
    /// Audio slots the viewers offered.
    pub audio_offered: u64,
    /// Audio streams (SSRCs) the viewers received.
    pub audio_receiving: u64,
    /// Source changes in the window.
    pub source_switches: u64,
    /// Packets of a viewer's own participant (must be 0).
    pub own_media_packets: u64,
}

impl SlotTotals {
    /// Add one viewer.
    pub fn add(&mut self, v: &ViewerEntry, recv: Option<&RecvStats>) {
        self.video_offered += u64::from(v.video_slots_offered);
        self.audio_offered += u64::from(v.audio_slots_offered);
        let Some(recv) = recv else {
            return;
        };
        self.video_receiving += recv.video_slots().count() as u64;
        self.video_with_keyframe += recv
            .video_slots()
            .filter(|s| s.first_keyframe_us.is_some())
            .count() as u64;
        self.audio_receiving += recv.audio_slots().count() as u64;
        self.source_switches += recv.source_switches();
        self.own_media_packets += recv.own_packets;
    }
}

/// The entry of viewer `r`; records its time to a keyframe in every video slot it
/// offered (the last of those first keyframes) in `first_key`.
pub fn viewer_entry(r: &SessionResult, epoch: Instant, first_key: &mut Histogram) -> ViewerEntry {
    let recv = r.report.as_ref().and_then(|p| p.recv.as_ref());
    // Receive stamps count from the tool's epoch.
    let created_us = r.created_at.map(|c| us_between(epoch, c));
    let since_201 = |at: Option<u64>| created_us.zip(at).map(|(c, at)| at.saturating_sub(c));
    let video_slots = r.planned.slots.video as usize;
    let all_keyed = since_201(recv.and_then(|v| v.keyframes_in(video_slots)));
    if let Some(us) = all_keyed {
        first_key.record(us);
    }
    let ms = |us: Option<u64>| us.map(|us| us as f64 / 1000.0);
    let q = |p: f64| ms(recv.and_then(|v| v.latency_us.quantile(p)));
    let slot = |s: &SlotStats| SlotEntry {
        ssrc: s.ssrc,
        kind: if s.audio { "audio" } else { "video" },
        sources: s.sources.clone(),
        window_packets: s.window_packets,
        loss_percent: pct(s.lost(), s.expected),
        first_keyframe_ms: ms(since_201(s.first_keyframe_us)),
        freezes: s.freezes,
        layer_switches: s.layer_switches,
        source_switches: s.source_switches,
        final_layer: s.current_layer(),
    };
    ViewerEntry {
        room: r.planned.room.clone(),
        participant: r.planned.participant,
        connected: r.setup.is_ok(),
        window_packets: recv.map_or(0, |v| v.window_packets),
        loss_percent: recv.and_then(|v| pct(v.lost(), v.expected())),
        latency_p50_ms: q(0.5),
        latency_p99_ms: q(0.99),
        first_keyframe_ms: ms(all_keyed),
        freezes: recv.map_or(0, RecvStats::freezes),
        layer_switches: recv.map_or(0, RecvStats::layer_switches),
        source_switches: recv.map_or(0, RecvStats::source_switches),
        own_packets: recv.map_or(0, |v| v.own_packets),
        layer_packets: recv.map_or([0; 4], |v| v.layer_packets),
        final_layer: recv.and_then(RecvStats::current_layer),
        video_slots_offered: r.planned.slots.video,
        audio_slots_offered: r.planned.slots.audio,
        slots: recv.map_or_else(Vec::new, |v| v.slots.iter().map(slot).collect()),
    }
}

/// Video slots by the spatial layer (0 = lowest) they received last (a broadcast
/// viewer has one video slot).
pub fn final_layers(viewers: &[ViewerEntry], layers: usize) -> Vec<u64> {
    let mut out = vec![0; layers.max(1)];
    let last = viewers
        .iter()
        .flat_map(|v| &v.slots)
        .filter(|s| s.kind == "video")
        .filter_map(|s| s.final_layer);
    for l in last {
        if let Some(n) = out.get_mut(usize::from(l)) {
            *n += 1;
        }
    }
    out
}
