//! The `Host` check that stops DNS rebinding.
//!
//! A page on `evil.example` can make its name resolve to 127.0.0.1 after it has loaded; the
//! browser then lets it read the bridge's answers, since to the browser they come from
//! `evil.example`. What gives such a request away is its `Host` header, which names the
//! attacker's domain. So every route but `/healthz` answers only requests whose `Host` is:
//!
//! - an IP address (any port): a browser sends an IP there only when the page itself was
//!   loaded from that address, so no foreign page is involved;
//! - `localhost` (any port);
//! - a name in `http.allowed_hosts` (`name` matches any port, `name:port` that port only).
//!
//! A `GET /media/<sha256>` with a valid signed link passes whatever its `Host` (the link is
//! the credential, and a page that rebinds a name cannot know it).
//!
//! Anything else is answered 421 (Misdirected Request). A request with no `Host` at all
//! (HTTP/1.0 tools) is not a browser's and passes.
use std::net::IpAddr;

use axum::extract::{Request, State};
use axum::http::header::HOST;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;

use super::auth::refuse;
use super::Shared;

/// The host names accepted besides IP addresses and `localhost`.
pub struct AllowedHosts {
    names: Vec<(String, Option<u16>)>,
}

impl AllowedHosts {
    /// From `http.allowed_hosts` (validated by the config loader).
    pub fn new(configured: &[String]) -> AllowedHosts {
        let names = configured
            .iter()
            .filter_map(|entry| split(entry))
            .map(|(name, port)| (normalize(name), port))
            .collect();
        AllowedHosts { names }
    }

    /// Whether a `Host` header value names this bridge.
    pub fn allows(&self, host: &str) -> bool {
        let Some((name, port)) = split(host) else {
            return false;
        };
        if name.parse::<IpAddr>().is_ok() {
            return true;
        }
        let name = normalize(name);
        name == "localhost"
            || self
                .names
                .iter()
                .any(|(allowed, p)| *allowed == name && p.is_none_or(|p| Some(p) == port))
    }
}

/// `name[:port]` or `[v6]:port` into the name (brackets removed) and the port.
fn split(host: &str) -> Option<(&str, Option<u16>)> {
    if let Some(rest) = host.strip_prefix('[') {
        let (ip, after) = rest.split_once(']')?;
        return match after {
            "" => Some((ip, None)),
            _ => Some((ip, Some(after.strip_prefix(':')?.parse().ok()?))),
        };
    }
    match host.split_once(':') {
        Some((name, port)) => Some((name, Some(port.parse().ok()?))),
        None if host.is_empty() => None,
        None => Some((host, None)),
    }
}

/// Names compare case-insensitively and without the root's trailing dot.
fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// The middleware in front of every route but `/healthz`.
pub async fn guard(State(state): State<Shared>, request: Request, next: Next) -> Response {
    let host = request.headers().get(HOST).map(|h| h.to_str());
    // A signed media link is a credential of its own; no page can use it without knowing it.
    let signed = request
        .extensions()
        .get::<super::media::SignedMedia>()
        .is_some();
    let allowed = match host {
        _ if signed => true,
        None => true,
        Some(Ok(host)) => state.hosts.allows(host),
        Some(Err(_)) => false,
    };
    if !allowed {
        return refuse(
            StatusCode::MISDIRECTED_REQUEST,
            "this bridge does not answer to that Host name; add it to http.allowed_hosts",
        );
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_addresses_and_localhost_are_accepted_on_any_port() {
        let hosts = AllowedHosts::new(&[]);
        for host in [
            "127.0.0.1:8787",
            "127.0.0.1",
            "192.168.1.20:80",
            "[::1]:8787",
            "[::1]",
            "localhost:8787",
            "LOCALHOST",
            "localhost.:1",
        ] {
            assert!(hosts.allows(host), "{host}");
        }
    }

    #[test]
    fn other_names_are_refused_unless_listed() {
        let none = AllowedHosts::new(&[]);
        let listed = AllowedHosts::new(&["Bridge.lan".into(), "proxy.example:8443".into()]);
        for host in [
            "evil.example:8787",
            "127.0.0.1.evil.example:8787",
            "localhost.evil.example",
            "bridge.lan:8787",
            "",
            "[::1",
            "bridge.lan:notaport",
        ] {
            assert!(!none.allows(host), "{host}");
        }
        assert!(listed.allows("bridge.lan:8787"));
        assert!(listed.allows("BRIDGE.LAN"));
        assert!(listed.allows("proxy.example:8443"));
        assert!(!listed.allows("proxy.example:8444"));
        assert!(!listed.allows("proxy.example"));
        assert!(!listed.allows("evil.example"));
    }
}
