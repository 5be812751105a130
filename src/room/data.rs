//! The room's side of its data channel relay ([`crate::data`]): a session's channel
//! events go in, the relay's deliveries are written to the receivers' channels, and the
//! room's events go out on the reserved topic as well as to the SSE streams.
//!
//! A WHEP session with media and channels may live on a subscriber shard: its channel
//! events come up in the shard's reports like the room's own, and writes to it go down
//! as commands (`ToShard::WriteChannel`); the shard counts them and reports back only
//! what the relay acts on (a full or gone receiver). Data-only sessions always stay in
//! the room (see `join.rs`): they cost little and do not count as viewers.

use std::time::Instant;

use serde_json::value::RawValue;
use tracing::debug;

use super::Room;
use crate::conference::info::{Audience, RoomEvent};
use crate::data::{ChannelKey, DataOutput, Relayed, WriteResult, EVENTS_TOPIC};
use crate::ids::ParticipantId;
use crate::session::ParticipantEvent;

/// Why a server message was not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ServerMessageError {
    /// The topic is the reserved events topic.
    #[error("the topic {EVENTS_TOPIC} is reserved for the room's events")]
    Reserved,
    /// `to` names an identity that is not in the room.
    #[error("\"to\" names an identity that is not in the room")]
    UnknownRecipient,
}

impl Room {
    /// A message from the server (room API) on `topic`: to every identity with the
    /// topic open, or only to those in `to`. `data` is any JSON value. Returns the
    /// receivers.
    ///
    /// Errors: [`ServerMessageError::Reserved`] for [`EVENTS_TOPIC`],
    /// [`ServerMessageError::UnknownRecipient`] when `to` names someone not here.
    pub fn handle_server_message(
        &mut self,
        now: Instant,
        topic: &str,
        data: &RawValue,
        to: Option<&[&str]>,
    ) -> Result<usize, ServerMessageError> {
        if topic == EVENTS_TOPIC {
            return Err(ServerMessageError::Reserved);
        }
        if let Some(to) = to {
            if to
                .iter()
                .any(|id| self.conference.sessions_of(id).is_empty())
            {
                return Err(ServerMessageError::UnknownRecipient);
            }
        }
        let n = self.data.send_from_server(topic, data, to);
        self.deliver_data(now);
        self.process(now);
        Ok(n)
    }

    /// A data channel event of participant `id` (other events are not for here).
    pub(super) fn on_channel_event(
        &mut self,
        now: Instant,
        id: ParticipantId,
        event: ParticipantEvent,
    ) {
        match event {
            ParticipantEvent::ChannelOpen {
                channel,
                label,
                reliable,
            } => {
                let Some(m) = self.conference.member(id) else {
                    return;
                };
                let (who, name) = (m.identity.clone(), m.name.clone());
                if !self
                    .data
                    .handle_open(id, who, name, channel, &label, reliable)
                {
                    self.data_meters.closed(false);
                    self.close_data_channel(now, id, channel);
                }
            }
            ParticipantEvent::ChannelData {
                channel,
                binary,
                data,
            } => {
                let reliable = self.data.is_reliable(id, channel).unwrap_or(true);
                self.data_meters.received(reliable);
                let conference = &self.conference;
                let in_room = |who: &str| !conference.sessions_of(who).is_empty();
                let relayed = self
                    .data
                    .handle_message(now, id, channel, binary, &data, in_room);
                if let Relayed::Refused(why) = relayed {
                    debug!(room = %self.name, participant = id.0, reason = why.as_str(), "data message refused");
                    self.data_meters.refused(why);
                }
                self.deliver_data(now);
            }
            ParticipantEvent::ChannelClose { channel } => self.data.handle_close(id, channel),
            _ => {}
        }
    }

    /// Write everything the relay has queued to the receivers' channels.
    pub(super) fn deliver_data(&mut self, now: Instant) {
        let (reliable_limit, unreliable_limit) = self.data.limits().buffer_limit;
        while let Some(out) = self.data.poll_output() {
            match out {
                DataOutput::Deliver {
                    to,
                    channel,
                    reliable,
                    text,
                } => {
                    let limit = if reliable {
                        reliable_limit
                    } else {
                        unreliable_limit
                    };
                    let result = match self.home.get_mut(to) {
                        Some((p, out)) => p.write_channel(now, channel, &text, limit, out),
                        // Its shard writes, counts, and reports what the relay needs.
                        None if self
                            .shards
                            .write_channel(to, channel, reliable, text, limit) =>
                        {
                            continue
                        }
                        None => WriteResult::Gone,
                    };
                    self.data_meters.written(reliable, result);
                    self.data.handle_write(now, to, channel, result);
                }
                DataOutput::Close { session, channel } => {
                    self.data_meters.closed(true);
                    self.close_data_channel(now, session, channel);
                }
            }
        }
    }

    /// Close data channel `channel` of session `id`, in the room or its shard.
    fn close_data_channel(&mut self, now: Instant, id: ParticipantId, channel: ChannelKey) {
        match self.home.get_mut(id) {
            Some((p, out)) => p.close_channel(now, channel, out),
            None => {
                self.shards.close_channel(id, channel);
            }
        }
    }

    /// Take the conference's new events: for the SSE streams, and on the reserved
    /// topic for sessions that opened it. Returns whether there were any.
    pub(super) fn collect_events(&mut self, now: Instant) -> bool {
        self.notices.extend(self.conference.take_notices());
        let events = self.conference.take_events();
        if events.is_empty() {
            return false;
        }
        for (audience, event) in events {
            if self.data.sessions() > 0 {
                self.relay_event(&audience, &event);
            }
            self.events.push_back((audience, event));
        }
        self.deliver_data(now);
        true
    }

    fn relay_event(&mut self, audience: &Audience, event: &RoomEvent) {
        let wrapped = format!(r#"{{"event":"{}","data":{}}}"#, event.name, event.data);
        let Ok(data) = RawValue::from_string(wrapped) else {
            return;
        };
        match audience {
            Audience::All => {
                self.data.send_from_server(EVENTS_TOPIC, &data, None);
            }
            Audience::Viewer(id) => {
                self.data.send_to_session(*id, EVENTS_TOPIC, &data);
            }
        }
    }
}
