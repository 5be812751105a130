//! The room actor: the one async task that owns a [`Room`] and does its I/O. It reads
//! the clock, awaits commands, datagrams and the room's next timeout, and sends what the
//! room hands back. It makes no decisions.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tracing::{info, warn};

use super::room::Room;
use super::{Command, RoomContext};
use crate::metrics;
use crate::net::{Datagram, RoomKey, UdpEndpoint};

/// Datagrams handled per wake-up before looking at commands and timers again.
const DATAGRAM_BATCH: usize = 64;
/// A room nobody joins within this time after creation exits.
const IDLE_EXIT: Duration = Duration::from_secs(10);

/// Run the room until it is empty (after at least one command) or its command channel
/// closes.
pub async fn run(
    name: String,
    key: RoomKey,
    ctx: RoomContext,
    mut commands: mpsc::Receiver<Command>,
    mut datagrams: mpsc::Receiver<Datagram>,
) {
    let mut room = Room::new(
        name.clone(),
        key,
        ctx.endpoint.candidates().to_vec(),
        ctx.meters.clone(),
    );
    metrics::rooms_gauge().increment(1.0);
    info!(room = %name, "room opened");
    let idle_deadline = Instant::now() + IDLE_EXIT;
    let mut batch: Vec<Datagram> = Vec::with_capacity(DATAGRAM_BATCH);
    loop {
        let deadline = room.poll_timeout().unwrap_or(idle_deadline);
        tokio::select! {
            biased;
            cmd = commands.recv() => {
                let Some(cmd) = cmd else { break };
                handle_command(&mut room, Instant::now(), cmd);
            }
            n = datagrams.recv_many(&mut batch, DATAGRAM_BATCH) => {
                if n == 0 { break; }
                for d in batch.drain(..) {
                    room.handle_datagram(Instant::now(), d);
                }
            }
            _ = tokio::time::sleep_until(deadline.into()) => {
                room.handle_timeout(Instant::now());
            }
        }
        send_all(&mut room, &ctx.endpoint, &ctx.meters).await;
        // A room that has had a join and is empty again exits at once; a fresh room
        // waits for its first join, up to `IDLE_EXIT`.
        let done = room.ever_joined() || Instant::now() >= idle_deadline;
        if done && room.is_empty() && commands.is_empty() {
            break;
        }
    }
    metrics::rooms_gauge().decrement(1.0);
    info!(room = %name, "room closed");
}

fn handle_command(room: &mut Room, now: Instant, cmd: Command) {
    match cmd {
        Command::Join { kind, offer, reply } => {
            let res = room.handle_join(now, kind, &offer);
            let _ = reply.send(res);
        }
        Command::Leave { session, reply } => {
            let _ = reply.send(room.handle_leave(now, &session));
        }
        Command::SetLayer {
            session,
            mid,
            pref,
            reply,
        } => {
            let _ = reply.send(room.handle_set_layer(now, &session, mid.as_deref(), &pref));
        }
        Command::Stats { session, reply } => {
            let _ = reply.send(room.subscriber_stats(now, &session));
        }
        Command::Exists { session, reply } => {
            let _ = reply.send(room.has_session(&session));
        }
    }
}

async fn send_all(room: &mut Room, endpoint: &Arc<UdpEndpoint>, meters: &metrics::Meters) {
    while let Some(t) = room.poll_transmit() {
        meters.udp_out.increment(1);
        if let Err(e) = endpoint.send(t.destination, &t.contents).await {
            warn!(destination = %t.destination, error = %e, "udp send failed");
        }
    }
}
