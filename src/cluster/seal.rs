//! Sealing secrets for the cluster's KV bucket: what a node stores there for another node to
//! resume an account must not sit in plain text where anyone who can read the bucket sees it.
//!
//! # Format
//! A sealed value is `version (1 byte) ‖ nonce (24 bytes) ‖ ciphertext ‖ tag (16 bytes)`:
//! - **AEAD:** XChaCha20-Poly1305. Its 24-byte nonce is drawn at random for every seal, which
//!   is safe however many values are sealed under one key (with the 12-byte nonce of
//!   ChaCha20-Poly1305 or AES-GCM, random nonces are only advised up to about 2^32 seals).
//! - **Key:** HKDF-SHA256 over `cluster.secret`, no salt, info [`KEY_INFO`]. The info string is
//!   part of the format: changing it makes every stored value unreadable.
//! - **Associated data:** the version byte followed by the value's bucket key (such as
//!   `alice/session`), so a value copied under another key, or another account's, does not
//!   open, nor one whose version byte was changed.
//!
//! # The secret
//! At least [`MIN_SECRET_LEN`] bytes, taken as given (the bytes of the configured text). HKDF
//! derives keys from secrets that are already strong; it is not a password hash and does
//! nothing to slow down guessing. Rather than stretching a passphrase with argon2 (a memory-hard
//! hash at every start, and a dependency), the bridge asks for a random secret, as it does for
//! webhook secrets: `openssl rand -base64 32` gives 44 characters. The length check is a floor
//! that catches a typed word, not a measure of randomness.
//!
//! # What the cluster step seals
//! `state_dir/session.json` ([`crate::wechat::session::StoredSession`]) is sealed **whole**,
//! as one value under `<account>/session`:
//! - `credentials.ticket` (skey, wxsid, wxuin, pass_ticket) speaks for the account to WeChat;
//! - `cookies` holds `wxsid`, `wxuin`, `webwx_data_ticket` and `webwx_auth_ticket`, the same
//!   power again, plus the ticket uploads and downloads need;
//! - `user` is the account's own contact, whose `head_img_url` carries the skey
//!   (PROTOCOL.md §5.3), and whose names are personal data;
//! - `credentials.hosts` and `credentials.device_id` are not secret, but are a few bytes next to
//!   the rest and are only ever read together with it.
//!
//! Sealing only some fields would need a second layout beside `session.json` and a judgement
//! per field that a future field could get wrong; one sealed document has neither problem.
//!
//! The rule beyond the session: seal what holds a credential **or names a person**, since
//! whoever may read the bucket (the NATS cluster's operators, its backups) need not read the
//! address book. So the contact-key book (spool value `contact_keys`, [`crate::wechat::keys`]:
//! remarks, nicknames, places, hashes of groups' member nicknames) is sealed under
//! `<account>/contact_keys`, and the send limits' counts too, as they fall back to a
//! recipient's display name when it has no contact key. Not sealed: the sync keys (counters
//! that speak for no one without the session) and the leases (a node name and a revision).
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use sha2::Sha256;
use thiserror::Error;
use zeroize::Zeroizing;

/// The format version, the first byte of every sealed value.
pub const VERSION: u8 = 1;

/// The HKDF info string the sealing key is derived with (part of the format; see the module
/// docs).
pub const KEY_INFO: &[u8] = b"wxbridge cluster seal v1";

/// The shortest secret accepted, in bytes.
pub const MIN_SECRET_LEN: usize = 32;

const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
const HEADER_LEN: usize = 1 + NONCE_LEN;

/// Why a secret cannot seal.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SecretError {
    /// Fewer than [`MIN_SECRET_LEN`] bytes.
    #[error(
        "cluster.secret is {len} bytes long but needs at least {MIN_SECRET_LEN}: the sealing key \
         is derived with HKDF, which does not slow down guessing as a password hash would, so \
         the secret must be random (e.g. `openssl rand -base64 32`), not a passphrase"
    )]
    TooShort {
        /// Its length in bytes.
        len: usize,
    },
}

/// Why a value could not be sealed.
#[derive(Debug, Error)]
pub enum SealError {
    /// The system gave no random bytes for the nonce.
    #[error("no random nonce to seal {key}: {source}")]
    Random {
        /// The bucket key being sealed for.
        key: String,
        /// What the system said.
        source: getrandom::Error,
    },
    /// Past the AEAD's limit (256 GiB): not a value this bridge stores.
    #[error("the value for {key} is too long to seal")]
    TooLong {
        /// The bucket key being sealed for.
        key: String,
    },
}

/// Why a sealed value did not open. Neither variant says more than that: no byte of the
/// plaintext, and no hint of which check failed, is in it.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum OpenError {
    /// The tag did not verify (another secret, a changed byte, a value moved from another key)
    /// or the value is too short to hold a tag.
    #[error("the sealed value of {key} does not open: wrong secret or tampered")]
    WrongSecretOrTampered {
        /// The bucket key it was read from.
        key: String,
    },
    /// A version byte this build does not know.
    #[error(
        "the sealed value of {key} does not open: format version {version} is unknown to this \
         build (sealed by a newer wxbridge?), or tampered"
    )]
    UnknownVersion {
        /// The bucket key it was read from.
        key: String,
        /// The version byte found.
        version: u8,
    },
}

/// Seals and opens values with the key derived from one secret. Its `Debug` shows no key.
#[derive(Clone)]
pub struct Seal {
    /// Holds the derived key, wiped on drop (the crate's `zeroize` feature).
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for Seal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Seal").finish_non_exhaustive()
    }
}

impl Seal {
    /// A seal keyed by `secret` (see the module docs for what it must be).
    pub fn new(secret: &[u8]) -> Result<Seal, SecretError> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(SecretError::TooShort { len: secret.len() });
        }
        let key = derive_key(secret);
        Ok(Seal {
            cipher: XChaCha20Poly1305::new((&*key).into()),
        })
    }

    /// `plaintext` sealed for the bucket key `key`, under a fresh random nonce.
    pub fn seal(&self, key: &str, plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|source| SealError::Random {
            key: key.to_owned(),
            source,
        })?;
        self.seal_with_nonce(key, plaintext, nonce)
    }

    fn seal_with_nonce(
        &self,
        key: &str,
        plaintext: &[u8],
        nonce: [u8; NONCE_LEN],
    ) -> Result<Vec<u8>, SealError> {
        let aad = associated_data(VERSION, key);
        let ciphertext = self
            .cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| SealError::TooLong {
                key: key.to_owned(),
            })?;
        let mut sealed = Vec::with_capacity(HEADER_LEN + ciphertext.len());
        sealed.push(VERSION);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        Ok(sealed)
    }

    /// The plaintext of `sealed`, read from the bucket key `key`.
    pub fn open(&self, key: &str, sealed: &[u8]) -> Result<Vec<u8>, OpenError> {
        let refused = || OpenError::WrongSecretOrTampered {
            key: key.to_owned(),
        };
        let Some(&version) = sealed.first() else {
            return Err(refused());
        };
        if version != VERSION {
            return Err(OpenError::UnknownVersion {
                key: key.to_owned(),
                version,
            });
        }
        if sealed.len() < HEADER_LEN + TAG_LEN {
            return Err(refused());
        }
        let (header, ciphertext) = sealed.split_at(HEADER_LEN);
        let nonce: [u8; NONCE_LEN] = header[1..].try_into().map_err(|_| refused())?;
        let aad = associated_data(version, key);
        self.cipher
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| refused())
    }
}

/// The 32-byte key HKDF-SHA256 derives from `secret` (no salt, info [`KEY_INFO`]).
fn derive_key(secret: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut key = Zeroizing::new([0u8; 32]);
    Hkdf::<Sha256>::new(None, secret)
        .expand(KEY_INFO, key.as_mut())
        .expect("32 bytes is within HKDF-SHA256's output limit of 8160");
    key
}

/// What the tag covers besides the ciphertext: the version byte, then the bucket key.
fn associated_data(version: u8, key: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(1 + key.len());
    aad.push(version);
    aad.extend_from_slice(key.as_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    const KEY: &str = "alice/session";
    const PLAINTEXT: &[u8] = br#"{"skey":"@crypt_1234","wxsid":"sid"}"#;

    fn seal() -> Seal {
        Seal::new(SECRET).unwrap()
    }

    fn refused(key: &str) -> OpenError {
        OpenError::WrongSecretOrTampered { key: key.into() }
    }

    #[test]
    fn a_sealed_value_opens_to_its_plaintext() {
        let s = seal();
        let sealed = s.seal(KEY, PLAINTEXT).unwrap();
        assert_eq!(sealed.len(), HEADER_LEN + PLAINTEXT.len() + TAG_LEN);
        assert_eq!(sealed[0], VERSION);
        assert_eq!(s.open(KEY, &sealed).unwrap(), PLAINTEXT);
        // Another Seal from the same secret (another node) opens it too.
        assert_eq!(seal().open(KEY, &sealed).unwrap(), PLAINTEXT);
        assert_eq!(
            s.open(KEY, &s.seal(KEY, b"").unwrap()).unwrap(),
            b"",
            "an empty value round-trips"
        );
    }

    #[test]
    fn the_plaintext_is_not_in_the_sealed_value() {
        let sealed = seal().seal(KEY, PLAINTEXT).unwrap();
        assert!(!sealed.windows(6).any(|w| w == b"@crypt"));
    }

    #[test]
    fn a_value_sealed_by_an_earlier_build_still_opens() {
        // The format pinned (nonce 0, 1, …, 23): a node of a newer build must open what an older
        // one stored, during a rolling upgrade. Computed independently with Python
        // (`cryptography`'s ChaCha20Poly1305 under an HChaCha20 subkey, as XChaCha20 defines).
        let sealed = seal()
            .seal_with_nonce(KEY, PLAINTEXT, std::array::from_fn(|i| i as u8))
            .unwrap();
        assert_eq!(hex(&sealed), FIXTURE);
        assert_eq!(seal().open(KEY, &from_hex(FIXTURE)).unwrap(), PLAINTEXT);
    }

    const FIXTURE: &str = "01000102030405060708090a0b0c0d0e0f1011121314151617efbe92680bb0c6\
         7e213805261ae8f29a2b874ae3205f1e56176489d32f3852506a04b0117ce75f57015a6e6507f1e7e535d3c9a9";

    #[test]
    fn the_key_is_hkdf_sha256_of_the_secret_with_the_documented_info() {
        // Computed independently (Python's hmac module, RFC 5869 with an all-zero salt).
        assert_eq!(hex(derive_key(SECRET).as_ref()), DERIVED);
    }

    const DERIVED: &str = "38f435ca08a3d2574c176d8e5ae4f92235652c99e82d9857e2806c67cb96244c";

    #[test]
    fn a_wrong_secret_does_not_open() {
        let sealed = seal().seal(KEY, PLAINTEXT).unwrap();
        let other = Seal::new(b"0123456789abcdef0123456789abcdeF").unwrap();
        assert_eq!(other.open(KEY, &sealed), Err(refused(KEY)));
    }

    #[test]
    fn a_flipped_bit_anywhere_does_not_open() {
        let s = seal();
        let sealed = s.seal(KEY, PLAINTEXT).unwrap();
        for byte in 0..sealed.len() {
            for bit in 0..8 {
                let mut bad = sealed.clone();
                bad[byte] ^= 1 << bit;
                let err = s.open(KEY, &bad).unwrap_err();
                if byte == 0 {
                    assert!(matches!(err, OpenError::UnknownVersion { .. }), "{err}");
                } else {
                    assert_eq!(err, refused(KEY), "byte {byte} bit {bit}");
                }
            }
        }
    }

    #[test]
    fn a_value_moved_to_another_key_does_not_open() {
        let s = seal();
        let sealed = s.seal(KEY, PLAINTEXT).unwrap();
        for other in [
            "bob/session",
            "alice/session ",
            "alice/sessio",
            "",
            "alice/synckeys",
        ] {
            assert_eq!(s.open(other, &sealed), Err(refused(other)), "{other:?}");
        }
    }

    #[test]
    fn a_truncated_value_does_not_open() {
        let s = seal();
        let sealed = s.seal(KEY, PLAINTEXT).unwrap();
        for len in 0..sealed.len() {
            assert_eq!(
                s.open(KEY, &sealed[..len]),
                Err(refused(KEY)),
                "{len} bytes"
            );
        }
        let mut longer = sealed.clone();
        longer.push(0);
        assert_eq!(s.open(KEY, &longer), Err(refused(KEY)), "a byte appended");
    }

    #[test]
    fn an_unknown_version_does_not_open() {
        let s = seal();
        let mut sealed = s.seal(KEY, PLAINTEXT).unwrap();
        sealed[0] = 2;
        let err = s.open(KEY, &sealed).unwrap_err();
        assert_eq!(
            err,
            OpenError::UnknownVersion {
                key: KEY.into(),
                version: 2
            }
        );
        assert!(err.to_string().contains("format version 2"), "{err}");
    }

    #[test]
    fn open_errors_name_the_key_and_never_the_plaintext() {
        let s = seal();
        let sealed = s.seal(KEY, PLAINTEXT).unwrap();
        let other = Seal::new(&[7u8; 32]).unwrap();
        let mut versioned = sealed.clone();
        versioned[0] = 9;
        for err in [
            other.open(KEY, &sealed).unwrap_err(),
            s.open(KEY, &versioned).unwrap_err(),
        ] {
            let text = format!("{err} {err:?}");
            assert!(text.contains(KEY), "{text}");
            assert!(!text.contains("crypt"), "{text}");
        }
        assert_eq!(
            other.open(KEY, &sealed).unwrap_err().to_string(),
            "the sealed value of alice/session does not open: wrong secret or tampered"
        );
    }

    #[test]
    fn two_seals_of_the_same_plaintext_differ() {
        let s = seal();
        let a = s.seal(KEY, PLAINTEXT).unwrap();
        let b = s.seal(KEY, PLAINTEXT).unwrap();
        assert_ne!(a[1..HEADER_LEN], b[1..HEADER_LEN], "nonces");
        assert_ne!(a, b);
        assert_eq!(s.open(KEY, &a).unwrap(), s.open(KEY, &b).unwrap());
    }

    #[test]
    fn a_short_secret_is_refused_naming_cluster_secret() {
        let err = Seal::new(&SECRET[..31]).unwrap_err();
        assert_eq!(err, SecretError::TooShort { len: 31 });
        let text = err.to_string();
        assert!(text.contains("cluster.secret"), "{text}");
        assert!(text.contains("at least 32"), "{text}");
        assert!(Seal::new(b"").is_err());
        assert!(Seal::new(&SECRET[..32]).is_ok(), "32 bytes is enough");
    }

    #[test]
    fn debug_shows_no_key() {
        let text = format!("{:?}", seal());
        assert_eq!(text, "Seal { .. }");
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn from_hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }
}
