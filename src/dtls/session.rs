//! One DTLS 1.2 session on OpenSSL, sans-IO: datagrams in through
//! [`DtlsInstance::handle_packet`], records and events out through
//! [`DtlsInstance::poll_output`], the shape str0m drives its DTLS with.
//!
//! OpenSSL runs over an in-memory transport ([`Io`]): one read hands it one datagram, one
//! write is one datagram to send. The handshake is advanced on every datagram and on
//! timeouts (OpenSSL resends a lost flight when its own timer has expired, RFC 6347
//! §4.2.4). A failed handshake sends OpenSSL's alert, returns an error that names its
//! class (see [`failure_kind`]) and leaves the session dead.

use std::collections::VecDeque;
use std::io;
use std::mem;
use std::time::{Duration, Instant};

use openssl::pkey::PKey;
use openssl::srtp::SrtpProfileId;
use openssl::ssl::{
    ErrorCode, HandshakeError, MidHandshakeSslStream, Ssl, SslContext, SslContextBuilder,
    SslMethod, SslOptions, SslStream, SslVerifyMode,
};
use openssl::x509::X509;
use str0m::crypto::dtls::{
    DtlsCert, DtlsImplError, DtlsInstance, DtlsOutput, KeyingMaterial, ProtocolVersion, SrtpProfile,
};
use tracing::debug;

/// RFC 5764 §4.2 exporter label for DTLS-SRTP keys.
const SRTP_EXPORTER_LABEL: &str = "EXTRACTOR-dtls_srtp";
/// Cipher suites, strongest first. The server's own certificate is ECDSA, so a server
/// picks among the ECDSA suites; the client certificate's type (RSA or ECDSA) only
/// decides its CertificateVerify signature, which OpenSSL verifies for either.
const CIPHERS: &str = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:\
ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384:\
ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA";
/// SRTP protection profiles (RFC 5764 §4.1.2, RFC 7714 §14.2), preferred first.
const SRTP_PROFILES: &str = "SRTP_AEAD_AES_128_GCM:SRTP_AES128_CM_SHA1_80:SRTP_AEAD_AES_256_GCM";
/// How often a handshake in progress is driven when no datagram arrives, so OpenSSL can
/// resend a lost flight (its own timer starts at 1 s and doubles).
const HANDSHAKE_TICK: Duration = Duration::from_millis(200);
/// After the handshake nothing is timed here; str0m still wants an instant.
const IDLE_TICK: Duration = Duration::from_secs(3600);
/// Datagrams waiting for OpenSSL at most. Every `handle_packet` drains them, so more
/// means OpenSSL stopped reading: refuse rather than grow.
const MAX_INCOMING: usize = 16;
/// Largest DTLS record plaintext read at once (RFC 6347 §4.1.1: 2^14).
const READ_BUF: usize = 16_384;

/// The per-session OpenSSL context: this session's certificate and key, DTLS 1.2, the
/// suites and SRTP profiles above, and a peer certificate required but accepted as is
/// (str0m compares its fingerprint with the SDP, RFC 8842 §5).
pub(super) fn context(cert: &DtlsCert) -> Result<SslContext, openssl::error::ErrorStack> {
    let mut ctx = SslContextBuilder::new(SslMethod::dtls())?;
    ctx.set_cipher_list(CIPHERS)?;
    ctx.set_tlsext_use_srtp(SRTP_PROFILES)?;
    ctx.set_verify_callback(
        SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT,
        |_preverified, _chain| true,
    );
    let x509 = X509::from_der(&cert.certificate)?;
    let key = PKey::private_key_from_der(&cert.private_key)?;
    ctx.set_certificate(&x509)?;
    ctx.set_private_key(&key)?;
    ctx.check_private_key()?;
    ctx.set_options(
        SslOptions::NO_DTLSV1
            | SslOptions::NO_QUERY_MTU
            | SslOptions::NO_TICKET
            | SslOptions::NO_RENEGOTIATION,
    );
    Ok(ctx.build())
}

/// The in-memory datagram transport OpenSSL reads from and writes to.
#[derive(Debug, Default)]
struct Io {
    incoming: VecDeque<Vec<u8>>,
    outgoing: VecDeque<Vec<u8>>,
}

impl io::Read for Io {
    /// One datagram per read (DTLS records never span datagrams, RFC 6347 §4.1.1); a
    /// datagram longer than `buf` is truncated, as a datagram socket would.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(d) = self.incoming.pop_front() else {
            return Err(io::ErrorKind::WouldBlock.into());
        };
        let n = d.len().min(buf.len());
        buf[..n].copy_from_slice(&d[..n]);
        Ok(n)
    }
}

impl io::Write for Io {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.outgoing.push_back(buf.to_vec());
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[derive(Debug)]
enum State {
    /// Before `set_active`: the role is not known yet.
    Init(Ssl, Io),
    Handshaking(MidHandshakeSslStream<Io>),
    Established(SslStream<Io>),
    /// The handshake failed or the session was torn down.
    Dead,
}

/// What `poll_output` hands out after the packets.
#[derive(Debug)]
enum Event {
    PeerCert(Vec<u8>),
    Keying(Vec<u8>, SrtpProfile),
    Connected,
    Data(Vec<u8>),
    CloseNotify,
}

/// One DTLS session (see the module docs).
#[derive(Debug)]
pub(crate) struct OpensslDtls {
    state: State,
    active: Option<bool>,
    now: Instant,
    next_tick: Instant,
    /// Datagrams to send, taken out of [`Io`] after each step.
    out: VecDeque<Vec<u8>>,
    events: VecDeque<Event>,
    close_sent: bool,
    close_received: bool,
}

impl OpensslDtls {
    /// A session on `ctx` with records sized for `mtu` bytes.
    pub(super) fn new(
        ctx: &SslContext,
        now: Instant,
        mtu: usize,
    ) -> Result<Self, openssl::error::ErrorStack> {
        let mut ssl = Ssl::new(ctx)?;
        ssl.set_mtu(mtu as u32)?;
        Ok(OpensslDtls {
            state: State::Init(ssl, Io::default()),
            active: None,
            now,
            next_tick: now + HANDSHAKE_TICK,
            out: VecDeque::new(),
            events: VecDeque::new(),
            close_sent: false,
            close_received: false,
        })
    }

    fn io(&mut self) -> Option<&mut Io> {
        match &mut self.state {
            State::Init(_, io) => Some(io),
            State::Handshaking(s) => Some(s.get_mut()),
            State::Established(s) => Some(s.get_mut()),
            State::Dead => None,
        }
    }

    /// Move what OpenSSL wrote to the output queue.
    fn collect(&mut self) {
        let written = self.io().map(|io| mem::take(&mut io.outgoing));
        if let Some(w) = written {
            self.out.extend(w);
        }
    }

    /// Advance the handshake, or read application data once established.
    fn step(&mut self) -> Result<(), DtlsImplError> {
        let Some(active) = self.active else {
            return Ok(());
        };
        let result = match mem::replace(&mut self.state, State::Dead) {
            State::Init(ssl, io) => {
                if active {
                    ssl.connect(io)
                } else {
                    ssl.accept(io)
                }
            }
            State::Handshaking(mid) => mid.handshake(),
            State::Established(s) => {
                self.state = State::Established(s);
                let r = self.read_data();
                self.collect();
                return r;
            }
            State::Dead => return Ok(()),
        };
        match result {
            Ok(stream) => {
                self.state = State::Established(stream);
                self.collect();
                self.on_established()?;
                // Records that came with the last flight (e.g. SCTP data).
                let r = self.read_data();
                self.collect();
                r
            }
            Err(HandshakeError::WouldBlock(mid)) => {
                self.state = State::Handshaking(mid);
                self.collect();
                Ok(())
            }
            Err(HandshakeError::Failure(mid)) => {
                let error = mid.error().to_string();
                // The alert OpenSSL wrote still goes to the peer.
                let mut mid = mid;
                self.out.extend(mem::take(&mut mid.get_mut().outgoing));
                debug!(error, "DTLS handshake failed (OpenSSL)");
                Err(failure_kind(&error))
            }
            Err(HandshakeError::SetupFailure(e)) => {
                debug!(error = %e, "DTLS setup failed (OpenSSL)");
                Err(failure_kind(&e.to_string()))
            }
        }
    }

    /// The handshake just completed: hand str0m the peer certificate (for the
    /// fingerprint check), the SRTP keys (RFC 5764 §4.2) and `Connected`, in that order.
    fn on_established(&mut self) -> Result<(), DtlsImplError> {
        let State::Established(s) = &self.state else {
            return Ok(());
        };
        let ssl = s.ssl();
        let fail = || DtlsImplError::CertificateError(dimpl::CertificateError::ParseFailed);
        let cert = ssl
            .peer_certificate()
            .and_then(|c| c.to_der().ok())
            .ok_or_else(fail)?;
        let profile = match ssl.selected_srtp_profile().map(|p| p.id()) {
            Some(SrtpProfileId::SRTP_AES128_CM_SHA1_80) => SrtpProfile::AES128_CM_SHA1_80,
            Some(SrtpProfileId::SRTP_AEAD_AES_128_GCM) => SrtpProfile::AEAD_AES_128_GCM,
            Some(SrtpProfileId::SRTP_AEAD_AES_256_GCM) => SrtpProfile::AEAD_AES_256_GCM,
            _ => return Err(negotiation_failure()),
        };
        let mut keys = vec![0u8; profile.keying_material_len()];
        ssl.export_keying_material(&mut keys, SRTP_EXPORTER_LABEL, None)
            .map_err(|_| negotiation_failure())?;
        self.events.push_back(Event::PeerCert(cert));
        self.events.push_back(Event::Keying(keys, profile));
        self.events.push_back(Event::Connected);
        Ok(())
    }

    /// Read every application-data record OpenSSL has (SCTP for data channels).
    fn read_data(&mut self) -> Result<(), DtlsImplError> {
        let State::Established(s) = &mut self.state else {
            return Ok(());
        };
        let mut buf = vec![0u8; READ_BUF];
        loop {
            match s.ssl_read(&mut buf) {
                Ok(0) => break,
                Ok(n) => self.events.push_back(Event::Data(buf[..n].to_vec())),
                Err(e) if e.code() == ErrorCode::WANT_READ => break,
                Err(e) if e.code() == ErrorCode::ZERO_RETURN => {
                    if !self.close_received {
                        self.close_received = true;
                        if !self.close_sent {
                            // RFC 5246 §7.2.1: answer close_notify with close_notify.
                            let _ = s.shutdown();
                            self.close_sent = true;
                        }
                        self.events.push_back(Event::CloseNotify);
                    }
                    break;
                }
                Err(e) => {
                    debug!(error = %e, "DTLS record error (OpenSSL)");
                    return Err(DtlsImplError::CryptoError(
                        dimpl::CryptoError::OperationFailed(dimpl::CryptoOperation::Decrypt),
                    ));
                }
            }
        }
        Ok(())
    }
}

fn negotiation_failure() -> DtlsImplError {
    DtlsImplError::SecurityError(dimpl::SecurityError::NoMutuallyAcceptableCipherSuite)
}

/// The class of a failed handshake, from OpenSSL's error text, as the error str0m
/// passes on (its `Display` is what the session's log line and failure cause read):
/// the peer refused us with an alert → `ConnectionClosed`; a certificate or signature
/// OpenSSL could not use → `CertificateError`; anything else (no common suite or SRTP
/// profile, a malformed flight) → `SecurityError`.
pub(crate) fn failure_kind(openssl_error: &str) -> DtlsImplError {
    let e = openssl_error.to_ascii_lowercase();
    if e.contains("alert") {
        DtlsImplError::ConnectionClosed
    } else if e.contains("certificate") || e.contains("signature") || e.contains("cert ") {
        DtlsImplError::CertificateError(dimpl::CertificateError::ParseFailed)
    } else {
        negotiation_failure()
    }
}

impl DtlsInstance for OpensslDtls {
    fn set_active(&mut self, active: bool) {
        if self.active.is_some() {
            return;
        }
        self.active = Some(active);
        if active {
            // The client speaks first: ClientHello now. An error here leaves the state
            // dead; the next input reports it.
            if let Err(e) = self.step() {
                debug!(error = %e, "DTLS client start failed");
            }
        }
    }

    fn handle_packet(&mut self, packet: &[u8]) -> Result<(), DtlsImplError> {
        let Some(io) = self.io() else {
            return Err(DtlsImplError::ConnectionClosed);
        };
        if io.incoming.len() >= MAX_INCOMING {
            return Err(DtlsImplError::ReceiveQueueFull);
        }
        io.incoming.push_back(packet.to_vec());
        self.step()
    }

    fn poll_output<'a>(&mut self, buf: &'a mut [u8]) -> DtlsOutput<'a> {
        if let Some(p) = self.out.front() {
            if p.len() > buf.len() {
                return DtlsOutput::BufferTooSmall { needed: p.len() };
            }
            let p = self.out.pop_front().unwrap_or_default();
            buf[..p.len()].copy_from_slice(&p);
            return DtlsOutput::Packet(&buf[..p.len()]);
        }
        let needed = match self.events.front() {
            Some(Event::PeerCert(v) | Event::Keying(v, _) | Event::Data(v)) => v.len(),
            _ => 0,
        };
        if needed > buf.len() {
            return DtlsOutput::BufferTooSmall { needed };
        }
        match self.events.pop_front() {
            Some(Event::PeerCert(v)) => {
                buf[..v.len()].copy_from_slice(&v);
                DtlsOutput::PeerCert(&buf[..v.len()])
            }
            Some(Event::Keying(v, profile)) => {
                DtlsOutput::KeyingMaterial(KeyingMaterial::new(&v), profile)
            }
            Some(Event::Connected) => DtlsOutput::Connected,
            Some(Event::Data(v)) => {
                buf[..v.len()].copy_from_slice(&v);
                DtlsOutput::ApplicationData(&buf[..v.len()])
            }
            Some(Event::CloseNotify) => DtlsOutput::CloseNotify,
            None => DtlsOutput::Timeout(match self.state {
                State::Init(..) | State::Handshaking(_) => self.next_tick,
                _ => self.now + IDLE_TICK,
            }),
        }
    }

    fn handle_timeout(&mut self, now: Instant) -> Result<(), DtlsImplError> {
        self.now = self.now.max(now);
        if matches!(self.state, State::Handshaking(_)) && now >= self.next_tick {
            self.next_tick = now + HANDSHAKE_TICK;
            // No datagram waiting: OpenSSL checks its retransmission timer.
            return self.step();
        }
        if now >= self.next_tick {
            self.next_tick = now + HANDSHAKE_TICK;
        }
        Ok(())
    }

    fn send_application_data(&mut self, data: &[u8]) -> Result<usize, DtlsImplError> {
        let State::Established(s) = &mut self.state else {
            return Ok(0);
        };
        if data.is_empty() {
            return Ok(0);
        }
        let r = s.ssl_write(data);
        self.collect();
        match r {
            Ok(_) => Ok(data.len()),
            Err(e) => {
                debug!(error = %e, "DTLS write failed (OpenSSL)");
                Err(DtlsImplError::CryptoError(
                    dimpl::CryptoError::OperationFailed(dimpl::CryptoOperation::Encrypt),
                ))
            }
        }
    }

    fn is_active(&self) -> bool {
        self.active.unwrap_or(false)
    }

    fn protocol_version(&self) -> Option<ProtocolVersion> {
        matches!(self.state, State::Established(_)).then_some(ProtocolVersion::DTLS1_2)
    }

    fn is_closing(&self) -> bool {
        self.close_sent || self.close_received
    }

    fn is_closed(&self) -> bool {
        (self.close_sent || matches!(self.state, State::Dead)) && self.out.is_empty()
    }

    fn close(&mut self) -> Result<(), DtlsImplError> {
        if let State::Established(s) = &mut self.state {
            if !self.close_sent {
                let _ = s.shutdown();
            }
        }
        self.close_sent = true;
        self.collect();
        Ok(())
    }
}
