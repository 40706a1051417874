//! The reconnect schedule every link uses (`retry.*`): exponential from `initial`, doubling,
//! capped at `max`, with full jitter, never giving up. Build a fresh one after each success.
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

/// `retry.initial` and `retry.max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// The first delay.
    pub initial: Duration,
    /// The longest delay.
    pub max: Duration,
}

impl Retry {
    /// From the config section.
    pub fn from_config(c: &crate::config::RetryConfig) -> Retry {
        Retry {
            initial: c.initial,
            max: c.max,
        }
    }

    /// A fresh schedule: `initial`, then doubling up to `max`, each jittered; endless.
    pub fn schedule(&self) -> impl Iterator<Item = Duration> + Send + 'static {
        let max = self.max;
        ExponentialBuilder::default()
            .with_min_delay(self.initial)
            .with_max_delay(self.max)
            .with_jitter()
            .without_max_times()
            .build()
            // backon's jitter adds up to one more delay; keep the cap a cap.
            .map(move |d| d.min(max))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_grows_and_stays_under_its_cap() {
        let r = Retry {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        let delays: Vec<_> = r.schedule().take(20).collect();
        assert_eq!(delays.len(), 20, "never gives up");
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(1)));
        assert!(delays[0] >= Duration::from_millis(100));
        assert!(delays[10] >= Duration::from_millis(500), "grew: {delays:?}");
    }
}
