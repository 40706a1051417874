//! The accept loop, built so that clients cannot use up the process's file descriptors.
//!
//! Every connection costs a descriptor, and the bridge needs descriptors of its own to reach
//! WeChat, the brokers and the webhooks. So:
//!
//! - at start, the soft `nofile` limit is raised to the hard one ([`raise_nofile_limit`]);
//! - at most [`connection_cap`] connections are served at once: `http.max_connections`, and
//!   never more than the limit minus a reserve kept for the rest of the bridge. A permit is
//!   taken *before* `accept`, so past the cap new connections wait in the kernel's backlog,
//!   which costs the process nothing;
//! - a connection that does not send a complete request head within [`HEADER_TIMEOUT`] (a new
//!   one, or a kept-alive one between requests) is closed, so idle clients give their slots
//!   back;
//! - a failed `accept` (EMFILE, ENFILE, ENOBUFS…) is logged and counted
//!   (`wxbridge_http_accept_errors_total`) and retried after a growing pause, never in a
//!   busy loop.
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long a client has to send a request head; also the idle limit between requests.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Descriptors the HTTP server never takes: WeChat's connections, the brokers, webhooks, the
/// spool, the runtime's own, with room to spare. Halved when the whole limit is small.
const RESERVED_DESCRIPTORS: u64 = 128;

/// The longest pause after failed accepts.
const MAX_ACCEPT_PAUSE: Duration = Duration::from_secs(1);

/// Raises the soft limit on open files to the hard limit; answers the soft limit now in force
/// (`None` when unlimited).
pub fn raise_nofile_limit() -> Option<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        let raised = Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => return limit.maximum,
            Err(e) => tracing::warn!(cause = %e, "cannot raise the open-file limit"),
        }
    }
    limit.current
}

/// The soft limit on open files now in force (`None` when unlimited).
pub fn nofile_limit() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).current
}

/// How many connections to serve at once: `configured`, but no more than the open-file limit
/// minus the reserve (at least one).
pub fn connection_cap(configured: usize, nofile: Option<u64>) -> usize {
    let Some(limit) = nofile else {
        return configured;
    };
    let reserve = RESERVED_DESCRIPTORS.min(limit / 2);
    let room = usize::try_from(limit.saturating_sub(reserve)).unwrap_or(usize::MAX);
    configured.min(room).max(1)
}

/// Accepts and serves connections until `shutdown`, then lets the requests in flight finish.
pub async fn serve(listener: TcpListener, app: Router, cap: usize, shutdown: CancellationToken) {
    let permits = Arc::new(Semaphore::new(cap));
    let connections = TaskTracker::new();
    let mut failures = 0u32;
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            _ = shutdown.cancelled() => break,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.cancelled() => break,
        };
        match accepted {
            Ok((stream, _peer)) => {
                failures = 0;
                connections.spawn(connection(stream, app.clone(), permit, shutdown.clone()));
            }
            Err(e) => {
                let pause = accept_pause(failures);
                failures = failures.saturating_add(1);
                metrics::counter!("wxbridge_http_accept_errors_total").increment(1);
                tracing::error!(
                    cause = %e,
                    retry_in = ?pause,
                    "the HTTP API cannot accept a connection"
                );
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = shutdown.cancelled() => break,
                }
            }
        }
    }
    connections.close();
    connections.wait().await;
}

/// 10 ms after the first failure, doubling up to [`MAX_ACCEPT_PAUSE`].
fn accept_pause(failures: u32) -> Duration {
    Duration::from_millis(10)
        .saturating_mul(1 << failures.min(10))
        .min(MAX_ACCEPT_PAUSE)
}

/// Serves one connection (HTTP/1.1, keep-alive) while holding its permit.
async fn connection(
    stream: TcpStream,
    app: Router,
    _permit: OwnedSemaphorePermit,
    shutdown: CancellationToken,
) {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    let conn = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app));
    tokio::pin!(conn);
    let outcome = tokio::select! {
        outcome = conn.as_mut() => outcome,
        _ = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = outcome {
        tracing::debug!(cause = %e, "an HTTP connection ended with an error");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_a_reserve_of_descriptors() {
        assert_eq!(connection_cap(256, Some(1024)), 256);
        assert_eq!(connection_cap(256, Some(256)), 128);
        assert_eq!(connection_cap(1000, Some(1024)), 896);
        assert_eq!(connection_cap(256, Some(100)), 50, "half of a small limit");
        assert_eq!(connection_cap(256, Some(1)), 1);
        assert_eq!(connection_cap(256, None), 256);
    }

    #[test]
    fn failed_accepts_pause_longer_each_time_up_to_a_second() {
        assert_eq!(accept_pause(0), Duration::from_millis(10));
        assert_eq!(accept_pause(1), Duration::from_millis(20));
        assert!(accept_pause(5) < MAX_ACCEPT_PAUSE);
        assert_eq!(accept_pause(7), MAX_ACCEPT_PAUSE);
        assert_eq!(accept_pause(u32::MAX), MAX_ACCEPT_PAUSE);
    }
}
