//! Wiring: binds the UDP endpoint and the HTTP listener, starts the receive loop, and
//! serves the API until `shutdown` resolves. Owns no media logic.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tracing::{error, info};

use crate::api::{router, AppState, NodeInfo};
use crate::config::Config;
use crate::metrics::Meters;
use crate::net::{Demux, RoomTable, UdpEndpoint};
use crate::room::{RoomContext, Rooms};

/// A bound, not yet serving, server.
pub struct Server {
    listener: TcpListener,
    state: AppState,
    http_addr: SocketAddr,
    udp_addr: SocketAddr,
    candidates: Vec<SocketAddr>,
}

impl Server {
    /// Bind both sockets and start the UDP receive loop.
    pub async fn bind(config: &Config, prometheus: PrometheusHandle) -> io::Result<Server> {
        let endpoint = UdpEndpoint::bind(config.udp_addr, config.candidate_addrs())?;
        let udp_addr = endpoint.local_addr()?;
        let candidates = endpoint.candidates().to_vec();
        let table = Arc::new(RoomTable::default());
        let meters = Meters::new();
        let rooms = Rooms::new(
            Arc::clone(&table),
            RoomContext {
                endpoint: Arc::clone(&endpoint),
                meters: meters.clone(),
            },
        );
        let demux = Demux::new(table);
        tokio::spawn(async move {
            if let Err(e) = endpoint.run_recv(demux, meters).await {
                error!(error = %e, "udp receive loop ended");
            }
        });
        let listener = TcpListener::bind(config.http_addr).await?;
        let http_addr = listener.local_addr()?;
        let state = AppState {
            rooms,
            token: config.token.as_deref().map(Arc::from),
            ice_links: config.ice_server_links().into(),
            prometheus,
            ready: Arc::new(AtomicBool::new(true)),
            node: Arc::new(NodeInfo {
                node_id: config.node_id(),
                candidates: candidates.iter().map(|c| c.to_string()).collect(),
                version: env!("CARGO_PKG_VERSION"),
            }),
        };
        Ok(Server {
            listener,
            state,
            http_addr,
            udp_addr,
            candidates,
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
            auth = self.state.token.is_some(),
            "switchboard listening; open http://{}/",
            display_addr(self.http_addr)
        );
        let ready = Arc::clone(&self.state.ready);
        let app = router(self.state);
        axum::serve(self.listener, app)
            .with_graceful_shutdown(async move {
                shutdown.await;
                ready.store(false, Ordering::Relaxed);
                info!("shutting down");
            })
            .await
    }
}

/// Starts and watches a drain: readiness goes 503 and no new room opens here, while the
/// rooms already here keep running until their sessions end.
#[derive(Clone)]
pub struct DrainHandle {
    ready: Arc<AtomicBool>,
    rooms: Arc<Rooms>,
}

impl DrainHandle {
    /// Start draining (idempotent).
    pub fn start(&self) {
        self.ready.store(false, Ordering::Relaxed);
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

/// `0.0.0.0:8080` is not something to type in a browser: show `localhost:8080`.
fn display_addr(a: SocketAddr) -> String {
    if a.ip().is_unspecified() {
        format!("localhost:{}", a.port())
    } else {
        a.to_string()
    }
}
