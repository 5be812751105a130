//! How str0m's events of one participant's `Rtc` become the room's
//! [`ParticipantEvent`]s: connection state, received RTP (matched to its MID and RID
//! through a bounded SSRC cache), bandwidth estimates by kind, loss reports and keyframe
//! requests. Part of [`Participant`]; never mutates the `Rtc` beyond the stream lookups
//! the `direct_api` needs, so the single-mutation invariant of the parent holds.

use str0m::bwe::{Bitrate, BweKind};
use str0m::media::{KeyframeRequestKind, MediaKind};
use str0m::{Event, IceConnectionState};
use tracing::debug;

use super::{EndReason, Outbox, Participant, ParticipantEvent, MAX_SSRCS};
use crate::bwe::EstimateKind;

impl Participant {
    /// Translate one drained `Event` into the outbox (str0m `Output::Event`).
    pub(super) fn on_event(&mut self, event: Event, out: &mut Outbox) {
        match event {
            Event::IceConnectionStateChange(
                IceConnectionState::Connected | IceConnectionState::Completed,
            ) => {
                if self.connected {
                    // ICE is back after a restart (RFC 9725 §4.3.2) on a transport that
                    // was up: what was sent while the old path died is lost, so each
                    // forwarded m-line asks for a keyframe (as the client's PLI would,
                    // seconds later); the forwarder skips audio and throttles.
                    for &mid in &self.forwarding_mids {
                        let kind = KeyframeRequestKind::Pli;
                        let e = ParticipantEvent::KeyframeRequest { mid, kind };
                        out.events.push_back((self.id, e));
                    }
                }
                self.ice_connected.get_or_insert(self.last_now);
            }
            Event::Connected => {
                self.connected = true;
                let ice = self.ice_connected.unwrap_or(self.last_now);
                debug!(
                    participant = self.id.0,
                    session = %self.session,
                    kind = self.kind.as_str(),
                    ice_ms = ice.saturating_duration_since(self.created).as_millis() as u64,
                    dtls_ms = self.last_now.saturating_duration_since(ice).as_millis() as u64,
                    "transport connected"
                );
                out.events.push_back((self.id, ParticipantEvent::Connected));
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                self.end(EndReason::Timeout);
            }
            Event::Closed => self.end(EndReason::Closed),
            Event::RtpPacket(packet) => {
                let ssrc = packet.header.ssrc;
                let found = match self.ssrcs.get(&ssrc) {
                    Some(v) => Some(*v),
                    None => {
                        let v = self
                            .rtc
                            .direct_api()
                            .stream_rx(&ssrc)
                            .map(|s| (s.mid(), s.rid()));
                        if let Some(v) = v {
                            if self.ssrcs.len() >= MAX_SSRCS {
                                // Keep the SSRCs str0m still receives; a publisher that
                                // rotates SSRCs cannot grow this cache without bound.
                                let mut api = self.rtc.direct_api();
                                self.ssrcs.retain(|s, _| api.stream_rx(s).is_some());
                            }
                            if self.ssrcs.len() < MAX_SSRCS {
                                self.ssrcs.insert(ssrc, v);
                            }
                        }
                        v
                    }
                };
                if let Some((mid, rid)) = found {
                    out.events
                        .push_back((self.id, ParticipantEvent::Rtp { mid, rid, packet }));
                }
            }
            Event::EgressBitrateEstimate(BweKind::Twcc {
                estimate,
                can_probe: true,
            }) => {
                self.feedback_estimates = true;
                let e = ParticipantEvent::Estimate(estimate, EstimateKind::Twcc);
                out.events.push_back((self.id, e));
            }
            Event::EgressBitrateEstimate(BweKind::Remb { estimate, .. }) => {
                self.feedback_estimates = true;
                let e = ParticipantEvent::Estimate(estimate, EstimateKind::Remb);
                out.events.push_back((self.id, e));
            }
            Event::MediaEgressStats(stats) => {
                let is_video = self
                    .rtc
                    .media(stats.mid)
                    .is_some_and(|m| m.kind() == MediaKind::Video);
                if let (true, Some(loss)) = (is_video, stats.loss) {
                    out.events
                        .push_back((self.id, ParticipantEvent::LossReport(loss)));
                    if !self.feedback_estimates {
                        let sent = self.sent.bitrate(self.last_write);
                        let bps = self.loss.on_report(loss, sent, self.probe_bps);
                        let e = ParticipantEvent::Estimate(Bitrate::bps(bps), EstimateKind::Loss);
                        out.events.push_back((self.id, e));
                    }
                }
            }
            Event::KeyframeRequest(req) => out.events.push_back((
                self.id,
                ParticipantEvent::KeyframeRequest {
                    mid: req.mid,
                    kind: req.kind,
                },
            )),
            Event::ChannelOpen(id, label) => self.on_channel_open(id, label, out),
            Event::ChannelData(d) => self.on_channel_data(d.id, d.binary, d.data, out),
            Event::ChannelClose(id) => self.on_channel_close(id, out),
            _ => {}
        }
    }
}
