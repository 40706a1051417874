//! The outbound throttle (`send.rate`): a token bucket on tokio's clock, so tests can run it on
//! paused time. A 1205 answer from WeChat halves the rate for a while (PROTOCOL.md §11).
use std::time::Duration;

use tokio::time::Instant;

/// A token bucket: `burst` sends at once, then one every `1 / per_second` seconds.
#[derive(Debug)]
pub struct Limiter {
    per_second: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
    slow_until: Option<Instant>,
}

/// How long a slow-down after a 1205 lasts.
const SLOW_FOR: Duration = Duration::from_secs(60);

impl Limiter {
    /// A full bucket.
    pub fn new(per_second: f64, burst: u32) -> Limiter {
        let burst = f64::from(burst.max(1));
        Limiter {
            per_second: per_second.max(f64::MIN_POSITIVE),
            burst,
            tokens: burst,
            last: Instant::now(),
            slow_until: None,
        }
    }

    fn rate(&self, now: Instant) -> f64 {
        match self.slow_until {
            Some(until) if now < until => self.per_second / 2.0,
            _ => self.per_second,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate(now)).min(self.burst);
        self.last = now;
    }

    /// How long until a token is free (zero when one is).
    pub fn wait_time(&mut self) -> Duration {
        let now = Instant::now();
        self.refill(now);
        if self.tokens >= 1.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - self.tokens) / self.rate(now))
        }
    }

    /// Waits for a token and takes it. Returns how long it waited.
    pub async fn acquire(&mut self) -> Duration {
        let mut waited = Duration::ZERO;
        loop {
            let wait = self.wait_time();
            if wait.is_zero() {
                self.tokens -= 1.0;
                return waited;
            }
            tokio::time::sleep(wait).await;
            waited += wait;
        }
    }

    /// WeChat said "too frequent": empty the bucket and halve the rate for a minute.
    pub fn slow_down(&mut self) {
        let now = Instant::now();
        self.refill(now);
        self.tokens = 0.0;
        self.slow_until = Some(now + SLOW_FOR);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_burst_goes_at_once_then_sends_are_spaced_by_the_rate() {
        let mut l = Limiter::new(0.5, 3);
        for _ in 0..3 {
            assert_eq!(l.acquire().await, Duration::ZERO);
        }
        let waited = l.acquire().await;
        assert_eq!(waited.as_secs(), 2, "0.5 per second = one every 2 s");
        assert_eq!(l.acquire().await.as_secs(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn too_frequent_halves_the_rate_for_a_minute() {
        let mut l = Limiter::new(1.0, 1);
        l.acquire().await;
        l.slow_down();
        assert_eq!(l.acquire().await.as_secs(), 2);
        tokio::time::advance(SLOW_FOR).await;
        l.acquire().await;
        assert_eq!(l.acquire().await.as_secs(), 1);
    }
}
