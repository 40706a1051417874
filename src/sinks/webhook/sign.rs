//! Standard Webhooks signing (CRATES.md §2.9): `v1,<base64 HMAC-SHA256 of
//! "<webhook-id>.<timestamp>.<body>">`. Pure, so it is checked against the reference crate.
use std::fmt;

use base64::engine::general_purpose::{STANDARD, STANDARD_PAD_INDIFFERENT};
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::SecretError;

/// The prefix that marks a base64 secret, as Standard Webhooks libraries print them.
const BASE64_PREFIX: &str = "whsec_";

/// The HMAC key a configured secret stands for. `Debug` never shows it.
#[derive(Clone)]
pub struct SigningKey {
    mac: Hmac<Sha256>,
}

impl SigningKey {
    /// The key of `secret`: the base64-decoded rest of a `whsec_<base64>` secret (padding
    /// optional, as some libraries drop it), else the secret's own bytes.
    pub fn from_secret(secret: &str) -> Result<SigningKey, SecretError> {
        let key = match secret.strip_prefix(BASE64_PREFIX) {
            Some(encoded) => STANDARD_PAD_INDIFFERENT
                .decode(encoded)
                .map_err(|_| SecretError::NotBase64)?,
            None => secret.as_bytes().to_vec(),
        };
        if key.is_empty() {
            return Err(SecretError::Empty);
        }
        // HMAC accepts keys of any length; the error exists for fixed-key MACs only.
        let mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|_| SecretError::Empty)?;
        Ok(SigningKey { mac })
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(***)")
    }
}

/// The `webhook-signature` value for one request: `v1,<base64 HMAC-SHA256 of
/// "<webhook_id>.<timestamp>.<body>">`.
pub fn sign(key: &SigningKey, webhook_id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = key.mac.clone();
    mac.update(webhook_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use standardwebhooks::Webhook;

    const BODY: &[u8] = br#"{"kind":"message","id":"4839201934821","text":"dinner at 7?"}"#;

    fn headers(id: &str, ts: i64, signature: &str) -> reqwest::header::HeaderMap {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("webhook-id", id.parse().unwrap());
        h.insert("webhook-timestamp", ts.to_string().parse().unwrap());
        h.insert("webhook-signature", signature.parse().unwrap());
        h
    }

    fn now() -> i64 {
        time::OffsetDateTime::now_utc().unix_timestamp()
    }

    #[test]
    fn whsec_secret_signs_like_the_reference_library() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let key = SigningKey::from_secret(secret).unwrap();
        let ts = now();
        let ours = sign(&key, "home:4839201934821", ts, BODY);
        let reference = Webhook::new(secret).unwrap();
        assert_eq!(
            ours,
            reference.sign("home:4839201934821", ts, BODY).unwrap()
        );
        reference
            .verify(BODY, &headers("home:4839201934821", ts, &ours))
            .unwrap();
    }

    #[test]
    fn raw_text_secret_is_used_as_its_bytes() {
        let secret = "correct horse battery staple";
        let key = SigningKey::from_secret(secret).unwrap();
        let ts = now();
        let ours = sign(&key, "home:1", ts, BODY);
        let reference = Webhook::from_bytes(secret.as_bytes().to_vec()).unwrap();
        reference
            .verify(BODY, &headers("home:1", ts, &ours))
            .unwrap();
        assert!(Webhook::from_bytes(b"another secret".to_vec())
            .unwrap()
            .verify(BODY, &headers("home:1", ts, &ours))
            .is_err());
    }

    #[test]
    fn signature_covers_id_timestamp_and_body() {
        let key = SigningKey::from_secret("s3cret").unwrap();
        let base = sign(&key, "home:1", 1_700_000_000, BODY);
        assert!(base.starts_with("v1,"));
        assert_ne!(base, sign(&key, "home:2", 1_700_000_000, BODY));
        assert_ne!(base, sign(&key, "home:1", 1_700_000_001, BODY));
        assert_ne!(base, sign(&key, "home:1", 1_700_000_000, b"{}"));
        assert_eq!(base, sign(&key, "home:1", 1_700_000_000, BODY));
    }

    #[test]
    fn whsec_secret_without_padding_is_accepted() {
        // 16 bytes: the padded form ends in `==`.
        let padded = SigningKey::from_secret("whsec_AAECAwQFBgcICQoLDA0ODw==").unwrap();
        let unpadded = SigningKey::from_secret("whsec_AAECAwQFBgcICQoLDA0ODw").unwrap();
        assert_eq!(
            sign(&padded, "a:1", 1, BODY),
            sign(&unpadded, "a:1", 1, BODY)
        );
    }

    #[test]
    fn unusable_secrets_are_refused_without_echoing_them() {
        let err = SigningKey::from_secret("whsec_not base64!").unwrap_err();
        assert_eq!(err, SecretError::NotBase64);
        assert!(!err.to_string().contains("not base64!"));
        assert_eq!(SigningKey::from_secret("").unwrap_err(), SecretError::Empty);
        assert_eq!(
            SigningKey::from_secret("whsec_").unwrap_err(),
            SecretError::Empty
        );
    }

    #[test]
    fn debug_hides_the_key() {
        let key = SigningKey::from_secret("hunter2").unwrap();
        assert_eq!(format!("{key:?}"), "SigningKey(***)");
    }
}
