//! ICE restarts of the room's sessions (RFC 8445 §9), as WHIP and WHEP ask for them: a
//! PATCH whose trickle fragment carries new client credentials (RFC 9725 §4.3.2). The
//! room picks the server's new credentials (a ufrag that routes to where the session
//! lives, its own or a shard's), has the session's owner apply them, and answers.

use std::time::{Duration, Instant};

use str0m::IceCreds;

use super::{signaling, Room};
use crate::ids::SessionId;
use crate::session::RestartError;

/// Why an ICE restart was not made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IceRestartError {
    /// No such live session (404).
    #[error("no such session")]
    NotFound,
    /// The session refused the new credentials and goes on as before (422).
    #[error("{0}")]
    Refused(String),
    /// The session made [`MAX_RESTARTS_PER_WINDOW`] restarts within
    /// [`RESTART_WINDOW`]; the next is allowed after this wait (429 with
    /// `Retry-After`).
    #[error("too many ICE restarts: at most {MAX_RESTARTS_PER_WINDOW} in {RESTART_WINDOW:?}")]
    TooSoon(Duration),
}

/// ICE restarts one session may ask for within one [`RESTART_WINDOW`]. Each costs an
/// SDP parse and a new ICE agent state in the room's task; a client that recovers
/// with backoff (as `docs/conference.md` describes) needs far fewer.
pub const MAX_RESTARTS_PER_WINDOW: u32 = 6;
/// The window [`MAX_RESTARTS_PER_WINDOW`] counts in, from a session's first restart
/// after the previous window ended.
pub const RESTART_WINDOW: Duration = Duration::from_secs(10);

/// How many ICE restarts a session made in its current window.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestartBudget {
    window_start: Option<Instant>,
    used: u32,
}

impl RestartBudget {
    /// Counts one restart at `now` (monotonic). Errors with the wait until the next is
    /// allowed when the window's budget is spent (nothing is counted then).
    pub fn take(&mut self, now: Instant) -> Result<(), Duration> {
        match self.window_start {
            Some(start) if now < start + RESTART_WINDOW => {
                if self.used >= MAX_RESTARTS_PER_WINDOW {
                    return Err(start + RESTART_WINDOW - now);
                }
                self.used += 1;
            }
            _ => {
                self.window_start = Some(now);
                self.used = 1;
            }
        }
        Ok(())
    }
}

/// What an ICE restart answers: the server's side of the new ICE session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IceRestarted {
    /// The server's new credentials.
    pub local: IceCreds,
    /// The server's candidates, as `a=candidate` values (RFC 8839 §5.1).
    pub candidates: Vec<String>,
    /// The session's new entity tag, quotes included.
    pub etag: String,
    /// The first m-line of the session's offer with port 9, and its `a=mid` value:
    /// where an RFC 8840 fragment puts the candidates.
    pub media: Option<(String, String)>,
}

impl Room {
    /// Restart ICE on `session` with the client's new credentials `remote`. The
    /// session, its streams, slots and resource URL stay. The session's entity tag
    /// becomes the new server ufrag, quoted, and the client ufrag a later PATCH is
    /// compared with becomes `remote`'s. A session in a shard is answered at once and
    /// restarted by its shard.
    ///
    /// Errors: [`IceRestartError::NotFound`] when there is no such live session,
    /// [`IceRestartError::Refused`] when the session refused (it goes on unchanged),
    /// [`IceRestartError::TooSoon`] past [`MAX_RESTARTS_PER_WINDOW`] (unchanged too).
    pub fn handle_ice_restart(
        &mut self,
        now: Instant,
        session: &SessionId,
        remote: IceCreds,
    ) -> Result<IceRestarted, IceRestartError> {
        let id = *self
            .by_session
            .get(session)
            .ok_or(IceRestartError::NotFound)?;
        let key = match self.shards.get(id) {
            Some(r) if r.ended.is_none() => self.shards.key(r.shard),
            None if self.home.contains(id) => Some(self.key),
            _ => None,
        };
        let key = key.ok_or(IceRestartError::NotFound)?;
        self.tags
            .get_mut(session)
            .ok_or(IceRestartError::NotFound)?
            .restarts
            .take(now)
            .map_err(IceRestartError::TooSoon)?;
        let local = signaling::ice_creds(&key.ufrag_prefix());
        let applied = if self.home.contains(id) {
            self.home
                .restart_ice(now, id, local.clone(), remote.clone())
        } else if self.shards.restart_ice(id, local.clone(), remote.clone()) {
            Ok(())
        } else {
            Err(RestartError::Gone)
        };
        match applied {
            Ok(()) => {}
            Err(RestartError::Gone) => return Err(IceRestartError::NotFound),
            Err(e) => {
                self.process(now);
                return Err(IceRestartError::Refused(e.to_string()));
            }
        }
        let tags = self
            .tags
            .get_mut(session)
            .ok_or(IceRestartError::NotFound)?;
        tags.etag = format!("\"{}\"", local.ufrag);
        tags.client_ufrag = Some(remote.ufrag);
        let etag = tags.etag.clone();
        let media = tags.first_media.clone();
        let candidates = self
            .candidates
            .to_str0m()
            .iter()
            .map(|c| c.to_sdp_string())
            .collect();
        self.process(now);
        Ok(IceRestarted {
            local,
            candidates,
            etag,
            media,
        })
    }
}
