//! `Room::handle_join`: a WHIP or WHEP offer becomes a participant of the room (offer
//! checks, admission, str0m's acceptance, the answer), and the codec check of a viewer's
//! offer against what the room's publishers send.

use str0m::media::MediaKind;

use super::*;

impl Room {
    /// Add a publisher (WHIP) or subscriber (WHEP) from its SDP offer, as the identity
    /// in `opts` (see `docs/conference.md`).
    ///
    /// Errors: `Malformed` (400) for unparseable SDP; `Unacceptable` (422) naming the
    /// line for a wrong direction, no common codec, or too many tracks; `RoomFull` (429)
    /// past a room limit. A WHIP session of an identity that already publishes that
    /// source replaces the old session, which ends.
    pub fn handle_join(
        &mut self,
        now: Instant,
        kind: SessionKind,
        offer: &str,
        opts: &JoinOptions,
    ) -> Result<Joined, JoinError> {
        self.used = true;
        // The API checked already; this keeps every other caller (tests, tools) bounded.
        crate::room::offer_limits::check(offer)
            .map_err(|e| JoinError::Unacceptable(e.to_string()))?;
        let lines = signaling::inspect_offer(offer);
        signaling::validate(kind, &lines)?;
        let admission = self.conference.admit(kind, opts)?;
        let video: Vec<Codec> = match kind {
            SessionKind::Publisher => signaling::publisher_video_codec(&lines)
                .into_iter()
                .collect(),
            SessionKind::Subscriber => {
                self.check_viewer_codecs(&lines)?;
                VIDEO_CODECS.to_vec()
            }
        };
        let placement = match kind {
            SessionKind::Publisher => Placement::Home,
            // A data-only session stays in the room (cheap, not a viewer); one with
            // media and channels is placed like any viewer (its shard relays them).
            SessionKind::Subscriber
                if signaling::has_data(&lines)
                    && !lines.iter().any(|l| l.is_media() && !l.port_zero) =>
            {
                Placement::Home
            }
            SessionKind::Subscriber => self.shards.place(self.home_subscribers()),
        };
        let (rtc, ufrag, answer) = self.accept(now, kind, placement, &video, offer)?;
        let id = ParticipantId(self.next_id);
        self.next_id += 1;
        let session = SessionId::random();
        let mut p = Participant::new(
            now,
            id,
            session.clone(),
            kind,
            ufrag.clone(),
            rtc,
            &mut self.home.out,
        );
        p.keep_offer(offer);
        let medias = self.add_tracks(id, kind, &lines, &mut p);
        let mids: Vec<Mid> = medias.iter().map(|(m, _)| *m).collect();
        let etag = self.record(id, &session, (kind, &ufrag, offer), placement, &mids, p);
        info!(room = %self.name, session = %session, kind = kind.as_str(), identity = %admission.identity, "session joined");
        self.conference.add(
            now,
            &self.forwarder,
            id,
            kind,
            admission.identity,
            admission.name,
            opts,
            medias,
        );
        for old in admission.replaces {
            self.close_member(old, EndReason::Replaced);
        }
        self.reassign(now);
        self.process(now);
        Ok(Joined {
            session,
            answer,
            etag,
        })
    }

    /// str0m's side of a join: ICE credentials whose ufrag routes to where the session
    /// will live (the room, or a shard), an `Rtc` (with a bandwidth estimator for a
    /// subscriber), and the SDP answer. Returns the `Rtc`, the ufrag and the answer.
    fn accept(
        &self,
        now: Instant,
        kind: SessionKind,
        placement: Placement,
        video: &[Codec],
        offer: &str,
    ) -> Result<(str0m::Rtc, String, String), JoinError> {
        let key = match placement {
            Placement::Shard(i) => self.shards.key(i).unwrap_or(self.key),
            _ => self.key,
        };
        let creds = signaling::ice_creds(&key.ufrag_prefix());
        let ufrag = creds.ufrag.clone();
        let bwe = (kind == SessionKind::Subscriber).then_some(INITIAL_ESTIMATE);
        let mut rtc = signaling::build_rtc(now, creds, &self.candidates, video, bwe);
        let answer = signaling::accept_offer(&mut rtc, offer)?;
        Ok((rtc, ufrag, answer))
    }

    /// Register the session's m-lines with the forwarder: a publisher's as published
    /// tracks (with their RIDs and negotiated codecs), a subscriber's as subscribed
    /// tracks (fresh random sequence numbers and timestamps). Returns each m-line's MID
    /// and kind.
    fn add_tracks(
        &mut self,
        id: ParticipantId,
        kind: SessionKind,
        lines: &[signaling::OfferLine],
        p: &mut Participant,
    ) -> Vec<(Mid, MediaKind)> {
        let mids: Vec<(Mid, Vec<Rid>)> = lines
            .iter()
            .filter(|l| l.is_media() && !l.port_zero)
            .filter_map(|l| {
                let rids = l.rids.iter().map(|r| Rid::from(r.as_str())).collect();
                l.mid.as_deref().map(|m| (Mid::from(m), rids))
            })
            .collect();
        let only_mids: Vec<Mid> = mids.iter().map(|(m, _)| *m).collect();
        if kind == SessionKind::Subscriber {
            p.prepare_forwarding(&only_mids);
        }
        let medias = p.medias(&only_mids);
        for &(mid, media_kind) in &medias {
            let rids = mids
                .iter()
                .find(|(m, _)| *m == mid)
                .map(|(_, r)| r.as_slice())
                .unwrap_or(&[]);
            let track = TrackRef {
                participant: id,
                mid,
            };
            match kind {
                SessionKind::Publisher => {
                    self.forwarder
                        .add_published(track, media_kind, p.negotiated_params(mid), rids);
                }
                SessionKind::Subscriber => {
                    self.forwarder.add_subscribed(
                        track,
                        media_kind,
                        rand::random(),
                        rand::random(),
                    );
                }
            }
        }
        medias
    }

    /// Keep the new session: its indexes, ICE tags, pending count and ledger, and the
    /// participant itself where `placement` puts it (a shard also gets the payload types
    /// negotiated on `mids`). Returns the session's ETag.
    fn record(
        &mut self,
        id: ParticipantId,
        session: &SessionId,
        (kind, ufrag, offer): (SessionKind, &str, &str),
        placement: Placement,
        mids: &[Mid],
        p: Participant,
    ) -> String {
        self.by_session.insert(session.clone(), id);
        // Parsed once, by the participant's `keep_offer`.
        let client_ufrag = p.client_ufrag().map(str::to_owned);
        let etag = format!("\"{ufrag}\"");
        let tags = SessionTags {
            etag: etag.clone(),
            client_ufrag,
            first_media: signaling::first_media(offer),
            restarts: RestartBudget::default(),
        };
        self.tags.insert(session.clone(), tags);
        self.pending.insert(id, self.meters.pending_session());
        if let Placement::Shard(i) = placement {
            let pts = p.pt_matcher(mids);
            self.shards.insert(i, p, pts);
            metrics::session_sharded();
        } else {
            self.home.insert(p);
        }
        self.ledgers
            .insert(id, SessionLedger::open(kind, &self.meters.live_sessions));
        etag
    }

    /// A WHEP offer must accept at least one video codec the room's publishers send, if
    /// it has video lines and the room has video (422 otherwise, naming the line).
    fn check_viewer_codecs(&self, lines: &[signaling::OfferLine]) -> Result<(), JoinError> {
        let sent: Vec<Codec> = self
            .forwarder
            .published_tracks()
            .iter()
            .filter_map(|(t, _)| self.forwarder.published_params(*t))
            .flatten()
            .map(|p| p.spec().codec)
            .filter(|c| VIDEO_CODECS.contains(c))
            .collect();
        if sent.is_empty() {
            return Ok(());
        }
        let refused = lines.iter().find(|l| {
            l.kind == LineKind::Video && !l.port_zero && !l.codecs.iter().any(|c| sent.contains(c))
        });
        match refused {
            Some(l) => {
                let mut names: Vec<String> = sent.iter().map(|c| c.to_string()).collect();
                names.sort();
                names.dedup();
                Err(JoinError::Unacceptable(format!(
                    "line {}: the room's publishers send {}, which this offer does not accept",
                    l.line,
                    names.join(", ")
                )))
            }
            None => Ok(()),
        }
    }
}
