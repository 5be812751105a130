//! The HTTP accept loop: hyper's HTTP/1 connection builder with a timer, so that
//! slow or idle clients cannot hold connections forever, and a bound on open
//! connections. Owns nothing of the API itself (that is [`crate::api`]).
//!
//! Why not `axum::serve`: it builds hyper connections without a timer, so hyper's
//! header-read timeout never applies, and it accepts without limit. Here:
//! * **Header-read timeout** (`--http-header-timeout`, hyper's `header_read_timeout`):
//!   a request's headers must arrive in full within it, counted from when the connection
//!   opens or its previous response is done — so it is also the keep-alive idle timeout.
//!   A client that sends headers a byte a second is closed after it.
//! * **Body timeout and size**: per request, where the body is read
//!   ([`crate::api::limits::read_body`]).
//! * **Connection limit** (`--max-connections`): a semaphore permit is taken before each
//!   accept and held by the connection's task; at the limit the loop stops accepting, so
//!   further clients wait in the kernel's listen backlog (no busy accept-and-close loop,
//!   and no file descriptor spent on them) until a connection closes.
//! * **Header size**: [`MAX_BUF`] bounds hyper's read buffer, so a request head larger
//!   than it (a 64 KiB URL) is refused with 431 before routing.
//!
//! Each request carries the client's address as axum's `ConnectInfo<SocketAddr>`
//! (for the per-address rate limit).

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;
use tracing::{debug, error};

/// hyper's read buffer per connection, bytes: bounds a request head (request line and
/// headers; the largest legitimate one, with a JWT, is about 2 KiB). Bodies stream
/// through it in pieces and are bounded per request.
pub(crate) const MAX_BUF: usize = 16 * 1024;

/// Limits of one listener.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HttpLimits {
    /// Most open connections (0: no limit).
    pub max_connections: u32,
    /// Headers (or, between requests, the next request's headers) must arrive within it.
    pub header_timeout: Duration,
}

/// Serve `app` on `listener` until `shutdown` resolves; then stop accepting, let open
/// connections finish their requests, and return.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let permits = (limits.max_connections > 0)
        .then(|| Arc::new(Semaphore::new(limits.max_connections as usize)));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true)
        .max_buf_size(MAX_BUF);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let permit = match &permits {
            Some(p) => tokio::select! {
                p = Arc::clone(p).acquire_owned() => p.ok(),
                () = &mut shutdown => break,
            },
            None => None,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(a) => a,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    error!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let svc = app
            .clone()
            .map_request(move |mut req: axum::http::Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                req
            });
        let conn = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(svc));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                debug!(%peer, error = %e, "http connection ended");
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Errors of one connection that was being accepted, not of the listener.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}
