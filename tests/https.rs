//! HTTPS on the public listener (`--tls-cert`, `--tls-key`), against the real server run
//! in this process on 127.0.0.1, with certificates of a test CA generated here (rcgen).
//!
//! Checked: pages and `/livez` answer 200 over HTTPS (ALPN `http/1.1`); plain HTTP to
//! the HTTPS port gets no HTTP answer and is counted as a handshake failure; a client
//! that opens TCP and sends nothing is closed after the header timeout; new certificate
//! files (another subject) are served within the reload period, a bad file keeps the
//! certificate in use; startup with a bad file fails naming it; `--print-config` shows
//! the files; with `--ice-tcp-on-http` a framed STUN check on the HTTPS port goes to the
//! ICE-TCP side while HTTPS goes on answering there.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::CommandFactory;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use metrics_exporter_prometheus::PrometheusHandle;
use rcgen::{CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use switchboard::server::Server;
use tokio_rustls::{rustls, TlsConnector};

/// The reload period is 2 s; a new certificate is served within this.
const RELOAD_WITHIN: Duration = Duration::from_secs(6);

/// A CA, and the files of certificates it issued.
struct Pki {
    ca: CertifiedIssuer<'static, KeyPair>,
    dir: PathBuf,
}

impl Pki {
    fn new(test: &str) -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "switchboard test CA");
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().expect("CA key"))
            .expect("CA certificate");
        let dir =
            std::env::temp_dir().join(format!("switchboard-https-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        Pki { ca, dir }
    }

    fn cert_path(&self) -> PathBuf {
        self.dir.join("cert.pem")
    }

    fn key_path(&self) -> PathBuf {
        self.dir.join("key.pem")
    }

    /// Issue a certificate for 127.0.0.1 with common name `cn` and put it (and its key)
    /// in the files, each replaced at once (written aside, then renamed). Its DER.
    fn issue(&self, cn: &str) -> Vec<u8> {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(vec!["127.0.0.1".to_string()]).expect("params");
        params.distinguished_name.push(DnType::CommonName, cn);
        let cert = params.signed_by(&key, &*self.ca).expect("issue");
        replace(&self.key_path(), &key.serialize_pem());
        replace(&self.cert_path(), &cert.pem());
        cert.der().to_vec()
    }

    /// A client that trusts only this CA and offers ALPN `http/1.1`.
    fn client(&self) -> Client {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.der().clone()).expect("trust the CA");
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        // A resumed session (RFC 8446 §2.2) shows the certificate of the session it
        // resumes: every handshake here is a full one.
        tls.resumption = rustls::client::Resumption::disabled();
        Client(TlsConnector::from(Arc::new(tls)))
    }
}

/// An HTTPS client: one new connection per request, so a reloaded certificate is seen.
struct Client(TlsConnector);

/// What one HTTPS request got.
struct Reply {
    status: u16,
    /// The certificate the server presented (DER).
    cert: Vec<u8>,
    /// The protocol ALPN selected.
    alpn: Option<Vec<u8>>,
    body: String,
}

impl Client {
    /// `GET path` from `addr` over a new TLS connection (server name 127.0.0.1).
    async fn get(&self, addr: SocketAddr, path: &str) -> Reply {
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
        let tls = self.0.connect(name, tcp).await.expect("TLS handshake");
        let (_, session) = tls.get_ref();
        let cert = session.peer_certificates().expect("a certificate")[0].to_vec();
        let alpn = session.alpn_protocol().map(<[u8]>::to_vec);
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .expect("HTTP/1 handshake");
        tokio::spawn(conn);
        let req = hyper::Request::get(path)
            .header(hyper::header::HOST, addr.to_string())
            .body(Empty::<Bytes>::new())
            .expect("request");
        let resp = tokio::time::timeout(Duration::from_secs(5), send.send_request(req))
            .await
            .expect("answer within 5 s")
            .expect("answer");
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        Reply {
            status,
            cert,
            alpn,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn replace(path: &Path, text: &str) {
    let aside = path.with_extension("new");
    std::fs::write(&aside, text).expect("write");
    std::fs::rename(&aside, path).expect("rename");
}

/// The process's metrics recorder (one per test binary).
fn prometheus() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| switchboard::metrics::install().expect("metrics recorder"))
        .clone()
}

fn config(pki: &Pki, extra: &[&str]) -> switchboard::config::Config {
    let (cert, key) = (pki.cert_path(), pki.key_path());
    let mut args = vec![
        "switchboard",
        "--http-addr",
        "127.0.0.1:0",
        "--udp-addr",
        "127.0.0.1:0",
        "--public-ip",
        "127.0.0.1",
        "--pod-deletion-cost",
        "off",
        "--tls-cert",
        cert.to_str().expect("path"),
        "--tls-key",
        key.to_str().expect("path"),
    ];
    // ICE over TCP has its own listener, not under test here: off where this build has
    // it (its default port would be shared by the servers of these tests).
    let tcp = switchboard::config::Config::command()
        .get_arguments()
        .any(|a| a.get_long() == Some("tcp-addr"));
    if tcp {
        args.extend_from_slice(&["--tcp-addr", "off"]);
    }
    args.extend_from_slice(extra);
    switchboard::config_file::load_from(args).expect("config")
}

/// Start the server with the files of `pki`; its HTTPS address.
async fn start(pki: &Pki, extra: &[&str]) -> SocketAddr {
    let server = Server::bind(&config(pki, extra), prometheus())
        .await
        .expect("bind");
    let addr = server.http_addr();
    tokio::spawn(server.serve(std::future::pending()));
    addr
}

/// One series of the `/metrics` text (with its labels and a trailing space); 0 if absent.
fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_and_probes_over_https_and_plain_http_refused() {
    let pki = Pki::new("serve");
    let der = pki.issue("first");
    let addr = start(&pki, &["--http-header-timeout", "1s"]).await;
    let client = pki.client();
    for path in ["/livez", "/", "/publish"] {
        let reply = client.get(addr, path).await;
        assert_eq!(reply.status, 200, "GET {path} over https: {}", reply.body);
        assert_eq!(reply.cert, der, "GET {path}: the configured certificate");
        assert_eq!(reply.alpn.as_deref(), Some(&b"http/1.1"[..]), "ALPN");
    }

    // Plain HTTP to the HTTPS port: no HTTP answer, and the failed handshake is counted.
    let plain = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let reply = plain.get(format!("http://{addr}/livez")).send().await;
    assert!(reply.is_err(), "plain http answered: {reply:?}");

    // A client that opens TCP and sends nothing is closed after the header timeout.
    let started = Instant::now();
    let silent = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            silent.readable().await.expect("readable");
            match silent.try_read(&mut buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
    })
    .await
    .expect("a silent client is closed within 5 s");
    assert!(matches!(read, Ok(0) | Err(_)), "closed: {read:?}");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(800),
        "closed too early: {waited:?}"
    );

    let text = client.get(addr, "/metrics").await.body;
    let failures = metric(&text, "switchboard_tls_handshake_failures_total ");
    assert!(
        failures >= 2.0,
        "handshake failures counted: {failures}\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_certificate_files_are_served_and_a_bad_file_keeps_the_old_one() {
    let pki = Pki::new("reload");
    let first = pki.issue("first");
    let addr = start(&pki, &[]).await;
    let client = pki.client();
    assert_eq!(client.get(addr, "/livez").await.cert, first);

    // A renewal: another subject, another key.
    let second = pki.issue("second");
    assert_ne!(first, second);
    let started = Instant::now();
    while client.get(addr, "/livez").await.cert != second {
        assert!(
            started.elapsed() < RELOAD_WITHIN,
            "new certificate not served within {RELOAD_WITHIN:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "new certificate served {:?} after the files changed",
        started.elapsed()
    );

    // A broken file: the certificate in use stays, the failure is counted.
    let errors = |text: &str| metric(text, "switchboard_tls_reloads_total{outcome=\"error\"} ");
    let text = client.get(addr, "/metrics").await.body;
    assert!(metric(&text, "switchboard_tls_reloads_total{outcome=\"ok\"} ") >= 1.0);
    let errors_before = errors(&text);
    replace(&pki.cert_path(), "not a certificate\n");
    let started = Instant::now();
    loop {
        let reply = client.get(addr, "/metrics").await;
        assert_eq!((reply.status, &reply.cert), (200, &second));
        if errors(&reply.body) > errors_before {
            break;
        }
        assert!(
            started.elapsed() < RELOAD_WITHIN,
            "bad file not seen:\n{}",
            reply.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(client.get(addr, "/livez").await.cert, second);
}

#[tokio::test]
async fn startup_with_a_bad_file_fails_naming_it() {
    let pki = Pki::new("bad");
    pki.issue("ok");
    std::fs::write(pki.key_path(), "no key here\n").expect("write");
    let err = match Server::bind(&config(&pki, &[]), prometheus()).await {
        Ok(_) => panic!("started with a bad key file"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("key.pem") && err.contains("no PEM private key"),
        "{err}"
    );

    // The binary: the same message, a failure status; and --print-config shows the files.
    let bin = env!("CARGO_BIN_EXE_switchboard");
    let (cert, key) = (pki.cert_path(), pki.key_path());
    let tls_args = [
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ];
    let out = std::process::Command::new(bin)
        .args(["--http-addr", "127.0.0.1:0", "--udp-addr", "127.0.0.1:0"])
        .args(["--pod-deletion-cost", "off"])
        .args(tls_args)
        .output()
        .expect("run the binary");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("no PEM private key"), "{stderr}");
    let out = std::process::Command::new(bin)
        .arg("--print-config")
        .args(tls_args)
        .output()
        .expect("run the binary");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains(&format!("tls_cert = {:?}", cert.display().to_string())),
        "{stdout}"
    );
    // One without the other is a configuration error.
    let out = std::process::Command::new(bin)
        .args(["--print-config", "--tls-cert", cert.to_str().unwrap()])
        .output()
        .expect("run the binary");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tls-key"));
}

/// A framed (RFC 4571) STUN Binding request whose USERNAME names server ufrag
/// `server_ufrag` (RFC 8489 §5, §14.3), without integrity.
fn framed_stun_check(server_ufrag: &str) -> Vec<u8> {
    let user = format!("{server_ufrag}:peer");
    let mut attrs = vec![0x00, 0x06, 0x00, user.len() as u8];
    attrs.extend_from_slice(user.as_bytes());
    while attrs.len() % 4 != 0 {
        attrs.push(0);
    }
    let mut msg = vec![0x00, 0x01, 0x00, attrs.len() as u8, 0x21, 0x12, 0xA4, 0x42];
    msg.extend_from_slice(&[1; 12]);
    msg.extend_from_slice(&attrs);
    let mut framed = (msg.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&msg);
    framed
}

/// `--ice-tcp-on-http` with TLS: one port serves HTTPS and ICE-TCP. A connection that
/// opens with a framed STUN check goes to the ICE side (here refused: it names no room,
/// counted as such, not as a failed TLS handshake); HTTPS goes on answering on the port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ice_tcp_and_https_share_one_port() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let pki = Pki::new("shared");
    pki.issue("shared");
    let addr = start(&pki, &["--ice-tcp-on-http"]).await;
    let client = pki.client();
    assert_eq!(client.get(addr, "/livez").await.status, 200);
    let before = client.get(addr, "/metrics").await.body;
    let refused = "switchboard_tcp_connections_total{outcome=\"refused_unknown_room\"} ";
    let tls_failed = "switchboard_tls_handshake_failures_total ";

    let mut ice = tokio::net::TcpStream::connect(addr).await.expect("connect");
    ice.write_all(&framed_stun_check("0000000fabcd"))
        .await
        .expect("write");
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(5), ice.read(&mut buf))
        .await
        .expect("closed within 5 s");
    assert!(matches!(read, Ok(0) | Err(_)), "closed: {read:?}");

    let after = client.get(addr, "/metrics").await.body;
    assert_eq!(
        metric(&after, refused) - metric(&before, refused),
        1.0,
        "the check went to the ICE side\n{after}"
    );
    assert_eq!(
        metric(&after, tls_failed),
        metric(&before, tls_failed),
        "the check was not taken for a TLS handshake"
    );
    assert_eq!(client.get(addr, "/publish").await.status, 200);
}
