//! Signed media URLs: `<base>/media/<sha256>?exp=<unix s>&sig=<hex>`, which a webhook
//! receiver (or anyone handed the link) can fetch without the API token until `exp`.
//!
//! The secret is 32 random bytes in `<state_dir>/media.key` (0600), made at the first start
//! and reused, so links stay valid across restarts; deleting the file revokes every link
//! handed out. The signing key is derived from it (HMAC-SHA256 keyed by the secret over a
//! fixed label), so the stored secret itself is never used to sign anything directly. The
//! signature is HMAC-SHA256 over `/media/<sha256>?exp=<exp>`: the path as the bridge serves
//! it and the expiry, so it is good for one file and one expiry only. Checking it compares in
//! constant time.
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use url::Url;

use super::is_sha256;
use super::store::hex;

/// The file in the state dir that holds the secret.
pub const KEY_FILE: &str = "media.key";
/// How long a signed URL is valid by default.
pub const DEFAULT_VALIDITY: Duration = Duration::from_secs(7 * 24 * 3600);
/// Bytes of secret.
const SECRET_BYTES: usize = 32;
/// What the signing key is derived for; a new label would invalidate every link.
const LABEL: &[u8] = b"wxbridge media url v1";

/// Signs and checks media URLs. Cheap to clone.
#[derive(Clone)]
pub struct Signer {
    key: [u8; 32],
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(***)")
    }
}

impl Signer {
    /// Reads the secret from `<state_dir>/media.key`, creating it (0600) with fresh random
    /// bytes when it does not exist. A file of the wrong size is an error naming the file,
    /// not a silent new key.
    pub fn load_or_create(state_dir: &Path) -> io::Result<Signer> {
        let path = state_dir.join(KEY_FILE);
        let secret = match read_secret(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => match create_secret(&path) {
                // Another process made it first: use theirs.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => read_secret(&path)?,
                other => other?,
            },
            other => other?,
        };
        Ok(Signer::from_secret(&secret))
    }

    /// A signer whose key derives from `secret`.
    pub fn from_secret(secret: &[u8]) -> Signer {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret)
            .expect("HMAC takes a key of any length");
        mac.update(LABEL);
        Signer {
            key: mac.finalize().into_bytes().into(),
        }
    }

    /// `<base>/media/<sha256>?exp=<exp_unix>&sig=<hex>`. A path in `base` is kept (a reverse
    /// proxy's prefix), with or without its trailing slash.
    pub fn url(&self, base: &Url, sha256: &str, exp_unix: u64) -> Url {
        let mut url = base.clone();
        url.set_query(None);
        url.set_fragment(None);
        if !url.path().ends_with('/') {
            let path = format!("{}/", url.path());
            url.set_path(&path);
        }
        let mut url = url
            .join(&format!("media/{sha256}"))
            .unwrap_or_else(|_| base.clone());
        url.query_pairs_mut()
            .append_pair("exp", &exp_unix.to_string())
            .append_pair("sig", &hex(&self.mac(sha256, exp_unix)));
        url
    }

    /// Whether `sig` is this signer's signature of `sha256` until `exp_unix`, and `now_unix`
    /// is not past it.
    pub fn verify(&self, sha256: &str, exp_unix: u64, sig: &str, now_unix: u64) -> bool {
        if now_unix > exp_unix || !is_sha256(sha256) {
            return false;
        }
        let Some(given) = unhex(sig) else {
            return false;
        };
        self.mac(sha256, exp_unix).as_slice().ct_eq(&given).into()
    }

    fn mac(&self, sha256: &str, exp_unix: u64) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key)
            .expect("HMAC takes a key of any length");
        mac.update(format!("/media/{sha256}?exp={exp_unix}").as_bytes());
        mac.finalize().into_bytes().into()
    }
}

fn read_secret(path: &Path) -> io::Result<Vec<u8>> {
    let mut secret = Vec::with_capacity(SECRET_BYTES);
    fs::File::open(path)?
        .take(SECRET_BYTES as u64 + 1)
        .read_to_end(&mut secret)?;
    if secret.len() != SECRET_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} holds {} bytes, not {SECRET_BYTES}; delete it to make a new key \
                 (links already handed out stop working)",
                path.display(),
                secret.len()
            ),
        ));
    }
    Ok(secret)
}

fn create_secret(path: &Path) -> io::Result<Vec<u8>> {
    let mut secret = vec![0u8; SECRET_BYTES];
    getrandom::fill(&mut secret).map_err(io::Error::other)?;
    // Written to a temporary name first, so a crash never leaves a short key behind.
    let temp = path.with_extension("key.tmp");
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temp)?;
    file.write_all(&secret)?;
    file.sync_all()?;
    // A hard link fails if the key exists, where a rename would replace it.
    let linked = fs::hard_link(&temp, path);
    let _ = fs::remove_file(&temp);
    linked?;
    Ok(secret)
}

/// Bytes of a 64-character hex signature.
fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() != 64 {
        return None;
    }
    (0..64)
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    const SHA: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    const OTHER: &str = "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752";

    fn parts(url: &Url) -> (u64, String) {
        let get = |name: &str| {
            url.query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
                .unwrap()
        };
        (get("exp").parse().unwrap(), get("sig"))
    }

    #[test]
    fn a_signed_url_verifies_until_it_expires() {
        let signer = Signer::from_secret(b"secret");
        let base = Url::parse("http://127.0.0.1:8787").unwrap();
        let url = signer.url(&base, SHA, 1_000);
        assert_eq!(url.path(), format!("/media/{SHA}"));
        let (exp, sig) = parts(&url);
        assert_eq!(exp, 1_000);
        assert!(signer.verify(SHA, exp, &sig, 999));
        assert!(signer.verify(SHA, exp, &sig, 1_000));
        assert!(!signer.verify(SHA, exp, &sig, 1_001), "expired");
    }

    #[test]
    fn a_signature_is_good_for_its_file_expiry_and_key_only() {
        let signer = Signer::from_secret(b"secret");
        let base = Url::parse("https://bridge.example/").unwrap();
        let (exp, sig) = parts(&signer.url(&base, SHA, 5_000));
        assert!(!signer.verify(OTHER, exp, &sig, 0), "another file");
        assert!(!signer.verify(SHA, exp + 1, &sig, 0), "a later expiry");
        assert!(
            !Signer::from_secret(b"other").verify(SHA, exp, &sig, 0),
            "another key"
        );
        let mut tampered = sig.clone().into_bytes();
        tampered[10] = if tampered[10] == b'0' { b'1' } else { b'0' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert!(!signer.verify(SHA, exp, &tampered, 0), "a changed digit");
        assert!(!signer.verify(SHA, exp, &sig[..62], 0), "a short signature");
        assert!(!signer.verify(SHA, exp, "", 0));
        assert!(!signer.verify(SHA, exp, &"zz".repeat(32), 0));
        assert!(
            signer.verify(SHA, exp, &sig.to_uppercase(), 0),
            "hex in any case"
        );
    }

    #[test]
    fn a_base_path_is_kept() {
        let signer = Signer::from_secret(b"secret");
        for base in ["https://h.example/wx", "https://h.example/wx/"] {
            let url = signer.url(&Url::parse(base).unwrap(), SHA, 1);
            assert_eq!(url.path(), format!("/wx/media/{SHA}"), "{base}");
        }
    }

    #[test]
    fn the_key_file_is_created_once_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = Signer::load_or_create(dir.path()).unwrap();
        let path = dir.path().join(KEY_FILE);
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(fs::read(&path).unwrap().len(), SECRET_BYTES);
        let again = Signer::load_or_create(dir.path()).unwrap();
        assert_eq!(first.key, again.key);
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary file left"
        );

        let elsewhere = tempfile::tempdir().unwrap();
        let other = Signer::load_or_create(elsewhere.path()).unwrap();
        assert_ne!(
            first.key, other.key,
            "each state dir has its own random key"
        );
    }

    #[test]
    fn a_damaged_key_file_is_an_error_not_a_new_key() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(KEY_FILE), b"short").unwrap();
        let err = Signer::load_or_create(dir.path()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("media.key"), "{err}");
    }
}
