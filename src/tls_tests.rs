//! Loading, refusing and reloading certificates, with certificates generated here
//! (rcgen), never committed key files.

use std::path::{Path, PathBuf};

use super::*;

/// A self-signed certificate for `localhost` and 127.0.0.1 with common name `cn`: its
/// PEM, its key's PEM, and its DER (to recognise it later).
fn self_signed(cn: &str) -> (String, String, Vec<u8>) {
    let key = rcgen::KeyPair::generate().expect("key pair");
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    let cert = params.self_signed(&key).expect("self-signed");
    (cert.pem(), key.serialize_pem(), cert.der().to_vec())
}

/// A fresh directory for one test's files.
fn dir(test: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("switchboard-tls-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// Write `cert.pem` and `key.pem` in `d`; their paths.
fn write(d: &Path, cert: &str, key: &str) -> (PathBuf, PathBuf) {
    let (c, k) = (d.join("cert.pem"), d.join("key.pem"));
    std::fs::write(&c, cert).expect("write cert");
    std::fs::write(&k, key).expect("write key");
    (c, k)
}

/// A directory for `test` with a fresh pair for `cn` in it: the directory, the pair's
/// paths, the PEM texts and the certificate's DER.
struct Fixture {
    dir: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    cert_pem: String,
    key_pem: String,
    der: Vec<u8>,
}

fn fixture(test: &str, cn: &str) -> Fixture {
    let dir = dir(test);
    let (cert_pem, key_pem, der) = self_signed(cn);
    let (cert, key) = write(&dir, &cert_pem, &key_pem);
    Fixture {
        dir,
        cert,
        key,
        cert_pem,
        key_pem,
        der,
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn leaf(certs: &ReloadingCert) -> Vec<u8> {
    certs.current().cert[0].to_vec()
}

#[test]
fn a_valid_certificate_and_key_load() {
    let f = fixture("valid", "first");
    let tls = Tls::new(&f.cert, &f.key).expect("valid pair loads");
    assert_eq!(leaf(tls.certs()), f.der);
    // A chain file with a second certificate keeps both, leaf first.
    let (other, _, other_der) = self_signed("intermediate");
    let (c, k) = write(&f.dir, &format!("{}{other}", f.cert_pem), &f.key_pem);
    let certs = ReloadingCert::new(&c, &k).expect("chain loads");
    assert_eq!(certs.current().cert.len(), 2);
    assert_eq!(certs.current().cert[1].to_vec(), other_der);
}

#[test]
fn a_key_of_another_certificate_is_refused_naming_both_files() {
    let d = dir("mismatch");
    let (cert, _, _) = self_signed("a");
    let (_, other_key, _) = self_signed("b");
    let (c, k) = write(&d, &cert, &other_key);
    let err = ReloadingCert::new(&c, &k).expect_err("mismatch refused");
    assert!(matches!(err, TlsError::Mismatch { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("key.pem") && msg.contains("cert.pem") && msg.contains("does not belong"),
        "{msg}"
    );
    let _ = std::fs::remove_dir_all(d);
}

/// A certificate file's text, a key file's text, the error expected, and a word of its
/// message.
type Refusal<'a> = (&'a str, &'a str, fn(&TlsError) -> bool, &'a str);

#[test]
fn garbage_missing_and_swapped_files_are_refused_with_the_file_and_reason() {
    let d = dir("garbage");
    let (cert, key, _) = self_signed("good");
    let cases: [Refusal; 5] = [
        (
            "not pem at all\n",
            &key,
            |e| matches!(e, TlsError::NoCertificate { .. }),
            "cert.pem",
        ),
        (
            &cert,
            "hello\n",
            |e| matches!(e, TlsError::NoKey { .. }),
            "key.pem",
        ),
        // A key where the certificate should be, and the other way round.
        (
            &key,
            &cert,
            |e| matches!(e, TlsError::NoCertificate { .. }),
            "cert.pem",
        ),
        (
            "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
            &key,
            |e| matches!(e, TlsError::Pem { .. }),
            "not valid PEM",
        ),
        (
            // Valid PEM and base64, not DER of a certificate.
            "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n",
            &key,
            |e| matches!(e, TlsError::Certificate { .. }),
            "bad certificate",
        ),
    ];
    for (cert_text, key_text, is, needle) in cases {
        let (c, k) = write(&d, cert_text, key_text);
        let err = ReloadingCert::new(&c, &k).expect_err("refused");
        assert!(is(&err), "{cert_text:?} / {key_text:?}: {err:?}");
        assert!(err.to_string().contains(needle), "{err}");
        // The message never carries the key itself.
        assert!(!err.to_string().contains("PRIVATE KEY-----\nM"), "{err}");
    }
    let err = ReloadingCert::new(&d.join("absent.pem"), &d.join("key.pem")).expect_err("missing");
    assert!(matches!(err, TlsError::Read { .. }), "{err:?}");
    assert!(err.to_string().contains("absent.pem"), "{err}");
    let big = d.join("big.pem");
    std::fs::write(&big, vec![b'a'; MAX_PEM_BYTES as usize + 1]).expect("write");
    let err = ReloadingCert::new(&big, &d.join("key.pem")).expect_err("too large");
    assert!(matches!(err, TlsError::TooLarge { .. }), "{err:?}");
    let _ = std::fs::remove_dir_all(d);
}

#[test]
fn a_reload_takes_a_new_good_pair_and_keeps_the_old_one_on_a_bad_file() {
    let f = fixture("reload", "one");
    let (c, k, der1) = (f.cert.clone(), f.key.clone(), f.der.clone());
    let certs = ReloadingCert::new(&c, &k).expect("first pair");
    assert!(matches!(certs.reload_if_changed(), Reload::Unchanged));

    // A bad certificate: refused, the old one stays, reported once.
    std::fs::write(&c, "garbage\n").expect("write");
    assert!(matches!(
        certs.reload_if_changed(),
        Reload::Failed(TlsError::NoCertificate { .. })
    ));
    assert_eq!(leaf(&certs), der1);
    assert!(matches!(certs.reload_if_changed(), Reload::Unchanged));

    // Half of a renewal: the new certificate with the old key does not match.
    let (cert2, key2, der2) = self_signed("two");
    std::fs::write(&c, &cert2).expect("write");
    assert!(matches!(
        certs.reload_if_changed(),
        Reload::Failed(TlsError::Mismatch { .. })
    ));
    assert_eq!(leaf(&certs), der1);

    // The other half: the new pair is used.
    std::fs::write(&k, &key2).expect("write");
    assert!(matches!(certs.reload_if_changed(), Reload::Reloaded));
    assert_eq!(leaf(&certs), der2);

    // A missing file is a failure too, reported once; the pair in use stays.
    std::fs::remove_file(&k).expect("remove");
    assert!(matches!(
        certs.reload_if_changed(),
        Reload::Failed(TlsError::Read { .. })
    ));
    assert!(matches!(certs.reload_if_changed(), Reload::Unchanged));
    assert_eq!(leaf(&certs), der2);
}

#[tokio::test]
async fn the_watch_task_picks_up_a_new_pair() {
    let f = fixture("watch", "one");
    let tls = Tls::new(&f.cert, &f.key).expect("first pair");
    tls.watch(Duration::from_millis(20));
    assert_eq!(leaf(tls.certs()), f.der);
    let (cert2, key2, der2) = self_signed("two");
    write(&f.dir, &cert2, &key2);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while leaf(tls.certs()) != der2 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(leaf(tls.certs()), der2, "new pair not picked up");
}

#[tokio::test]
async fn a_client_that_sends_nothing_or_plain_http_fails_the_handshake() {
    let f = fixture("handshake", "hs");
    let tls = Tls::new(&f.cert, &f.key).expect("pair");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");

    // Silent client: the handshake times out.
    let _silent = std::net::TcpStream::connect(addr).expect("connect");
    let (stream, _) = listener.accept().await.expect("accept");
    let started = std::time::Instant::now();
    let err = tls
        .accept(stream, Duration::from_millis(200))
        .await
        .expect_err("no handshake");
    assert!(matches!(err, HandshakeError::Timeout(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(2));

    // Plain HTTP: refused at once.
    let mut plain = std::net::TcpStream::connect(addr).expect("connect");
    std::io::Write::write_all(&mut plain, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").expect("write");
    let (stream, _) = listener.accept().await.expect("accept");
    let err = tls
        .accept(stream, Duration::from_secs(5))
        .await
        .expect_err("not TLS");
    assert!(matches!(err, HandshakeError::Failed(_)), "{err:?}");
}

/// A client handshake with `tls` on a fresh connection, trusting `root`, offering `alpn`;
/// the protocol ALPN selected, or the client's error.
async fn handshake(tls: &Tls, root: &[u8], alpn: &[&[u8]]) -> Result<Option<Vec<u8>>, String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = {
        let tls = tls.clone();
        tokio::spawn(async move {
            let (stream, _) = listener.accept().await.expect("accept");
            tls.accept(stream, Duration::from_secs(5)).await.is_ok()
        })
    };
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root.to_vec().into()).expect("root");
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let result = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map(|s| s.get_ref().1.alpn_protocol().map(<[u8]>::to_vec))
        .map_err(|e| e.to_string());
    let _ = server.await;
    result
}

#[tokio::test]
async fn alpn_selects_http1_and_refuses_a_client_without_it() {
    let f = fixture("alpn", "alpn");
    let tls = Tls::new(&f.cert, &f.key).expect("pair");
    let selected = handshake(&tls, &f.der, &[b"h2", b"http/1.1"]).await;
    assert_eq!(selected, Ok(Some(b"http/1.1".to_vec())));
    assert_eq!(
        handshake(&tls, &f.der, &[]).await,
        Ok(None),
        "no ALPN is fine"
    );
    let refused = handshake(&tls, &f.der, &[b"h2"]).await;
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.contains("NoApplicationProtocol")),
        "{refused:?}"
    );
}
