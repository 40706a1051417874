//! The options a fake server starts with; the defaults are the real server's behaviour.

use std::time::Duration;

/// How a [`FakeWeChat`](crate::FakeWeChat) behaves. `Options::default()` is realistic; tests
/// usually shorten the holds:
///
/// ```
/// # use std::time::Duration;
/// let opts = wxbridge_fake::Options {
///     poll_hold: Duration::from_millis(200),
///     sync_hold: Duration::from_millis(200),
///     ..Default::default()
/// };
/// # assert_eq!(opts.contact_page_size, 100);
/// ```
#[derive(Clone, Debug)]
pub struct Options {
    /// TCP port on 127.0.0.1; 0 (the default) picks a free one.
    pub port: u16,
    /// How long the login poll (§1.3) is held before it answers `window.code=408;`. Default 25 s.
    pub poll_hold: Duration,
    /// How long `synccheck` (§6) is held before it answers selector 0. Default 25 s.
    pub sync_hold: Duration,
    /// Contacts per `webwxgetcontact` page (§5.1). Default 100.
    pub contact_page_size: usize,
    /// Most entries one `webwxsync` returns (§7); the rest wait for the next one. Default 100.
    pub sync_batch: usize,
    /// Refuse `webwxnewloginpage` with ret 1203 unless it carries `mod=desktop`,
    /// `client-version: 2.0.0` and the exact `extspam` header (§1.5). Default false.
    pub require_desktop: bool,
    /// Whether `webwxpushloginurl` (§1.6) offers push login; see
    /// [`FakeWeChat::enable_push_login`](crate::FakeWeChat::enable_push_login). Default false.
    pub push_login: bool,
    /// Start the account with `filehelper`, `weixin`, two friends, an official account and a
    /// saved group, so that init and the address book look lived-in. Default true.
    pub seed_contacts: bool,
    /// Keep every request for [`FakeWeChat::requests`](crate::FakeWeChat::requests). Default
    /// true; a long benchmark may turn it off to keep memory flat.
    pub record_requests: bool,
    /// Answer JSON on one line instead of in the real servers' layout (one object member per
    /// line, PROTOCOL.md §8.7). Default false: clients must cope with the real layout; the
    /// benchmark may turn it on to measure the bridge apart from the layout's extra bytes.
    pub compact_json: bool,
    /// Gzip answers to clients that send `Accept-Encoding: gzip`, as the real servers do
    /// (PROTOCOL.md §2). Default true.
    pub gzip: bool,
    /// Every answer leaves this much later than it is ready, as from a server one network
    /// round trip of this length away: each request costs at least this long, and a long poll
    /// answers this long after its hold ends or a message wakes it (the hold itself is not
    /// stretched). Refusals and injected faults are delayed alike. Default zero (loopback).
    pub answer_delay: Duration,
    /// Check every request against the official client's (the request table, PROTOCOL.md
    /// §1-§9): the query's order, exactly the headers of its kind in the login's mode, a JSON
    /// body's member order, no request the official client does not make; what differs is a
    /// [`violation`](crate::FakeWeChat::violations). Default true; a test that speaks the
    /// protocol with a bare HTTP client turns it off.
    pub check_requests: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            port: 0,
            poll_hold: Duration::from_secs(25),
            sync_hold: Duration::from_secs(25),
            contact_page_size: 100,
            sync_batch: 100,
            require_desktop: false,
            push_login: false,
            seed_contacts: true,
            record_requests: true,
            compact_json: false,
            gzip: true,
            answer_delay: Duration::ZERO,
            check_requests: true,
        }
    }
}

impl Options {
    /// The layout of the JSON answers.
    pub(crate) fn layout(&self) -> crate::server::Layout {
        if self.compact_json {
            crate::server::Layout::Compact
        } else {
            crate::server::Layout::Wire
        }
    }
}
