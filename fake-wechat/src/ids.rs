//! Random identifiers in the shapes the real servers hand out (PROTOCOL.md §1, §5.3):
//! QR uuids, login tickets, skeys, sids, pass tickets, UserNames, media ids.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

const BASE64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URL_SAFE: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";

fn pick(alphabet: &[u8], n: usize) -> String {
    (0..n)
        .map(|_| char::from(alphabet[fastrand::usize(..alphabet.len())]))
        .collect()
}

/// Lowercase hex digits.
pub(crate) fn hex(n: usize) -> String {
    pick(b"0123456789abcdef", n)
}

/// A QR uuid: ~12 base64-ish characters ending in `==` (§1.1).
pub(crate) fn qr_uuid() -> String {
    format!("{}==", pick(URL_SAFE, 10))
}

/// A login ticket as it appears in the login poll's redirect (§1.3).
pub(crate) fn login_ticket() -> String {
    format!("{}@qrticket_0", pick(URL_SAFE, 24))
}

/// `@crypt_<8 hex>_<32 hex>` (§1.4).
pub(crate) fn skey() -> String {
    format!("@crypt_{}_{}", hex(8), hex(32))
}

/// 16 base64 characters. Real sids contain `+` and `/`, so a client must encode them in a
/// query string; one is forced in so that a client which does not is always caught.
pub(crate) fn wxsid() -> String {
    let mut sid = pick(BASE64, 15);
    sid.insert(fastrand::usize(..sid.len()), '+');
    sid
}

/// A decimal account number, as `wxuin` (§1.4).
pub(crate) fn wxuin() -> u64 {
    fastrand::u64(1_000_000_000..4_000_000_000)
}

/// The pass ticket in both forms: decoded (`k3J9+q…=`) and as the login XML carries it,
/// already percent-encoded (`k3J9%2Bq…%3D`). It always holds a `+`, a `/` and a `=`.
pub(crate) fn pass_ticket() -> (String, String) {
    let decoded = format!(
        "{}+{}/{}=",
        pick(BASE64, 20),
        pick(BASE64, 20),
        pick(BASE64, 21)
    );
    let encoded = utf8_percent_encode(&decoded, NON_ALPHANUMERIC).to_string();
    (decoded, encoded)
}

/// Cookie values for `webwx_data_ticket`, `webwx_auth_ticket`, `webwxuvid`.
pub(crate) fn cookie_token(n: usize) -> String {
    pick(BASE64, n)
}

/// A person's or official account's UserName: `@` + 32 hex.
pub(crate) fn person_user_name() -> String {
    format!("@{}", hex(32))
}

/// A group's UserName: `@@` + 64 hex.
pub(crate) fn group_user_name() -> String {
    format!("@@{}", hex(64))
}

/// A media id: `@crypt_` + a long hex string.
pub(crate) fn media_id() -> String {
    format!("@crypt_{}_{}", hex(8), hex(96))
}

/// A stable-looking `wxid_…` for the XML payloads that carry one.
pub(crate) fn wxid() -> String {
    format!("wxid_{}", pick(b"abcdefghijklmnopqrstuvwxyz0123456789", 14))
}

/// Characters the web client escapes in `EncryFileName` (`IMG%5F1854%2EJPG`): all but letters
/// and digits.
const ENCRY: &AsciiSet = NON_ALPHANUMERIC;

/// A file name in the `EncryFileName` encoding.
pub(crate) fn encry_file_name(name: &str) -> String {
    utf8_percent_encode(name, ENCRY).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_match_the_protocol() {
        let uuid = qr_uuid();
        assert_eq!(uuid.len(), 12);
        assert!(uuid.ends_with("=="));
        let skey = skey();
        assert!(skey.starts_with("@crypt_") && skey.len() == 7 + 8 + 1 + 32);
        assert_eq!(wxsid().len(), 16);
        let (decoded, encoded) = pass_ticket();
        assert!(encoded.contains("%2B") && encoded.contains("%2F") && encoded.contains("%3D"));
        assert!(!encoded.contains('+') && decoded.contains('+'));
        assert_eq!(person_user_name().len(), 33);
        assert_eq!(group_user_name().len(), 66);
        assert_eq!(encry_file_name("IMG_1854.JPG"), "IMG%5F1854%2EJPG");
    }
}
