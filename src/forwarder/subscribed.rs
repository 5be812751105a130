//! A subscribed track: one subscriber's m-line and what feeds it — the layer selector
//! (which simulcast layer and temporal cap), the RTP munger (continuous sequence numbers
//! and timestamps), and the payload type map. Decides per packet: forward or drop, with
//! a reason.

use std::sync::Arc;
use std::time::Instant;

use str0m::media::{MediaKind, Mid, Pt};
use str0m::rtp::Vp8Descriptor;

use super::munger::RtpMunger;
use super::selector::{Decision, DropCause, Layer, LayerSelector, PacketInfo};
use super::vp8::Vp8Rewriter;
use super::{ForwardRtp, InboundRtp};
use crate::ids::ParticipantId;
use crate::ids::TrackRef;
use crate::metrics::{DropReason, Meters};

/// One subscriber's m-line.
pub(crate) struct SubscribedTrack {
    /// The subscriber.
    pub subscriber: ParticipantId,
    /// Its m-line.
    pub mid: Mid,
    /// Audio or video.
    pub kind: MediaKind,
    /// The published track feeding it.
    pub source: Option<TrackRef>,
    /// Publisher payload type → this subscriber's payload type.
    pub pt_map: Vec<(Pt, Pt)>,
    /// Transport up.
    pub connected: bool,
    /// Which layer is forwarded (video).
    pub selector: LayerSelector,
    /// The viewer's cap: at most this many spatial layers above the lowest (0 = lowest
    /// only); `None` = no cap.
    pub max_spatial_rank: Option<usize>,
    /// The viewer's size cap in pixels (`maxWidth`, `maxHeight`; `None` per side: no cap):
    /// only layers whose last keyframe fits are offered, the lowest always.
    pub max_size: (Option<u16>, Option<u16>),
    /// A layer chosen by hand (the WHEP `layer` extension); overrides the allocator.
    pub manual: Option<Layer>,
    /// Spatial switches up and down (for stats).
    pub switches: (u64, u64),
    munger: RtpMunger,
    vp8: Vp8Rewriter,
}

impl SubscribedTrack {
    /// A new, unfed track. `initial_seq`/`initial_ts`: random starting points
    /// (RFC 3550 §5.1).
    pub(crate) fn new(track: TrackRef, kind: MediaKind, initial_seq: u16, initial_ts: u32) -> Self {
        let clock_rate = if kind == MediaKind::Audio {
            48_000
        } else {
            90_000
        };
        SubscribedTrack {
            subscriber: track.participant,
            mid: track.mid,
            kind,
            source: None,
            pt_map: Vec::new(),
            connected: false,
            selector: LayerSelector::new(),
            max_spatial_rank: None,
            max_size: (None, None),
            manual: None,
            switches: (0, 0),
            munger: RtpMunger::new(clock_rate, initial_seq, initial_ts),
            vp8: Vp8Rewriter::new(),
        }
    }

    /// Feed from `source` with `pt_map`; video waits for a keyframe of the new source.
    pub(crate) fn bind(&mut self, source: TrackRef, pt_map: Vec<(Pt, Pt)>) {
        self.source = Some(source);
        self.pt_map = pt_map;
        self.selector.reset();
    }

    /// The source went away.
    pub(crate) fn unbind(&mut self) {
        self.source = None;
        self.pt_map.clear();
        self.selector.reset();
    }

    /// Set the layer to forward (`None`: pause; counted).
    pub(crate) fn set_target(&mut self, target: Option<Layer>, meters: &Meters) {
        let target = self.manual.or(target);
        if target.is_none() && self.selector.target().is_some() {
            meters.pauses.increment(1);
        }
        self.selector.set_target(target);
    }

    /// Decide on one packet; on forward, the rewritten packet. `vp8`: the packet's VP8
    /// payload descriptor, if it is VP8. `ranks[spatial id]` is each layer's bitrate rank
    /// (for counting switches up and down).
    pub(crate) fn route(
        &mut self,
        now: Instant,
        packet: &InboundRtp,
        info: &PacketInfo,
        vp8: Option<&Vp8Descriptor>,
        ranks: &[u8],
        meters: &Meters,
    ) -> Result<ForwardRtp, DropReason> {
        if !self.connected {
            return Err(DropReason::NotConnected);
        }
        if self.kind == MediaKind::Video {
            let before = self.selector.current();
            match self.selector.select(info) {
                Decision::Forward { switched_spatial } => {
                    if switched_spatial {
                        if let (Some(b), Some(a)) = (before, self.selector.current()) {
                            if a.spatial != b.spatial {
                                // Direction by bitrate rank, not by id: OBS's "0" is
                                // its highest layer.
                                let up =
                                    ranks.get(a.spatial as usize) > ranks.get(b.spatial as usize);
                                if up {
                                    self.switches.0 += 1;
                                    meters.switches_up.increment(1);
                                } else {
                                    self.switches.1 += 1;
                                    meters.switches_down.increment(1);
                                }
                            }
                        }
                    }
                }
                Decision::Drop(cause) => {
                    // Keep the subscriber's sequence numbers contiguous over packets of
                    // the stream it is on that we chose not to send.
                    if self.munger.source() == Some(packet.ssrc) {
                        self.munger.drop_packet(packet.ssrc, packet.seq);
                    }
                    if let Some(d) = vp8 {
                        self.vp8.drop_packet(packet.ssrc, d);
                    }
                    return Err(match cause {
                        DropCause::Paused => DropReason::Paused,
                        DropCause::OtherSpatial => DropReason::OtherLayer,
                        DropCause::WaitingKeyframe => DropReason::WaitingKeyframe,
                        DropCause::TemporalFiltered => DropReason::TemporalFiltered,
                    });
                }
            }
        }
        let Some(&(_, pt)) = self.pt_map.iter().find(|(p, _)| *p == packet.pt) else {
            return Err(DropReason::CodecMismatch);
        };
        let vp8 = match vp8 {
            Some(d) => self
                .vp8
                .forward(packet.ssrc, d, info.keyframe)
                .map_err(|()| DropReason::TooOld)?,
            None => None,
        };
        let m = self
            .munger
            .forward(now, packet.ssrc, packet.seq, packet.ts)
            .ok_or(DropReason::TooOld)?;
        Ok(ForwardRtp {
            subscriber: self.subscriber,
            mid: self.mid,
            pt,
            seq: m.seq,
            ts: m.ts,
            marker: packet.marker,
            nackable: self.kind == MediaKind::Video,
            wallclock: packet.arrival,
            payload: Arc::clone(&packet.payload),
            ext: packet.ext.clone(),
            vp8,
        })
    }
}
