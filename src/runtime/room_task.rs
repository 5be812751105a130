//! The room actor: the one async task that owns a [`Room`] and does its I/O. It reads
//! the clock, awaits commands, datagrams and the room's next timeout, and sends what the
//! room hands back. It makes no decisions.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::net::Transmit;
use tokio::sync::mpsc;
use tracing::info;

use super::shard_task::{ShardFactory, ShardLink};
use super::{Command, EventFeed};
use crate::archive::ArchiveSink;
use crate::conference::info::{Audience, RoomEvent};
use crate::conference::notices::Notice;
use crate::ids::{ParticipantId, SessionKind};
use crate::metrics;
use crate::net::{Datagram, RoomKey, RoomTable, TcpPaths, UdpEndpoint};
use crate::room::{drive, RecordOutput, Room, RoomSink, Selection, ShardDelivery};
use crate::webhook::Webhooks;

/// Datagrams handled per wake-up before looking at commands and timers again.
const DATAGRAM_BATCH: usize = 64;
/// A room nobody joins within this time after creation exits.
const IDLE_EXIT: Duration = Duration::from_secs(10);
/// Room events buffered per event stream; a stream that falls this far behind is
/// closed (its client reconnects and starts from the current state).
const EVENT_QUEUE: usize = 256;

/// What woke the room up.
// Boxing the command would allocate per command; there is one `Wake` at a time.
#[allow(clippy::large_enum_variant)]
enum Wake {
    Command(Command),
    Datagrams,
    Reports,
    Timeout,
}

/// The open event streams of a room's WHEP sessions.
type Listeners = Vec<(ParticipantId, mpsc::Sender<RoomEvent>)>;

/// Run the room until it is empty (after at least one command) or its command channel
/// closes. `shards` starts the room's subscriber shards when it asks for them; they
/// stop when the room does.
pub(crate) async fn run(
    name: String,
    key: RoomKey,
    shards: ShardFactory,
    mut commands: mpsc::Receiver<Command>,
    mut datagrams: mpsc::Receiver<Datagram>,
) {
    let ctx = shards.ctx.clone();
    let mut room = Room::new(
        name.clone(),
        key,
        ctx.candidates(),
        ctx.limits,
        ctx.meters.clone(),
    );
    let mut listeners: Listeners = Vec::new();
    info!(room = %name, "room opened");
    let idle_deadline = Instant::now() + IDLE_EXIT;
    let mut batch: Vec<Datagram> = Vec::with_capacity(DATAGRAM_BATCH);
    let (reports_tx, mut reports_rx) = mpsc::unbounded_channel();
    let mut reports = Vec::with_capacity(DATAGRAM_BATCH);
    let mut io = Io {
        table: Arc::clone(&shards.table),
        key,
        // `None` once a shard is lost (its task panicked).
        links: Vec::new(),
        meters: ctx.meters.clone(),
        outgoing: Vec::new(),
        tcp: TcpPaths::default(),
        events: Vec::new(),
        hooks: Hooks {
            webhooks: ctx.webhooks.clone(),
            room: name.clone(),
            started: false,
        },
        archive: ctx.archive.sink(&name),
    };
    // `--record-all-rooms`: the room records itself from its first join.
    let mut auto_record = ctx.archive.records_all_rooms();
    let mut next_timeout = None;
    loop {
        let deadline = next_timeout.unwrap_or(idle_deadline);
        let wake = tokio::select! {
            biased;
            cmd = commands.recv() => match cmd {
                Some(cmd) => Wake::Command(cmd),
                None => break,
            },
            n = datagrams.recv_many(&mut batch, DATAGRAM_BATCH) => {
                if n == 0 { break; }
                Wake::Datagrams
            }
            _ = reports_rx.recv_many(&mut reports, DATAGRAM_BATCH) => Wake::Reports,
            _ = tokio::time::sleep_until(deadline.into()) => Wake::Timeout,
        };
        // From here to the end of the iteration this task has the thread.
        let busy = metrics::TaskTimer::start();
        let now = Instant::now();
        match wake {
            Wake::Command(cmd) => {
                let viewer = matches!(
                    cmd,
                    Command::Join {
                        kind: SessionKind::Subscriber,
                        ..
                    }
                );
                if viewer && room.wants_shard() {
                    let link = shards.spawn(&name, reports_tx.clone());
                    room.add_shard(link.key());
                    io.links.push(Some(link));
                }
                handle_command(&mut room, now, cmd, &mut io, &mut listeners);
                if auto_record && room.ever_joined() {
                    auto_record = false;
                    record_all(&mut room, now, &ctx.archive, &mut io);
                }
            }
            Wake::Datagrams => {
                batch.iter().for_each(|d| io.tcp.learn(d));
                room.handle_datagrams(now, batch.drain(..));
            }
            Wake::Reports => room.handle_shard_reports(now, reports.drain(..)),
            Wake::Timeout => room.handle_timeout(now),
        }
        for i in 0..io.links.len() {
            if io.links[i].as_ref().is_some_and(ShardLink::is_lost) {
                io.links[i] = None;
                room.handle_shard_lost(now, i);
            }
        }
        next_timeout = drive(&mut room, &mut io);
        send_all(&mut io.outgoing, &mut io.tcp, &ctx.endpoint, &ctx.meters).await;
        fan_out(&room, &mut io.events, &mut listeners);
        busy.stop(&ctx.meters.room_cpu);
        // A room that has had a join and is empty again exits at once; a fresh room
        // waits for its first join, up to `IDLE_EXIT`.
        let done = room.ever_joined() || Instant::now() >= idle_deadline;
        if done && room.is_empty() && commands.is_empty() {
            break;
        }
    }
    // The room's recordings end with it: their last fragments and files complete.
    let now = Instant::now();
    for id in room.recording_ids() {
        let _ = room.handle_stop_recording(now, &id);
    }
    drive(&mut room, &mut io);
    for id in io.archive.open().to_vec() {
        io.archive.end(&id, now);
    }
    if io.hooks.started {
        io.hooks.webhooks.room_finished(&name);
    }
    info!(room = %name, "room closed");
}

/// The room task's side of the drive protocol ([`crate::room::drive`]): binds source
/// addresses in the demux, delivers to the shards at once, and keeps datagrams and
/// events for the end of the wake-up (one `sendmmsg(2)` batch, one fan-out).
struct Io {
    table: Arc<RoomTable>,
    key: RoomKey,
    links: Vec<Option<ShardLink>>,
    meters: metrics::Meters,
    outgoing: Vec<Transmit>,
    /// The ICE-TCP connections of this room's sessions.
    tcp: TcpPaths,
    events: Vec<(Audience, RoomEvent)>,
    hooks: Hooks,
    /// The room's recordings' files.
    archive: ArchiveSink,
}

/// The room's webhooks: `room.started` before its first notice, then every notice.
struct Hooks {
    webhooks: Webhooks,
    room: String,
    /// `room.started` was sent (so `room.finished` is due when the task ends).
    started: bool,
}

impl RoomSink for Io {
    fn event(&mut self, audience: Audience, event: RoomEvent) {
        self.events.push((audience, event));
    }

    fn notice(&mut self, notice: Notice) {
        let h = &mut self.hooks;
        if !h.started {
            h.started = true;
            h.webhooks.room_started(&h.room);
        }
        h.webhooks.notice(&h.room, &notice);
    }

    fn transmit(&mut self, t: Transmit) {
        self.outgoing.push(t);
    }

    fn bind(&mut self, source: SocketAddr) {
        self.table.bind(source, self.key);
    }

    fn deliver(&mut self, d: ShardDelivery) {
        if let Some(Some(link)) = self.links.get(d.shard) {
            link.deliver(d.commands, d.packets, &self.meters);
        }
    }

    fn record(&mut self, output: RecordOutput) {
        self.archive.record(output);
    }
}

fn handle_command(
    room: &mut Room,
    now: Instant,
    cmd: Command,
    io: &mut Io,
    listeners: &mut Listeners,
) {
    match cmd {
        Command::Join {
            kind,
            offer,
            opts,
            reply,
        } => {
            let res = room.handle_join(now, kind, &offer, &opts);
            let _ = reply.send(res);
        }
        Command::Preferences {
            session,
            prefs,
            caps,
            reply,
        } => {
            let _ = reply.send(room.handle_preferences(now, &session, &prefs, &caps));
        }
        Command::Events { session, reply } => {
            // Events queued before this stream opened are already in its start state.
            drive(room, io);
            fan_out(room, &mut io.events, listeners);
            let feed = room.event_start(&session).map(|start| {
                let (tx, rx) = mpsc::channel(EVENT_QUEUE);
                listeners.push((start.viewer, tx));
                EventFeed {
                    identity: start.identity,
                    start: start.events,
                    events: rx,
                }
            });
            let _ = reply.send(feed);
        }
        Command::Summary { reply } => {
            let _ = reply.send(room.summary());
        }
        Command::Detail { reply } => {
            let _ = reply.send(room.detail());
        }
        Command::Remove { identity, reply } => {
            let _ = reply.send(room.remove_identity(now, &identity));
        }
        Command::Mute {
            identity,
            track,
            muted,
            reply,
        } => {
            let _ = reply.send(room.mute(now, &identity, &track, muted));
        }
        Command::StartRecording {
            selection,
            slot,
            reply,
        } => {
            let res = room.handle_start_recording(now, selection.clone());
            if let Ok(id) = &res {
                io.archive.begin(slot, id, &selection, now);
            }
            let _ = reply.send(res);
        }
        Command::StopRecording { id, reply } => {
            let res = room.handle_stop_recording(now, &id);
            if res.is_ok() {
                // Its last outputs go to the writer before the end does.
                drive(room, io);
                io.archive.end(&id, now);
            }
            let _ = reply.send(res);
        }
        Command::Close { reply } => {
            let _ = reply.send(room.close_all(now));
        }
        Command::Data {
            topic,
            data,
            to,
            reply,
        } => {
            let to: Option<Vec<&str>> = to.as_ref().map(|t| t.iter().map(String::as_str).collect());
            let _ = reply.send(room.handle_server_message(now, &topic, &data, to.as_deref()));
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
        #[cfg(test)]
        Command::InjectPanic { reply } => {
            let _unanswered = reply;
            panic!("injected room failure (test)");
        }
        Command::IceRestart {
            session,
            remote,
            reply,
        } => {
            let _ = reply.send(room.handle_ice_restart(now, &session, remote));
        }
        Command::Exists { session, reply } => {
            let _ = reply.send(room.session_tags(&session));
        }
    }
}

/// `--record-all-rooms`: start recording every track of the room, if the server has a
/// place for one more recording.
fn record_all(room: &mut Room, now: Instant, archive: &crate::archive::Archive, io: &mut Io) {
    let slot = match archive.admit() {
        Ok(slot) => slot,
        Err(e) => {
            tracing::warn!(room = %io.hooks.room, "not recorded: {e}");
            return;
        }
    };
    match room.handle_start_recording(now, Selection::All) {
        Ok(id) => io.archive.begin(slot, &id, &Selection::All, now),
        Err(e) => tracing::warn!(room = %io.hooks.room, "not recorded: {e}"),
    }
}

/// Hand the room's new `events` to the event streams they are for. A stream whose
/// session ended, whose client went away, or that fell `EVENT_QUEUE` behind is dropped
/// (closing it). Runs only when the room produced events.
fn fan_out(room: &Room, events: &mut Vec<(Audience, RoomEvent)>, listeners: &mut Listeners) {
    if events.is_empty() {
        return;
    }
    listeners.retain(|(viewer, tx)| room.has_participant(*viewer) && !tx.is_closed());
    for (audience, event) in events.drain(..) {
        listeners.retain(|(viewer, tx)| {
            if audience != Audience::All && audience != Audience::Viewer(*viewer) {
                return true;
            }
            tx.try_send(event.clone()).is_ok()
        });
    }
}

/// Send what a room or shard produced in this wake-up: one `sendmmsg(2)` per
/// [`crate::net::SEND_BATCH`] UDP datagrams, whatever their destinations; TCP transmits
/// go to their connections' write queues (never waiting). Leaves `batch` empty.
pub(super) async fn send_all(
    batch: &mut Vec<Transmit>,
    tcp: &mut TcpPaths,
    endpoint: &Arc<UdpEndpoint>,
    meters: &metrics::Meters,
) {
    batch.retain(|t| {
        let udp = t.proto == str0m::net::Protocol::Udp;
        if !udp {
            tcp.send(t);
        }
        udp
    });
    if batch.is_empty() {
        return;
    }
    let datagrams: Vec<(SocketAddr, &[u8])> = batch
        .iter()
        .map(|t| (t.destination, &t.contents[..]))
        .collect();
    let (sent, _failed) = endpoint.send_many(&datagrams).await;
    drop(datagrams);
    meters.udp_out.increment(sent as u64);
    batch.clear();
}
