//! How a failed request is told to the operator: the whole chain of causes (reqwest's own
//! message is only "error sending request"; the reason, refused, DNS or TLS, is in its
//! sources), with the session's credentials masked wherever a URL with its query shows up in
//! that text (SECURITY.md "Secrets": they travel in query strings).

/// Query parameters that carry the session's credentials or the login ticket.
const SECRET_PARAMS: [&str; 7] = [
    "skey",
    "pass_ticket",
    "sid",
    "wxsid",
    "uin",
    "wxuin",
    "ticket",
];

/// `e` and each of its sources, joined with `: `, secrets masked. A source whose text the
/// chain already holds is left out (hyper repeats its inner errors in its own message).
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !part.is_empty() && !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    mask(&text)
}

/// The innermost cause's text, secrets masked: the short reason for the session state
/// ("Connection refused (os error 111)").
pub fn root(e: &dyn std::error::Error) -> String {
    let mut last = e;
    while let Some(s) = last.source() {
        last = s;
    }
    mask(&last.to_string())
}

/// `text` with the value of every `<secret>=` query parameter replaced by `***`.
pub fn mask(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = next_secret(rest) {
        let (before, after) = rest.split_at(at);
        out.push_str(before);
        let eq = after.find('=').map_or(after.len(), |i| i + 1);
        out.push_str(&after[..eq]);
        out.push_str("***");
        let value = after[eq..]
            .find(|c: char| matches!(c, '&' | '#' | ')' | '"' | '\'') || c.is_whitespace())
            .unwrap_or(after.len() - eq);
        rest = &after[eq + value..];
    }
    out.push_str(rest);
    out
}

/// Where the next `name=` of a secret parameter starts: right after `?`, `&` or `;`.
fn next_secret(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    (0..text.len())
        .filter(|&i| i > 0 && matches!(bytes[i - 1], b'?' | b'&' | b';'))
        .find(|&i| {
            SECRET_PARAMS.iter().any(|p| {
                text[i..].len() > p.len()
                    && text[i..].is_char_boundary(p.len())
                    && text[i..i + p.len()].eq_ignore_ascii_case(p)
                    && bytes[i + p.len()] == b'='
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct E(&'static str, Option<Box<E>>);

    impl std::fmt::Display for E {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for E {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|e| e as _)
        }
    }

    #[test]
    fn the_whole_chain_is_told_once_each() {
        let e = E(
            "error sending request",
            Some(Box::new(E(
                "client error (Connect)",
                Some(Box::new(E(
                    "tcp connect error",
                    Some(Box::new(E("Connection refused (os error 111)", None))),
                ))),
            ))),
        );
        assert_eq!(
            chain(&e),
            "error sending request: client error (Connect): tcp connect error: Connection refused (os error 111)"
        );
        assert_eq!(root(&e), "Connection refused (os error 111)");
        let repeated = E(
            "dns error: no such host",
            Some(Box::new(E("no such host", None))),
        );
        assert_eq!(chain(&repeated), "dns error: no such host");
    }

    #[test]
    fn credentials_in_urls_are_masked() {
        let text = "error for url (https://wx.qq.com/cgi-bin/mmwebwx-bin/webwxsync?sid=AbC&skey=@crypt_1_x&pass_ticket=p%2Bq&lang=zh_CN) and (http://h/x?r=1&SKEY=y#f)";
        let masked = mask(text);
        for secret in ["AbC", "@crypt_1_x", "p%2Bq", "=y"] {
            assert!(!masked.contains(secret), "{masked}");
        }
        assert!(
            masked.contains("sid=***&skey=***&pass_ticket=***&lang=zh_CN)"),
            "{masked}"
        );
        assert!(masked.contains("?r=1&SKEY=***#f"), "{masked}");
        assert_eq!(mask("no url; nothing=1 sid"), "no url; nothing=1 sid");
    }
}
