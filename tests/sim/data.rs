//! Data channel peers for the simulation: a session whose offer opens data channels
//! (RFC 8831, in-band DCEP) and, when it has no media, only an `m=application` line; what
//! each peer sent and received on them ([`DataLog`]).

use std::net::SocketAddr;
use std::time::Instant;

use str0m::change::SdpPendingOffer;
use str0m::channel::ChannelId;
use str0m::media::{Direction, Mid};
use str0m::{Event, Input};
use switchboard::ids::SessionKind;
use switchboard_kit::peer::{self as kit, ChannelSpec, ClientConfig, OfferSpec, VideoCodecs};

use super::link::LinkConfig;
use super::peer::Peer;
use super::Sim;

/// One message a peer received on a data channel.
#[derive(Debug, Clone)]
pub struct DataIn {
    /// When it arrived.
    pub at: Instant,
    /// The channel's label.
    pub label: String,
    /// The message, parsed.
    pub json: serde_json::Value,
}

/// A peer's data channels and what went over them.
#[derive(Debug, Default)]
pub struct DataLog {
    /// Channels by label, once str0m reports them open.
    pub open: Vec<(ChannelId, String)>,
    /// Channels of the offer, by label (open or not yet).
    pub offered: Vec<(ChannelId, String)>,
    /// Every message received, in order.
    pub got: Vec<DataIn>,
    /// Channels that closed, by label.
    pub closed: Vec<String>,
    /// Messages str0m did not accept for sending (its buffer was full).
    pub unsent: u64,
}

impl DataLog {
    /// Messages received on `label`.
    pub fn on(&self, label: &str) -> impl Iterator<Item = &DataIn> + '_ {
        let label = label.to_owned();
        self.got.iter().filter(move |d| d.label == label)
    }
}

impl Peer {
    /// A WHEP session with only data channels: `channels` as (label, reliable).
    pub fn offer_data(
        now: Instant,
        name: &str,
        addr: SocketAddr,
        links: (LinkConfig, LinkConfig),
        channels: &[(&str, bool)],
        media: bool,
    ) -> (Peer, String, SdpPendingOffer) {
        let spec = OfferSpec {
            audio: u32::from(media),
            video: u32::from(media),
            channels: channels
                .iter()
                .map(|(label, reliable)| ChannelSpec {
                    label: (*label).to_owned(),
                    reliable: *reliable,
                })
                .collect(),
            ..OfferSpec::one_each(Direction::RecvOnly)
        };
        let client = ClientConfig::browser(VideoCodecs::Vp8);
        let made = kit::offer(&client, &spec, addr, now).expect("offer");
        let first = |m: &[Mid]| m.first().copied().unwrap_or_else(Mid::new);
        let mids = (first(&made.audio_mids), first(&made.video_mids));
        let mut peer = Peer::receiver(now, name, addr, links, made.rtc, mids);
        peer.data.offered = made
            .channels
            .iter()
            .zip(channels)
            .map(|(id, (label, _))| (*id, (*label).to_owned()))
            .collect();
        (peer, made.sdp, made.pending)
    }

    /// Send `text` on this peer's open channel `label`. Returns whether str0m took it
    /// (false: not open, or its buffer is full; counted in [`DataLog::unsent`]).
    pub fn send_data(&mut self, now: Instant, label: &str, text: &str) -> bool {
        let Some(id) = self
            .data
            .open
            .iter()
            .find(|(_, l)| l == label)
            .map(|(id, _)| *id)
        else {
            return false;
        };
        let taken = self
            .client
            .rtc()
            .channel(id)
            .is_some_and(|mut c| c.write(false, text.as_bytes()).unwrap_or(false));
        if !taken {
            self.data.unsent += 1;
        }
        self.client
            .handle_input(Input::Timeout(now))
            .unwrap_or_else(|e| panic!("{}: timeout after a data write: {e}", self.name));
        self.drain_now(now);
        taken
    }

    /// A data channel event (the others are the caller's).
    pub(super) fn on_channel_event(&mut self, now: Instant, e: Event) {
        match e {
            Event::ChannelOpen(id, label) => self.data.open.push((id, label)),
            Event::ChannelData(d) => {
                let label = self
                    .data
                    .open
                    .iter()
                    .find(|(id, _)| *id == d.id)
                    .map(|(_, l)| l.clone())
                    .unwrap_or_default();
                let json = serde_json::from_slice(&d.data).unwrap_or(serde_json::Value::Null);
                self.data.got.push(DataIn {
                    at: now,
                    label,
                    json,
                });
            }
            Event::ChannelClose(id) => {
                if let Some(i) = self.data.open.iter().position(|(c, _)| *c == id) {
                    let (_, label) = self.data.open.remove(i);
                    self.data.closed.push(label);
                }
            }
            _ => {}
        }
    }
}

impl Sim {
    /// Join a WHEP session now, as the identity of `name`, with only the data channels
    /// `channels` (label, reliable). Returns its index in [`Sim::peers`].
    pub fn join_data(
        &mut self,
        name: &str,
        channels: &[(&str, bool)],
        up: LinkConfig,
        down: LinkConfig,
    ) -> usize {
        self.join_channels(name, channels, (up, down), false)
    }

    /// Join a WHEP session with one audio and one video slot and `channels`.
    pub fn join_media_data(
        &mut self,
        name: &str,
        channels: &[(&str, bool)],
        up: LinkConfig,
        down: LinkConfig,
    ) -> usize {
        self.join_channels(name, channels, (up, down), true)
    }

    fn join_channels(
        &mut self,
        name: &str,
        channels: &[(&str, bool)],
        links: (LinkConfig, LinkConfig),
        media: bool,
    ) -> usize {
        let addr = self.next_addr();
        let (peer, offer, pending) = Peer::offer_data(self.now, name, addr, links, channels, media);
        self.admit(SessionKind::Subscriber, peer, &offer, pending)
    }
}
