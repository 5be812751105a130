//! Tests of the OpenSSL DTLS provider, two sessions wired back to back in memory: an
//! RSA client certificate (what GStreamer's webrtcbin makes) completes the handshake
//! with the server, and str0m's own DTLS (dimpl) on either side still interoperates.

use super::*;
use openssl::rsa::Rsa;
use std::time::Duration;
use str0m::crypto::dtls::{DtlsOutput, DtlsVersion};

fn rsa_cert() -> DtlsCert {
    let key = PKey::from_rsa(Rsa::generate(2048).expect("RSA keygen")).expect("pkey");
    self_signed(&key).expect("self-signed RSA cert")
}

fn dimpl() -> &'static dyn DtlsProvider {
    str0m::crypto::from_feature_flags().dtls_provider
}

#[derive(Default)]
struct Seen {
    connected: bool,
    keys: Option<Vec<u8>>,
    peer_cert: Option<Vec<u8>>,
    error: Option<String>,
}

fn drain(d: &mut dyn DtlsInstance, seen: &mut Seen) -> Vec<Vec<u8>> {
    let mut buf = vec![0u8; 4096];
    let mut out = Vec::new();
    for _ in 0..1000 {
        match d.poll_output(&mut buf) {
            DtlsOutput::Packet(p) => out.push(p.to_vec()),
            DtlsOutput::Connected => seen.connected = true,
            DtlsOutput::PeerCert(c) => seen.peer_cert = Some(c.to_vec()),
            DtlsOutput::KeyingMaterial(k, _) => seen.keys = Some(k.to_vec()),
            DtlsOutput::Timeout(_) => break,
            DtlsOutput::BufferTooSmall { needed } => panic!("buffer too small: {needed}"),
            _ => {}
        }
    }
    out
}

/// Runs a handshake between `client` and `server` (lossless, 10 ms steps of virtual
/// time, at most 2 s); returns what each side reported.
fn handshake(client: &mut dyn DtlsInstance, server: &mut dyn DtlsInstance) -> (Seen, Seen) {
    let (mut c, mut s) = (Seen::default(), Seen::default());
    let start = Instant::now();
    server.set_active(false);
    client.set_active(true);
    for step in 0..200u64 {
        let now = start + Duration::from_millis(10 * step);
        let _ = client.handle_timeout(now);
        let _ = server.handle_timeout(now);
        for p in drain(client, &mut c) {
            if let Err(e) = server.handle_packet(&p) {
                s.error.get_or_insert(e.to_string());
            }
        }
        for p in drain(server, &mut s) {
            if let Err(e) = client.handle_packet(&p) {
                c.error.get_or_insert(e.to_string());
            }
        }
        if (c.connected && s.connected) || c.error.is_some() || s.error.is_some() {
            break;
        }
    }
    drain(client, &mut c);
    drain(server, &mut s);
    (c, s)
}

fn session(p: &dyn DtlsProvider, cert: &DtlsCert) -> Box<dyn DtlsInstance> {
    p.new_dtls(cert, Instant::now(), DtlsVersion::Dtls12, Some(1200))
        .expect("new DTLS session")
}

#[test]
fn an_rsa_client_certificate_completes_the_handshake() {
    let client_cert = rsa_cert();
    let server_cert = PROVIDER.generate_certificate().expect("server cert");
    let mut client = session(&PROVIDER, &client_cert);
    let mut server = session(&PROVIDER, &server_cert);
    let (c, s) = handshake(client.as_mut(), server.as_mut());
    assert_eq!((c.error.as_deref(), s.error.as_deref()), (None, None));
    assert!(c.connected && s.connected, "both sides connected");
    assert_eq!(s.peer_cert.as_deref(), Some(&client_cert.certificate[..]));
    assert_eq!(c.peer_cert.as_deref(), Some(&server_cert.certificate[..]));
    let keys = c.keys.expect("client keys");
    assert!(!keys.is_empty());
    assert_eq!(Some(keys), s.keys, "both sides export the same SRTP keys");
}

#[test]
fn str0m_dimpl_clients_still_connect() {
    let client_cert = dimpl().generate_certificate().expect("dimpl cert");
    let server_cert = PROVIDER.generate_certificate().expect("server cert");
    let mut client = session(dimpl(), &client_cert);
    let mut server = session(&PROVIDER, &server_cert);
    let (c, s) = handshake(client.as_mut(), server.as_mut());
    assert_eq!((c.error.as_deref(), s.error.as_deref()), (None, None));
    assert!(c.connected && s.connected);
    assert_eq!(c.keys, s.keys);
    assert_eq!(s.peer_cert.as_deref(), Some(&client_cert.certificate[..]));
}

/// Why the provider exists: str0m's own DTLS refuses the RSA client certificate that
/// connects above (alert 40). If a later str0m accepts it, this test says so.
#[test]
fn str0m_dimpl_server_refuses_an_rsa_client_certificate() {
    let mut client = session(&PROVIDER, &rsa_cert());
    let server_cert = dimpl().generate_certificate().expect("dimpl cert");
    let mut server = session(dimpl(), &server_cert);
    let (c, s) = handshake(client.as_mut(), server.as_mut());
    assert!(!s.connected, "dimpl accepted an RSA client certificate");
    assert!(
        c.error.is_some() || s.error.is_some(),
        "{:?} {:?}",
        c.error,
        s.error
    );
}

#[test]
fn a_garbage_flight_fails_the_handshake_with_a_classified_error() {
    let mut server = session(&PROVIDER, &PROVIDER.generate_certificate().unwrap());
    server.set_active(false);
    // A handshake record header (content type 22, DTLS 1.2) with a nonsense body.
    let mut junk = vec![22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 40];
    junk.extend(std::iter::repeat_n(0xab, 40));
    let mut failed = None;
    for _ in 0..4 {
        if let Err(e) = server.handle_packet(&junk) {
            failed = Some(e.to_string());
            break;
        }
    }
    // OpenSSL drops what it cannot parse as a record, or fails the handshake; it never
    // connects and never panics.
    let mut seen = Seen::default();
    drain(server.as_mut(), &mut seen);
    assert!(!seen.connected, "{failed:?}");
}

#[test]
fn failure_classes() {
    let name = |e: &str| session::failure_kind(e).to_string();
    assert!(
        name("error:0A000410:SSL routines::sslv3 alert handshake failure")
            .contains("connection closed")
    );
    assert!(
        name("error:0A000086:SSL routines::certificate verify failed")
            .starts_with("certificate error")
    );
    assert!(name("error:0A0000C1:SSL routines::no shared cipher").starts_with("security error"));
}

/// Cost of one handshake (both sides, in memory, one thread), per pairing: run with
/// `cargo test --lib dtls::tests::handshake_cost -- --ignored --nocapture`. Prints
/// figures (docs/interop.md), asserts only that every handshake completed.
#[test]
#[ignore]
fn handshake_cost() {
    const N: u32 = 40;
    let rsa = rsa_cert();
    type Pair = (
        &'static str,
        &'static dyn DtlsProvider,
        &'static dyn DtlsProvider,
        bool,
    );
    let pairs: [Pair; 4] = [
        (
            "dimpl client -> dimpl server (str0m default)",
            dimpl(),
            dimpl(),
            false,
        ),
        ("dimpl client -> OpenSSL server", dimpl(), &PROVIDER, false),
        (
            "OpenSSL ECDSA client -> OpenSSL server",
            &PROVIDER,
            &PROVIDER,
            false,
        ),
        (
            "OpenSSL RSA-2048 client -> OpenSSL server",
            &PROVIDER,
            &PROVIDER,
            true,
        ),
    ];
    for (name, cp, sp, use_rsa) in pairs {
        let start = Instant::now();
        for _ in 0..N {
            // Certificates per session, as the server makes one per Rtc.
            let ccert = if use_rsa {
                rsa.clone()
            } else {
                cp.generate_certificate().unwrap()
            };
            let scert = sp.generate_certificate().unwrap();
            let mut c = session(cp, &ccert);
            let mut s = session(sp, &scert);
            let (a, b) = handshake(c.as_mut(), s.as_mut());
            assert!(
                a.connected && b.connected,
                "{name}: {:?} {:?}",
                a.error,
                b.error
            );
        }
        let per = start.elapsed() / N;
        println!(
            "{name}: {:.2} ms per handshake incl. server cert generation ({:.0} setups/s on one core)",
            per.as_secs_f64() * 1e3,
            1.0 / per.as_secs_f64()
        );
    }
}
