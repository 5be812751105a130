//! Command line and environment configuration (clap). Owns parsing and validation of
//! the server's settings; never starts anything.

use std::net::{IpAddr, SocketAddr};

use clap::{Parser, ValueEnum};

/// Switchboard: a WebRTC SFU with WHIP ingest and WHEP playback.
///
/// Every flag can also be set with an environment variable `SWITCHBOARD_<FLAG>`.
#[derive(Parser, Debug, Clone)]
#[command(name = "switchboard", version, about, long_about = None)]
pub struct Config {
    /// Address the HTTP API, web pages and /metrics listen on.
    #[arg(long, env = "SWITCHBOARD_HTTP_ADDR", default_value = "0.0.0.0:8080")]
    pub http_addr: SocketAddr,

    /// The one UDP address all WebRTC traffic (ICE, DTLS, SRTP) uses.
    #[arg(long, env = "SWITCHBOARD_UDP_ADDR", default_value = "0.0.0.0:7880")]
    pub udp_addr: SocketAddr,

    /// Address put in ICE candidates (repeatable, or comma separated in the env var).
    /// When absent: the UDP address if it is specific, else every interface address of
    /// its family, loopback included so a laptop works out of the box.
    #[arg(
        long = "public-ip",
        env = "SWITCHBOARD_PUBLIC_IP",
        value_delimiter = ','
    )]
    pub public_ip: Vec<IpAddr>,

    /// Log format.
    #[arg(long, env = "SWITCHBOARD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Static bearer token required on WHIP/WHEP POST, PATCH and DELETE
    /// (`Authorization: Bearer <token>`, RFC 6750). No token: open access.
    #[arg(long, env = "SWITCHBOARD_TOKEN")]
    pub token: Option<String>,

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
    /// The addresses to advertise as ICE host candidates, with the UDP port.
    ///
    /// Order: explicit `--public-ip`; the UDP bind address when it is specific; else every
    /// interface address of the bind address's family (IPv6 link-local excluded, since a
    /// candidate would need its scope id). Never empty: falls back to loopback.
    pub fn candidate_addrs(&self) -> Vec<SocketAddr> {
        let port = self.udp_addr.port();
        let mut ips: Vec<IpAddr> = if !self.public_ip.is_empty() {
            self.public_ip.clone()
        } else if !self.udp_addr.ip().is_unspecified() {
            vec![self.udp_addr.ip()]
        } else {
            let want_v6 = self.udp_addr.is_ipv6();
            let mut ips: Vec<IpAddr> = if_addrs::get_if_addrs()
                .unwrap_or_default()
                .into_iter()
                .map(|i| i.ip())
                .filter(|ip| match ip {
                    IpAddr::V4(_) => true,
                    IpAddr::V6(v6) => want_v6 && (v6.segments()[0] & 0xffc0) != 0xfe80,
                })
                .collect();
            // Non-loopback first: clients prefer earlier candidates of equal priority.
            ips.sort_by_key(|ip| ip.is_loopback());
            ips
        };
        ips.dedup();
        if ips.is_empty() {
            ips.push(IpAddr::from([127, 0, 0, 1]));
        }
        ips.into_iter()
            .map(|ip| SocketAddr::new(ip, port))
            .collect()
    }

    /// `Link` header values for the configured ICE servers (RFC 9725 §4.6), in order.
    pub fn ice_server_links(&self) -> Vec<String> {
        self.ice_servers
            .iter()
            .map(|url| {
                let is_turn = url.starts_with("turn:") || url.starts_with("turns:");
                match (is_turn, &self.ice_username, &self.ice_credential) {
                    (true, Some(user), Some(cred)) => format!(
                        "<{url}>; rel=\"ice-server\"; username=\"{}\"; credential=\"{}\"; \
                         credential-type=\"password\"",
                        quote_escape(user),
                        quote_escape(cred)
                    ),
                    _ => format!("<{url}>; rel=\"ice-server\""),
                }
            })
            .collect()
    }
}

fn quote_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Config {
        let mut v = vec!["switchboard"];
        v.extend_from_slice(args);
        Config::try_parse_from(v).expect("valid args")
    }

    #[test]
    fn defaults() {
        let c = parse(&[]);
        assert_eq!(c.http_addr, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(c.udp_addr, "0.0.0.0:7880".parse().unwrap());
        assert!(c.token.is_none());
        let cands = c.candidate_addrs();
        assert!(!cands.is_empty());
        assert!(cands.iter().all(|a| a.port() == 7880));
    }

    #[test]
    fn explicit_public_ips_win() {
        let c = parse(&["--public-ip", "192.0.2.1", "--public-ip", "198.51.100.2"]);
        let cands = c.candidate_addrs();
        assert_eq!(
            cands,
            vec![
                "192.0.2.1:7880".parse().unwrap(),
                "198.51.100.2:7880".parse().unwrap()
            ]
        );
    }

    #[test]
    fn specific_udp_addr_is_the_candidate() {
        let c = parse(&["--udp-addr", "127.0.0.1:9999"]);
        assert_eq!(c.candidate_addrs(), vec!["127.0.0.1:9999".parse().unwrap()]);
    }

    #[test]
    fn bad_address_is_an_error() {
        assert!(Config::try_parse_from(["switchboard", "--http-addr", "nope"]).is_err());
        assert!(Config::try_parse_from(["switchboard", "--public-ip", "1.2.3"]).is_err());
    }

    #[test]
    fn ice_server_links() {
        let c = parse(&[
            "--ice-server",
            "stun:stun.example.org:3478",
            "--ice-server",
            "turn:turn.example.org:3478?transport=udp",
            "--ice-username",
            "u",
            "--ice-credential",
            "p\"w",
        ]);
        let links = c.ice_server_links();
        assert_eq!(links[0], "<stun:stun.example.org:3478>; rel=\"ice-server\"");
        assert!(links[1].contains("username=\"u\""));
        assert!(links[1].contains("credential=\"p\\\"w\""));
        assert!(links[1].contains("credential-type=\"password\""));
    }
}
