//! VP8 payload descriptor rewriting for one subscribed track (RFC 7741 §4.2).
//!
//! A subscriber sees one VP8 stream while the forwarder switches between simulcast layers
//! (each an encoder of its own, with its own PictureID, TL0PICIDX and KEYIDX counters) and
//! drops whole frames of higher temporal layers. A receiver uses PictureID to find missing
//! frames: Chrome's reference finder holds back every frame after a gap until the missing
//! one arrives or a keyframe comes, so a gap left by a dropped TL2 frame stalls the video.
//! The rewriter makes the three fields continuous over what is really forwarded:
//!
//! * **PictureID** (7 or 15 bits, as the source writes it): consecutive over forwarded
//!   pictures. Every picture of the current source that is dropped shifts the later ones
//!   down by one.
//! * **TL0PICIDX** (8 bits): continues by one from the last forwarded base-layer picture.
//!   Base-layer (TID 0) pictures are never dropped by temporal filtering, so only a source
//!   change or a keyframe after a pause re-bases it.
//! * **KEYIDX** (5 bits): re-based with the other two, so a new source's key index does not
//!   jump.
//!
//! Every keyframe re-bases all three to "one past the last forwarded": a keyframe is where
//! a switch lands, and re-basing there costs nothing when the stream was contiguous.
//!
//! Output is a [`Vp8Patch`] that str0m applies while serializing the packet, so the shared
//! payload is never copied per subscriber. Sans-IO and clock-free; never panics.

use str0m::rtp::{Vp8Descriptor, Vp8Patch};

/// Pictures remembered to place late (reordered) packets of already forwarded pictures.
const HISTORY: usize = 16;

/// The modulus of the PictureID field of `d`: 2^15 for the 15-bit form (M=1, what
/// browsers send), 2^7 for the short form.
fn pid_modulus(d: &Vp8Descriptor) -> u16 {
    // str0m keeps the field's width and refuses values that do not fit it.
    if d.patch().picture_id(0x80).build().is_ok() {
        0x8000
    } else {
        0x80
    }
}

/// `a - b` modulo `m` (a power of two) as a signed distance in `-m/2..m/2`.
fn pid_diff(a: u16, b: u16, m: u16) -> i32 {
    let d = i32::from(a.wrapping_sub(b) & (m - 1));
    if d >= i32::from(m / 2) {
        d - i32::from(m)
    } else {
        d
    }
}

/// What a packet of the current picture maps to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Mapped {
    pid: u16,
    tl0: u8,
    key_idx: u8,
}

/// Rewrites the VP8 payload descriptors of one subscriber's video m-line. See the module
/// documentation.
#[derive(Debug, Default)]
pub struct Vp8Rewriter {
    /// SSRC of the stream whose packets are being forwarded.
    source: Option<u32>,
    /// Highest input PictureID seen from `source`, and whether that picture was dropped.
    highest: Option<(u16, bool)>,
    /// Output = input − offset, per field (modulo the field's width).
    pid_offset: u16,
    tl0_offset: u8,
    key_offset: u8,
    /// The last values written out.
    last_out: Option<Mapped>,
    /// Recently forwarded pictures: (input PictureID, output values).
    history: [(u16, Mapped); HISTORY],
    history_len: usize,
    history_next: usize,
}

impl Vp8Rewriter {
    /// A rewriter that has forwarded nothing: the first picture keeps its input values.
    pub fn new() -> Self {
        Self::default()
    }

    /// A packet of stream `ssrc` with descriptor `d` is forwarded; `keyframe` when it starts
    /// a keyframe. Returns the patch to apply (`None` when the descriptor carries none of the
    /// fields), or `Err(())` for a late packet of a picture too old to place (drop it: its
    /// output PictureID is unknown).
    #[allow(clippy::result_unit_err)]
    pub fn forward(
        &mut self,
        ssrc: u32,
        d: &Vp8Descriptor,
        keyframe: bool,
    ) -> Result<Option<Vp8Patch>, ()> {
        let Some(pid) = d.picture_id() else {
            // Without a PictureID nothing can be made continuous; keep TL0PICIDX as is.
            return Ok(None);
        };
        let m = pid_modulus(d);
        let new_source = self.source != Some(ssrc);
        let newer = match self.highest {
            None => true,
            Some((h, _)) => new_source || pid_diff(pid, h, m) > 0,
        };
        let mapped = if newer {
            if new_source || keyframe {
                self.rebase(pid, m, d);
            }
            self.source = Some(ssrc);
            self.highest = Some((pid, false));
            let m = Mapped {
                pid: pid.wrapping_sub(self.pid_offset) & (m - 1),
                tl0: d.tl0_pic_idx().unwrap_or(0).wrapping_sub(self.tl0_offset),
                key_idx: d.key_idx().unwrap_or(0).wrapping_sub(self.key_offset) & 0x1f,
            };
            self.remember(pid, m);
            self.last_out = Some(m);
            m
        } else {
            match self.recall(pid) {
                Some(m) => m,
                None => return Err(()),
            }
        };
        let mut b = d.patch().picture_id(mapped.pid & (m - 1));
        if d.tl0_pic_idx().is_some() {
            b = b.tl0_pic_idx(mapped.tl0);
        }
        if d.key_idx().is_some() {
            b = b.key_idx(mapped.key_idx);
        }
        Ok(b.build().ok())
    }

    /// A packet of stream `ssrc` is not forwarded (temporal filtering, pause, another layer
    /// on the way). Only packets of the stream being forwarded matter: the first packet of a
    /// newer picture shifts the PictureIDs after it down by one.
    pub fn drop_packet(&mut self, ssrc: u32, d: &Vp8Descriptor) {
        if self.source != Some(ssrc) {
            return;
        }
        let (Some(pid), Some((h, _))) = (d.picture_id(), self.highest) else {
            return;
        };
        let m = pid_modulus(d);
        if pid_diff(pid, h, m) > 0 {
            // Every picture between the highest and this one was lost or dropped on the
            // way; only this one is known to be dropped here (a lost one may still come).
            self.pid_offset = self.pid_offset.wrapping_add(1) & (m - 1);
            self.highest = Some((pid, true));
        }
    }

    /// Make the picture `pid` (with descriptor `d`) come out one past the last forwarded.
    fn rebase(&mut self, pid: u16, m: u16, d: &Vp8Descriptor) {
        let Some(last) = self.last_out else {
            self.pid_offset = 0;
            self.tl0_offset = 0;
            self.key_offset = 0;
            return;
        };
        let want_pid = last.pid.wrapping_add(1) & (m - 1);
        self.pid_offset = pid.wrapping_sub(want_pid) & (m - 1);
        if let Some(tl0) = d.tl0_pic_idx() {
            self.tl0_offset = tl0.wrapping_sub(last.tl0.wrapping_add(1));
        }
        if let Some(k) = d.key_idx() {
            self.key_offset = k.wrapping_sub(last.key_idx.wrapping_add(1)) & 0x1f;
        }
        self.history_len = 0;
    }

    fn remember(&mut self, pid: u16, m: Mapped) {
        if self.history_len > 0 {
            let last = (self.history_next + HISTORY - 1) % HISTORY;
            if self.history[last].0 == pid {
                return;
            }
        }
        self.history[self.history_next] = (pid, m);
        self.history_next = (self.history_next + 1) % HISTORY;
        self.history_len = (self.history_len + 1).min(HISTORY);
    }

    fn recall(&self, pid: u16) -> Option<Mapped> {
        (0..self.history_len)
            .map(|i| self.history[(self.history_next + HISTORY - 1 - i) % HISTORY])
            .find(|(p, _)| *p == pid)
            .map(|(_, m)| m)
    }
}

#[cfg(test)]
#[path = "vp8_tests.rs"]
mod tests;
