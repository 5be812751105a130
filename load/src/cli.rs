//! The command line: target server, scenario, media shape, pacing and output options.
//!
//! Every option is global, so it may come before or after the scenario subcommand
//! (`switchboard-load --url U broadcast --viewers 10 --duration 5s` and
//! `switchboard-load broadcast --url U ...` mean the same). Parses and validates; runs
//! nothing.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

/// `switchboard-load`: drive a WHIP/WHEP server with synthetic publishers and viewers
/// and report setup time, loss, latency, freezes and server cost.
#[derive(Debug, Parser)]
#[command(
    name = "switchboard-load",
    version,
    about = "WHIP/WHEP load and quality tool: synthetic publishers and viewers over real UDP",
    long_about = "WHIP/WHEP load and quality tool. Publishers send synthetic VP8 (simulcast \
q/h/f) or H264 plus Opus at real rates; viewers check every packet for loss, one-way \
latency, freezes and layer switches. Works against any WHIP/WHEP server; every session \
is DELETEd at the end. See docs/load-tool.md."
)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub scenario: Scenario,

    /// Server base URL, e.g. http://127.0.0.1:8080 (fills `{url}` in the endpoint templates).
    #[arg(long, global = true)]
    pub url: Option<String>,

    /// Room name (fills `{room}`; `conference --mapping rooms` appends `-{i}` per participant).
    #[arg(long, global = true, default_value = "load")]
    pub room: String,

    /// WHIP endpoint template; `{url}` and `{room}` are substituted.
    #[arg(long, global = true, default_value = "{url}/whip/{room}")]
    pub whip_url: String,

    /// WHEP endpoint template; `{url}` and `{room}` are substituted.
    #[arg(long, global = true, default_value = "{url}/whep/{room}")]
    pub whep_url: String,

    /// Bearer token sent on POST and DELETE (one for every session: a `room` conference
    /// takes identities from `?name=`, which a server with access tokens ignores).
    #[arg(
        long,
        global = true,
        env = "SWITCHBOARD_LOAD_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,

    /// Video codec the publishers send.
    #[arg(long, global = true, value_enum, default_value_t = VideoCodec::Vp8)]
    pub codec: VideoCodec,

    /// Send three simulcast layers (RIDs q/h/f) with VP8 [default].
    #[arg(long, global = true, overrides_with = "no_simulcast")]
    pub simulcast: bool,

    /// Send a single VP8 layer at --bitrate.
    #[arg(long, global = true, overrides_with = "simulcast")]
    pub no_simulcast: bool,

    /// Bit rate of the top video layer in bit/s (suffixes k and M allowed: 1.5M, 500k);
    /// the simulcast layers below get a tenth and a third of it.
    #[arg(long, global = true, default_value = "1.5M", value_parser = parse_bitrate)]
    pub bitrate: u64,

    /// Video frame rate in frames per second.
    #[arg(long, global = true, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=120))]
    pub fps: u32,

    /// Periodic keyframe interval (keyframes are also sent on every PLI/FIR).
    #[arg(long, global = true, default_value = "2s", value_parser = parse_duration)]
    pub keyframe_interval: Duration,

    /// VP8 temporal layers per stream (1: every frame TID 0; 2: TIDs 0,1; 3: TIDs 0,2,1,2).
    #[arg(long, global = true, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=3))]
    pub temporal_layers: u8,

    /// New sessions started per second during ramp-up.
    #[arg(long, global = true, default_value_t = 20.0, value_parser = parse_ramp)]
    pub ramp: f64,

    /// How long to measure once every session is set up.
    #[arg(long, global = true, default_value = "30s", value_parser = parse_duration)]
    pub duration: Duration,

    /// Wait this long after the ramp before measuring (lets bandwidth estimates settle).
    #[arg(long, global = true, default_value = "0s", value_parser = parse_duration)]
    pub warmup: Duration,

    /// How long one session may take from POST to connected (ICE + DTLS).
    #[arg(long, global = true, default_value = "20s", value_parser = parse_duration)]
    pub setup_timeout: Duration,

    /// Timeout of each HTTP request (POST, DELETE).
    #[arg(long, global = true, default_value = "15s", value_parser = parse_duration)]
    pub http_timeout: Duration,

    /// Setup failures tolerated before the exit code turns non-zero.
    #[arg(long, global = true, default_value_t = 0)]
    pub max_failures: u64,

    /// Also write the report as JSON to this path (`-`: stdout, the table then goes to stderr).
    #[arg(long, global = true)]
    pub json: Option<PathBuf>,

    /// PID of the server process on this host: report its CPU time and RSS (from /proc).
    #[arg(long, global = true)]
    pub server_pid: Option<u32>,

    /// Local address for the peers' UDP sockets [default: the address that routes to the server].
    #[arg(long, global = true)]
    pub local_ip: Option<IpAddr>,

    /// No progress display.
    #[arg(long, short, global = true)]
    pub quiet: bool,
}

/// Scenarios.
#[derive(Debug, Clone, Subcommand)]
pub enum Scenario {
    /// One publisher, N viewers in one room.
    Broadcast {
        /// Number of WHEP viewers.
        #[arg(long, default_value_t = 10)]
        viewers: u32,
    },
    /// P participants, each publishing and watching K others: in one conference room
    /// (`--mapping room`) or in P one-publisher rooms (`--mapping rooms`).
    Conference {
        /// Number of participants (publishers).
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..))]
        participants: u32,
        /// How many of the others each participant watches [default: all others].
        #[arg(long)]
        watch: Option<u32>,
        /// How the conference maps onto the server's rooms.
        #[arg(long, value_enum, default_value_t = Mapping::Room)]
        mapping: Mapping,
    },
    /// N participants in one room, each with one data-only WHEP session (channels
    /// `chat`, ordered and reliable, and `pos`, unordered without retransmissions):
    /// an idle phase with the channels open, then everyone sends on both topics.
    Data {
        /// Number of participants (data-only WHEP sessions).
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(2..=1000))]
        participants: u32,
        /// Messages per second each participant sends on each topic (Switchboard allows
        /// 50 a second per session over both, bursts of 100).
        #[arg(long, default_value_t = 10.0, value_parser = parse_rate)]
        rate: f64,
        /// Bytes of padding (`"pad"`) in every message (the server refuses messages over 16 KiB).
        #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=65_536))]
        padding: u32,
        /// Idle phase before sending: channels open, nothing sent, server CPU measured.
        #[arg(long, default_value = "5s", value_parser = parse_duration)]
        idle: Duration,
    },
}

/// How a conference maps onto rooms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mapping {
    /// One conference room `{room}`: participant i publishes with WHIP `?name=p{i}` and
    /// watches with one WHEP session `?name=p{i}` offering K video and min(K, 3) audio
    /// slots (servers with multi-publisher rooms, like Switchboard).
    Room,
    /// P rooms `{room}-{i}`: participant i publishes to its own room and watches the rooms
    /// of the K participants after it, one plain WHEP session each (servers with one
    /// publisher per room).
    Rooms,
}

/// Video codecs a publisher can send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VideoCodec {
    /// VP8 (RFC 7741), simulcast capable.
    Vp8,
    /// H264 constrained baseline (42e01f), packetization mode 1, single layer.
    H264,
}

impl Cli {
    /// Whether publishers send three simulcast layers (VP8 only; on unless `--no-simulcast`).
    pub fn simulcast_enabled(&self) -> bool {
        self.codec == VideoCodec::Vp8 && !self.no_simulcast
    }

    /// The server base URL without a trailing slash ("" when not given).
    pub fn base_url(&self) -> &str {
        self.url.as_deref().unwrap_or("").trim_end_matches('/')
    }

    /// Check what clap cannot: a URL is present where the templates need one.
    pub fn validate(&self) -> Result<(), String> {
        let needs_url = self.whip_url.contains("{url}") || self.whep_url.contains("{url}");
        if needs_url && self.url.is_none() {
            return Err("--url is required (or absolute --whip-url and --whep-url)".into());
        }
        if let Scenario::Conference {
            participants,
            watch: Some(k),
            ..
        } = &self.scenario
        {
            if *k >= *participants {
                return Err(format!(
                    "--watch {k} needs more than {k} participants (got {participants})"
                ));
            }
        }
        Ok(())
    }
}

/// Parse `1500000`, `1500k`, `1.5M` (also with a trailing `bit/s` or `bps`) into bit/s.
pub fn parse_bitrate(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let t = t
        .strip_suffix("bit/s")
        .or_else(|| t.strip_suffix("bps"))
        .unwrap_or(t)
        .trim();
    let (num, mul) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 1e3),
        Some('m' | 'M') => (&t[..t.len() - 1], 1e6),
        _ => (t, 1.0),
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("not a bit rate: {s:?} (try 1.5M or 800k)"))?;
    let bps = v * mul;
    if !(10_000.0..=100_000_000.0).contains(&bps) {
        return Err(format!(
            "bit rate {bps} bit/s out of range (10k..100M bit/s)"
        ));
    }
    Ok(bps as u64)
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{s:?}: {e}"))
}

fn parse_rate(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("not a number: {s:?}"))?;
    if v.is_finite() && v > 0.0 && v <= 1000.0 {
        Ok(v)
    } else {
        Err("--rate must be a number of messages per second in (0, 1000]".into())
    }
}

fn parse_ramp(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("not a number: {s:?}"))?;
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err("--ramp must be a positive number of sessions per second".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitrates_parse_with_suffixes() {
        assert_eq!(parse_bitrate("1.5M").unwrap(), 1_500_000);
        assert_eq!(parse_bitrate("500k").unwrap(), 500_000);
        assert_eq!(parse_bitrate("800000").unwrap(), 800_000);
        assert_eq!(parse_bitrate("2Mbit/s").unwrap(), 2_000_000);
        assert!(parse_bitrate("fast").is_err());
        assert!(parse_bitrate("1").is_err());
    }

    #[test]
    fn options_may_follow_the_subcommand() {
        let cli = Cli::try_parse_from([
            "switchboard-load",
            "--url",
            "http://h:1",
            "broadcast",
            "--viewers",
            "3",
            "--duration",
            "5s",
            "--no-simulcast",
        ])
        .unwrap();
        assert_eq!(cli.duration, Duration::from_secs(5));
        assert!(!cli.simulcast_enabled());
        assert!(matches!(cli.scenario, Scenario::Broadcast { viewers: 3 }));
        assert!(cli.validate().is_ok());
    }

    #[test]
    fn conference_watch_must_leave_someone_to_watch() {
        let cli = Cli::try_parse_from([
            "switchboard-load",
            "--url",
            "http://h:1",
            "conference",
            "--participants",
            "3",
            "--watch",
            "3",
        ])
        .unwrap();
        assert!(cli.validate().is_err());
    }

    #[test]
    fn conference_mapping_defaults_to_one_room() {
        let parse = |extra: &[&str]| {
            let mut args = vec!["switchboard-load", "--url", "http://h:1", "conference"];
            args.extend_from_slice(extra);
            match Cli::try_parse_from(args).unwrap().scenario {
                Scenario::Conference { mapping, .. } => mapping,
                s => panic!("{s:?}"),
            }
        };
        assert_eq!(parse(&[]), Mapping::Room);
        assert_eq!(parse(&["--mapping", "rooms"]), Mapping::Rooms);
        assert_eq!(parse(&["--mapping", "room"]), Mapping::Room);
    }

    #[test]
    fn data_takes_participants_rate_padding_and_idle() {
        let cli = Cli::try_parse_from([
            "switchboard-load",
            "--url",
            "http://h:1",
            "data",
            "--participants",
            "20",
            "--rate",
            "2.5",
            "--padding",
            "100",
            "--idle",
            "2s",
            "--duration",
            "20s",
        ])
        .unwrap();
        match cli.scenario {
            Scenario::Data {
                participants,
                rate,
                padding,
                idle,
            } => assert_eq!(
                (participants, rate, padding, idle),
                (20, 2.5, 100, Duration::from_secs(2))
            ),
            s => panic!("{s:?}"),
        }
        let bad = |args: &[&str]| {
            let mut all = vec!["switchboard-load", "--url", "http://h:1", "data"];
            all.extend_from_slice(args);
            Cli::try_parse_from(all).is_err()
        };
        assert!(bad(&["--rate", "0"]));
        assert!(bad(&["--participants", "1"]));
        assert!(!bad(&[]));
    }
}
