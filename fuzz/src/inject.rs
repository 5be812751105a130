//! Raw RTCP from a str0m peer: an SRTP provider that wraps str0m's own and, when armed
//! with [`next_rtcp`], encrypts the armed bytes instead of the plaintext str0m hands it
//! (see [`take`]). Installed on a viewer, which sends no RTP, every encryption it makes
//! is of an SRTCP packet (RFC 3711 §3.4): after str0m's first RTCP packet of the
//! compound the bytes are then the fuzzer's, correctly encrypted and authenticated, so
//! they reach the room's RTCP parsing and feedback handling, not only its decryption
//! failure.

use std::cell::RefCell;
use std::sync::{Arc, OnceLock};

use str0m::config::CryptoProvider;
use str0m::crypto::{AeadAes128GcmCipher, AeadAes256GcmCipher, Aes128CmSha1_80Cipher};
use str0m::crypto::{CryptoError, SrtpProvider, SupportedAeadAes128Gcm};
use str0m::crypto::{SupportedAeadAes256Gcm, SupportedAes128CmSha1_80};

thread_local! {
    static NEXT: RefCell<Option<Vec<u8>>> = const { RefCell::new(None) };
}

/// The next SRTCP packet an injecting peer sends carries `bytes` after its first 8.
pub fn next_rtcp(bytes: Vec<u8>) {
    NEXT.with(|n| *n.borrow_mut() = Some(bytes));
}

/// Whether bytes are armed and not yet sent.
pub fn armed() -> bool {
    NEXT.with(|n| n.borrow().is_some())
}

/// Disarm (a world that ends with bytes still armed must not leak them into the next).
pub fn clear() {
    NEXT.with(|n| n.borrow_mut().take());
}

/// The plaintext to encrypt instead of `input`, when armed. With the SRTCP header at
/// hand (`aad`: the AEAD profiles' associated data starts with the first RTCP header and
/// SSRC, RFC 7714 §9.3), the rest of str0m's first packet is kept and the armed bytes
/// follow it, at a packet boundary; else they start right after the first 8 bytes.
/// Either way the result has `input`'s length (truncated or padded with zeros).
fn take(input: &[u8], aad: Option<&[u8]>) -> Option<Vec<u8>> {
    let armed = NEXT.with(|n| n.borrow_mut().take())?;
    let first = aad
        .and_then(|a| a.get(2..4))
        .map(|l| (usize::from(u16::from_be_bytes([l[0], l[1]])) + 1) * 4)
        .unwrap_or(8);
    let keep = first.saturating_sub(8).min(input.len());
    let mut b = input[..keep].to_vec();
    b.extend_from_slice(&armed);
    b.resize(input.len(), 0);
    Some(b)
}

fn base() -> &'static CryptoProvider {
    static BASE: OnceLock<CryptoProvider> = OnceLock::new();
    BASE.get_or_init(str0m::crypto::from_feature_flags)
}

/// A crypto provider whose SRTP encryption is injectable (the rest is str0m's).
pub fn provider() -> Arc<CryptoProvider> {
    let mut p = base().clone();
    p.srtp_provider = &Injecting;
    Arc::new(p)
}

#[derive(Debug)]
struct Injecting;

impl SrtpProvider for Injecting {
    fn aes_128_cm_sha1_80(&self) -> &'static dyn SupportedAes128CmSha1_80 {
        &Injecting
    }
    fn aead_aes_128_gcm(&self) -> &'static dyn SupportedAeadAes128Gcm {
        &Injecting
    }
    fn aead_aes_256_gcm(&self) -> &'static dyn SupportedAeadAes256Gcm {
        &Injecting
    }
    fn srtp_aes_128_ecb_round(&self, key: &[u8], input: &[u8], output: &mut [u8]) {
        base()
            .srtp_provider
            .srtp_aes_128_ecb_round(key, input, output)
    }
    fn srtp_aes_256_ecb_round(&self, key: &[u8], input: &[u8], output: &mut [u8]) {
        base()
            .srtp_provider
            .srtp_aes_256_ecb_round(key, input, output)
    }
}

impl SupportedAes128CmSha1_80 for Injecting {
    fn create_cipher(&self, key: [u8; 16], encrypt: bool) -> Box<dyn Aes128CmSha1_80Cipher> {
        let inner = base()
            .srtp_provider
            .aes_128_cm_sha1_80()
            .create_cipher(key, encrypt);
        Box::new(Cm(inner))
    }
}

impl SupportedAeadAes128Gcm for Injecting {
    fn create_cipher(&self, key: [u8; 16], encrypt: bool) -> Box<dyn AeadAes128GcmCipher> {
        let inner = base()
            .srtp_provider
            .aead_aes_128_gcm()
            .create_cipher(key, encrypt);
        Box::new(Gcm128(inner))
    }
}

impl SupportedAeadAes256Gcm for Injecting {
    fn create_cipher(&self, key: [u8; 32], encrypt: bool) -> Box<dyn AeadAes256GcmCipher> {
        let inner = base()
            .srtp_provider
            .aead_aes_256_gcm()
            .create_cipher(key, encrypt);
        Box::new(Gcm256(inner))
    }
}

#[derive(Debug)]
struct Cm(Box<dyn Aes128CmSha1_80Cipher>);

impl Aes128CmSha1_80Cipher for Cm {
    fn encrypt(
        &mut self,
        iv: &[u8; 16],
        input: &[u8],
        output: &mut [u8],
    ) -> Result<(), CryptoError> {
        match take(input, None) {
            Some(b) => self.0.encrypt(iv, &b, output),
            None => self.0.encrypt(iv, input, output),
        }
    }
    fn decrypt(
        &mut self,
        iv: &[u8; 16],
        input: &[u8],
        output: &mut [u8],
    ) -> Result<(), CryptoError> {
        self.0.decrypt(iv, input, output)
    }
}

#[derive(Debug)]
struct Gcm128(Box<dyn AeadAes128GcmCipher>);

impl AeadAes128GcmCipher for Gcm128 {
    fn encrypt(
        &mut self,
        iv: &[u8; 12],
        aad: &[u8],
        input: &[u8],
        output: &mut [u8],
    ) -> Result<(), CryptoError> {
        match take(input, Some(aad)) {
            Some(b) => self.0.encrypt(iv, aad, &b, output),
            None => self.0.encrypt(iv, aad, input, output),
        }
    }
    fn decrypt(
        &mut self,
        iv: &[u8; 12],
        aads: &[&[u8]],
        input: &[u8],
        output: &mut [u8],
    ) -> Result<usize, CryptoError> {
        self.0.decrypt(iv, aads, input, output)
    }
}

#[derive(Debug)]
struct Gcm256(Box<dyn AeadAes256GcmCipher>);

impl AeadAes256GcmCipher for Gcm256 {
    fn encrypt(
        &mut self,
        iv: &[u8; 12],
        aad: &[u8],
        input: &[u8],
        output: &mut [u8],
    ) -> Result<(), CryptoError> {
        match take(input, Some(aad)) {
            Some(b) => self.0.encrypt(iv, aad, &b, output),
            None => self.0.encrypt(iv, aad, input, output),
        }
    }
    fn decrypt(
        &mut self,
        iv: &[u8; 12],
        aads: &[&[u8]],
        input: &[u8],
        output: &mut [u8],
    ) -> Result<usize, CryptoError> {
        self.0.decrypt(iv, aads, input, output)
    }
}
