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
//! * **TLS** (`--tls-cert`, [`crate::tls`]): when set, every connection is a TLS
//!   handshake first, which must end within the header-read timeout too, so a client
//!   that opens TCP and sends nothing holds its connection slot no longer than that.
//!   A failed handshake is logged at debug and counted, and ends only its connection.
//!
//! Each accepted TCP stream goes through one function, [`connection`], that decides
//! what it is (today: TLS or not, then HTTP/1); a new kind of stream on this port is a
//! new step there. Each request carries the client's address as axum's
//! `ConnectInfo<SocketAddr>` (for the per-address rate limit).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper::rt::{Read, Write};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tower::ServiceExt;
use tracing::{debug, error};

use crate::net::framing::{classify_first_bytes, FirstBytes, FIRST_BYTES};
use crate::net::TcpIce;
use crate::tls::Tls;

/// hyper's read buffer per connection, bytes: bounds a request head (request line and
/// headers; the largest legitimate one, with a JWT, is about 2 KiB). Bodies stream
/// through it in pieces and are bounded per request.
pub(crate) const MAX_BUF: usize = 16 * 1024;

/// Limits of one listener.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HttpLimits {
    /// Most open connections (0: no limit).
    pub max_connections: u32,
    /// Headers (or, between requests, the next request's headers) must arrive within it;
    /// with TLS, the handshake too.
    pub header_timeout: Duration,
}

/// What every connection of one listener shares.
struct Listener {
    app: Router,
    http: http1::Builder,
    /// `Some`: HTTPS only.
    tls: Option<Tls>,
    /// `Some`: ICE over TCP shares the port (`--ice-tcp-on-http`).
    ice: Option<Arc<TcpIce>>,
    limits: HttpLimits,
}

/// Serve `app` on `listener` (HTTPS only when `tls` is given) until `shutdown`
/// resolves; then stop accepting, let open connections finish their requests, and
/// return.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: HttpLimits,
    tls: Option<Tls>,
    ice: Option<Arc<TcpIce>>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let permits = (limits.max_connections > 0)
        .then(|| Arc::new(Semaphore::new(limits.max_connections as usize)));
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true)
        .max_buf_size(MAX_BUF);
    let shared = Arc::new(Listener {
        app,
        http,
        tls,
        ice,
        limits,
    });
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
        // Taken here, before the shutdown can start, so a connection still in its
        // handshake then is waited for too (bounded by the handshake timeout).
        let watcher = graceful.watcher();
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            connection(stream, peer, &shared, watcher).await;
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// One accepted TCP connection, from accept to close, on its own task: the one place
/// that decides what the stream is. Today: a TLS handshake when the listener has TLS
/// (within the header timeout; a failure ends the connection), then HTTP/1.
async fn connection(stream: TcpStream, peer: SocketAddr, shared: &Listener, watcher: Watcher) {
    let _ = stream.set_nodelay(true);
    if let Some(ice) = &shared.ice {
        match first_bytes(&stream, shared.limits.header_timeout).await {
            FirstBytes::Ice => return ice.serve(stream, peer),
            FirstBytes::Other => {}
            // Closed, or silent past the header timeout with a prefix that could still
            // be either: nothing to serve.
            FirstBytes::NeedMore => return,
        }
    }
    let Some(tls) = &shared.tls else {
        return serve_http(TokioIo::new(stream), peer, shared, watcher).await;
    };
    match tls.accept(stream, shared.limits.header_timeout).await {
        Ok(stream) => serve_http(TokioIo::new(stream), peer, shared, watcher).await,
        Err(e) => debug!(%peer, error = %e, "tls handshake failed"),
    }
}

/// What the first bytes of `stream` are (ICE-TCP or HTTP/TLS, see
/// [`classify_first_bytes`]), read with `peek` so they stay in the socket for whoever
/// serves it. `NeedMore` when the stream closed or `timeout` passed before the first
/// [`FIRST_BYTES`] bytes decided.
async fn first_bytes(stream: &TcpStream, timeout: Duration) -> FirstBytes {
    let mut buf = [0u8; FIRST_BYTES];
    let decide = async {
        loop {
            let n = match stream.peek(&mut buf).await {
                Ok(0) | Err(_) => return FirstBytes::NeedMore,
                Ok(n) => n,
            };
            match classify_first_bytes(&buf[..n]) {
                // Fewer than FIRST_BYTES bytes, all consistent with a framed check: the
                // rest is in flight (peek returns at once while bytes are queued).
                FirstBytes::NeedMore => tokio::time::sleep(Duration::from_millis(5)).await,
                decided => return decided,
            }
        }
    };
    tokio::time::timeout(timeout, decide)
        .await
        .unwrap_or(FirstBytes::NeedMore)
}

/// HTTP/1 on `io` until the client closes, a timeout, or the shutdown (after the
/// request in progress).
async fn serve_http<I>(io: I, peer: SocketAddr, shared: &Listener, watcher: Watcher)
where
    I: Read + Write + Unpin + Send + 'static,
{
    let svc = shared
        .app
        .clone()
        .map_request(move |mut req: axum::http::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            req
        });
    let conn = shared
        .http
        .serve_connection(io, TowerToHyperService::new(svc));
    if let Err(e) = watcher.watch(conn).await {
        debug!(%peer, error = %e, "http connection ended");
    }
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
