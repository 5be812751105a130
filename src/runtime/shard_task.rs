//! The task that drives one [`Shard`]: it reads the clock, awaits the room's commands
//! and routed packets, its sessions' datagrams and its next timeout, sends what the
//! shard hands back and passes the shard's reports to the room. It makes no decisions.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::net::Transmit;
use tokio::sync::mpsc;
use tracing::info;

use super::room_task::send_all;
use super::{RoomContext, DATAGRAM_QUEUE};
use crate::forwarder::ForwardRtp;
use crate::metrics::{self, DropReason, Meters};
use crate::net::{Datagram, RoomKey, RoomTable, TcpPaths};
use crate::shard::{drive, FromShard, Shard, ShardSink, ToShard};

/// Batches of routed packets buffered per shard. A shard this far behind is overloaded:
/// the room drops (and counts, `shard_busy`) rather than queue without bound.
const RTP_QUEUE: usize = 1024;
/// Messages handled per wake-up before looking at the other inputs again.
const BATCH: usize = 64;
/// Sleep when no session has a timer (a shard with no session).
const IDLE: Duration = Duration::from_secs(3600);

/// The room's handle to one of its shards.
pub(crate) struct ShardLink {
    key: RoomKey,
    control: mpsc::UnboundedSender<ToShard>,
    rtp: mpsc::Sender<Vec<ForwardRtp>>,
}

impl ShardLink {
    /// The shard's key (the prefix of its sessions' ufrags).
    pub(crate) fn key(&self) -> RoomKey {
        self.key
    }

    /// Whether the shard's task is gone while its room still holds this link: it panicked.
    pub(crate) fn is_lost(&self) -> bool {
        self.control.is_closed()
    }

    /// Deliver the room's commands and routed packets. Commands are never dropped;
    /// packets are dropped and counted when the shard is `RTP_QUEUE` batches behind.
    pub(crate) fn deliver(
        &self,
        commands: Vec<ToShard>,
        packets: Vec<ForwardRtp>,
        meters: &Meters,
    ) {
        for cmd in commands {
            // Fails only once the shard task is gone (the process is shutting down).
            let _ = self.control.send(cmd);
        }
        if !packets.is_empty() {
            if let Err(mpsc::error::TrySendError::Full(lost)) = self.rtp.try_send(packets) {
                meters.dropped_many(DropReason::ShardBusy, lost.len() as u64);
            }
        }
    }
}

/// What a room needs to start shards: the demux table (which hands out their keys).
#[derive(Clone)]
pub(crate) struct ShardFactory {
    /// The demux's table, where a shard's datagram queue is registered under its key.
    pub table: Arc<RoomTable>,
    /// Socket and metrics.
    pub ctx: RoomContext,
}

impl ShardFactory {
    /// Start a shard of room `room` whose reports go to `reports`.
    pub(crate) fn spawn(&self, room: &str, reports: mpsc::UnboundedSender<FromShard>) -> ShardLink {
        let (control_tx, control_rx) = mpsc::unbounded_channel();
        let (rtp_tx, rtp_rx) = mpsc::channel(RTP_QUEUE);
        let (dgram_tx, dgram_rx) = mpsc::channel(DATAGRAM_QUEUE);
        let key = self.table.register(dgram_tx);
        let inputs = Inputs {
            control: control_rx,
            rtp: rtp_rx,
            datagrams: dgram_rx,
        };
        metrics::shards_gauge().increment(1.0);
        let live = Live {
            table: Arc::clone(&self.table),
            key,
        };
        let (ctx, room) = (self.ctx.clone(), room.to_owned());
        let table = Arc::clone(&self.table);
        tokio::spawn(async move {
            let _live = live;
            run(&room, key, (ctx, table), inputs, reports).await;
        });
        ShardLink {
            key,
            control: control_tx,
            rtp: rtp_tx,
        }
    }
}

/// What woke the shard up.
enum Wake {
    Commands,
    Packets,
    Datagrams,
    Timeout,
}

/// A shard task's registrations, made when it is spawned: its key in the demux table
/// and its count in the shards gauge, undone when the task ends, however it ends.
struct Live {
    table: Arc<RoomTable>,
    key: RoomKey,
}

impl Drop for Live {
    fn drop(&mut self) {
        self.table.remove(self.key);
        metrics::shards_gauge().decrement(1.0);
    }
}

struct Inputs {
    control: mpsc::UnboundedReceiver<ToShard>,
    rtp: mpsc::Receiver<Vec<ForwardRtp>>,
    datagrams: mpsc::Receiver<Datagram>,
}

/// Run the shard until its room drops the link (the room closed), then end what is
/// left.
async fn run(
    room: &str,
    key: RoomKey,
    (ctx, table): (RoomContext, Arc<RoomTable>),
    mut inputs: Inputs,
    reports: mpsc::UnboundedSender<FromShard>,
) {
    let mut shard = Shard::new(key, ctx.meters.clone());
    info!(room = %room, shard = key.0, "subscriber shard started");
    let mut commands = Vec::with_capacity(BATCH);
    let mut packets = Vec::with_capacity(BATCH);
    let mut datagrams = Vec::with_capacity(BATCH);
    let mut io = Io {
        table,
        key,
        outgoing: Vec::new(),
        tcp: TcpPaths::default(),
        reports,
    };
    let mut next_timeout = None;
    loop {
        let deadline = next_timeout.unwrap_or_else(|| Instant::now() + IDLE);
        let wake = tokio::select! {
            biased;
            n = inputs.control.recv_many(&mut commands, BATCH) => (n, Wake::Commands),
            n = inputs.rtp.recv_many(&mut packets, BATCH) => (n, Wake::Packets),
            n = inputs.datagrams.recv_many(&mut datagrams, BATCH) => (n, Wake::Datagrams),
            _ = tokio::time::sleep_until(deadline.into()) => (1, Wake::Timeout),
        };
        if wake.0 == 0 {
            break;
        }
        // From here to the end of the iteration this task has the thread.
        let busy = metrics::TaskTimer::start();
        let now = Instant::now();
        match wake.1 {
            Wake::Commands => shard.handle_commands(now, commands.drain(..)),
            Wake::Packets => shard.handle_rtp(now, packets.drain(..).flatten()),
            Wake::Datagrams => {
                datagrams.iter().for_each(|d| io.tcp.learn(d));
                shard.handle_datagrams(now, datagrams.drain(..));
            }
            Wake::Timeout => shard.handle_timeout(now),
        }
        next_timeout = drive(&mut shard, &mut io);
        send_all(&mut io.outgoing, &mut io.tcp, &ctx.endpoint, &ctx.meters).await;
        busy.stop(&ctx.meters.shard_cpu);
    }
    shard.close_all(Instant::now());
    drive(&mut shard, &mut io);
    send_all(&mut io.outgoing, &mut io.tcp, &ctx.endpoint, &ctx.meters).await;
    info!(room = %room, shard = key.0, "subscriber shard stopped");
}

/// The shard task's side of the drive protocol ([`crate::shard::drive`]): binds source
/// addresses in the demux, passes reports to the room at once, and keeps datagrams for
/// one `sendmmsg(2)` batch at the end of the wake-up.
struct Io {
    table: Arc<RoomTable>,
    key: RoomKey,
    outgoing: Vec<Transmit>,
    /// The ICE-TCP connections of this shard's sessions.
    tcp: TcpPaths,
    reports: mpsc::UnboundedSender<FromShard>,
}

impl ShardSink for Io {
    fn transmit(&mut self, t: Transmit) {
        self.outgoing.push(t);
    }

    fn bind(&mut self, source: SocketAddr) {
        self.table.bind(source, self.key);
    }

    fn report(&mut self, report: FromShard) {
        // Fails only once the room is gone; the link then closes too.
        let _ = self.reports.send(report);
    }
}
