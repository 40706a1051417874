//! The delivery loop with a pipelining sink whose confirmations the test releases, against a
//! real spool in a temporary directory.
use std::time::Duration;

use tokio::sync::mpsc;

use super::*;
use crate::spool::{NewEntry, RedbSpool, Store};

/// Hands each submitted batch's seqs to the test, and answers `confirmed` with what the test
/// releases.
struct Pipe {
    submitted: mpsc::UnboundedSender<Vec<Seq>>,
    releases: mpsc::UnboundedReceiver<Result<usize, DeliveryError>>,
}

impl Sink for Pipe {
    fn name(&self) -> &str {
        "pipe"
    }

    fn accepts(&self, _kind: Kind) -> bool {
        true
    }

    async fn deliver(&mut self, _batch: &[Entry]) -> Result<(), DeliveryError> {
        panic!("a pipelining sink is driven through submit and confirmed");
    }

    async fn submit(&mut self, batch: Vec<Entry>) -> Result<usize, DeliveryError> {
        let _ = self.submitted.send(batch.iter().map(|e| e.seq).collect());
        Ok(0)
    }

    async fn confirmed(&mut self) -> Result<usize, DeliveryError> {
        match self.releases.recv().await {
            Some(r) => r,
            None => std::future::pending().await,
        }
    }
}

struct Rig {
    spool: Store,
    submitted: mpsc::UnboundedReceiver<Vec<Seq>>,
    release: mpsc::UnboundedSender<Result<usize, DeliveryError>>,
    shutdown: CancellationToken,
    wake: Arc<Notify>,
    _dir: tempfile::TempDir,
}

impl Rig {
    /// A spool holding `n` messages and the delivery loop running on it.
    async fn start(n: u32) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let spool = Store::spawn(
            RedbSpool::open(&dir.path().join("spool.redb"), 100_000).unwrap(),
            WINDOW as u64,
        )
        .unwrap();
        spool.register_sink("pipe").await.unwrap();
        let entries = (1..=n)
            .map(|i| NewEntry {
                kind: Kind::Message,
                id: format!("m{i}"),
                payload: b"{}".to_vec(),
                reply_to: None,
            })
            .collect();
        spool.append(entries).await.unwrap();
        let (submitted_tx, submitted) = mpsc::unbounded_channel();
        let (release, releases) = mpsc::unbounded_channel();
        let shutdown = CancellationToken::new();
        let wake = Arc::new(Notify::new());
        tokio::spawn(run_delivery(
            Pipe {
                submitted: submitted_tx,
                releases,
            },
            spool.clone(),
            wake.clone(),
            || std::iter::repeat(Duration::from_millis(10)),
            shutdown.clone(),
        ));
        Rig {
            spool,
            submitted,
            release,
            shutdown,
            wake,
            _dir: dir,
        }
    }

    /// The next batch submitted, as (first seq, last seq).
    async fn next_batch(&mut self) -> (Seq, Seq) {
        let seqs = tokio::time::timeout(Duration::from_secs(10), self.submitted.recv())
            .await
            .expect("a batch submitted")
            .unwrap();
        (seqs[0], *seqs.last().unwrap())
    }

    /// Waits until the sink's first undelivered entry is `seq` (None: nothing left).
    async fn cursor_reaches(&self, first_pending: Option<Seq>) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let first = self
                .spool
                .pending("pipe", 1)
                .await
                .unwrap()
                .first()
                .map(|e| e.seq);
            if first == first_pending {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "first pending entry stays {first:?}, expected {first_pending:?}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

#[tokio::test]
async fn a_pipelining_sink_gets_the_next_batch_before_the_first_is_confirmed_up_to_the_window() {
    let mut rig = Rig::start(600).await;
    assert_eq!(rig.next_batch().await, (1, 256));
    assert_eq!(
        rig.next_batch().await,
        (257, 512),
        "no wait for confirmations"
    );
    // Two batches in flight fill the window: nothing more until some are confirmed.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(rig.submitted.try_recv().is_err(), "the window is full");
    rig.cursor_reaches(Some(1)).await;

    rig.release.send(Ok(100)).unwrap();
    rig.cursor_reaches(Some(101)).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        rig.submitted.try_recv().is_err(),
        "412 in flight leave no room for a batch"
    );

    rig.release.send(Ok(200)).unwrap();
    assert_eq!(rig.next_batch().await, (513, 600));
    rig.cursor_reaches(Some(301)).await;
    rig.release.send(Ok(300)).unwrap();
    rig.cursor_reaches(None).await;
}

#[tokio::test]
async fn a_failure_rewinds_to_the_first_unconfirmed_entry() {
    let mut rig = Rig::start(600).await;
    assert_eq!(rig.next_batch().await, (1, 256));
    assert_eq!(rig.next_batch().await, (257, 512));
    rig.release
        .send(Err(DeliveryError {
            delivered: 50,
            cause: "connection lost".into(),
        }))
        .unwrap();
    rig.cursor_reaches(Some(51)).await;
    // After the pause, everything unconfirmed is handed over again, in order.
    assert_eq!(rig.next_batch().await, (51, 306));
    assert_eq!(rig.next_batch().await, (307, 562));
    rig.release.send(Ok(512)).unwrap();
    assert_eq!(rig.next_batch().await, (563, 600));
    rig.release.send(Ok(38)).unwrap();
    rig.cursor_reaches(None).await;
}

#[tokio::test]
async fn a_confirmed_batch_sends_no_read_to_the_spool_until_an_append_wakes_the_loop() {
    // The short first read found everything there was: nothing is read again on its own.
    let mut rig = Rig::start(3).await;
    assert_eq!(rig.next_batch().await, (1, 3));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = rig.spool.reads();
    rig.release.send(Ok(3)).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        rig.spool.reads(),
        before,
        "a confirmation alone sends the loop to the spool's thread"
    );

    // An append still wakes it, and what was appended is handed over.
    let more = (4..=5)
        .map(|i| NewEntry {
            kind: Kind::Message,
            id: format!("m{i}"),
            payload: b"{}".to_vec(),
            reply_to: None,
        })
        .collect();
    rig.spool.append(more).await.unwrap();
    rig.wake.notify_waiters();
    assert_eq!(rig.next_batch().await, (4, 5));
    rig.release.send(Ok(2)).unwrap();
    rig.cursor_reaches(None).await;
}
