//! SIGINT and SIGTERM, in one place: either cancels the root token (Docker stops with SIGTERM).
use tokio_util::sync::CancellationToken;

/// Waits for SIGINT or SIGTERM, logs which, and cancels `shutdown`. A second signal exits at once.
pub async fn stop_on_signal(shutdown: CancellationToken) {
    let name = wait().await;
    tracing::info!(signal = name, "stopping");
    shutdown.cancel();
    let name = wait().await;
    tracing::warn!(signal = name, "second signal; exiting now");
    std::process::exit(1);
}

#[cfg(unix)]
async fn wait() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        std::future::pending::<()>().await;
        unreachable!()
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}

#[cfg(not(unix))]
async fn wait() -> &'static str {
    let _ = tokio::signal::ctrl_c().await;
    "ctrl-c"
}
