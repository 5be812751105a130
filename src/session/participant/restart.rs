//! A participant's ICE restart (RFC 8445 §9; for WHIP and WHEP, RFC 9725 §4.3.2). Part
//! of [`Participant`]: the restart, then time advances and the `Rtc` is drained, like
//! every other mutation.
//!
//! str0m flushes its ICE agent's candidate pairs (RFC 8445 §9: "all previous states of
//! the data streams ... flushed") only when it sees new remote credentials in an SDP
//! offer; setting credentials through its direct API keeps the old pairs, and an
//! ICE-lite agent, which sends no checks of its own, would keep sending on the old,
//! higher-priority pair for ever. So the restart replays the session's own offer with
//! the client's new credentials (the media, BUNDLE group, DTLS fingerprint and SCTP
//! are the offer's, unchanged), discards str0m's answer, and sets the server's new
//! credentials (whose ufrag routes to this session's owner) in place of the random
//! ones str0m picked.
//!
//! A client that moves without a restart (NAT rebinding, a phone changing networks with
//! an agent that keeps its credentials) nominates a path from its new address with the
//! same credentials; str0m would keep the old pair there too. [`Participant::follow_move`]
//! flushes the pairs the same way, with throwaway client credentials, and puts both
//! sides' real ones back, so the nominating check makes the new path the send path.

use std::time::{Duration, Instant};

use str0m::change::SdpOffer;
use str0m::IceCreds;

use super::{Outbox, Participant};

/// At most one [`Participant::follow_move`] per this interval: each replays the offer
/// (an SDP parse), and a client alternating addresses must not cost more.
const MOVE_INTERVAL: Duration = Duration::from_secs(1);

/// Why an ICE restart was not applied (the session goes on as before).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestartError {
    /// No such live session (at its owner).
    #[error("no such session")]
    Gone,
    /// The session kept no offer to replay.
    #[error("the session has no offer to restart from")]
    NoOffer,
    /// str0m refused the replayed offer.
    #[error("the restart was refused: {0}")]
    Refused(String),
}

impl Participant {
    /// Keep the offer the session was created from, for [`Participant::restart_ice`].
    pub fn keep_offer(&mut self, offer: &str) {
        let attr = |name: &str| {
            offer
                .lines()
                .find_map(|l| l.trim().strip_prefix(name))
                .map(|v| v.trim().to_owned())
        };
        if let (Some(ufrag), Some(pass)) = (attr("a=ice-ufrag:"), attr("a=ice-pwd:")) {
            self.remote_creds = Some(IceCreds { ufrag, pass });
        }
        self.offer = Some(offer.into());
    }

    /// The client's current ICE ufrag: its offer's `a=ice-ufrag` (see
    /// [`Participant::keep_offer`]), or the one of its last ICE restart.
    pub fn client_ufrag(&self) -> Option<&str> {
        self.remote_creds.as_ref().map(|c| c.ufrag.as_str())
    }

    /// The client nominates a path from a new address without an ICE restart: flush
    /// str0m's candidate pairs, keeping both sides' credentials, so that the check being
    /// handled next makes the new path the send path (module docs). At most once per
    /// [`MOVE_INTERVAL`]; nothing happens without a kept offer.
    pub fn follow_move(&mut self, now: Instant, out: &mut Outbox) {
        if self.last_move.is_some_and(|t| now < t + MOVE_INTERVAL) {
            return;
        }
        let (Some(offer), Some(remote)) = (self.offer.as_deref(), self.remote_creds.clone()) else {
            return;
        };
        self.last_move = Some(now);
        let local = self.rtc.direct_api().local_ice_credentials();
        let replayed = with_credentials(offer, &IceCreds::new());
        let Ok(offer) = SdpOffer::from_sdp_string(&replayed) else {
            return;
        };
        if self.rtc.sdp_api().accept_offer(offer).is_ok() {
            let mut api = self.rtc.direct_api();
            api.set_local_ice_credentials(local);
            api.set_remote_ice_credentials(remote);
        }
        self.advance(now, out);
    }

    /// Restart ICE: the client's new credentials `remote`, the server's new `local` ones.
    /// DTLS, SRTP, the streams and the data channels go on; the send path moves to the
    /// pair the client nominates with the new credentials. Returns the previous server
    /// ufrag; on an error nothing changed.
    pub fn restart_ice(
        &mut self,
        now: Instant,
        local: IceCreds,
        remote: IceCreds,
        out: &mut Outbox,
    ) -> Result<String, RestartError> {
        let offer = self.offer.as_deref().ok_or(RestartError::NoOffer)?;
        let replayed = with_credentials(offer, &remote);
        let offer = SdpOffer::from_sdp_string(&replayed)
            .map_err(|e| RestartError::Refused(e.to_string()))?;
        let result = self.rtc.sdp_api().accept_offer(offer);
        if let Err(e) = result {
            self.advance(now, out);
            return Err(RestartError::Refused(e.to_string()));
        }
        let ufrag = local.ufrag.clone();
        self.rtc.direct_api().set_local_ice_credentials(local);
        self.remote_creds = Some(remote);
        self.advance(now, out);
        Ok(std::mem::replace(&mut self.ufrag, ufrag))
    }
}

/// `offer` with every `a=ice-ufrag` / `a=ice-pwd` line set to `creds`, and its
/// candidates removed (the client's new ones arrive by its checks).
fn with_credentials(offer: &str, creds: &IceCreds) -> String {
    let mut out = String::with_capacity(offer.len());
    for line in offer.lines() {
        let line = line.trim_end();
        if line.starts_with("a=ice-ufrag:") {
            out.push_str(&format!("a=ice-ufrag:{}\r\n", creds.ufrag));
        } else if line.starts_with("a=ice-pwd:") {
            out.push_str(&format!("a=ice-pwd:{}\r\n", creds.pass));
        } else if !line.starts_with("a=candidate:") && !line.starts_with("a=end-of-candidates") {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_replayed_offer_has_the_new_credentials_and_no_candidates() {
        let offer = "v=0\r\na=ice-ufrag:old1\r\na=ice-pwd:oldpasswordoldpassword\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=ice-ufrag:old1\r\na=candidate:1 1 udp 1 192.0.2.1 5000 typ host\r\na=end-of-candidates\r\n";
        let creds = IceCreds {
            ufrag: "new1".into(),
            pass: "newpasswordnewpassword".into(),
        };
        let out = with_credentials(offer, &creds);
        assert_eq!(
            out,
            "v=0\r\na=ice-ufrag:new1\r\na=ice-pwd:newpasswordnewpassword\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=ice-ufrag:new1\r\n"
        );
    }
}
