//! A participant's data channels (RFC 8831): what the room's relay writes to them, and
//! how str0m's channel events become [`ParticipantEvent`]s. Part of [`Participant`]:
//! every write is followed by a time advance and full drain, like every other mutation.

use std::time::Instant;

use str0m::channel::{ChannelId, Reliability};

use super::{Outbox, Participant, ParticipantEvent};
use crate::data::{ChannelKey, WriteResult};

/// Data channels a participant keeps track of; str0m's SCTP allows thousands of
/// streams, the relay keeps at most its own limit per session and closes the rest.
pub(super) const MAX_TRACKED: usize = 64;

impl Participant {
    /// Write `text` (UTF-8) on data channel `channel` unless its SCTP send buffer would
    /// then hold more than `limit` bytes (str0m `Channel::buffered_amount`).
    pub fn write_channel(
        &mut self,
        now: Instant,
        channel: ChannelKey,
        text: &str,
        limit: usize,
        out: &mut Outbox,
    ) -> WriteResult {
        let Some(id) = self.channel_id(channel) else {
            return WriteResult::Gone;
        };
        let Some(mut ch) = self.rtc.channel(id) else {
            return WriteResult::Gone;
        };
        if ch.buffered_amount().saturating_add(text.len()) > limit {
            return WriteResult::Full;
        }
        let result = match ch.write(false, text.as_bytes()) {
            Ok(true) => WriteResult::Written,
            Ok(false) => WriteResult::Full,
            Err(_) => WriteResult::Gone,
        };
        self.advance(now, out);
        result
    }

    /// Close data channel `channel` (an SCTP stream reset; the client sees `close`).
    pub fn close_channel(&mut self, now: Instant, channel: ChannelKey, out: &mut Outbox) {
        if let Some(id) = self.channel_id(channel) {
            self.channels.remove(&id);
            self.rtc.direct_api().close_data_channel(id);
            self.advance(now, out);
        }
    }

    fn channel_id(&self, channel: ChannelKey) -> Option<ChannelId> {
        self.channels
            .iter()
            .find(|(_, k)| **k == channel)
            .map(|(id, _)| *id)
    }

    /// str0m's `Event::ChannelOpen`.
    pub(super) fn on_channel_open(&mut self, id: ChannelId, label: String, out: &mut Outbox) {
        let Some(sid) = self.rtc.direct_api().sctp_stream_id_by_channel_id(id) else {
            return;
        };
        if self.channels.len() >= MAX_TRACKED && !self.channels.contains_key(&id) {
            // Past any relay limit: refuse it without tracking it.
            self.rtc.direct_api().close_data_channel(id);
            return;
        }
        let channel = ChannelKey(sid);
        self.channels.insert(id, channel);
        let reliable = self
            .rtc
            .channel(id)
            .and_then(|c| {
                c.config()
                    .map(|c| c.ordered && c.reliability == Reliability::Reliable)
            })
            .unwrap_or(true);
        let e = ParticipantEvent::ChannelOpen {
            channel,
            label,
            reliable,
        };
        out.events.push_back((self.id, e));
    }

    /// str0m's `Event::ChannelData`.
    pub(super) fn on_channel_data(
        &mut self,
        id: ChannelId,
        binary: bool,
        data: Vec<u8>,
        out: &mut Outbox,
    ) {
        if let Some(&channel) = self.channels.get(&id) {
            let e = ParticipantEvent::ChannelData {
                channel,
                binary,
                data,
            };
            out.events.push_back((self.id, e));
        }
    }

    /// str0m's `Event::ChannelClose`.
    pub(super) fn on_channel_close(&mut self, id: ChannelId, out: &mut Outbox) {
        if let Some(channel) = self.channels.remove(&id) {
            out.events
                .push_back((self.id, ParticipantEvent::ChannelClose { channel }));
        }
    }
}
