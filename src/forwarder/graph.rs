//! Changes to the track graph: published and subscribed tracks come and go, and a
//! subscribed track (a WHEP slot) is bound to a published track, re-bound to another
//! without renegotiation, or left empty. Cold path: joins, leaves and slot changes.

use std::time::Instant;

use str0m::format::PayloadParams;
use str0m::media::{MediaKind, Pt, Rid};

use super::published::PublishedTrack;
use super::subscribed::SubscribedTrack;
use super::{Forwarder, ForwarderOutput, SubscriptionKey};
use crate::ids::ParticipantId;
use crate::ids::TrackRef;

impl Forwarder {
    // ---- graph changes ----

    /// A publisher's m-line with its negotiated payload types and simulcast RIDs in the
    /// offer's order (empty without simulcast).
    pub fn add_published(
        &mut self,
        track: TrackRef,
        kind: MediaKind,
        params: Vec<PayloadParams>,
        rids: &[Rid],
    ) {
        self.published
            .insert(track, PublishedTrack::new(kind, params, rids));
    }

    /// A subscriber's m-line, not yet fed by any source. `initial_seq`/`initial_ts` seed
    /// its outgoing sequence number and timestamp spaces (random, RFC 3550 §5.1).
    pub fn add_subscribed(
        &mut self,
        track: TrackRef,
        kind: MediaKind,
        initial_seq: u16,
        initial_ts: u32,
    ) -> SubscriptionKey {
        let key = SubscriptionKey(self.subscribed.insert(SubscribedTrack::new(
            track,
            kind,
            initial_seq,
            initial_ts,
        )));
        self.by_subscriber.insert(track, key);
        self.bwe.entry(track.participant).or_default();
        key
    }

    /// Every published track with its kind, in a stable order (participant, mid).
    pub fn published_tracks(&self) -> Vec<(TrackRef, MediaKind)> {
        let mut v: Vec<(TrackRef, MediaKind)> =
            self.published.iter().map(|(t, p)| (*t, p.kind)).collect();
        v.sort_by(|a, b| {
            (a.0.participant, a.0.mid.to_string()).cmp(&(b.0.participant, b.0.mid.to_string()))
        });
        v
    }

    /// A published track's negotiated payload types.
    pub fn published_params(&self, track: TrackRef) -> Option<&[PayloadParams]> {
        self.published.get(&track).map(|p| p.params.as_slice())
    }

    /// A published track's simulcast RIDs, lowest id first (empty without simulcast).
    pub fn published_rids(&self, track: TrackRef) -> Vec<Rid> {
        self.published
            .get(&track)
            .map(|p| p.layers.iter().filter_map(|l| l.rid).collect())
            .unwrap_or_default()
    }

    /// Whether a published track is muted (its packets are not forwarded).
    pub fn is_muted(&self, track: TrackRef) -> bool {
        self.published.get(&track).is_some_and(|p| p.muted)
    }

    /// Mute or unmute a published track (the room API). Returns `false` for an unknown
    /// track. Unmuting a video track asks its subscribers' layers for a keyframe through
    /// the usual path (the selectors wait for one).
    pub fn set_muted(
        &mut self,
        now: Instant,
        track: TrackRef,
        muted: bool,
        out: &mut Vec<ForwarderOutput>,
    ) -> bool {
        let Some(p) = self.published.get_mut(&track) else {
            return false;
        };
        if p.muted == muted {
            return true;
        }
        p.muted = muted;
        let keys = p.subscribers.clone();
        let mut subscribers = Vec::new();
        for key in keys {
            if let Some(sub) = self.subscribed.get_mut(key.0) {
                sub.selector.reset();
                subscribers.push(sub.subscriber);
            }
        }
        subscribers.dedup();
        for s in subscribers {
            self.reallocate(now, s, out);
        }
        true
    }

    /// The subscribed track of a subscriber's m-line.
    pub fn key_of(&self, track: TrackRef) -> Option<SubscriptionKey> {
        self.by_subscriber.get(&track).copied()
    }

    /// The published track feeding a subscribed track, if any.
    pub fn source_of(&self, key: SubscriptionKey) -> Option<TrackRef> {
        self.subscribed.get(key.0).and_then(|s| s.source)
    }

    /// Feed subscribed track `key` from another source (`Some((source, pt_map))`), or
    /// from none: a WHEP slot re-mapped without renegotiation. The track keeps its
    /// outgoing SSRC; its munger keeps sequence numbers and timestamps continuous and
    /// video waits for (and asks for) a keyframe of the new source.
    pub fn rebind(
        &mut self,
        now: Instant,
        key: SubscriptionKey,
        source: Option<(TrackRef, Vec<(Pt, Pt)>)>,
        out: &mut Vec<ForwarderOutput>,
    ) {
        let Some(sub) = self.subscribed.get_mut(key.0) else {
            return;
        };
        let old = sub.source;
        if old == source.as_ref().map(|(s, _)| *s) {
            return;
        }
        let subscriber = sub.subscriber;
        sub.unbind();
        if let Some(track) = old.and_then(|o| self.published.get_mut(&o)) {
            track.subscribers.retain(|k| *k != key);
        }
        match source {
            Some((source, pt_map)) => self.bind(now, key, source, pt_map, out),
            None => self.reallocate(now, subscriber, out),
        }
    }

    /// Feed subscribed track `key` from `source`, mapping payload types with `pt_map`
    /// (publisher PT → subscriber PT).
    pub fn bind(
        &mut self,
        now: Instant,
        key: SubscriptionKey,
        source: TrackRef,
        pt_map: Vec<(Pt, Pt)>,
        out: &mut Vec<ForwarderOutput>,
    ) {
        let Some(track) = self.published.get_mut(&source) else {
            return;
        };
        let Some(sub) = self.subscribed.get_mut(key.0) else {
            return;
        };
        sub.bind(source, pt_map);
        track.subscribers.push(key);
        let subscriber = sub.subscriber;
        self.reallocate(now, subscriber, out);
    }

    /// Remove everything of a participant: its published tracks (their subscribers are
    /// unbound) and its subscribed tracks.
    pub fn remove_participant(&mut self, participant: ParticipantId) {
        let gone: Vec<TrackRef> = self
            .published
            .keys()
            .filter(|t| t.participant == participant)
            .copied()
            .collect();
        for t in gone {
            if let Some(track) = self.published.remove(&t) {
                for key in track.subscribers {
                    if let Some(sub) = self.subscribed.get_mut(key.0) {
                        sub.unbind();
                    }
                }
            }
        }
        let subs: Vec<TrackRef> = self
            .by_subscriber
            .keys()
            .filter(|t| t.participant == participant)
            .copied()
            .collect();
        for t in subs {
            if let Some(key) = self.by_subscriber.remove(&t) {
                let sub = self.subscribed.remove(key.0);
                if let Some(track) = sub.source.and_then(|s| self.published.get_mut(&s)) {
                    track.subscribers.retain(|k| *k != key);
                }
            }
        }
        self.bwe.remove(&participant);
    }

    /// Remove one subscribed track (a recorder's, when its source is gone): it stops
    /// being fed and its state is dropped. Nothing happens for an unknown track.
    pub fn remove_subscribed(&mut self, track: TrackRef) {
        let Some(key) = self.by_subscriber.remove(&track) else {
            return;
        };
        let Some(sub) = self.subscribed.try_remove(key.0) else {
            return;
        };
        if let Some(source) = sub.source.and_then(|s| self.published.get_mut(&s)) {
            source.subscribers.retain(|k| *k != key);
        }
    }

    /// The layer a subscribed track forwards now (`None`: nothing yet, or audio).
    pub fn current_layer(
        &mut self,
        now: Instant,
        key: SubscriptionKey,
    ) -> Option<super::preferences::LayerView> {
        let sub = self.subscribed.get(key.0)?;
        let source = sub.source.and_then(|s| self.published.get_mut(&s));
        super::preferences::track_stats(now, sub, source).current_layer
    }
}
