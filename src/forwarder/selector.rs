//! Simulcast and temporal layer selection for ONE subscribed video track: per packet, forward or
//! drop, and which layer is being forwarded.
//!
//! Owns: the *target* layer (what the bandwidth allocator wants this subscriber to receive), the
//! *current* layer (what is being forwarded now), and the rules that move current towards target
//! only at points where the subscriber's decoder can follow.
//!
//! Never: parses payloads (the caller fills [`PacketInfo`] from the codec inspectors), rewrites
//! sequence numbers or timestamps (the munger does; [`Decision::Forward`] says when its source
//! changes), sends keyframe requests (it says which layer needs one:
//! [`LayerSelector::waiting_for_keyframe`]), reads a clock, allocates, or panics on any input.
//!
//! # Spatial layers (simulcast, RFC 8853)
//!
//! Each spatial layer is a separate RTP stream with its own prediction chain, so a subscriber can
//! only be moved onto another layer at a keyframe of that layer: a delta frame of the new layer
//! references pictures the subscriber never received. While the current spatial layer differs
//! from the target, the current layer keeps flowing (the picture does not freeze while the
//! keyframe is on its way) and the first packet of a keyframe of the target layer switches over.
//! From then on the old layer is dropped. (VP8 keyframes are TL0; a keyframe claiming a TID above
//! the target's temporal cap is no switch point, since the rest of its frame would be filtered.) Keyframes of layers other than the target never switch,
//! even one between current and target: the caller asks for a keyframe on the target layer only,
//! and stepping through an intermediate layer would cost an extra switch for a short gain.
//! Before anything is current (start, after a pause, after [`LayerSelector::reset`]) every packet
//! is dropped until a keyframe of the target layer starts.
//!
//! # Temporal layers (VP8, RFC 7741 §4.2)
//!
//! A VP8 frame with temporal layer index TID references only frames whose TID is lower or equal,
//! so dropping every frame above a cap leaves a decodable stream. The cap (`current().temporal`)
//! follows `target().temporal` as follows:
//!
//! * Down: at the next frame start (a packet with `frame_start` or `keyframe`). Never mid-frame,
//!   because a frame already partly forwarded must be completed or the decoder sees a torn frame.
//! * Up at a keyframe: straight to the target. A keyframe references nothing.
//! * Up at a layer-sync frame: a frame with the Y bit set depends only on TL0 frames, which were
//!   all forwarded, so a frame start with `layer_sync` and TID = cap + 1 raises the cap by one
//!   (later frames of that layer reference it or lower layers). A sync frame two or more layers up
//!   is not enough: frames of the layers in between may still reference frames that were dropped.
//!   Nor is a TL0 frame start: the next TL1 frame (Y=0) may reference the previous TL1 frame,
//!   which was dropped. Climbing 0 → 2 therefore takes a sync frame of TL1, then one of TL2.
//! * Packets without temporal information (`tid == None`: H.264, VP8 without the T bit) count as
//!   TID 0 and are never filtered; since such a stream has no temporal structure to break, any
//!   frame start of it moves the cap straight to the target.

/// One selectable layer of a video track, or a cap on one.
///
/// Ordered by spatial layer, then temporal layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Layer {
    /// Simulcast layer (RFC 8853): 0 is the lowest resolution.
    pub spatial: u8,
    /// Temporal cap: frames with TID ≤ `temporal` are forwarded (RFC 7741 §4.2). 0 is the base
    /// frame rate.
    pub temporal: u8,
}

/// What the selector needs to know about one RTP packet; the caller derives it from the RTP
/// stream the packet arrived on and from the payload descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct PacketInfo {
    /// The simulcast layer (RTP stream) the packet belongs to.
    pub spatial: u8,
    /// Temporal layer index (VP8 TID, RFC 7741 §4.2), or `None` when the codec carries none
    /// (H.264, VP8 without the T bit): treated as TID 0 and never filtered.
    pub tid: Option<u8>,
    /// The packet starts a keyframe (the caller's keyframe-start inspector, e.g. VP8 S=1, PID=0
    /// and P=0). Implies `frame_start`.
    pub keyframe: bool,
    /// The first packet of a frame (VP8 S=1 and PID=0, or the first packet with a new RTP
    /// timestamp: the caller decides).
    pub frame_start: bool,
    /// VP8 Y bit (RFC 7741 §4.2): the frame depends only on TL0 frames.
    pub layer_sync: bool,
}

/// Why a packet was not forwarded, so the caller can count every drop with a reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum DropCause {
    /// The target is `None`: the subscriber receives nothing of this track.
    Paused,
    /// The packet belongs to a simulcast layer other than the one being forwarded.
    OtherSpatial,
    /// Nothing is being forwarded yet: waiting for a keyframe of the target layer.
    WaitingKeyframe,
    /// The packet's TID is above the current temporal cap.
    TemporalFiltered,
}

/// The verdict on one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Decision {
    /// Forward the packet.
    Forward {
        /// This packet starts a new spatial layer (the first keyframe after a switch, a start, a
        /// resume or a reset): the munger's source changes here.
        switched_spatial: bool,
    },
    /// Drop the packet.
    Drop(DropCause),
}

impl Decision {
    /// True for [`Decision::Forward`].
    #[cfg(test)]
    pub(crate) fn is_forward(self) -> bool {
        matches!(self, Decision::Forward { .. })
    }
}

/// Layer selection state of one subscribed video track. See the module documentation for the
/// rules. A fixed-size value: no allocation, ever.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct LayerSelector {
    target: Option<Layer>,
    current: Option<Layer>,
}

impl LayerSelector {
    /// A selector with no target (paused) and nothing current.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Sets what the subscriber should receive; `None` pauses the track (nothing is forwarded,
    /// and resuming waits for a keyframe). Takes effect at the next safe point: see the module
    /// documentation.
    pub(crate) fn set_target(&mut self, target: Option<Layer>) {
        self.target = target;
        if target.is_none() {
            self.current = None;
        }
    }

    /// The layer the subscriber should receive, `None` when paused.
    pub(crate) fn target(&self) -> Option<Layer> {
        self.target
    }

    /// The layer being forwarded (spatial layer and temporal cap), `None` before the first
    /// keyframe, while paused and after [`LayerSelector::reset`].
    pub(crate) fn current(&self) -> Option<Layer> {
        self.current
    }

    /// The spatial layer whose keyframe is needed, so the caller can request one (PLI,
    /// RFC 4585 §6.3.1) on that layer's RTP stream: `Some` while the target's spatial layer is
    /// not the one being forwarded (including when nothing is), `None` when paused or in place.
    pub(crate) fn waiting_for_keyframe(&self) -> Option<u8> {
        let target = self.target?;
        match self.current {
            Some(current) if current.spatial == target.spatial => None,
            _ => Some(target.spatial),
        }
    }

    /// Forgets the current layer (the source went away or restarted): nothing is forwarded until
    /// a keyframe of the target layer starts. The target is kept.
    pub(crate) fn reset(&mut self) {
        self.current = None;
    }

    /// Decides whether to forward one packet, updating the current layer. Packets are given in
    /// arrival order, for all spatial layers of the track.
    pub(crate) fn select(&mut self, p: &PacketInfo) -> Decision {
        let Some(target) = self.target else {
            self.current = None;
            return Decision::Drop(DropCause::Paused);
        };
        let current = match self.current {
            Some(current) if current.spatial == p.spatial => current,
            current => {
                // Another layer than the forwarded one (or none is forwarded): only a keyframe
                // start of the target layer lets it in, and it becomes current as a whole.
                if p.keyframe
                    && p.spatial == target.spatial
                    && p.tid.unwrap_or(0) <= target.temporal
                {
                    self.current = Some(target);
                    return Decision::Forward {
                        switched_spatial: true,
                    };
                }
                return Decision::Drop(match current {
                    Some(_) => DropCause::OtherSpatial,
                    None => DropCause::WaitingKeyframe,
                });
            }
        };
        let cap = if p.frame_start || p.keyframe {
            next_temporal_cap(current.temporal, target.temporal, p)
        } else {
            current.temporal
        };
        self.current = Some(Layer {
            spatial: current.spatial,
            temporal: cap,
        });
        match p.tid {
            Some(tid) if tid > cap => Decision::Drop(DropCause::TemporalFiltered),
            _ => Decision::Forward {
                switched_spatial: false,
            },
        }
    }
}

/// The temporal cap after the frame that `p` starts, moving from `cap` towards `want`
/// (RFC 7741 §4.2; the reasoning is in the module documentation).
fn next_temporal_cap(cap: u8, want: u8, p: &PacketInfo) -> u8 {
    if want <= cap {
        return want;
    }
    if p.keyframe || p.tid.is_none() {
        return want;
    }
    match cap.checked_add(1) {
        Some(next) if p.layer_sync && p.tid == Some(next) => next,
        _ => cap,
    }
}

#[cfg(test)]
#[path = "selector_tests.rs"]
mod tests;
