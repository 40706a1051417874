//! Fetching a command's `{"url": …}` safely (`media.fetch`): a command can come from anyone
//! who may publish on the send topic, and must not make the bridge reach into the network it
//! sits in (server-side request forgery).
//!
//! - Only `http` and `https`.
//! - `media.fetch.allow_hosts`, when not empty, lists the only hosts that may be fetched: by
//!   name (`*.name` for subdomains), or by address (an IP or a CIDR block, which also admits a
//!   name that resolves into it). A listed name may resolve anywhere.
//! - With the list empty, only public addresses are reached: loopback, private, link-local,
//!   CGNAT, unspecified, multicast, documentation and other special ranges are refused
//!   ([`is_public`]). The check is made on the addresses the name RESOLVES to, inside
//!   the client's own resolver, so the address checked is the address connected to (no second
//!   lookup an attacker's DNS could answer differently); an IP-literal host, which is never
//!   resolved, is checked before the request.
//! - Every redirect is checked the same way before it is followed (at most 5).
//! - No proxy from the environment: a proxy would resolve the name itself, past the check.
//! - The size is capped while the body streams (`media.fetch.max_bytes`), and the whole fetch
//!   has `media.fetch.timeout`.
use std::error::Error as StdError;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::redirect::{Attempt, Policy};
use url::{Host, Url};

/// How many redirects one fetch follows.
const MAX_REDIRECTS: usize = 5;

/// The User-Agent of media fetches: the bridge says who it is, and not WeChat's browser.
const USER_AGENT: &str = concat!("wxbridge/", env!("CARGO_PKG_VERSION"), " (media fetch)");

/// Why a URL is not fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The scheme, the host or its addresses are not allowed (`media_forbidden`).
    #[error("{0}")]
    Forbidden(String),
    /// Longer than `media.fetch.max_bytes` (`media_too_large`).
    #[error("the answer is larger than media.fetch.max_bytes ({limit} bytes)")]
    TooLarge {
        /// The cap.
        limit: u64,
    },
    /// Anything else: a status, a timeout, a connection (`media_fetch_failed`).
    #[error("{0}")]
    Failed(String),
}

/// A refusal raised inside the resolver or the redirect policy, found again in reqwest's
/// error chain.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Refused(String);

/// What `media.fetch.allow_hosts` lists: host names, `*.name` for the subdomains of a name,
/// IP addresses and CIDR blocks (the config loader checked their shape).
#[derive(Debug, Clone, Default)]
struct AllowHosts {
    /// Exact names, lowercased.
    names: Vec<String>,
    /// `.name` of each `*.name`, lowercased.
    suffixes: Vec<String>,
    /// Addresses and blocks: (network, prefix length).
    nets: Vec<(IpAddr, u8)>,
}

impl AllowHosts {
    fn new(entries: &[String]) -> AllowHosts {
        let mut allow = AllowHosts::default();
        for entry in entries {
            let entry = entry.trim_matches(['[', ']']).to_ascii_lowercase();
            let (addr, bits) = match entry.split_once('/') {
                Some((a, b)) => (a, b.parse::<u8>().ok()),
                None => (entry.as_str(), None),
            };
            if let Ok(ip) = addr.parse::<IpAddr>() {
                let max = if ip.is_ipv4() { 32 } else { 128 };
                allow.nets.push((ip, bits.unwrap_or(max).min(max)));
            } else if let Some(domain) = entry.strip_prefix("*.") {
                allow.suffixes.push(format!(".{domain}"));
            } else {
                allow.names.push(entry);
            }
        }
        allow
    }

    fn is_empty(&self) -> bool {
        self.names.is_empty() && self.suffixes.is_empty() && self.nets.is_empty()
    }

    /// A host name the list names (itself, or as a subdomain of a `*.` entry).
    fn name_listed(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.names.contains(&host) || self.suffixes.iter().any(|s| host.ends_with(s.as_str()))
    }

    /// An address inside a listed address or block.
    fn addr_listed(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.nets
            .iter()
            .any(|&(net, bits)| in_net(ip, canonical(net), bits))
    }

    /// May the fetch client connect to `addr`, found for a host the list does not name?
    fn addr_allowed(&self, addr: IpAddr) -> bool {
        self.addr_listed(addr) || (self.is_empty() && is_public(addr))
    }

    /// Refuses a URL by its scheme, its host name or its IP-literal host. A name that passes
    /// here is judged again by the addresses it resolves to ([`CheckedResolver`]).
    fn check(&self, url: &Url) -> Result<(), Refused> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Refused(format!(
                "only http and https URLs are fetched, not {}:",
                url.scheme()
            )));
        }
        let ip = match url.host() {
            None => return Err(Refused("the URL has no host".into())),
            Some(Host::Domain(name)) => {
                // With only names listed, another name is refused before any lookup; with
                // addresses listed (or none at all), its addresses decide.
                if self.name_listed(name) || self.is_empty() || !self.nets.is_empty() {
                    return Ok(());
                }
                return Err(Refused(format!(
                    "the host {name} is not in media.fetch.allow_hosts"
                )));
            }
            Some(Host::Ipv4(ip)) => IpAddr::V4(ip),
            Some(Host::Ipv6(ip)) => IpAddr::V6(ip),
        };
        if self.addr_allowed(ip) {
            return Ok(());
        }
        Err(Refused(if self.is_empty() {
            format!("{ip} is not a public address; list it in media.fetch.allow_hosts to allow it")
        } else {
            format!("the address {ip} is not in media.fetch.allow_hosts")
        }))
    }
}

/// An IPv4 address written inside IPv6 (`::ffff:a.b.c.d`) as the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Whether `ip` is inside `net`/`bits`.
fn in_net(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// The resolver of the fetch client: a name that is not listed keeps only its public
/// addresses, and one left with none is refused before any connection.
struct CheckedResolver {
    allow: Arc<AllowHosts>,
}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow = self.allow.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if allow.name_listed(&host) {
                return Ok(Box::new(found.into_iter()) as Addrs);
            }
            let allowed: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| allow.addr_allowed(a.ip()))
                .collect();
            if allowed.is_empty() {
                let shown: Vec<String> = found.iter().map(|a| a.ip().to_string()).collect();
                let why = if allow.is_empty() {
                    "no public address"
                } else {
                    "no address media.fetch.allow_hosts lists"
                };
                return Err(Box::new(Refused(format!(
                    "{host} resolves to {why} ({}); list it in media.fetch.allow_hosts to \
                     allow it",
                    shown.join(", ")
                ))) as Box<dyn StdError + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// The HTTP client of media fetches, separate from WeChat's: no cookies, no proxy, the
/// checked resolver and redirect policy.
#[derive(Clone)]
pub struct Fetcher {
    http: reqwest::Client,
    allow: Arc<AllowHosts>,
}

impl Fetcher {
    /// A fetcher for `media.fetch.allow_hosts` and `media.fetch.timeout`.
    pub fn new(allow_hosts: &[String], timeout: Duration) -> Fetcher {
        let allow = Arc::new(AllowHosts::new(allow_hosts));
        let policy_allow = allow.clone();
        let policy = Policy::custom(move |attempt: Attempt<'_>| {
            if attempt.previous().len() >= MAX_REDIRECTS {
                return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
            }
            match policy_allow.check(attempt.url()) {
                Ok(()) => attempt.follow(),
                Err(refused) => attempt.error(refused),
            }
        });
        let http = reqwest::Client::builder()
            .no_proxy()
            .dns_resolver(Arc::new(CheckedResolver {
                allow: allow.clone(),
            }))
            .redirect(policy)
            .user_agent(USER_AGENT)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .timeout(timeout)
            .build()
            .expect("a TLS backend is compiled in");
        Fetcher { http, allow }
    }

    /// Starts fetching `url`: the answer of a 2xx status whose announced length is within
    /// `max_bytes`, ready for its body to be streamed (and capped again while it streams).
    pub async fn open(&self, url: &Url, max_bytes: u64) -> Result<reqwest::Response, FetchError> {
        self.allow
            .check(url)
            .map_err(|r| FetchError::Forbidden(r.0))?;
        let resp = self.http.get(url.clone()).send().await.map_err(classify)?;
        let status = resp.status();
        if !status.is_success() {
            return Err(FetchError::Failed(format!(
                "the server answered HTTP {status}"
            )));
        }
        if resp.content_length().is_some_and(|n| n > max_bytes) {
            return Err(FetchError::TooLarge { limit: max_bytes });
        }
        Ok(resp)
    }
}

/// The next piece of a fetched body, as [`FetchError`].
pub async fn next_chunk(resp: &mut reqwest::Response) -> Result<Option<bytes::Bytes>, FetchError> {
    resp.chunk().await.map_err(classify)
}

/// A reqwest error as a [`FetchError`]: a [`Refused`] anywhere in its chain is `Forbidden`.
fn classify(e: reqwest::Error) -> FetchError {
    let mut cause: Option<&(dyn StdError + 'static)> = Some(&e);
    while let Some(c) = cause {
        if let Some(refused) = c.downcast_ref::<Refused>() {
            return FetchError::Forbidden(refused.0.clone());
        }
        cause = c.source();
    }
    if e.is_timeout() {
        return FetchError::Failed("timed out (media.fetch.timeout)".into());
    }
    FetchError::Failed(crate::wechat::cause::chain(&e.without_url()))
}

/// True for an address anyone on the internet could reach: not loopback, private (RFC 1918,
/// IPv6 unique local), link-local, CGNAT (100.64/10), unspecified, broadcast, multicast,
/// documentation, benchmarking, reserved or IETF-special. IPv4 addresses inside IPv6
/// (mapped, NAT64, 6to4) are judged as the IPv4 address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b))
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (18..20).contains(&b))
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let s = ip.segments();
    let embedded = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    // NAT64 (64:ff9b::/96) and 6to4 (2002::/16) reach the IPv4 address they carry.
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        return is_public_v4(embedded(s[6], s[7]));
    }
    if s[0] == 0x2002 {
        return is_public_v4(embedded(s[1], s[2]));
    }
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00 // unique local
        || (s[0] & 0xffc0) == 0xfe80 // link-local
        || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] == 0x2001 && s[1] < 0x0200) // IETF special: Teredo, benchmarking, ORCHID…
        || (s[0] == 0x0100 && s[1..4] == [0, 0, 0]) // discard-only
        || s[0..6] == [0, 0, 0, 0, 0, 0]) // IPv4-compatible (deprecated)
}

#[cfg(test)]
mod tests;
