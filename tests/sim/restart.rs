//! ICE restarts in the simulation (RFC 8445 §9, RFC 9725 §4.3.2): the room restarts a
//! peer's session with new client credentials, as a PATCH would, and the peer takes the
//! server's new credentials, optionally from a new address (its old host candidate
//! invalidated, as when a phone leaves Wi-Fi); or a peer moves without a restart.

use std::net::SocketAddr;
use std::time::Instant;

use str0m::{Candidate, IceCreds, Input};
use switchboard::room::IceRestarted;

use super::peer::Peer;
use super::Sim;

impl Sim {
    /// Restart ICE on peer `index`'s session; with `move_to`, the peer continues from
    /// that address. Returns the room's answer (panics if the room refused).
    pub fn restart_ice(&mut self, index: usize, move_to: Option<SocketAddr>) -> IceRestarted {
        let client = IceCreds {
            ufrag: format!("re{index}{}", self.peers[index].name.len()),
            pass: "restartedpassword0123456789".to_owned(),
        };
        let session = self.resources[index].clone();
        let restarted = self
            .room
            .handle_ice_restart(self.now, &session, client.clone())
            .unwrap_or_else(|e| panic!("peer {index}: ICE restart refused: {e}"));
        self.pump();
        let now = self.now;
        self.peers[index].restart_ice(now, client, restarted.local.clone(), move_to);
        restarted
    }
}

impl Sim {
    /// Peer `index` moves to `addr` without an ICE restart (NAT rebinding, a new
    /// network): its old host candidate is gone, its credentials stay.
    pub fn move_peer(&mut self, index: usize, addr: SocketAddr) {
        let now = self.now;
        self.peers[index].move_to(now, addr);
    }
}

impl Peer {
    fn move_to(&mut self, now: Instant, addr: SocketAddr) {
        let old = Candidate::host(self.addr, "udp").expect("old candidate");
        self.client.rtc().direct_api().invalidate_candidate(&old);
        let new = Candidate::host(addr, "udp").expect("new candidate");
        self.client.rtc().add_local_candidate(new);
        self.addr = addr;
        self.client
            .handle_input(Input::Timeout(now))
            .unwrap_or_else(|e| panic!("{}: timeout after moving: {e}", self.name));
        self.drain_now(now);
    }

    /// Take new ICE credentials (`local` ours, `remote` the server's) and, with
    /// `move_to`, a new address in place of the current one.
    fn restart_ice(
        &mut self,
        now: Instant,
        local: IceCreds,
        remote: IceCreds,
        move_to: Option<SocketAddr>,
    ) {
        let mut api = self.client.rtc().direct_api();
        api.set_local_ice_credentials(local);
        api.set_remote_ice_credentials(remote);
        if let Some(addr) = move_to {
            let old = Candidate::host(self.addr, "udp").expect("old candidate");
            api.invalidate_candidate(&old);
            let new = Candidate::host(addr, "udp").expect("new candidate");
            self.client.rtc().add_local_candidate(new);
            self.addr = addr;
        }
        self.client
            .handle_input(Input::Timeout(now))
            .unwrap_or_else(|e| panic!("{}: timeout after restart: {e}", self.name));
        self.drain_now(now);
    }
}
