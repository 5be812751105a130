//! The server's DTLS: str0m's crypto provider (aws-lc-rs: SRTP, STUN HMAC, hashes) with
//! its DTLS replaced by OpenSSL's DTLS 1.2, so that clients with **RSA** certificates can
//! connect as well as those with ECDSA ones.
//!
//! Why: str0m 0.25's own DTLS stack (`dimpl`) only verifies ECDSA signatures, and refuses
//! an RSA client certificate with alert 40 `handshake_failure`. RFC 8827 §6.5 only
//! requires ECDSA P-256, but GStreamer's `webrtcbin` (and with it `whipsink`,
//! `whipclientsink`, `webrtcsink`), older libwebrtc builds and many embedded stacks make
//! RSA-2048 certificates. str0m's `openssl` feature would do this, but the `str0m-openssl`
//! release that str0m 0.25 asks for is not published; this module is the same idea
//! written against str0m's public `DtlsProvider` trait, on the `openssl` crate.
//! `docs/interop.md` has the figures behind the choice.
//!
//! What stays: the server's own certificate is ECDSA P-256 (what browsers expect, and
//! the cheapest to make per session); the peer's certificate is checked by str0m against
//! the SDP `a=fingerprint` (RFC 8842 §5), not by a chain, so any self-signed certificate
//! type OpenSSL can verify a signature with (RSA, ECDSA, Ed25519) is accepted.
//!
//! Never does I/O. OpenSSL reads the clock itself for its retransmission timer (DTLS
//! flights, RFC 6347 §4.2.4); that is the only clock read below the room actor.

mod session;

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::PKey;
use openssl::x509::{X509Builder, X509NameBuilder};
use str0m::crypto::dtls::{DtlsCert, DtlsInstance, DtlsProvider, DtlsVersion};
use str0m::crypto::{CryptoError, CryptoProvider};

pub(crate) use session::OpensslDtls;

/// Days a generated certificate is valid. Peers check the fingerprint, not the dates,
/// but a certificate that is already expired is refused by some stacks.
const CERT_VALID_DAYS: u32 = 30;

/// The DTLS provider: one OpenSSL `SslContext` per session (it holds that session's
/// certificate), DTLS 1.2 only (what every WebRTC stack speaks; RFC 8827 §6.5).
#[derive(Debug, Default)]
pub(crate) struct OpensslDtlsProvider;

static PROVIDER: OpensslDtlsProvider = OpensslDtlsProvider;

/// The crypto provider every session's `Rtc` is built with: str0m's default for SRTP,
/// hashing and STUN, with [`OpensslDtlsProvider`] for DTLS. Built once.
pub(crate) fn crypto_provider() -> Arc<CryptoProvider> {
    static P: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    P.get_or_init(|| {
        let base = str0m::crypto::from_feature_flags();
        Arc::new(CryptoProvider {
            dtls_provider: &PROVIDER,
            ..base
        })
    })
    .clone()
}

impl DtlsProvider for OpensslDtlsProvider {
    fn generate_certificate(&self) -> Option<DtlsCert> {
        match generate_ecdsa_cert() {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(error = %e, "generating a DTLS certificate failed");
                None
            }
        }
    }

    fn new_dtls(
        &self,
        cert: &DtlsCert,
        now: Instant,
        dtls_version: DtlsVersion,
        mtu: Option<usize>,
    ) -> Result<Box<dyn DtlsInstance>, CryptoError> {
        if dtls_version != DtlsVersion::Dtls12 {
            return Err(CryptoError::Other(format!(
                "the OpenSSL DTLS provider speaks DTLS 1.2 only, not {dtls_version}"
            )));
        }
        let ctx = session::context(cert).map_err(|e| CryptoError::Other(e.to_string()))?;
        let mtu = mtu.unwrap_or(str0m::DATAGRAM_MTU_WARN);
        Ok(Box::new(
            OpensslDtls::new(&ctx, now, mtu).map_err(|e| CryptoError::Other(e.to_string()))?,
        ))
    }
}

/// A self-signed ECDSA P-256 / SHA-256 certificate (RFC 8827 §6.5), DER.
pub(crate) fn generate_ecdsa_cert() -> Result<DtlsCert, openssl::error::ErrorStack> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
    let key = PKey::from_ec_key(EcKey::generate(&group)?)?;
    self_signed(&key)
}

/// A self-signed certificate for `key` (any key type OpenSSL signs with), DER, with a
/// random serial and the subject `CN=WebRTC`.
pub(crate) fn self_signed(
    key: &PKey<openssl::pkey::Private>,
) -> Result<DtlsCert, openssl::error::ErrorStack> {
    let mut b = X509Builder::new()?;
    b.set_version(2)?;
    let mut serial = BigNum::new()?;
    serial.rand(64, MsbOption::MAYBE_ZERO, false)?;
    b.set_serial_number(serial.to_asn1_integer()?.as_ref())?;
    let mut name = X509NameBuilder::new()?;
    name.append_entry_by_text("CN", "WebRTC")?;
    let name = name.build();
    b.set_subject_name(&name)?;
    b.set_issuer_name(&name)?;
    b.set_not_before(Asn1Time::days_from_now(0)?.as_ref())?;
    b.set_not_after(Asn1Time::days_from_now(CERT_VALID_DAYS)?.as_ref())?;
    b.set_pubkey(key)?;
    b.sign(key, MessageDigest::sha256())?;
    Ok(DtlsCert {
        certificate: b.build().to_der()?,
        private_key: key.private_key_to_der()?,
    })
}

#[cfg(test)]
mod tests;
