//! Cluster mode's foundation (DESIGN.md "Cluster mode"): which node runs which account, decided
//! through leases in a NATS JetStream key-value bucket, and the sealing of the secrets that
//! bucket will hold ([`seal`]). Nothing here is wired into `run` yet.
//!
//! # The design
//! A lease is the key `lease.<account>` holding `{"node": …, "ttl_ms": …}` ([`lease`]). A node
//! takes a free lease with `create` (which fails when the key exists), renews it every `ttl/3`
//! with `update(key, value, expected_revision)`, and releases it at a clean stop by deleting it
//! with the expected revision. Each node also keeps a heartbeat key `node.<name>`, so the
//! others can count the live nodes for the fair share ([`fair_share`]).
//!
//! No node trusts another's clock. The bucket keeps no `max_age` (it also holds sessions that
//! must not expire) and nats-server 2.9 has no per-message TTL, so expiry is judged by each
//! observer: it notes the local monotonic time at which it first saw a key's current revision
//! ([`observe::Observer`]); when the revision has not changed for the lease's `ttl` by that clock,
//! the holder is dead, and the observer may take the lease with `update(key, mine, that
//! revision)`. The revision check lets exactly one taker win; the others' updates are refused.
//!
//! # The guarantees
//! - **At most one taker wins** a free or dead lease: both `create` and the revision-checked
//!   `update` are decided by the server against the key's last revision.
//! - **Fencing**: the holder counts `ttl` from the moment it *sent* its last successful renewal,
//!   which is before any observer can have seen that revision, and withdraws its permission to
//!   run ([`lease::Standing::Fenced`]) at `sent + ttl − margin` unless a renewal succeeded
//!   since. So it stops the account's WeChat traffic before any observer may judge the lease
//!   dead. A renewal refused for a wrong revision means another node took it: the holder stops
//!   at once and for good ([`lease::Standing::Lost`]).
//! - A fenced holder whose next renewal succeeds (say after a short nats-server restart with
//!   its store kept) runs again: its revision was still current, so nobody had taken it.
//!
//! # What is assumed
//! - Monotonic clocks on the nodes run at nearly the same rate: over one `ttl`, they drift
//!   apart by less than `margin`, which also covers the time the holder needs to stop.
//! - Node names are unique within a cluster (a lease naming this node is taken to be its own
//!   when an answer to a renewal was lost).
//! - The bucket is file-backed (a lease survives a server restart) and each key keeps one
//!   value (history 1).
pub mod lease;
pub mod observe;
pub mod seal;

/// How many accounts one node should run: `ceil(accounts / live_nodes)`, at least one node
/// counted (this one is live even when its heartbeat has not been seen yet).
pub fn fair_share(accounts: usize, live_nodes: usize) -> usize {
    accounts.div_ceil(live_nodes.max(1))
}

/// Whether a node holding `held` leases may take one more free or dead account: only while
/// it holds fewer than its [`fair_share`], so the accounts spread over the live nodes instead
/// of all going to the first one up.
pub fn may_take(held: usize, accounts: usize, live_nodes: usize) -> bool {
    held < fair_share(accounts, live_nodes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fair_share_rounds_up_so_every_account_has_room() {
        assert_eq!(fair_share(5, 2), 3);
        assert_eq!(fair_share(4, 2), 2);
        assert_eq!(fair_share(1, 3), 1);
        assert_eq!(fair_share(0, 3), 0);
    }

    #[test]
    fn a_lone_node_counts_itself_even_before_its_heartbeat_is_seen() {
        assert_eq!(fair_share(3, 0), 3);
        assert!(may_take(2, 3, 0));
    }

    #[test]
    fn a_node_at_its_share_leaves_the_rest_to_others() {
        assert!(may_take(0, 4, 2));
        assert!(may_take(1, 4, 2));
        assert!(!may_take(2, 4, 2));
        // A third node arriving lowers the share: the node holding two takes no more.
        assert!(!may_take(2, 4, 3));
        assert!(may_take(1, 4, 3));
    }
}
