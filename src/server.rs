//! Wiring: binds the UDP endpoint and the HTTP listener, starts the receive loop, and
//! serves the API until `shutdown` resolves. Owns no media logic.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tracing::{error, info};

use crate::api::{internal_router, router, AppState, NodeInfo};
use crate::cluster::redis::RedisDirectory;
use crate::cluster::{Cluster, ClusterConfig, Directory, MemoryDirectory};
use crate::config::{Config, PodDeletionCost};
use crate::http_serve::HttpLimits;
use crate::metrics::Meters;
use crate::net::{Demux, RoomTable, TcpIce, UdpEndpoint};
use crate::runtime::{RoomContext, Rooms};
use crate::tls::Tls;

/// A bound, not yet serving, server.
pub struct Server {
    listener: TcpListener,
    internal: Option<TcpListener>,
    state: AppState,
    http_addr: SocketAddr,
    udp_addr: SocketAddr,
    candidates: Vec<SocketAddr>,
    /// The live session count, when this pod keeps its deletion cost current.
    deletion_cost: Option<Arc<AtomicI64>>,
    http_limits: HttpLimits,
    /// `Some`: the HTTP listener serves HTTPS only (`--tls-cert`, `--tls-key`).
    tls: Option<Tls>,
    /// `Some`: the HTTP listener also takes ICE-TCP connections (`--ice-tcp-on-http`).
    shared_ice: Option<Arc<TcpIce>>,
}

impl Server {
    /// Bind the ICE-TCP listener (`--tcp-addr`) and start accepting on it; with
    /// `--ice-tcp-on-http` the HTTP port's candidates are advertised too (the HTTP
    /// listener hands ICE connections over). `None` when ICE over TCP is off.
    async fn bind_ice_tcp(
        config: &Config,
        table: &Arc<RoomTable>,
        http_addr: SocketAddr,
    ) -> io::Result<Option<Arc<TcpIce>>> {
        let listener = match config.tcp_addr.0 {
            Some(a) => Some(TcpListener::bind(a).await?),
            None => None,
        };
        let mut candidates = Vec::new();
        if let Some(l) = &listener {
            candidates.extend(config.tcp_candidate_addrs(l.local_addr()?.port()));
        }
        if config.ice_tcp_on_http {
            candidates.extend(config.tcp_candidate_addrs(http_addr.port()));
        }
        if candidates.is_empty() {
            return Ok(None);
        }
        crate::net::TcpMeters::describe();
        let ice = Arc::new(TcpIce::new(
            Arc::clone(table),
            candidates,
            config.tcp_max_connections,
        ));
        if let Some(l) = listener {
            info!(tcp = %l.local_addr()?, "ice-tcp listening");
            tokio::spawn(Arc::clone(&ice).run(l));
        }
        Ok(Some(ice))
    }

    /// Bind both sockets and start the UDP receive loop. With `--tls-cert`, first load
    /// the certificate and key: an unreadable or invalid file is an `InvalidInput` error
    /// naming it.
    pub async fn bind(config: &Config, prometheus: PrometheusHandle) -> io::Result<Server> {
        let tls = match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => Some(Tls::new(cert, key).map_err(|e| {
                io::Error::new(io::ErrorKind::InvalidInput, format!("TLS certificate: {e}"))
            })?),
            _ => None,
        };
        let endpoint = UdpEndpoint::bind(config.udp_addr, config.candidate_addrs())?;
        let udp_addr = endpoint.local_addr()?;
        let candidates = endpoint.candidates().to_vec();
        let table = Arc::new(RoomTable::default());
        let listener = TcpListener::bind(config.http_addr).await?;
        let http_addr = listener.local_addr()?;
        let tcp_ice = Self::bind_ice_tcp(config, &table, http_addr).await?;
        let meters = Meters::new();
        let webhooks =
            crate::webhook::Webhooks::start(&config.webhook_urls, config.webhook_secret.as_deref())
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        let archive = match config.archive() {
            Some(c) => crate::archive::Archive::start(c, webhooks.clone())
                .map_err(|e| io::Error::new(e.kind(), format!("--record-dir: {e}")))?,
            None => crate::archive::Archive::disabled(),
        };
        let rooms = Rooms::new(
            Arc::clone(&table),
            RoomContext {
                endpoint: Arc::clone(&endpoint),
                tcp: tcp_ice.clone(),
                meters: meters.clone(),
                limits: crate::limits::RoomLimits {
                    max_publishers: config.max_publishers,
                    max_participants: config.max_participants,
                    max_sessions_per_identity: config.max_sessions_per_identity,
                    shards: config.shard_policy(),
                },
                webhooks,
                archive: archive.clone(),
            },
        );
        let demux = Demux::new(table);
        let sessions = Arc::clone(&meters.live_sessions);
        let admission = crate::api::admission::Admission::new(
            crate::api::admission::AdmissionLimits {
                max_sessions: config.max_sessions,
                max_pending: config.max_pending,
                post_rate: config.post_rate,
                post_burst: config.post_burst,
            },
            Arc::clone(&meters.live_sessions),
            Arc::clone(&meters.pending_sessions),
        );
        let deletion_cost =
            (config.pod_deletion_cost == PodDeletionCost::Auto).then(|| Arc::clone(&sessions));
        tokio::spawn(async move {
            if let Err(e) = endpoint.run_recv(demux, meters).await {
                error!(error = %e, "udp receive loop ended");
            }
        });
        let internal = match config.internal_addr {
            Some(a) => Some(TcpListener::bind(a).await?),
            None => None,
        };
        // Other nodes and clients reach this one at its advertised address.
        let advertised = config
            .host_ip
            .or_else(|| candidates.first().map(|c| c.ip()))
            .unwrap_or(http_addr.ip());
        let reachable = |scheme: &str, bound: SocketAddr| {
            let ip = if bound.ip().is_unspecified() {
                advertised
            } else {
                bound.ip()
            };
            format!("{scheme}://{}", SocketAddr::new(ip, bound.port()))
        };
        // The internal listener is always plain HTTP; the public one HTTPS with TLS.
        let internal_url = match &internal {
            Some(l) => reachable("http", l.local_addr()?),
            None => String::new(),
        };
        let directory: Arc<dyn Directory> = match &config.redis_url {
            Some(url) => Arc::new(RedisDirectory::new(url).map_err(io::Error::other)?),
            None => Arc::new(MemoryDirectory::new()),
        };
        let ready = Arc::new(AtomicBool::new(true));
        let cluster = Cluster::new(
            ClusterConfig {
                node_id: config.node_id(),
                internal_url,
                public_url: config
                    .public_url
                    .clone()
                    .unwrap_or_else(|| reachable(scheme(tls.is_some()), http_addr)),
                ice: candidates.iter().map(|c| c.to_string()).collect(),
                multi_node: config.redis_url.is_some(),
                room_lease: ClusterConfig::ROOM_LEASE,
                node_ttl: ClusterConfig::NODE_TTL,
            },
            directory,
            Arc::clone(&rooms),
            Arc::clone(&ready),
            sessions,
        );
        let state = AppState {
            rooms,
            auth: Arc::new(crate::auth::Authority::new(
                config.token.clone(),
                config.auth_key.as_deref(),
            )),
            ice_links: config.ice_server_links().into(),
            ice_links_public: config.ice_server_links_public().into(),
            turn: crate::api::turn::TurnRest::from_config(config).map(Arc::new),
            admission: Arc::new(admission),
            event_streams: Default::default(),
            prometheus,
            ready,
            draining: Arc::new(tokio::sync::watch::channel(false).0),
            node: Arc::new(NodeInfo {
                node_id: config.node_id(),
                candidates: candidates.iter().map(|c| c.to_string()).collect(),
                version: env!("CARGO_PKG_VERSION"),
            }),
            cluster,
            routing: config.routing,
            internal_secret: config.internal_secret.as_deref().map(Arc::from),
            // Node to node: never through an HTTP proxy from the environment, and a
            // redirect is an answer to pass on, not to follow.
            http: reqwest::Client::builder()
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(std::time::Duration::from_secs(10))
                .build()
                .map_err(io::Error::other)?,
            archive,
        };
        Ok(Server {
            listener,
            internal,
            state,
            http_addr,
            udp_addr,
            candidates,
            deletion_cost,
            http_limits: HttpLimits {
                max_connections: config.max_connections,
                header_timeout: config.http_header_timeout,
            },
            tls,
            shared_ice: tcp_ice.filter(|_| config.ice_tcp_on_http),
        })
    }

    /// The bound HTTP address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// A handle to drain this server from a signal handler.
    pub fn drain_handle(&self) -> DrainHandle {
        DrainHandle {
            ready: Arc::clone(&self.state.ready),
            draining: Arc::clone(&self.state.draining),
            rooms: Arc::clone(&self.state.rooms),
        }
    }

    /// Serve until `shutdown` resolves (after a drain: see [`DrainHandle`]); then the
    /// listener closes, open HTTP requests finish, and this returns.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> io::Result<()> {
        info!(
            node = %self.state.node.node_id,
            http = %self.http_addr,
            udp = %self.udp_addr,
            candidates = ?self.candidates,
            auth = self.state.auth.mode(),
            cluster = self.state.cluster.multi_node(),
            "switchboard listening; open {}://{}/",
            scheme(self.tls.is_some()),
            display_addr(self.http_addr)
        );
        if self.state.auth.mode() == "open" {
            tracing::warn!(
                "development mode: no --auth-key or --token, anyone can publish and play"
            );
        }
        let ready = Arc::clone(&self.state.ready);
        let cluster = Arc::clone(&self.state.cluster);
        let membership = tokio::spawn(Arc::clone(&cluster).run());
        if let Some(sessions) = self.deletion_cost {
            // Only in Kubernetes; ends when the drain starts (see cluster::k8s).
            let mut draining = self.state.draining.subscribe();
            crate::cluster::k8s::spawn_in_cluster(sessions, async move {
                let _ = draining.wait_for(|d| *d).await;
            });
        }
        if let Some(listener) = self.internal {
            let app = internal_router(self.state.clone());
            info!(addr = %listener.local_addr()?, "internal listener for other nodes");
            // Lives as long as the process: proxied sessions end with their rooms.
            let limits = self.http_limits;
            tokio::spawn(async move {
                let forever = std::future::pending();
                let served = crate::http_serve::serve(listener, app, limits, None, None, forever);
                if let Err(e) = served.await {
                    error!(error = %e, "internal listener ended");
                }
            });
        }
        let app = router(self.state);
        if let Some(tls) = &self.tls {
            // Ends with the listener (when the last clone of `tls` is gone).
            tls.watch(crate::tls::RELOAD_PERIOD);
        }
        let result = crate::http_serve::serve(
            self.listener,
            app,
            self.http_limits,
            self.tls,
            self.shared_ice,
            async move {
                shutdown.await;
                ready.store(false, Ordering::Relaxed);
                info!("shutting down");
            },
        )
        .await;
        membership.abort();
        cluster.leave().await;
        result
    }
}

/// Starts and watches a drain: readiness goes 503 and no new room opens here, while the
/// rooms already here keep running until their sessions end.
#[derive(Clone)]
pub struct DrainHandle {
    ready: Arc<AtomicBool>,
    draining: Arc<tokio::sync::watch::Sender<bool>>,
    rooms: Arc<Rooms>,
}

impl DrainHandle {
    /// Start draining (idempotent).
    pub fn start(&self) {
        self.ready.store(false, Ordering::Relaxed);
        // WHEP viewers' event streams say `reconnect` and end.
        self.draining.send_replace(true);
    }

    /// Resolves when no room is left. Polls a few times a second: a drain lasts seconds
    /// to minutes, and the room registry is not on any media path.
    pub async fn wait_empty(&self) {
        while !self.rooms.is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }

    /// Live rooms now.
    pub fn rooms(&self) -> usize {
        self.rooms.len()
    }
}

/// The URL scheme of the public listener.
fn scheme(tls: bool) -> &'static str {
    if tls {
        "https"
    } else {
        "http"
    }
}

/// `0.0.0.0:8080` is not something to type in a browser: show `localhost:8080`.
fn display_addr(a: SocketAddr) -> String {
    if a.ip().is_unspecified() {
        format!("localhost:{}", a.port())
    } else {
        a.to_string()
    }
}
