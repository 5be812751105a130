//! Command line and environment configuration (clap). Owns parsing and validation of
//! the server's settings; never starts anything. The optional TOML file and the
//! precedence between sources are in [`crate::config_file`].

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::config_file::ConfigError;

mod network;
mod print;

pub(crate) use network::check_turn;
use network::parse_tcp_addr;
pub use network::{TcpAddr, MAX_TTL, MIN_SECRET_LEN};

/// Switchboard: a WebRTC SFU with WHIP ingest and WHEP playback.
///
/// Every flag can also be set with an environment variable `SWITCHBOARD_<FLAG>`, or in the
/// TOML file given with `--config` (keys: the long flag names with underscores).
/// Precedence: flag, then environment, then file, then default.
#[derive(Parser, Debug, Clone)]
#[command(name = "switchboard", version, about, long_about = None)]
pub struct Config {
    /// TOML configuration file; its keys are the long flag names with underscores
    /// (`http_addr = "0.0.0.0:8080"`, `public_ip = ["203.0.113.7"]`).
    #[arg(long, env = "SWITCHBOARD_CONFIG")]
    pub config: Option<PathBuf>,

    /// Print the effective configuration (after flags, environment and file) as TOML and
    /// exit.
    #[arg(long)]
    pub print_config: bool,

    /// Address the HTTP API, web pages and /metrics listen on.
    #[arg(long, env = "SWITCHBOARD_HTTP_ADDR", default_value = "0.0.0.0:8080")]
    pub http_addr: SocketAddr,

    /// The one UDP address all WebRTC traffic (ICE, DTLS, SRTP) uses.
    #[arg(long, env = "SWITCHBOARD_UDP_ADDR", default_value = "0.0.0.0:7880")]
    pub udp_addr: SocketAddr,

    /// The TCP address where ICE over TCP (RFC 6544 passive candidates, RFC 4571
    /// framing) is accepted, for networks that block UDP; `off` disables it. Its
    /// candidates use the `--public-ip` addresses (or the interface addresses) with this
    /// port, after the UDP ones and with a lower priority.
    #[arg(long, env = "SWITCHBOARD_TCP_ADDR", default_value = "0.0.0.0:7881", value_parser = parse_tcp_addr)]
    pub tcp_addr: TcpAddr,

    /// Also accept ICE over TCP on the HTTP port (`--http-addr`): a connection whose first
    /// bytes are an RFC 4571-framed STUN Binding request is ICE, anything else is HTTP
    /// (or TLS). With HTTPS on 443 and UDP on 443, a server reachable on port 443 alone
    /// serves signalling and media. Candidates on the HTTP port are advertised too.
    #[arg(
        long,
        env = "SWITCHBOARD_ICE_TCP_ON_HTTP",
        default_value_t = false,
        action = clap::ArgAction::Set,
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub ice_tcp_on_http: bool,

    /// Most open ICE-TCP connections, on all listeners together; further connections are
    /// closed at once (counted in `switchboard_tcp_connections_total{outcome="refused_limit"}`).
    #[arg(long, env = "SWITCHBOARD_TCP_MAX_CONNECTIONS", default_value_t = 4096)]
    pub tcp_max_connections: u32,

    /// Address put in ICE candidates (repeatable, or comma separated in the env var).
    /// When absent: the UDP address if it is specific, else every interface address of
    /// its family, loopback included so a laptop works out of the box.
    #[arg(
        long = "public-ip",
        env = "SWITCHBOARD_PUBLIC_IP",
        value_delimiter = ','
    )]
    pub public_ip: Vec<IpAddr>,

    /// Where ICE candidate addresses come from when `--public-ip` is not given:
    /// `interfaces` (the host's interface addresses, container bridges excluded) or
    /// `host-ip` (the address in `--host-ip`, e.g. a Kubernetes node's IP from the
    /// Downward API).
    #[arg(long, env = "SWITCHBOARD_PUBLIC_IP_FROM", value_enum, default_value_t = PublicIpFrom::Interfaces)]
    pub public_ip_from: PublicIpFrom,

    /// The host's address, used with `--public-ip-from host-ip` (Kubernetes: set
    /// `SWITCHBOARD_HOST_IP` from `status.hostIP`).
    #[arg(long, env = "SWITCHBOARD_HOST_IP")]
    pub host_ip: Option<IpAddr>,

    /// On SIGTERM the server stops taking new rooms and waits for its sessions to end, at
    /// most this long (e.g. `90s`, `5m`), then exits. A second signal exits at once.
    #[arg(long, env = "SWITCHBOARD_DRAIN_TIMEOUT", default_value = "300s", value_parser = humantime::parse_duration)]
    pub drain_timeout: Duration,

    /// This node's name in logs and in multi-node records. Default: `POD_NAME` (set it
    /// from the Downward API), else the host name.
    #[arg(long, env = "SWITCHBOARD_NODE_ID")]
    pub node_id: Option<String>,

    /// Redis holding the room directory shared by several nodes (`redis://host:6379`).
    /// Without it this is a single node and needs nothing external.
    #[arg(long, env = "SWITCHBOARD_REDIS_URL")]
    pub redis_url: Option<String>,

    /// Listener for requests other nodes proxy here (e.g. `0.0.0.0:8081`); every request
    /// on it must carry `--internal-secret`. Keep it off the public network.
    #[arg(long, env = "SWITCHBOARD_INTERNAL_ADDR")]
    pub internal_addr: Option<SocketAddr>,

    /// Shared secret of the internal listener (at least 16 characters).
    #[arg(long, env = "SWITCHBOARD_INTERNAL_SECRET")]
    pub internal_secret: Option<String>,

    /// How a request for a room owned by another node is served: `proxy` (forwarded over
    /// the internal listener; clients see one address) or `redirect` (307 to the owner's
    /// public URL).
    #[arg(long, env = "SWITCHBOARD_ROUTING", value_enum, default_value_t = Routing::Proxy)]
    pub routing: Routing,

    /// Base URL clients reach this node at, for redirects (default:
    /// `http://<first candidate address>:<HTTP port>`, `https://` with `--tls-cert`).
    #[arg(long, env = "SWITCHBOARD_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Keep this pod's `controller.kubernetes.io/pod-deletion-cost` annotation equal to its
    /// live session count, so a scale-down deletes the emptiest pods first: `auto` (when
    /// running in Kubernetes with `POD_NAME` and `POD_NAMESPACE` set; needs `patch` on
    /// pods) or `off`.
    #[arg(long, env = "SWITCHBOARD_POD_DELETION_COST", value_enum, default_value_t = PodDeletionCost::Auto)]
    pub pod_deletion_cost: PodDeletionCost,

    /// Log format.
    #[arg(long, env = "SWITCHBOARD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Static bearer token required on WHIP/WHEP POST, PATCH and DELETE
    /// (`Authorization: Bearer <token>`, RFC 6750), granting everything. With neither this
    /// nor `--auth-key` the server runs open (development mode).
    #[arg(long, env = "SWITCHBOARD_TOKEN")]
    pub token: Option<String>,

    /// Key (at least 16 characters) that access tokens are signed with (JWT, HS256):
    /// WHIP/WHEP then require `Authorization: Bearer <JWT>` for the room with the
    /// `publish` or `subscribe` grant. Mint tokens with `switchboard token`.
    #[arg(long, env = "SWITCHBOARD_AUTH_KEY")]
    pub auth_key: Option<String>,

    /// Most publishing participants (identities with a WHIP session) per room; a WHIP
    /// request beyond it is answered 429 with a problem body. 0: no limit.
    #[arg(long, env = "SWITCHBOARD_MAX_PUBLISHERS", default_value_t = 0)]
    pub max_publishers: u32,

    /// Most participants (distinct identities, publishing or only watching) per room; a
    /// WHIP or WHEP request beyond it is answered 429 with a problem body. 0: no limit.
    #[arg(long, env = "SWITCHBOARD_MAX_PARTICIPANTS", default_value_t = 0)]
    pub max_participants: u32,

    /// WHEP sessions a room drives on its own task; past that it starts subscriber
    /// shards (tasks that drive the further viewers' WebRTC sessions on other cores),
    /// each taking as many before the next starts. 0: never shard.
    #[arg(long, env = "SWITCHBOARD_SHARD_AFTER", default_value_t = 100)]
    pub shard_after: u32,

    /// Most subscriber shards per room. Default: one less than the CPUs this process
    /// may use (the room's own task has the last). 0: never shard.
    #[arg(long, env = "SWITCHBOARD_MAX_SHARDS")]
    pub max_shards: Option<u32>,

    /// Most sessions of one identity per room (an identity counts once for
    /// `--max-participants`, so this bounds what one token or `?name=` can open); a WHIP
    /// or WHEP request beyond it is answered 429. 0: no limit.
    #[arg(
        long,
        env = "SWITCHBOARD_MAX_SESSIONS_PER_IDENTITY",
        default_value_t = 8
    )]
    pub max_sessions_per_identity: u32,

    /// Most live sessions on this server; a WHIP or WHEP POST beyond it is answered 503
    /// with `Retry-After`. 0: no limit.
    #[arg(long, env = "SWITCHBOARD_MAX_SESSIONS", default_value_t = 1000)]
    pub max_sessions: u32,

    /// Most sessions that were created and have not connected (ICE + DTLS) yet; each
    /// holds a WebRTC state for up to 10 s. A POST beyond it is answered 503 with
    /// `Retry-After`. 0: no limit.
    #[arg(long, env = "SWITCHBOARD_MAX_PENDING", default_value_t = 200)]
    pub max_pending: u32,

    /// WHIP/WHEP POSTs per second per client address (an IPv4 address or an IPv6 /64);
    /// beyond it (after `--post-burst`) a POST is answered 429 with `Retry-After`. Behind
    /// a reverse proxy every client shares its address: raise it or set 0 (no limit).
    #[arg(long, env = "SWITCHBOARD_POST_RATE", default_value_t = 5)]
    pub post_rate: u32,

    /// POSTs a client address may send at once before `--post-rate` applies.
    #[arg(long, env = "SWITCHBOARD_POST_BURST", default_value_t = 20)]
    pub post_burst: u32,

    /// Most open HTTP connections; further clients wait in the listen backlog until one
    /// closes. 0: no limit.
    #[arg(long, env = "SWITCHBOARD_MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: u32,

    /// How long a client may take to send a request's headers, counted from when the
    /// connection opens or its previous response is sent (so it is also the keep-alive
    /// idle timeout); the connection is closed after it. E.g. `10s`.
    #[arg(long, env = "SWITCHBOARD_HTTP_HEADER_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub http_header_timeout: Duration,

    /// PEM file with the certificate chain, leaf first, that makes the HTTP listener
    /// (`--http-addr`, not `--internal-addr`) serve HTTPS only: TLS 1.3 or 1.2 (RFC
    /// 8446), ALPN `http/1.1` (RFC 7301). Needs `--tls-key`. Both files are read again
    /// every 2 s and a change is used from the next handshake; a bad new pair keeps the
    /// old one (`switchboard_tls_reloads_total{outcome="error"}`).
    #[arg(long, env = "SWITCHBOARD_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,

    /// PEM file with the private key of `--tls-cert` (PKCS#8, PKCS#1 RSA or SEC1 EC).
    #[arg(long, env = "SWITCHBOARD_TLS_KEY")]
    pub tls_key: Option<PathBuf>,

    /// A one-shot action instead of serving.
    #[command(subcommand)]
    pub command: Option<Action>,

    /// ICE server advertised to clients in `Link: <url>; rel="ice-server"` headers
    /// (RFC 9725 §4.6), e.g. `stun:stun.example.org:3478` or
    /// `turn:turn.example.org:3478?transport=udp`. Repeatable.
    #[arg(
        long = "ice-server",
        env = "SWITCHBOARD_ICE_SERVERS",
        value_delimiter = ','
    )]
    pub ice_servers: Vec<String>,

    /// Username advertised with `turn:`/`turns:` ICE servers.
    #[arg(long, env = "SWITCHBOARD_ICE_USERNAME")]
    pub ice_username: Option<String>,

    /// Credential (password) advertised with `turn:`/`turns:` ICE servers.
    #[arg(long, env = "SWITCHBOARD_ICE_CREDENTIAL")]
    pub ice_credential: Option<String>,

    /// TURN server given per-session credentials (TURN REST, draft-uberti-behave-turn-rest-00;
    /// coturn `use-auth-secret`), e.g. `turn:turn.example.org:3478?transport=udp` or
    /// `turns:turn.example.org:443?transport=tcp` (RFC 7065). Repeatable. A WHIP/WHEP 201
    /// (and an OPTIONS with a valid token) carries each in a `Link` header (RFC 9725 §4.6)
    /// with username `<expiry unix seconds>:<identity>` and credential
    /// `base64(HMAC-SHA1(--turn-secret, username))`. Needs `--turn-secret`.
    #[arg(
        long = "turn-url",
        env = "SWITCHBOARD_TURN_URLS",
        value_delimiter = ','
    )]
    pub turn_urls: Vec<String>,

    /// Secret shared with the TURN server (coturn `static-auth-secret`), at least 16
    /// characters.
    #[arg(long, env = "SWITCHBOARD_TURN_SECRET")]
    pub turn_secret: Option<String>,

    /// Lifetime of TURN credentials from their issue (1m to 7days, e.g. `6h`): the longest
    /// a session can keep its relay, as the TURN server refuses refreshes after it.
    #[arg(long, env = "SWITCHBOARD_TURN_TTL", default_value = "6h", value_parser = humantime::parse_duration)]
    pub turn_ttl: Duration,

    /// Receiver of the webhooks: every room, participant and track event is POSTed
    /// there as signed JSON (Standard Webhooks headers `webhook-id`,
    /// `webhook-timestamp`, `webhook-signature`), with retries. `http://` or
    /// `https://`. Repeatable. Needs `--webhook-secret`.
    #[arg(
        long = "webhook-url",
        env = "SWITCHBOARD_WEBHOOK_URLS",
        value_delimiter = ','
    )]
    pub webhook_urls: Vec<String>,

    /// Key of the webhook signatures (HMAC-SHA256): `whsec_` and base64 (Standard
    /// Webhooks' format), or any string of at least 16 bytes.
    #[arg(long, env = "SWITCHBOARD_WEBHOOK_SECRET")]
    pub webhook_secret: Option<String>,

    /// Folder of recordings (created if missing): the room API's
    /// `POST /api/rooms/{room}/recordings` writes one MP4 file per track there, with a
    /// `manifest.json` per recording. Without it, recording is off (503).
    #[arg(long, env = "SWITCHBOARD_RECORD_DIR")]
    pub record_dir: Option<PathBuf>,

    /// Record every room, every track, from its first participant to its end. Needs
    /// `--record-dir`.
    #[arg(
        long,
        env = "SWITCHBOARD_RECORD_ALL_ROOMS",
        default_value_t = false,
        action = clap::ArgAction::Set,
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub record_all_rooms: bool,

    /// Most recordings running at once on this server; one more is refused with 503.
    #[arg(long, env = "SWITCHBOARD_MAX_RECORDINGS", default_value_t = 16)]
    pub max_recordings: usize,

    /// MiB the recordings may write while the server runs; past it a recording fails and
    /// new ones are refused with 507. 0: no budget (the free-space margin still holds).
    #[arg(long, env = "SWITCHBOARD_RECORD_MAX_MIB", default_value_t = 0)]
    pub record_max_mib: u64,

    /// MiB that must stay free on the recordings' disk: below it new recordings are
    /// refused with 507; below half of it running recordings stop writing.
    #[arg(long, env = "SWITCHBOARD_RECORD_MIN_FREE_MIB", default_value_t = 1024)]
    pub record_min_free_mib: u64,
}

impl Config {
    /// The recording settings, when `--record-dir` is set.
    pub fn archive(&self) -> Option<crate::archive::ArchiveConfig> {
        Some(crate::archive::ArchiveConfig {
            dir: self.record_dir.clone()?,
            max_recordings: self.max_recordings,
            max_bytes: (self.record_max_mib > 0).then_some(self.record_max_mib << 20),
            min_free: self.record_min_free_mib << 20,
            all_rooms: self.record_all_rooms,
        })
    }
}

/// One-shot actions.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Action {
    /// Print an access token (JWT, HS256, signed with `--auth-key`) for a room, e.g. to
    /// paste into OBS as its WHIP bearer token.
    Token(TokenArgs),
}

/// What `switchboard token` puts in the token.
#[derive(Debug, Clone, clap::Args)]
pub struct TokenArgs {
    /// The room, or `*` for every room.
    #[arg(long)]
    pub room: String,
    /// The participant's identity (`sub`).
    #[arg(long)]
    pub identity: String,
    /// Display name.
    #[arg(long)]
    pub name: Option<String>,
    /// Allow WHIP (publish).
    #[arg(long)]
    pub publish: bool,
    /// Allow WHEP (play).
    #[arg(long)]
    pub subscribe: bool,
    /// Allow everything, the room API included.
    #[arg(long)]
    pub admin: bool,
    /// Lifetime (e.g. `1h`, `30m`, `7d`).
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    pub ttl: Duration,
}

/// How requests for rooms on other nodes are served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Routing {
    /// Forward over the owner's internal listener.
    Proxy,
    /// Answer 307 with the owner's public URL.
    Redirect,
}

/// Whether this pod keeps its `pod-deletion-cost` annotation current
/// ([`crate::cluster::k8s`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PodDeletionCost {
    /// When running in Kubernetes; nothing elsewhere.
    Auto,
    /// Never.
    Off,
}

/// Where ICE candidate addresses come from without `--public-ip`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PublicIpFrom {
    /// The host's interface addresses (container bridges and virtual Ethernet pairs
    /// excluded, so a pod-network address is never advertised by accident).
    Interfaces,
    /// The address given with `--host-ip` / `SWITCHBOARD_HOST_IP`.
    HostIp,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl Config {
    /// Parse the process's arguments, environment and `--config` file, and validate.
    /// Errors are meant for the operator (see [`ConfigError`]).
    pub fn load() -> Result<Config, ConfigError> {
        crate::config_file::load_from(std::env::args_os())
    }

    /// Checks across settings that no single flag's parser can make.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.public_ip.is_empty()
            && self.public_ip_from == PublicIpFrom::HostIp
            && self.host_ip.is_none()
        {
            return Err(ConfigError::Invalid(
                "--public-ip-from host-ip needs the host's address in --host-ip \
                 (SWITCHBOARD_HOST_IP; on Kubernetes from the Downward API's status.hostIP)"
                    .into(),
            ));
        }
        if let Some(ip) = self.public_ip.iter().find(|ip| ip.is_unspecified()) {
            return Err(ConfigError::Invalid(format!(
                "--public-ip {ip}: an unspecified address cannot be a candidate"
            )));
        }
        if self.auth_key.as_ref().is_some_and(|k| k.len() < 16) {
            return Err(ConfigError::Invalid(
                "--auth-key must be at least 16 characters".into(),
            ));
        }
        if let Some(s) = &self.internal_secret {
            if s.len() < 16 {
                return Err(ConfigError::Invalid(
                    "--internal-secret must be at least 16 characters".into(),
                ));
            }
        }
        if self.internal_addr.is_some() && self.internal_secret.is_none() {
            return Err(ConfigError::Invalid(
                "--internal-addr needs --internal-secret (SWITCHBOARD_INTERNAL_SECRET)".into(),
            ));
        }
        if self.redis_url.is_some()
            && self.routing == Routing::Proxy
            && self.internal_addr.is_none()
        {
            return Err(ConfigError::Invalid(
                "--redis-url with --routing proxy needs --internal-addr and --internal-secret \
                 (or use --routing redirect)"
                    .into(),
            ));
        }
        if let Some(t) = &self.token {
            if t.len() < MIN_TOKEN_LEN {
                return Err(ConfigError::Invalid(format!(
                    "--token must be at least {MIN_TOKEN_LEN} characters (a short shared token \
                     can be guessed); generate one with e.g. `openssl rand -hex 16`"
                )));
            }
        }
        let secrets = [
            ("--token", &self.token),
            ("--auth-key", &self.auth_key),
            ("--internal-secret", &self.internal_secret),
            ("--ice-credential", &self.ice_credential),
            ("--turn-secret", &self.turn_secret),
            ("--webhook-secret", &self.webhook_secret),
        ];
        for (flag, value) in secrets {
            if value.as_deref().is_some_and(is_placeholder) {
                return Err(ConfigError::Invalid(format!(
                    "{flag} is still the placeholder from the example manifests; \
                     set a random secret (e.g. `openssl rand -hex 32`)"
                )));
            }
        }
        check_turn(&self.turn_urls, self.turn_secret.as_deref(), self.turn_ttl)
            .map_err(ConfigError::Invalid)?;
        crate::webhook::check(&self.webhook_urls, self.webhook_secret.as_deref())
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        if self.record_all_rooms && self.record_dir.is_none() {
            return Err(ConfigError::Invalid(
                "--record-all-rooms needs --record-dir (where the recordings go)".into(),
            ));
        }
        if self.max_recordings == 0 {
            return Err(ConfigError::Invalid(
                "--max-recordings must be at least 1".into(),
            ));
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err(ConfigError::Invalid(
                "--tls-cert and --tls-key (SWITCHBOARD_TLS_CERT, SWITCHBOARD_TLS_KEY) go \
                 together: the certificate chain and its private key, both PEM files"
                    .into(),
            ));
        }
        if self.http_header_timeout.is_zero() {
            return Err(ConfigError::Invalid(
                "--http-header-timeout must be more than zero".into(),
            ));
        }
        if self.drain_timeout.is_zero() {
            return Err(ConfigError::Invalid(
                "--drain-timeout must be more than zero".into(),
            ));
        }
        Ok(())
    }

    /// This node's name: `--node-id`, else `POD_NAME`, else the host name, else
    /// `switchboard`.
    pub fn node_id(&self) -> String {
        self.node_id
            .clone()
            .or_else(|| std::env::var("POD_NAME").ok().filter(|s| !s.is_empty()))
            .or_else(|| {
                std::fs::read_to_string("/proc/sys/kernel/hostname")
                    .ok()
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
            })
            .unwrap_or_else(|| "switchboard".into())
    }

    /// When rooms spread their viewers over subscriber shards (`--shard-after`,
    /// `--max-shards`).
    pub fn shard_policy(&self) -> crate::limits::ShardPolicy {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
        crate::limits::ShardPolicy {
            after: self.shard_after,
            max: self.max_shards.unwrap_or(cpus.saturating_sub(1)),
        }
    }
}

/// Shortest `--token` accepted: 16 characters of a random token are 64+ bits.
pub const MIN_TOKEN_LEN: usize = 16;

/// Whether `secret` is a placeholder from the example manifests (`k8s/`:
/// `REPLACE-ME-with-...`) or a well-known stand-in, which must never guard a server.
fn is_placeholder(secret: &str) -> bool {
    let s = secret.to_ascii_lowercase();
    [
        "replace-me",
        "replace_me",
        "changeme",
        "change-me",
        "change_me",
    ]
    .iter()
    .any(|p| s.contains(p))
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
