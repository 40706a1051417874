//! Account leases against a real `nats-server -js`: one winner per race, fencing before a
//! takeover, a refused late taker, a release taken at once, and a lease kept across a server
//! restart. Each node has its own connection, as separate processes would. Short ttls keep the
//! tests quick; the waits are failure bounds, never assertions of speed.
use std::time::Duration;

use async_nats::jetstream::kv::Store;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::{sleep, timeout, Instant};
use wxbridge::cluster::lease::{
    self, Heartbeat, Held, LeaseSpec, LeaseValue, Observer, Sight, Standing,
};

use crate::brokers::{self, free_port};

const TTL: Duration = Duration::from_millis(600);
const MARGIN: Duration = Duration::from_millis(200);
/// How long any wait may take before the test fails.
const BOUND: Duration = Duration::from_secs(20);

/// A node's own connection to the bucket.
async fn bucket(port: u16) -> Store {
    let client = async_nats::connect(format!("127.0.0.1:{port}"))
        .await
        .expect("nats-server answers");
    let js = async_nats::jetstream::new(client);
    lease::open_bucket(&js, "wxbridge")
        .await
        .expect("bucket opens")
}

fn spec(account: &str, node: &str, ttl: Duration, margin: Duration) -> LeaseSpec {
    LeaseSpec {
        account: account.to_owned(),
        node: node.to_owned(),
        ttl,
        margin,
    }
}

/// Who the bucket says holds the account's lease, and at which revision.
async fn holder(kv: &Store, account: &str) -> Option<(String, u64)> {
    let entry = kv.entry(lease::lease_key(account)).await.unwrap()?;
    let value: LeaseValue = serde_json::from_slice(&entry.value).ok()?;
    Some((value.node, entry.revision))
}

/// Watches the key until it looks dead; the sight that judged it so.
async fn wait_dead(kv: &Store, spec: &LeaseSpec) -> Sight {
    let mut observer = Observer::new(spec.ttl);
    let key = lease::lease_key(&spec.account);
    let deadline = Instant::now() + BOUND;
    loop {
        assert!(Instant::now() < deadline, "the lease never looked dead");
        let sight = observer.look(kv, &key).await.unwrap();
        if matches!(sight, Sight::Dead { .. }) {
            return sight;
        }
        sleep(Duration::from_millis(25)).await;
    }
}

/// Watches the key until it looks dead, then tries to take it; the sight it acted on too.
async fn take_when_dead(kv: &Store, spec: &LeaseSpec) -> (Option<Held>, Sight, Instant) {
    let sight = wait_dead(kv, spec).await;
    let held = lease::take(kv, spec, &sight).await.unwrap();
    (held, sight, Instant::now())
}

async fn wait_for_standing(held: &Held, want: Standing) {
    let mut rx = held.standing();
    timeout(BOUND, rx.wait_for(|s| *s == want))
        .await
        .unwrap_or_else(|_| panic!("the holder never became {want:?}"))
        .unwrap();
}

/// A TCP proxy to nats-server that the test can cut (every connection closed, new ones
/// refused) and heal: a node's network partition from NATS.
struct Proxy {
    port: u16,
    cut: watch::Sender<bool>,
}

impl Proxy {
    async fn start(target: u16) -> Proxy {
        let port = free_port();
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let (cut, rx) = watch::channel(false);
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if *rx.borrow() {
                    continue;
                }
                let mut rx = rx.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(("127.0.0.1", target)).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = rx.wait_for(|cut| *cut) => {}
                    }
                });
            }
        });
        Proxy { port, cut }
    }

    fn set_cut(&self, cut: bool) {
        self.cut.send_replace(cut);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_racing_for_a_free_lease_exactly_one_wins() {
    let nats = brokers::nats_server();
    let (kv_a, kv_b) = (bucket(nats.port).await, bucket(nats.port).await);
    for round in 0..8 {
        let account = format!("acct{round}");
        let (a, b) = (
            spec(&account, "a", TTL, MARGIN),
            spec(&account, "b", TTL, MARGIN),
        );
        let (mut oa, mut ob) = (Observer::new(TTL), Observer::new(TTL));
        let key = lease::lease_key(&account);
        let (sa, sb) = (
            oa.look(&kv_a, &key).await.unwrap(),
            ob.look(&kv_b, &key).await.unwrap(),
        );
        assert_eq!(sa, Sight::Free { revision: None });
        let (ha, hb) = tokio::join!(lease::take(&kv_a, &a, &sa), lease::take(&kv_b, &b, &sb));
        let (ha, hb) = (ha.unwrap(), hb.unwrap());
        assert!(
            ha.is_some() != hb.is_some(),
            "round {round}: exactly one taker must win (a: {}, b: {})",
            ha.is_some(),
            hb.is_some()
        );
        let winner = if ha.is_some() { "a" } else { "b" };
        assert_eq!(holder(&kv_a, &account).await.unwrap().0, winner);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_that_cannot_renew_is_fenced_before_another_node_takes_it() {
    let nats = brokers::nats_server();
    let proxy = Proxy::start(nats.port).await;
    let kv_a = bucket(proxy.port).await;
    let kv_b = bucket(nats.port).await;
    let a = lease::take(
        &kv_a,
        &spec("acct", "a", TTL, MARGIN),
        &Sight::Free { revision: None },
    )
    .await
    .unwrap()
    .expect("a takes the free lease");
    // Renewals go on while the connection holds: after several ttls, a still runs.
    sleep(TTL * 3).await;
    assert_eq!(*a.standing().borrow(), Standing::Active);

    // Record the moment a's stop signal fires, as the account's traffic would see it.
    let mut standing = a.standing();
    let fenced = tokio::spawn(async move {
        standing.wait_for(|s| *s == Standing::Fenced).await.unwrap();
        Instant::now()
    });
    proxy.set_cut(true);
    let (b, _, taken_at) = take_when_dead(&kv_b, &spec("acct", "b", TTL, MARGIN)).await;
    let b = b.expect("b takes the dead lease");
    assert!(
        !a.standing().borrow().may_run(),
        "a must have stopped before b took the lease"
    );
    let fenced_at = timeout(BOUND, fenced).await.unwrap().unwrap();
    assert!(
        fenced_at < taken_at,
        "a's stop signal fired {:?} after b took the lease",
        fenced_at - taken_at
    );
    assert_eq!(holder(&kv_b, "acct").await.unwrap().0, "b");

    // Once a reaches NATS again, its renewal is refused: it stops for good, b keeps it.
    proxy.set_cut(false);
    wait_for_standing(&a, Standing::Lost).await;
    assert_eq!(*b.standing().borrow(), Standing::Active);
    assert_eq!(holder(&kv_b, "acct").await.unwrap().0, "b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taker_that_loses_the_revision_race_does_not_run() {
    let nats = brokers::nats_server();
    let (kv_a, kv_b, kv_c) = (
        bucket(nats.port).await,
        bucket(nats.port).await,
        bucket(nats.port).await,
    );
    let a = lease::take(
        &kv_a,
        &spec("acct", "a", TTL, MARGIN),
        &Sight::Free { revision: None },
    )
    .await
    .unwrap()
    .unwrap();
    // a dies without releasing: its renewals stop.
    drop(a);
    let (b, c) = (
        spec("acct", "b", TTL, MARGIN),
        spec("acct", "c", TTL, MARGIN),
    );
    // Both judge it dead before either acts: a taker that acted first would otherwise renew
    // the lease before a slower observer (a busy machine) had judged the old revision dead.
    let (sight_b, sight_c) = tokio::join!(wait_dead(&kv_b, &b), wait_dead(&kv_c, &c));
    let (hb, hc) = tokio::join!(
        async { lease::take(&kv_b, &b, &sight_b).await.unwrap() },
        async { lease::take(&kv_c, &c, &sight_c).await.unwrap() }
    );
    // Both judged the same revision dead, and only one update with it could land.
    assert_eq!(sight_b, sight_c);
    assert!(
        hb.is_some() != hc.is_some(),
        "exactly one taker must win (b: {}, c: {})",
        hb.is_some(),
        hc.is_some()
    );
    let (winner, loser_kv, loser) = if hb.is_some() {
        ("b", &kv_c, &c)
    } else {
        ("c", &kv_b, &b)
    };
    assert_eq!(holder(&kv_a, "acct").await.unwrap().0, winner);
    // A taker acting late on that old sight is refused too, and the winner keeps running.
    assert!(lease::take(loser_kv, loser, &sight_b)
        .await
        .unwrap()
        .is_none());
    sleep(TTL * 2).await;
    let held = hb.or(hc).unwrap();
    assert_eq!(*held.standing().borrow(), Standing::Active);
    assert_eq!(holder(&kv_a, "acct").await.unwrap().0, winner);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_released_lease_is_free_for_another_node_at_once() {
    let nats = brokers::nats_server();
    let (kv_a, kv_b) = (bucket(nats.port).await, bucket(nats.port).await);
    // A long ttl: were the release not seen, b would have to wait a minute.
    let ttl = Duration::from_secs(60);
    let a = lease::take(
        &kv_a,
        &spec("acct", "a", ttl, MARGIN),
        &Sight::Free { revision: None },
    )
    .await
    .unwrap()
    .unwrap();
    let standing = a.standing();
    let mut ob = Observer::new(ttl);
    let key = lease::lease_key("acct");
    assert!(matches!(
        ob.look(&kv_b, &key).await.unwrap(),
        Sight::Alive { .. }
    ));
    a.release().await.unwrap();
    assert_eq!(*standing.borrow(), Standing::Released);
    let sight = ob.look(&kv_b, &key).await.unwrap();
    assert!(
        matches!(sight, Sight::Free { revision: Some(_) }),
        "{sight:?}"
    );
    let b = lease::take(&kv_b, &spec("acct", "b", ttl, MARGIN), &sight)
        .await
        .unwrap()
        .expect("b takes the released lease");
    assert_eq!(*b.standing().borrow(), Standing::Active);
    assert_eq!(holder(&kv_a, "acct").await.unwrap().0, "b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_renewed_in_time_survives_a_nats_server_restart() {
    let mut nats = brokers::nats_server();
    let kv_a = bucket(nats.port).await;
    // Room for the restart: fenced only if no renewal lands within 4 s.
    let (ttl, margin) = (Duration::from_secs(6), Duration::from_secs(2));
    let a = lease::take(
        &kv_a,
        &spec("acct", "a", ttl, margin),
        &Sight::Free { revision: None },
    )
    .await
    .unwrap()
    .unwrap();
    let (_, before) = holder(&kv_a, "acct").await.unwrap();
    tokio::task::block_in_place(|| {
        nats.stop();
        nats.start();
    });
    // The store kept the lease, and a's renewals land on it again.
    let kv_b = bucket(nats.port).await;
    let deadline = Instant::now() + BOUND;
    loop {
        assert!(
            Instant::now() < deadline,
            "a never renewed after the restart"
        );
        if let Some((node, revision)) = holder(&kv_b, "acct").await {
            if revision > before {
                assert_eq!(node, "a");
                break;
            }
        }
        sleep(Duration::from_millis(50)).await;
    }
    wait_for_standing(&a, Standing::Active).await;
    let sight = Observer::new(ttl)
        .look(&kv_b, &lease::lease_key("acct"))
        .await
        .unwrap();
    assert!(
        matches!(sight, Sight::Alive { ref node, .. } if node == "a"),
        "{sight:?}"
    );
    // Another node asking for it as if it were free is refused.
    assert!(lease::take(
        &kv_b,
        &spec("acct", "b", ttl, margin),
        &Sight::Free { revision: None }
    )
    .await
    .unwrap()
    .is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_nodes_count_beating_hearts_and_forget_a_stopped_one() {
    let nats = brokers::nats_server();
    let kv = bucket(nats.port).await;
    let a = Heartbeat::start(bucket(nats.port).await, "a", TTL);
    let b = Heartbeat::start(bucket(nats.port).await, "b", TTL);
    let mut observer = Observer::new(TTL);
    let deadline = Instant::now() + BOUND;
    while observer.live_nodes(&kv).await.unwrap() != 2 {
        assert!(Instant::now() < deadline, "two beating nodes never counted");
        sleep(Duration::from_millis(25)).await;
    }
    // Beats renew the revision: after several ttls both are still live.
    sleep(TTL * 3).await;
    assert_eq!(observer.live_nodes(&kv).await.unwrap(), 2);
    b.stop().await;
    assert_eq!(observer.live_nodes(&kv).await.unwrap(), 1);
    a.stop().await;
    assert_eq!(observer.live_nodes(&kv).await.unwrap(), 0);
}
