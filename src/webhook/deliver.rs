//! One receiver's delivery task: takes messages from its bounded queue in order and
//! POSTs each until the receiver answers 2xx, with backoff between tries. Order is
//! kept per receiver (a message waits for the one before it), so a slow receiver holds
//! only its own queue; when that queue is full, new messages for it are dropped and
//! counted, and the rooms never wait.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::{header, Method, Request, StatusCode, Uri};
use bytes::Bytes;
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::sign::Signer;
use super::{Message, WebhookMeters};

/// Tries per message: the first and up to five retries.
pub const MAX_ATTEMPTS: u32 = 6;
/// Wait before the first retry; doubled before each next one (0.5, 1, 2, 4, 8 s).
pub const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// Longest a receiver may take to answer one try (connect, send, status line).
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

/// The HTTP(S) client every receiver's task shares: rustls on aws-lc-rs with the
/// system's root certificates, HTTP/1.1, no redirects followed.
pub type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Builds the client. Errors when the system's root certificates cannot be read and
/// `https` (some receiver is `https://`); with only `http://` receivers a machine without
/// root certificates (a minimal image) still delivers.
pub fn client(https: bool) -> std::io::Result<HttpClient> {
    use tokio_rustls::rustls::{ClientConfig, RootCertStore};
    let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
    let builder = hyper_rustls::HttpsConnectorBuilder::new();
    let builder = match builder.with_provider_and_native_roots(Arc::clone(&provider)) {
        Ok(b) => b,
        Err(e) if https => return Err(e),
        Err(_) => {
            let tls = ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(std::io::Error::other)?
                .with_root_certificates(RootCertStore::empty())
                .with_no_client_auth();
            hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls)
        }
    };
    let connector = builder.https_or_http().enable_http1().build();
    Ok(Client::builder(TokioExecutor::new()).build(connector))
}

/// What one try came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Attempt {
    /// 2xx: delivered.
    Delivered,
    /// A network error, a timeout, 408, 429 or 5xx: try again later.
    Retry(String),
    /// Any other status: the receiver refuses it, trying again would not help.
    Refused(StatusCode),
}

/// Classifies a receiver's answer.
pub fn classify(status: StatusCode) -> Attempt {
    if status.is_success() {
        Attempt::Delivered
    } else if status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
    {
        Attempt::Retry(format!("status {status}"))
    } else {
        Attempt::Refused(status)
    }
}

/// The wait before retry `n` (1 for the first retry).
pub fn backoff(n: u32) -> Duration {
    FIRST_BACKOFF * 2u32.pow(n.saturating_sub(1).min(16))
}

/// Runs until every sender of `queue` is gone.
pub(super) async fn run(
    url: Uri,
    client: HttpClient,
    signer: Arc<Signer>,
    meters: WebhookMeters,
    mut queue: mpsc::Receiver<Arc<Message>>,
) {
    while let Some(msg) = queue.recv().await {
        let mut attempt = 1;
        loop {
            match send(&client, &url, &signer, &msg).await {
                Attempt::Delivered => {
                    meters.delivered.increment(1);
                    debug!(%url, id = %msg.id, kind = msg.kind, "webhook delivered");
                    break;
                }
                Attempt::Refused(status) => {
                    meters.failed.increment(1);
                    warn!(%url, id = %msg.id, kind = msg.kind, %status, "webhook refused by the receiver; not retried");
                    break;
                }
                Attempt::Retry(why) if attempt >= MAX_ATTEMPTS => {
                    meters.failed.increment(1);
                    warn!(%url, id = %msg.id, kind = msg.kind, attempts = attempt, %why, "webhook not delivered; given up");
                    break;
                }
                Attempt::Retry(why) => {
                    meters.retries.increment(1);
                    debug!(%url, id = %msg.id, attempt, %why, "webhook try failed; retrying");
                    tokio::time::sleep(backoff(attempt)).await;
                    attempt += 1;
                }
            }
        }
    }
}

/// One try: signed with the time of the try, so a receiver's replay window holds for
/// late retries too.
async fn send(client: &HttpClient, url: &Uri, signer: &Signer, msg: &Message) -> Attempt {
    let timestamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let signature = signer.sign(&msg.id, timestamp, &msg.body);
    let request = Request::builder()
        .method(Method::POST)
        .uri(url.clone())
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::USER_AGENT, super::USER_AGENT)
        .header("webhook-id", msg.id.as_str())
        .header("webhook-timestamp", timestamp)
        .header("webhook-signature", signature)
        .body(Full::new(msg.body.clone()));
    let request = match request {
        Ok(r) => r,
        Err(e) => return Attempt::Retry(format!("request: {e}")),
    };
    match tokio::time::timeout(ATTEMPT_TIMEOUT, client.request(request)).await {
        Err(_) => Attempt::Retry(format!("no answer within {ATTEMPT_TIMEOUT:?}")),
        Ok(Err(e)) => Attempt::Retry(format!("connection: {e}")),
        // The body is not read: dropping the response closes the exchange.
        Ok(Ok(response)) => classify(response.status()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_on_what_can_pass_and_not_on_a_refusal() {
        assert_eq!(classify(StatusCode::NO_CONTENT), Attempt::Delivered);
        assert!(matches!(
            classify(StatusCode::BAD_GATEWAY),
            Attempt::Retry(_)
        ));
        assert!(matches!(
            classify(StatusCode::TOO_MANY_REQUESTS),
            Attempt::Retry(_)
        ));
        assert!(matches!(
            classify(StatusCode::REQUEST_TIMEOUT),
            Attempt::Retry(_)
        ));
        assert_eq!(
            classify(StatusCode::UNAUTHORIZED),
            Attempt::Refused(StatusCode::UNAUTHORIZED)
        );
        assert_eq!(
            classify(StatusCode::MOVED_PERMANENTLY),
            Attempt::Refused(StatusCode::MOVED_PERMANENTLY)
        );
    }

    #[test]
    fn backoff_doubles_from_half_a_second() {
        let waits: Vec<u128> = (1..MAX_ATTEMPTS).map(|n| backoff(n).as_millis()).collect();
        assert_eq!(waits, [500, 1000, 2000, 4000, 8000]);
    }
}
