//! Prometheus metrics: names, descriptions, and pre-registered handles.
//!
//! Hot paths hold [`metrics::Counter`] handles (an atomic add per increment); they never
//! look a metric up by name per packet. Owns no state besides the handles.

use metrics::{counter, describe_counter, describe_gauge, gauge, Counter, Gauge};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Why a packet or datagram was not forwarded. Every drop is counted; none is logged
/// above `debug`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// A UDP datagram from an address no session has used, that is not STUN.
    UnknownSource,
    /// A STUN request whose username names no room on this server.
    UnknownRoom,
    /// A datagram that is neither STUN, DTLS nor RTP/RTCP (RFC 7983 §7), or truncated.
    Malformed,
    /// The room's inbound queue was full: the room is overloaded.
    RoomBusy,
    /// The participant rejected the datagram (str0m returned an error).
    Rejected,
    /// A subscriber's video is paused until the next keyframe of its source.
    WaitingKeyframe,
    /// The subscriber's negotiated codecs lack the packet's codec.
    CodecMismatch,
    /// The subscriber's transport is not connected yet.
    NotConnected,
    /// A packet too old to map into the subscriber's sequence space (late retransmission
    /// from before a source switch).
    TooOld,
    /// A simulcast layer this subscriber is not receiving.
    OtherLayer,
    /// The subscriber's bandwidth cannot carry even the lowest layer: track paused.
    Paused,
    /// A temporal layer above the subscriber's temporal cap.
    TemporalFiltered,
    /// The published track is muted (room API).
    Muted,
    /// A subscriber shard's queue was full: the shard is overloaded.
    ShardBusy,
    /// A publisher's RTP payload larger than a subscriber's send path can carry
    /// ([`crate::room::MAX_FORWARD_PAYLOAD`]); dropped before any subscriber.
    Oversize,
    /// A STUN message whose integrity (RFC 8489 §14.5) did not verify with the session's
    /// password: it neither reaches the session nor binds its source address.
    StunUnverified,
}

impl DropReason {
    /// All reasons, in label order.
    pub const ALL: [DropReason; 16] = [
        DropReason::UnknownSource,
        DropReason::UnknownRoom,
        DropReason::Malformed,
        DropReason::RoomBusy,
        DropReason::Rejected,
        DropReason::WaitingKeyframe,
        DropReason::CodecMismatch,
        DropReason::NotConnected,
        DropReason::TooOld,
        DropReason::OtherLayer,
        DropReason::Paused,
        DropReason::TemporalFiltered,
        DropReason::Muted,
        DropReason::ShardBusy,
        DropReason::Oversize,
        DropReason::StunUnverified,
    ];

    /// The Prometheus label value.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::UnknownSource => "unknown_source",
            DropReason::UnknownRoom => "unknown_room",
            DropReason::Malformed => "malformed",
            DropReason::RoomBusy => "room_busy",
            DropReason::Rejected => "rejected",
            DropReason::WaitingKeyframe => "waiting_keyframe",
            DropReason::CodecMismatch => "codec_mismatch",
            DropReason::NotConnected => "not_connected",
            DropReason::TooOld => "too_old",
            DropReason::OtherLayer => "other_layer",
            DropReason::Paused => "paused",
            DropReason::TemporalFiltered => "temporal_filtered",
            DropReason::Muted => "muted",
            DropReason::ShardBusy => "shard_busy",
            DropReason::Oversize => "oversize",
            DropReason::StunUnverified => "stun_unverified",
        }
    }
}

/// Metric names.
pub mod names {
    /// Gauge: live WHIP/WHEP sessions, label `kind` = `publisher` | `subscriber`.
    pub const SESSIONS: &str = "switchboard_sessions";
    /// Gauge: sessions that joined and have not connected (ICE + DTLS) yet.
    pub const SESSIONS_PENDING: &str = "switchboard_sessions_pending";
    /// Counter: sessions created, label `kind`.
    pub const SESSIONS_CREATED: &str = "switchboard_sessions_created_total";
    /// Counter: sessions ended, labels `kind` and `reason` (`delete`, `timeout`, `error`,
    /// `closed`, `removed`, `replaced`, `room_failed`, `dtls_failed`).
    pub const SESSIONS_ENDED: &str = "switchboard_sessions_ended_total";
    /// Gauge: live rooms.
    pub const ROOMS: &str = "switchboard_rooms";
    /// Counter: rooms whose task failed (a panic); only that room's sessions ended.
    pub const ROOM_FAILURES: &str = "switchboard_room_failures_total";
    /// Gauge: live subscriber shards (tasks that drive part of a big room's viewers).
    pub const SHARDS: &str = "switchboard_subscriber_shards";
    /// Counter: CPU time room and shard tasks spent handling their inputs, µs, label
    /// `task` = `room` | `shard`: how busy the cores that drive rooms are, and how a big
    /// broadcast's work divides between the room (ingress, routing) and its shards.
    pub const TASK_CPU: &str = "switchboard_task_cpu_microseconds_total";
    /// Counter: WHEP sessions placed on a subscriber shard.
    pub const SHARDED_SESSIONS: &str = "switchboard_sharded_sessions_total";
    /// Counter: UDP datagrams received.
    pub const UDP_IN: &str = "switchboard_udp_datagrams_in_total";
    /// Counter: UDP datagrams sent.
    pub const UDP_OUT: &str = "switchboard_udp_datagrams_out_total";
    /// Counter: RTP packets received from publishers (after SRTP).
    pub const RTP_IN_PACKETS: &str = "switchboard_rtp_in_packets_total";
    /// Counter: RTP payload bytes received from publishers.
    pub const RTP_IN_BYTES: &str = "switchboard_rtp_in_bytes_total";
    /// Counter: RTP packets forwarded to subscribers.
    pub const RTP_OUT_PACKETS: &str = "switchboard_rtp_out_packets_total";
    /// Counter: RTP payload bytes forwarded to subscribers.
    pub const RTP_OUT_BYTES: &str = "switchboard_rtp_out_bytes_total";
    /// Counter: packets or datagrams dropped, label `reason`.
    pub const DROPPED: &str = "switchboard_packets_dropped_total";
    /// Counter: keyframe requests, label `direction` = `received` (from subscribers) |
    /// `sent` (to publishers).
    pub const KEYFRAME_REQUESTS: &str = "switchboard_keyframe_requests_total";
    /// Counter: simulcast layer switches done for subscribers, label `direction`
    /// (`up` | `down`).
    pub const LAYER_SWITCHES: &str = "switchboard_layer_switches_total";
    /// Counter: subscribed video tracks paused because the subscriber's estimate could
    /// not carry their lowest layer.
    pub const TRACK_PAUSES: &str = "switchboard_track_pauses_total";
    /// Counter: bandwidth estimates received from subscribers' estimators.
    pub const ESTIMATES: &str = "switchboard_bandwidth_estimates_total";
    /// Counter: HTTP API errors returned, label `status`.
    pub const API_ERRORS: &str = "switchboard_api_errors_total";
    /// Counter: DTLS handshakes that failed (each ends its session), label `cause`
    /// (see `room::session_end::DtlsFailure`).
    pub const DTLS_FAILURES: &str = "switchboard_dtls_failures_total";
    /// Counter: data channel messages received from participants, label `kind`
    /// (`reliable` | `unreliable`: the sender's channel).
    pub const DATA_RECEIVED: &str = "switchboard_data_messages_received_total";
    /// Counter: data channel messages written to receivers, label `kind` (`reliable` |
    /// `unreliable`: the receiver's channel).
    pub const DATA_DELIVERED: &str = "switchboard_data_messages_delivered_total";
    /// Counter: data channel messages not relayed or not written, label `reason`
    /// (`too_large`, `binary`, `invalid`, `unknown_recipient`, `rate_limited`,
    /// `reserved`, `receiver_full`, `receiver_gone`).
    pub const DATA_DROPPED: &str = "switchboard_data_messages_dropped_total";
    /// Counter: data channels the server closed, label `reason` (`slow_receiver`,
    /// `too_many_channels`).
    pub const DATA_CHANNELS_CLOSED: &str = "switchboard_data_channels_closed_total";
    /// Counter: responses that carried fresh TURN credentials (`--turn-url`, one count
    /// per response whatever the number of URLs), label `method` (`post` | `options`).
    pub const TURN_CREDENTIALS: &str = "switchboard_turn_credentials_issued_total";
    /// Counter: changes of the `--tls-cert`/`--tls-key` files seen, label `outcome`
    /// (`ok`: the new certificate is in use; `error`: it did not load, the previous one
    /// stays).
    pub const TLS_RELOADS: &str = "switchboard_tls_reloads_total";
    /// Counter: TLS handshakes on the HTTPS listener that failed or timed out (plain HTTP
    /// to the HTTPS port, no common parameters, a client that sent nothing).
    pub const TLS_HANDSHAKE_FAILURES: &str = "switchboard_tls_handshake_failures_total";
    /// Gauge: recordings running.
    pub const RECORDINGS_ACTIVE: &str = "switchboard_recordings_active";
    /// Counter: recordings refused, label `reason` = `too_many` | `disk`.
    pub const RECORDINGS_REFUSED: &str = "switchboard_recordings_refused_total";
    /// Counter: bytes written to recording files.
    pub const RECORDING_BYTES: &str = "switchboard_recording_bytes_total";
    /// Counter: recording files started.
    pub const RECORDING_FILES: &str = "switchboard_recording_files_total";
    /// Counter: what recordings dropped, label `reason`: the recorder's
    /// (`crate::record::track::DROP_LABELS`: `loss`, `waiting_for_keyframe`, …) and the
    /// writer's (`writer_busy`, `disk`).
    pub const RECORDING_DROPPED: &str = "switchboard_recording_dropped_total";
}

/// Install the Prometheus recorder for this process and describe every metric.
///
/// Returns the handle whose `render()` produces the `/metrics` text. Fails only when a
/// recorder is already installed.
pub fn install() -> Result<PrometheusHandle, metrics::SetRecorderError<impl Sized>> {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder)?;
    describe();
    Ok(handle)
}

fn describe() {
    use names::*;
    describe_gauge!(SESSIONS, "Live WHIP/WHEP sessions by kind.");
    describe_gauge!(
        SESSIONS_PENDING,
        "Sessions that joined and have not connected (ICE + DTLS) yet."
    );
    describe_counter!(SESSIONS_CREATED, "Sessions created by kind.");
    describe_counter!(SESSIONS_ENDED, "Sessions ended by kind and reason.");
    describe_gauge!(ROOMS, "Live rooms.");
    describe_counter!(
        ROOM_FAILURES,
        "Rooms whose task failed (panicked); only their sessions ended."
    );
    describe_gauge!(SHARDS, "Live subscriber shards.");
    describe_counter!(
        TASK_CPU,
        "CPU microseconds room and shard tasks spent on their inputs."
    );
    describe_counter!(
        SHARDED_SESSIONS,
        "WHEP sessions placed on a subscriber shard."
    );
    describe_counter!(UDP_IN, "UDP datagrams received.");
    describe_counter!(UDP_OUT, "UDP datagrams sent.");
    describe_counter!(RTP_IN_PACKETS, "RTP packets received from publishers.");
    describe_counter!(RTP_IN_BYTES, "RTP payload bytes received from publishers.");
    describe_counter!(RTP_OUT_PACKETS, "RTP packets forwarded to subscribers.");
    describe_counter!(RTP_OUT_BYTES, "RTP payload bytes forwarded to subscribers.");
    describe_counter!(DROPPED, "Packets or datagrams dropped, by reason.");
    describe_counter!(
        KEYFRAME_REQUESTS,
        "Keyframe requests (PLI/FIR) by direction."
    );
    describe_counter!(LAYER_SWITCHES, "Simulcast layer switches by direction.");
    describe_counter!(
        TRACK_PAUSES,
        "Subscribed video tracks paused for lack of bandwidth."
    );
    describe_counter!(
        ESTIMATES,
        "Bandwidth estimates received for subscribers' downlinks, by kind (twcc, remb, loss)."
    );
    describe_counter!(API_ERRORS, "HTTP API error responses by status.");
    describe_counter!(
        DTLS_FAILURES,
        "DTLS handshakes that failed, by cause; each ends its session."
    );
    describe_counter!(
        DATA_RECEIVED,
        "Data channel messages received, by the sender's channel kind."
    );
    describe_counter!(
        DATA_DELIVERED,
        "Data channel messages written to receivers, by the receiver's channel kind."
    );
    describe_counter!(
        DATA_DROPPED,
        "Data channel messages refused or not written, by reason."
    );
    describe_counter!(
        DATA_CHANNELS_CLOSED,
        "Data channels the server closed, by reason."
    );
    describe_counter!(
        TURN_CREDENTIALS,
        "Responses that carried fresh TURN credentials, by method."
    );
    describe_counter!(
        TLS_RELOADS,
        "Changes of the TLS certificate files seen, by outcome (ok, error)."
    );
    describe_counter!(
        TLS_HANDSHAKE_FAILURES,
        "TLS handshakes on the HTTPS listener that failed or timed out."
    );
    describe_gauge!(RECORDINGS_ACTIVE, "Recordings running.");
    describe_counter!(RECORDINGS_REFUSED, "Recordings refused, by reason.");
    describe_counter!(RECORDING_BYTES, "Bytes written to recording files.");
    describe_counter!(RECORDING_FILES, "Recording files started.");
    describe_counter!(
        RECORDING_DROPPED,
        "Packets, frames or fragments recordings dropped, by reason."
    );
}

/// Handles the per-packet paths increment. Cheap to clone (each is an `Arc`).
#[derive(Clone)]
pub struct Meters {
    /// RTP packets in.
    pub rtp_in_packets: Counter,
    /// RTP payload bytes in.
    pub rtp_in_bytes: Counter,
    /// RTP packets out.
    pub rtp_out_packets: Counter,
    /// RTP payload bytes out.
    pub rtp_out_bytes: Counter,
    /// UDP datagrams in.
    pub udp_in: Counter,
    /// UDP datagrams out.
    pub udp_out: Counter,
    /// Keyframe requests received from subscribers.
    pub keyframe_requests_received: Counter,
    /// Keyframe requests sent to publishers.
    pub keyframe_requests_sent: Counter,
    /// Layer switches up.
    pub switches_up: Counter,
    /// Layer switches down.
    pub switches_down: Counter,
    /// Tracks paused for bandwidth.
    pub pauses: Counter,
    /// Estimates received, by kind (in [`crate::bwe::EstimateKind::ALL`] order).
    estimates: [Counter; 3],
    /// CPU µs spent by room tasks.
    pub room_cpu: Counter,
    /// CPU µs spent by subscriber shard tasks.
    pub shard_cpu: Counter,
    /// Live sessions of every kind (what the `switchboard_sessions` gauges sum to), for
    /// this node's load in the cluster directory.
    pub live_sessions: std::sync::Arc<std::sync::atomic::AtomicI64>,
    /// Sessions that joined and have not connected yet (the `switchboard_sessions_pending`
    /// gauge), for the server's pending limit; see [`PendingSession`].
    pub pending_sessions: std::sync::Arc<std::sync::atomic::AtomicI64>,
    dropped: [Counter; DropReason::ALL.len()],
}

impl Meters {
    /// Register (or look up) every handle once.
    pub fn new() -> Self {
        use names::*;
        Meters {
            rtp_in_packets: counter!(RTP_IN_PACKETS),
            rtp_in_bytes: counter!(RTP_IN_BYTES),
            rtp_out_packets: counter!(RTP_OUT_PACKETS),
            rtp_out_bytes: counter!(RTP_OUT_BYTES),
            udp_in: counter!(UDP_IN),
            udp_out: counter!(UDP_OUT),
            keyframe_requests_received: counter!(KEYFRAME_REQUESTS, "direction" => "received"),
            keyframe_requests_sent: counter!(KEYFRAME_REQUESTS, "direction" => "sent"),
            switches_up: counter!(LAYER_SWITCHES, "direction" => "up"),
            switches_down: counter!(LAYER_SWITCHES, "direction" => "down"),
            pauses: counter!(TRACK_PAUSES),
            estimates: crate::bwe::EstimateKind::ALL
                .map(|k| counter!(ESTIMATES, "kind" => k.as_str())),
            room_cpu: counter!(TASK_CPU, "task" => "room"),
            shard_cpu: counter!(TASK_CPU, "task" => "shard"),
            live_sessions: Default::default(),
            pending_sessions: Default::default(),
            dropped: DropReason::ALL.map(|r| counter!(DROPPED, "reason" => r.as_str())),
        }
    }

    /// Count one drop.
    pub fn dropped(&self, reason: DropReason) {
        self.dropped_many(reason, 1);
    }

    /// Count one bandwidth estimate of `kind` (one per estimate event, never per packet).
    pub fn estimate(&self, kind: crate::bwe::EstimateKind) {
        self.estimates[kind as usize].increment(1);
    }

    /// Count `n` drops for the same reason at once.
    pub fn dropped_many(&self, reason: DropReason, n: u64) {
        self.dropped[reason as usize].increment(n);
    }
}

impl Meters {
    /// Count one pending session until the returned guard is dropped (the session
    /// connected or ended, or its room is gone).
    pub fn pending_session(&self) -> PendingSession {
        PendingSession::new(std::sync::Arc::clone(&self.pending_sessions))
    }
}

/// One count of [`Meters::pending_sessions`], given back on drop. Join and connect
/// path only.
pub struct PendingSession(std::sync::Arc<std::sync::atomic::AtomicI64>);

impl PendingSession {
    fn new(counter: std::sync::Arc<std::sync::atomic::AtomicI64>) -> Self {
        let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        gauge!(names::SESSIONS_PENDING).set(n as f64);
        PendingSession(counter)
    }
}

impl Drop for PendingSession {
    fn drop(&mut self) {
        let n = self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed) - 1;
        gauge!(names::SESSIONS_PENDING).set(n as f64);
    }
}

impl Default for Meters {
    fn default() -> Self {
        Self::new()
    }
}

/// Gauge of live sessions of one kind (`publisher` or `subscriber`).
pub fn sessions_gauge(kind: &'static str) -> Gauge {
    gauge!(names::SESSIONS, "kind" => kind)
}

/// Measures the CPU time of one stretch of a task's work on its thread
/// (`CLOCK_THREAD_CPUTIME_ID`, clock_gettime(2)): start it when the task wakes up and
/// stop it before it awaits again, so no other task's time is in it (a send that has
/// to wait for socket space, rare, counts what the thread did meanwhile). One pair of
/// clock reads per wake-up, never per packet; each stretch is rounded to the µs.
pub struct TaskTimer(rustix::time::Timespec);

impl TaskTimer {
    /// Start measuring.
    pub fn start() -> Self {
        TaskTimer(rustix::time::clock_gettime(
            rustix::time::ClockId::ThreadCPUTime,
        ))
    }

    /// Add the CPU µs since [`TaskTimer::start`] to `counter`.
    pub fn stop(self, counter: &Counter) {
        let end = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
        let ns = (end.tv_sec - self.0.tv_sec) * 1_000_000_000 + (end.tv_nsec - self.0.tv_nsec);
        counter.increment(((ns.max(0) + 500) / 1_000) as u64);
    }
}

/// Gauge of live subscriber shards.
pub fn shards_gauge() -> Gauge {
    gauge!(names::SHARDS)
}

/// Count a WHEP session placed on a subscriber shard.
pub fn session_sharded() {
    counter!(names::SHARDED_SESSIONS).increment(1);
}

/// Count a session start.
pub fn session_created(kind: &'static str) {
    counter!(names::SESSIONS_CREATED, "kind" => kind).increment(1);
    sessions_gauge(kind).increment(1.0);
}

/// Count a session end.
pub fn session_ended(kind: &'static str, reason: &'static str) {
    counter!(names::SESSIONS_ENDED, "kind" => kind, "reason" => reason).increment(1);
    sessions_gauge(kind).decrement(1.0);
}

/// Count a room whose task failed (panicked); its sessions are counted as ended with
/// reason `room_failed`.
pub fn room_failed() {
    counter!(names::ROOM_FAILURES).increment(1);
}

/// Count a response that carried fresh TURN credentials (`method`: `post` or `options`).
pub fn turn_credentials_issued(method: &'static str) {
    counter!(names::TURN_CREDENTIALS, "method" => method).increment(1);
}

/// Gauge of live rooms.
pub fn rooms_gauge() -> Gauge {
    gauge!(names::ROOMS)
}

/// Count a change of the TLS certificate files: `ok` (in use) or not (the previous
/// certificate stays).
pub fn tls_reloaded(ok: bool) {
    let outcome = if ok { "ok" } else { "error" };
    counter!(names::TLS_RELOADS, "outcome" => outcome).increment(1);
}

/// Count a TLS handshake that failed or timed out.
pub fn tls_handshake_failed() {
    counter!(names::TLS_HANDSHAKE_FAILURES).increment(1);
}
