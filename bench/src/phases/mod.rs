//! The benchmark's phases, each a function of the shared [`Env`](crate::env::Env) that
//! answers its measurements, plus the burst measurement several of them share.
use std::sync::Arc;
use std::time::{Duration, Instant};

use wxbridge_fake::Msg;

use crate::env::Stage;
use crate::machine::{self, RssSampler, Usage};
use crate::tally::Tally;

pub mod distance;
pub mod fake_check;
pub mod latency;
pub mod media;
pub mod memory;
pub mod startup;
pub mod throughput;

/// How long a run of `n` messages may take before it is reported incomplete.
pub fn wait_limit(n: usize) -> Duration {
    Duration::from_secs(30) + Duration::from_millis(20) * n as u32
}

/// One timed delivery of a batch of messages.
#[derive(Debug, Clone, Default)]
pub struct Run {
    /// Messages sent.
    pub expected: usize,
    /// Distinct messages received (the fewest of the receivers, when there are several).
    pub received: usize,
    /// From the first message queued (or published) to the last one received, in seconds;
    /// up to the give-up time when some never arrived.
    pub secs: f64,
    /// The bridge's user + system CPU time over the run (bridge runs).
    pub cpu: Option<Duration>,
    /// The bridge's resident memory before the run, in KiB.
    pub rss_before_kib: Option<u64>,
    /// The bridge's largest sampled resident memory during the run, in KiB.
    pub rss_peak_kib: Option<u64>,
    /// The bridge's resident memory at the end of the run, in KiB.
    pub rss_after_kib: Option<u64>,
    /// The bridge's peak resident memory since it started (`VmHWM`) at the end, in KiB.
    pub hwm_kib: Option<u64>,
    /// The bridge's usage at the end (bridge runs).
    pub after: Option<Usage>,
    /// The spool's syncs to storage over the run (bridge runs of a bridge that counts them).
    pub spool_fsyncs: Option<u64>,
}

impl Run {
    /// Whether every message arrived.
    pub fn complete(&self) -> bool {
        self.received >= self.expected
    }

    /// Messages per second.
    pub fn rate(&self) -> f64 {
        self.expected as f64 / self.secs.max(1e-9)
    }

    /// The spool's syncs to storage per message.
    pub fn fsyncs_per_message(&self) -> Option<f64> {
        self.spool_fsyncs
            .map(|n| n as f64 / self.expected.max(1) as f64)
    }

    /// CPU seconds per 10,000 messages.
    pub fn cpu_per_10k(&self) -> Option<f64> {
        self.cpu
            .map(|c| c.as_secs_f64() * 10_000.0 / self.expected.max(1) as f64)
    }
}

/// Queues `msgs` at the fake while the bridge (`pid`) idles in its held synccheck, which
/// answers as soon as the first is queued, and waits until every tally has them all.
/// Measures from the first queueing to the last arrival, and the bridge's CPU and memory.
pub async fn burst(stage: &Stage, pid: u32, msgs: Vec<Msg>, tallies: &[Arc<Tally>]) -> Run {
    let expected = msgs.len();
    // Tallies may count an earlier burst already.
    let bases: Vec<usize> = tallies.iter().map(|t| t.outcome().received).collect();
    let t0 = Instant::now();
    let before = machine::usage(pid);
    let sampler = RssSampler::start(pid);
    for m in msgs {
        stage.fake.queue(m);
    }
    measure(t0, pid, before, sampler, expected, tallies, &bases).await
}

/// The bridge `pid` was found relaying at `t0` with `before` used so far: waits until every
/// tally has `expected` messages more than its `bases` entry (what it had counted before),
/// then reads what the run took.
pub async fn measure(
    t0: Instant,
    pid: u32,
    before: Option<Usage>,
    sampler: RssSampler,
    expected: usize,
    tallies: &[Arc<Tally>],
    bases: &[usize],
) -> Run {
    let deadline = t0 + wait_limit(expected);
    let mut received = expected;
    let mut last = t0;
    for (t, base) in tallies.iter().zip(bases) {
        let o = t
            .wait_for(
                base + expected,
                deadline.saturating_duration_since(Instant::now()),
            )
            .await;
        received = received.min(o.received.saturating_sub(*base));
        last = last.max(o.last.unwrap_or(t0));
    }
    let after = machine::usage(pid);
    let samples = sampler.finish().await;
    let end = if received >= expected {
        last
    } else {
        Instant::now()
    };
    Run {
        expected,
        received,
        secs: end.duration_since(t0).as_secs_f64(),
        cpu: before.zip(after).map(|(b, a)| a.cpu.saturating_sub(b.cpu)),
        rss_before_kib: before.map(|u| u.rss_kib),
        rss_peak_kib: samples.iter().copied().max(),
        rss_after_kib: after.map(|u| u.rss_kib),
        hwm_kib: after.map(|u| u.hwm_kib),
        spool_fsyncs: before
            .zip(after)
            .and_then(|(b, a)| Some(a.spool_fsyncs?.saturating_sub(b.spool_fsyncs?))),
        after,
    }
}
