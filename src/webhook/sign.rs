//! Webhook signatures as the Standard Webhooks specification defines them
//! (<https://www.standardwebhooks.com>, "Signature scheme"): HMAC-SHA256 over
//! `{webhook-id}.{webhook-timestamp}.{body}`, sent as `webhook-signature: v1,{base64}`.
//! Signing the timestamp lets a receiver refuse a replayed delivery (the specification
//! suggests a tolerance of 5 minutes); the id lets it drop a retried one it already has.

use aws_lc_rs::hmac;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

/// Prefix of a secret given in the specification's own format: base64 after it.
const SECRET_PREFIX: &str = "whsec_";
/// Shortest key accepted, in bytes (the specification's secrets are 24 to 64 bytes).
pub const MIN_KEY_BYTES: usize = 16;

/// Signs webhook deliveries with one secret.
pub struct Signer {
    key: hmac::Key,
}

/// Why a `--webhook-secret` is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    /// `whsec_` followed by something that is not base64.
    #[error("--webhook-secret starts with whsec_ but the rest is not base64")]
    NotBase64,
    /// Fewer than [`MIN_KEY_BYTES`] bytes of key.
    #[error("--webhook-secret must give at least {MIN_KEY_BYTES} bytes of key")]
    TooShort,
}

impl Signer {
    /// A signer for `secret`: `whsec_` then base64 (the specification's format: the
    /// key is the decoded bytes), or any other string (the key is its UTF-8 bytes).
    /// Errors: [`SecretError`].
    pub fn new(secret: &str) -> Result<Self, SecretError> {
        let key = match secret.strip_prefix(SECRET_PREFIX) {
            Some(b64) => STANDARD.decode(b64).map_err(|_| SecretError::NotBase64)?,
            None => secret.as_bytes().to_vec(),
        };
        if key.len() < MIN_KEY_BYTES {
            return Err(SecretError::TooShort);
        }
        Ok(Signer {
            key: hmac::Key::new(hmac::HMAC_SHA256, &key),
        })
    }

    /// The `webhook-signature` header value for message `id` sent at `timestamp`
    /// (Unix seconds) with `body`: `v1,` and the base64 HMAC-SHA256.
    pub fn sign(&self, id: &str, timestamp: u64, body: &[u8]) -> String {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(id.as_bytes());
        ctx.update(b".");
        ctx.update(timestamp.to_string().as_bytes());
        ctx.update(b".");
        ctx.update(body);
        format!("v1,{}", STANDARD.encode(ctx.sign().as_ref()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification (also computed with
    /// Python's `hmac` module).
    #[test]
    fn the_specification_example() {
        let signer = Signer::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let sig = signer.sign(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    /// A plain secret is its bytes: computed with
    /// `printf 'msg_1.1700000000.{}' | openssl dgst -sha256 -hmac 0123456789abcdef -binary | base64`.
    #[test]
    fn a_plain_secret_is_its_bytes() {
        let signer = Signer::new("0123456789abcdef").unwrap();
        assert_eq!(
            signer.sign("msg_1", 1_700_000_000, b"{}"),
            format!("v1,{}", PLAIN_VECTOR)
        );
    }
    const PLAIN_VECTOR: &str = "3uojc/2kvL+KpJkw4ZNrA/5YjEs9cdfKdc3lXIvRjkk=";

    #[test]
    fn weak_or_malformed_secrets_are_refused() {
        assert_eq!(Signer::new("short").err(), Some(SecretError::TooShort));
        assert_eq!(
            Signer::new("whsec_c2hvcnQ=").err(),
            Some(SecretError::TooShort)
        );
        assert_eq!(Signer::new("whsec_!!!").err(), Some(SecretError::NotBase64));
    }
}
