//! A published track and its simulcast layers (RFC 8853): per layer the RID, measured
//! bitrate (per VP8/VP9 temporal layer too), liveness and keyframe-request throttle.
//! Knows nothing of subscribers beyond their keys; never touches an `Rtc`.

use std::time::{Duration, Instant};

use str0m::format::PayloadParams;
use str0m::media::{MediaKind, Pt, Rid};
use str0m::rtp::Vp8Descriptor;

use super::keyframe::KeyframeThrottle;
use super::selector::{Layer, PacketInfo};
use super::{codec_kind, SubscriptionKey, KEYFRAME_MIN_INTERVAL};
use crate::bwe::meter::BitrateMeter;
use crate::codec::resolution::{h264_sps_resolution, vp8_keyframe_resolution, Resolution};
use crate::codec::{is_keyframe_start, parse_vp8_descriptor, temporal_id, CodecKind};

/// A layer that sent nothing for this long is treated as unavailable (a browser drops its
/// top simulcast layer when CPU or uplink is short) until it sends again. Matches the
/// 1.5 s pause threshold of str0m's receive streams.
pub(crate) const LAYER_INACTIVE_AFTER: Duration = Duration::from_millis(1500);
/// Highest VP8/VP9 temporal layer id tracked (L1T3).
pub(crate) const MAX_TID: u8 = 2;
/// Bytes a forwarded packet costs on the wire beyond its payload: RTP header with
/// extensions (~20), SRTP auth tag (10–16), UDP/IP (28). Counted so allocation matches
/// what the link carries.
const RTP_OVERHEAD: usize = 60;
/// Window of the bitrate meters.
const METER_WINDOW: Duration = Duration::from_secs(1);

/// One simulcast layer (one RTP stream) of a published track.
pub(crate) struct PublishedLayer {
    /// Its RID (`None` without simulcast).
    pub rid: Option<Rid>,
    /// Bitrate of each temporal layer id (index = TID; TID-less codecs count in 0).
    temporal: [BitrateMeter; MAX_TID as usize + 1],
    /// Highest TID seen, if the codec carries temporal layers.
    pub max_tid: Option<u8>,
    /// Coalesces keyframe requests to this layer.
    pub keyframes: KeyframeThrottle,
    /// When to re-ask for a keyframe if someone still waits.
    pub retry_at: Option<Instant>,
    /// Frame size of the last keyframe that carried one (VP8 keyframe header, H.264 SPS).
    pub resolution: Option<Resolution>,
    last_packet: Option<Instant>,
}

impl PublishedLayer {
    fn new(rid: Option<Rid>) -> Self {
        PublishedLayer {
            rid,
            temporal: std::array::from_fn(|_| BitrateMeter::new(METER_WINDOW)),
            max_tid: None,
            keyframes: KeyframeThrottle::new(KEYFRAME_MIN_INTERVAL),
            retry_at: None,
            resolution: None,
            last_packet: None,
        }
    }

    /// Whether the layer sent within [`LAYER_INACTIVE_AFTER`].
    pub(crate) fn is_active(&self, now: Instant) -> bool {
        self.last_packet
            .is_some_and(|t| now.saturating_duration_since(t) < LAYER_INACTIVE_AFTER)
    }

    /// Bitrate in bit/s of temporal layers `0..=tid` over the last second.
    pub(crate) fn bitrate_up_to(&mut self, now: Instant, tid: u8) -> u64 {
        let top = tid.min(MAX_TID) as usize;
        self.temporal[..=top]
            .iter_mut()
            .map(|m| m.bitrate(now))
            .sum()
    }

    /// Bitrate in bit/s of the whole layer.
    pub(crate) fn bitrate(&mut self, now: Instant) -> u64 {
        self.bitrate_up_to(now, MAX_TID)
    }
}

/// A publisher's m-line.
pub(crate) struct PublishedTrack {
    /// Audio or video.
    pub kind: MediaKind,
    /// Negotiated payload types.
    pub params: Vec<PayloadParams>,
    /// Layers; the index is the layer's stable spatial id (the offer's RID order).
    pub layers: Vec<PublishedLayer>,
    /// Subscribed tracks fed by this one.
    pub subscribers: Vec<SubscriptionKey>,
    /// Bitrate rank of each layer (index = spatial id; 0 = lowest), as of the last
    /// [`PublishedTrack::ladder`].
    pub ranks: Vec<u8>,
    /// Muted by the room API: packets are counted and dropped.
    pub muted: bool,
}

impl PublishedTrack {
    /// A track with the offer's RIDs (empty: no simulcast).
    pub(crate) fn new(kind: MediaKind, params: Vec<PayloadParams>, rids: &[Rid]) -> Self {
        let layers = if rids.is_empty() {
            vec![PublishedLayer::new(None)]
        } else {
            rids.iter().map(|r| PublishedLayer::new(Some(*r))).collect()
        };
        PublishedTrack {
            kind,
            params,
            ranks: (0..layers.len() as u8).collect(),
            layers,
            subscribers: Vec::new(),
            muted: false,
        }
    }

    /// The codec a payload type carries.
    pub(crate) fn codec_of(&self, pt: Pt) -> CodecKind {
        self.params
            .iter()
            .find(|p| p.pt() == pt)
            .map(|p| codec_kind(p.spec().codec))
            .unwrap_or(CodecKind::Other)
    }

    /// The spatial id of `rid`; a RID the offer did not list gets a new layer (bounded:
    /// RFC 8853 senders use a handful).
    pub(crate) fn layer_of(&mut self, rid: Option<Rid>) -> Option<u8> {
        if let Some(i) = self.layers.iter().position(|l| l.rid == rid) {
            return Some(i as u8);
        }
        if self.layers.len() >= 8 {
            return None;
        }
        self.layers.push(PublishedLayer::new(rid));
        self.ranks.push(self.ranks.len() as u8);
        Some((self.layers.len() - 1) as u8)
    }

    /// Inspect and meter one packet of layer `spatial`: what the selector needs to know,
    /// the VP8 payload descriptor (str0m's, which can build rewrite patches), and whether this packet made the layer active (it had not sent for
    /// [`LAYER_INACTIVE_AFTER`], or never): subscribers should be reallocated.
    pub(crate) fn observe(
        &mut self,
        now: Instant,
        spatial: u8,
        pt: Pt,
        payload: &[u8],
    ) -> (PacketInfo, Option<Vp8Descriptor>, bool) {
        let codec = self.codec_of(pt);
        let vp8 = (codec == CodecKind::Vp8)
            .then(|| Vp8Descriptor::parse(payload).ok())
            .flatten();
        let is_video = self.kind == MediaKind::Video;
        let keyframe = is_video && is_keyframe_start(codec, payload);
        let (tid, frame_start, layer_sync) = match codec {
            CodecKind::Vp8 => match parse_vp8_descriptor(payload) {
                Some(d) => (
                    d.tid,
                    d.start_of_partition && d.partition_id == 0,
                    d.layer_sync,
                ),
                None => (None, false, false),
            },
            CodecKind::Vp9 => (temporal_id(codec, payload), keyframe, false),
            // Without temporal ids every packet may start a frame as far as temporal
            // switching is concerned; spatial switches only need `keyframe`.
            _ => (None, true, false),
        };
        let mut activated = false;
        if let Some(layer) = self.layers.get_mut(spatial as usize) {
            activated = !layer.is_active(now);
            let t = tid.unwrap_or(0).min(MAX_TID);
            layer.temporal[t as usize].record(now, payload.len() + RTP_OVERHEAD);
            if let Some(tid) = tid {
                layer.max_tid = Some(layer.max_tid.map_or(tid, |m| m.max(tid)).min(MAX_TID));
            }
            layer.last_packet = Some(now);
            if keyframe {
                layer.keyframes.on_keyframe(now);
                layer.retry_at = None;
                let size = match codec {
                    CodecKind::Vp8 => vp8_keyframe_resolution(payload),
                    CodecKind::H264 => h264_sps_resolution(payload),
                    _ => None,
                };
                if size.is_some() {
                    layer.resolution = size;
                }
            }
        }
        let info = PacketInfo {
            spatial,
            tid,
            keyframe,
            frame_start,
            layer_sync,
        };
        (info, vp8, activated)
    }

    /// The layers a subscriber can be given, ascending by measured bitrate: for each
    /// active spatial layer (ranked by bitrate, not by RID name: browsers say `q/h/f`,
    /// OBS says `"0"` for its highest), its temporal steps with cumulative bitrates.
    /// `max_spatial_rank` caps how many spatial layers (from the lowest) are offered;
    /// `max_size` (width, height in pixels, `None` per side for no cap) keeps only layers
    /// whose last keyframe fits. The lowest layer always stays.
    pub(crate) fn ladder(
        &mut self,
        now: Instant,
        max_spatial_rank: Option<usize>,
        max_size: (Option<u16>, Option<u16>),
    ) -> Vec<(Layer, u64)> {
        let mut ranked: Vec<(u8, u64)> = self
            .layers
            .iter_mut()
            .enumerate()
            .filter(|(_, l)| l.is_active(now))
            .map(|(i, l)| (i as u8, l.bitrate(now)))
            .collect();
        ranked.sort_by_key(|&(i, bps)| (bps, i));
        for (rank, (spatial, _)) in ranked.iter().enumerate() {
            if let Some(r) = self.ranks.get_mut(*spatial as usize) {
                *r = rank as u8;
            }
        }
        if let Some(max) = max_spatial_rank {
            ranked.truncate(max.saturating_add(1));
        }
        if max_size != (None, None) {
            let fits = |r: Option<Resolution>| {
                r.is_some_and(|r| {
                    max_size.0.is_none_or(|w| r.width <= w)
                        && max_size.1.is_none_or(|h| r.height <= h)
                })
            };
            let lowest = ranked.first().copied();
            let layers = &self.layers;
            ranked.retain(|(s, _)| fits(layers[*s as usize].resolution));
            // The lowest layer stays whatever its size: a capped viewer still sees
            // something.
            if let Some(l) = lowest {
                if ranked.first() != Some(&l) {
                    ranked.insert(0, l);
                }
            }
        }
        let mut out = Vec::new();
        for (rank, (spatial, bps)) in ranked.into_iter().enumerate() {
            let layer = &mut self.layers[spatial as usize];
            match layer.max_tid {
                Some(max_tid) => {
                    // Temporal steps (RFC 7741 §4.2 TID) refine the ladder only below the
                    // lowest spatial layer, as the last steps before pausing: a higher
                    // resolution at a fraction of the frames looks worse than the layer
                    // below at full rate, and climbing back up temporally must wait for a
                    // layer-sync frame. Dropped frames leave no PictureID gap: each
                    // subscriber's `vp8::Vp8Rewriter` renumbers what is forwarded.
                    let first = if rank == 0 { 0 } else { max_tid };
                    for temporal in first..=max_tid {
                        let bps = layer.bitrate_up_to(now, temporal);
                        out.push((Layer { spatial, temporal }, bps));
                    }
                }
                None => out.push((
                    Layer {
                        spatial,
                        temporal: MAX_TID,
                    },
                    bps,
                )),
            }
        }
        // A ladder must ascend: a starting layer can briefly out-measure a higher one.
        let mut floor = 0;
        for (_, bps) in out.iter_mut() {
            *bps = (*bps).max(floor);
            floor = *bps;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use str0m::format::{Codec, CodecSpec, FormatParams, PayloadParams};
    use str0m::media::Frequency;

    use super::*;

    /// A VP8 keyframe payload (1-byte descriptor, S=1) of `w`×`h` (RFC 6386 §9.1).
    fn vp8_key(w: u16, h: u16) -> Vec<u8> {
        let mut p = vec![0x10, 0x00, 0x00, 0x00, 0x9d, 0x01, 0x2a];
        p.extend_from_slice(&w.to_le_bytes());
        p.extend_from_slice(&h.to_le_bytes());
        p.resize(900, 0xab);
        p
    }

    #[test]
    fn a_size_cap_keeps_the_layers_that_fit_and_always_the_lowest() {
        let pt = Pt::from(96);
        let spec = CodecSpec {
            codec: Codec::Vp8,
            clock_rate: Frequency::NINETY_KHZ,
            channels: None,
            format: FormatParams::default(),
        };
        let rids: Vec<Rid> = ["q", "h", "f"].into_iter().map(Rid::from).collect();
        let mut t = PublishedTrack::new(
            MediaKind::Video,
            vec![PayloadParams::new(pt, None, spec)],
            &rids,
        );
        let t0 = Instant::now();
        let sizes = [(320, 180), (640, 360), (1280, 720)];
        // Keyframes carry the size; more packets for bigger layers make them dearer.
        for (i, (w, h)) in sizes.into_iter().enumerate() {
            for n in 0..(1 + i * 3) {
                t.observe(
                    t0 + Duration::from_millis(n as u64),
                    i as u8,
                    pt,
                    &vp8_key(w, h),
                );
            }
        }
        let now = t0 + Duration::from_millis(100);
        let spatials = |t: &mut PublishedTrack, cap| {
            let mut v: Vec<u8> = t
                .ladder(now, None, cap)
                .iter()
                .map(|(l, _)| l.spatial)
                .collect();
            v.dedup();
            v
        };
        assert_eq!(spatials(&mut t, (None, None)), vec![0, 1, 2]);
        assert_eq!(spatials(&mut t, (Some(640), None)), vec![0, 1]);
        assert_eq!(spatials(&mut t, (None, Some(360))), vec![0, 1]);
        assert_eq!(spatials(&mut t, (Some(1280), Some(720))), vec![0, 1, 2]);
        assert_eq!(
            spatials(&mut t, (Some(100), Some(100))),
            vec![0],
            "the lowest stays"
        );
        assert_eq!(
            t.layers[2].resolution,
            Some(Resolution {
                width: 1280,
                height: 720
            })
        );
    }
}
