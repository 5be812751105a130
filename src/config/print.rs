//! `--print-config`: the effective settings as TOML, secrets redacted.

use super::{Config, LogFormat, PodDeletionCost, PublicIpFrom, Routing};

impl Config {
    /// The effective settings as TOML (`--print-config`), secrets redacted.
    pub fn to_toml(&self) -> String {
        let list = |v: &[String]| {
            let items: Vec<String> = v.iter().map(|s| format!("{s:?}")).collect();
            format!("[{}]", items.join(", "))
        };
        let ips: Vec<String> = self.public_ip.iter().map(|i| i.to_string()).collect();
        let mut out = vec![
            format!("http_addr = \"{}\"", self.http_addr),
            format!("udp_addr = \"{}\"", self.udp_addr),
            format!("tcp_addr = \"{}\"", self.tcp_addr),
            format!("ice_tcp_on_http = {}", self.ice_tcp_on_http),
            format!("tcp_max_connections = {}", self.tcp_max_connections),
            format!("public_ip = {}", list(&ips)),
            format!(
                "public_ip_from = \"{}\"",
                match self.public_ip_from {
                    PublicIpFrom::Interfaces => "interfaces",
                    PublicIpFrom::HostIp => "host-ip",
                }
            ),
        ];
        if let Some(ip) = self.host_ip {
            out.push(format!("host_ip = \"{ip}\""));
        }
        out.push(format!(
            "drain_timeout = \"{}\"",
            humantime::format_duration(self.drain_timeout)
        ));
        out.push(format!("node_id = {:?}", self.node_id()));
        if let Some(u) = &self.redis_url {
            out.push(format!("redis_url = {u:?}"));
        }
        if let Some(a) = self.internal_addr {
            out.push(format!("internal_addr = \"{a}\""));
        }
        if self.internal_secret.is_some() {
            out.push("internal_secret = \"<redacted>\"".into());
        }
        out.push(format!(
            "routing = \"{}\"",
            match self.routing {
                Routing::Proxy => "proxy",
                Routing::Redirect => "redirect",
            }
        ));
        if let Some(u) = &self.public_url {
            out.push(format!("public_url = {u:?}"));
        }
        out.push(format!(
            "pod_deletion_cost = \"{}\"",
            match self.pod_deletion_cost {
                PodDeletionCost::Auto => "auto",
                PodDeletionCost::Off => "off",
            }
        ));
        out.push(format!(
            "log_format = \"{}\"",
            match self.log_format {
                LogFormat::Text => "text",
                LogFormat::Json => "json",
            }
        ));
        out.push(format!("max_publishers = {}", self.max_publishers));
        out.push(format!("max_participants = {}", self.max_participants));
        out.push(format!("shard_after = {}", self.shard_after));
        if let Some(n) = self.max_shards {
            out.push(format!("max_shards = {n}"));
        }
        out.push(format!(
            "max_sessions_per_identity = {}",
            self.max_sessions_per_identity
        ));
        out.push(format!("max_sessions = {}", self.max_sessions));
        out.push(format!("max_pending = {}", self.max_pending));
        out.push(format!("post_rate = {}", self.post_rate));
        out.push(format!("post_burst = {}", self.post_burst));
        out.push(format!("max_connections = {}", self.max_connections));
        out.push(format!(
            "http_header_timeout = \"{}\"",
            humantime::format_duration(self.http_header_timeout)
        ));
        for (key, path) in [("tls_cert", &self.tls_cert), ("tls_key", &self.tls_key)] {
            if let Some(p) = path {
                out.push(format!("{key} = {:?}", p.display().to_string()));
            }
        }
        if self.token.is_some() {
            out.push("token = \"<redacted>\"".into());
        }
        if self.auth_key.is_some() {
            out.push("auth_key = \"<redacted>\"".into());
        }
        out.push(format!("ice_server = {}", list(&self.ice_servers)));
        if let Some(u) = &self.ice_username {
            out.push(format!("ice_username = {u:?}"));
        }
        if self.ice_credential.is_some() {
            out.push("ice_credential = \"<redacted>\"".into());
        }
        out.push(format!("turn_url = {}", list(&self.turn_urls)));
        if self.turn_secret.is_some() {
            out.push("turn_secret = \"<redacted>\"".into());
        }
        let ttl = humantime::format_duration(self.turn_ttl);
        out.push(format!("turn_ttl = \"{ttl}\""));
        out.push(format!("webhook_url = {}", list(&self.webhook_urls)));
        if self.webhook_secret.is_some() {
            out.push("webhook_secret = \"<redacted>\"".into());
        }
        out.join("\n") + "\n"
    }
}
