//! The network side of the configuration: the ICE candidate addresses (UDP and TCP),
//! the `--tcp-addr` value, the ICE servers advertised in `Link` headers, and the checks
//! of the TURN flags.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::{Config, PublicIpFrom};

/// Shortest `--turn-secret` accepted: every client sees username/credential pairs, from
/// which a short secret can be found offline.
pub const MIN_SECRET_LEN: usize = 16;

/// Longest `--turn-ttl` accepted (7 days).
pub const MAX_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// Longest `--turn-url` accepted, in bytes.
const MAX_URL_LEN: usize = 256;

/// The ICE-TCP listener address (`--tcp-addr`): an address, or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpAddr(pub Option<SocketAddr>);

impl std::fmt::Display for TcpAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(a) => write!(f, "{a}"),
            None => f.write_str("off"),
        }
    }
}

pub(super) fn parse_tcp_addr(s: &str) -> Result<TcpAddr, String> {
    if s.eq_ignore_ascii_case("off") {
        return Ok(TcpAddr(None));
    }
    s.parse()
        .map(|a| TcpAddr(Some(a)))
        .map_err(|e| format!("`{s}`: {e} (an address like 0.0.0.0:7881, or `off`)"))
}

/// Interface name prefixes of container networking: their addresses are never reachable
/// from outside the host.
const CONTAINER_IFACES: &[&str] = &[
    "docker", "br-", "veth", "cni", "flannel", "cali", "weave", "kube-", "cilium", "vxlan", "tunl",
    "podman", "virbr", "lxc", "lxd",
];

impl Config {
    /// The addresses to advertise as ICE host candidates, with the UDP port.
    ///
    /// Order: explicit `--public-ip`; `--host-ip` with `--public-ip-from host-ip`; the UDP
    /// bind address when it is specific; else every interface address of the bind
    /// address's family, except container bridges ([`PublicIpFrom::Interfaces`]) and IPv6
    /// link-local (a candidate would need its scope id). Never empty: falls back to
    /// loopback.
    pub fn candidate_addrs(&self) -> Vec<SocketAddr> {
        let port = self.udp_addr.port();
        let mut ips: Vec<IpAddr> = if !self.public_ip.is_empty() {
            self.public_ip.clone()
        } else if let (PublicIpFrom::HostIp, Some(ip)) = (self.public_ip_from, self.host_ip) {
            vec![ip]
        } else if !self.udp_addr.ip().is_unspecified() {
            vec![self.udp_addr.ip()]
        } else {
            let want_v6 = self.udp_addr.is_ipv6();
            let mut ips: Vec<IpAddr> = if_addrs::get_if_addrs()
                .unwrap_or_default()
                .into_iter()
                .filter(|i| !CONTAINER_IFACES.iter().any(|p| i.name.starts_with(p)))
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

    /// The addresses to advertise as passive ICE-TCP host candidates on `port`: the
    /// same addresses as the UDP ones ([`Config::candidate_addrs`]).
    pub fn tcp_candidate_addrs(&self, port: u16) -> Vec<SocketAddr> {
        self.candidate_addrs()
            .into_iter()
            .map(|a| SocketAddr::new(a.ip(), port))
            .collect()
    }

    /// `Link` header values for the ICE servers that need no credentials (STUN), for
    /// callers that are not authorized (RFC 9725 §4.6).
    pub fn ice_server_links_public(&self) -> Vec<String> {
        self.ice_servers
            .iter()
            .filter(|url| !(url.starts_with("turn:") || url.starts_with("turns:")))
            .map(|url| format!("<{url}>; rel=\"ice-server\""))
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

/// Checks `--turn-url`, `--turn-secret` and `--turn-ttl` together; the message is for
/// the operator. URLs: `turn:` or `turns:` (RFC 7065 §3.1), then a host, at most 256
/// bytes of visible ASCII without `<`, `>`, `"` or `,`.
pub(crate) fn check_turn(
    urls: &[String],
    secret: Option<&str>,
    ttl: Duration,
) -> Result<(), String> {
    if urls.is_empty() {
        return match secret {
            Some(_) => Err("--turn-secret needs at least one --turn-url".into()),
            None => Ok(()),
        };
    }
    for url in urls {
        let rest = url
            .strip_prefix("turn:")
            .or_else(|| url.strip_prefix("turns:"));
        let printable = url
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"<>\",".contains(&b));
        if !rest.is_some_and(|r| !r.is_empty() && !r.starts_with('?'))
            || !printable
            || url.len() > MAX_URL_LEN
        {
            return Err(format!(
                "--turn-url {url:?}: expected turn:HOST[:PORT][?transport=udp|tcp] or \
                 turns:HOST[:PORT][?transport=tcp] (RFC 7065), at most {MAX_URL_LEN} bytes"
            ));
        }
    }
    match secret {
        None => Err(
            "--turn-url needs --turn-secret (SWITCHBOARD_TURN_SECRET), the TURN server's \
             static-auth-secret"
                .into(),
        ),
        Some(s) if s.len() < MIN_SECRET_LEN => Err(format!(
            "--turn-secret must be at least {MIN_SECRET_LEN} characters"
        )),
        Some(_) if ttl < Duration::from_secs(60) || ttl > MAX_TTL => {
            Err("--turn-ttl must be between 1m and 7days".into())
        }
        Some(_) => Ok(()),
    }
}
