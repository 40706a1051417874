//! One account's part of `run`: its state lock, spool and media store opened for it, the span
//! its tasks log in, and [`supervise`], which runs its bridge and restarts it after a panic
//! while the other accounts go on.
use std::process::ExitCode;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::bridge::Bridge;
use crate::commands::{failure, take_state};
use crate::config::Config;
use crate::lock::StateLock;
use crate::media::Media;
use crate::retry::Retry;
use crate::sinks::{Control, IncomingCommand};
use crate::spool::{RedbSpool, Store};

/// One account's own parts.
pub(super) struct Part {
    pub(super) config: Config,
    /// Held until the process ends.
    pub(super) _lock: StateLock,
    pub(super) spool: Store,
    pub(super) media: Media,
    pub(super) bridge: Arc<Bridge>,
    pub(super) control: Control,
    /// The bridge's end of the intake; kept across restarts of its tasks.
    pub(super) commands: Arc<tokio::sync::Mutex<mpsc::Receiver<IncomingCommand>>>,
    /// With several accounts, the span its tasks log in (it names the account).
    pub(super) span: tracing::Span,
}

/// With several accounts, each account's tasks log inside a span naming it; with one, logs
/// read as they always did.
pub(super) fn account_span(several: bool, account: &str) -> tracing::Span {
    if several {
        tracing::info_span!("account", account = %account)
    } else {
        tracing::Span::none()
    }
}

/// The account's lock and spool; the spool's writer thread counts for the account.
pub(super) fn open_state(config: &Config) -> Result<(StateLock, Store), ExitCode> {
    let lock = take_state(config, "")?;
    let account = Some(Arc::from(config.account.as_str()));
    let spool = crate::metrics::within(account, || {
        RedbSpool::open(
            &config.state_dir.join("spool.redb"),
            config.spool.max_events_per_sink,
        )
        .and_then(|s| Store::spawn(s, crate::sinks::WINDOW as u64))
    });
    match spool {
        Ok(spool) => Ok((lock, spool)),
        Err(e) => Err(failure(format!(
            "account {}: cannot open the spool: {e}",
            config.account
        ))),
    }
}

/// The account's media store, opened off the runtime (it scans the whole store).
pub(super) async fn open_media(config: &Config) -> Result<Media, ExitCode> {
    let media_config = config.clone();
    let account = Some(Arc::from(config.account.as_str()));
    let opened = tokio::task::spawn_blocking(move || {
        crate::metrics::within(account, || Media::open(&media_config))
    })
    .await
    .unwrap_or_else(|e| Err(format!("cannot open the media store: {e}")));
    opened.map_err(|message| failure(format!("account {}: {message}", config.account)))
}

/// Runs one account's bridge until shutdown, each run in a task of its own: a panic in its
/// tasks ends that run only, and is logged, counted and answered by running the same bridge
/// again (same intake, watches and spool) after the retry schedule's next delay; a run that
/// lasted longer than `retry.max` starts the schedule over.
pub(super) async fn supervise(
    account: String,
    bridge: Arc<Bridge>,
    commands: Arc<tokio::sync::Mutex<mpsc::Receiver<IncomingCommand>>>,
    status: tokio::sync::watch::Receiver<crate::event::SessionStatus>,
    retry: Retry,
    shutdown: CancellationToken,
) {
    let mut delays = retry.schedule();
    let mut test_panic = test_panic(&account);
    loop {
        let started = tokio::time::Instant::now();
        let (b, c, status) = (bridge.clone(), commands.clone(), status.clone());
        let panic_once = test_panic.take();
        let span = tracing::Span::current();
        let task = tokio::spawn(
            crate::metrics::scope(&account, async move {
                let mut commands = c.lock().await;
                tokio::select! {
                    () = b.run(&mut commands) => {}
                    () = panic_when_online(panic_once, status) => {}
                }
            })
            .instrument(span),
        );
        let panic = match task.await {
            Ok(()) => return,
            Err(e) if e.is_panic() => panic_message(e.into_panic()),
            Err(_) => return,
        };
        crate::metrics::scope(&account, async { crate::metrics::account_restarted() }).await;
        if started.elapsed() > retry.max {
            delays = retry.schedule();
        }
        let delay = delays.next().unwrap_or(retry.max);
        tracing::error!(
            account = %account,
            panic = %panic,
            restart_in = ?delay,
            "the account's bridge panicked; restarting it (the other accounts go on)"
        );
        bridge.halted(&format!("restarting after an internal error: {panic}"));
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

/// What a panic said.
pub(super) fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

/// In debug builds only, `WXBRIDGE_TEST_PANIC=<account>` makes that account's bridge panic
/// once, the first time it is online: the scenario tests' way to exercise [`supervise`]
/// without a hook in release builds.
fn test_panic(account: &str) -> Option<()> {
    if !cfg!(debug_assertions) {
        return None;
    }
    let wanted = std::env::var("WXBRIDGE_TEST_PANIC").ok()?;
    (wanted == account).then_some(())
}

/// Panics once `status` is online when `once` is set; else never resolves.
async fn panic_when_online(
    once: Option<()>,
    mut status: tokio::sync::watch::Receiver<crate::event::SessionStatus>,
) {
    if once.is_none() {
        return std::future::pending().await;
    }
    let online = status
        .wait_for(|s| s.state == crate::event::SessionState::Online)
        .await
        .is_ok();
    if online {
        panic!("WXBRIDGE_TEST_PANIC: a test asked this account's bridge to panic once");
    }
    std::future::pending().await
}
