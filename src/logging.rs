//! The log subscriber: `RUST_LOG` (or `-v`/`-q`) decides what is logged, except that targets
//! of other crates which write session secrets into their lines stay silent at every level.
//!
//! `cookie_store` logs each `Set-Cookie` it stores at debug level, value included (for
//! cookies without `Secure`), and reqwest's verbose connection target logs raw request bytes,
//! `Cookie` headers included. SECURITY.md promises that wxsid, webwx_auth_ticket and the
//! other session cookies never reach the log, whatever the level, so these targets are cut
//! below the user's filter, where no `RUST_LOG` can turn them back on.
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter, Layer};

/// Targets (and everything under them) that are never logged.
const SECRET_BEARING_TARGETS: [&str; 3] = [
    "cookie_store",
    "reqwest_cookie_store",
    "reqwest::connect::verbose",
];

/// Everything at every level, but [`SECRET_BEARING_TARGETS`] not at all.
pub fn muted() -> Targets {
    SECRET_BEARING_TARGETS.iter().fold(
        Targets::new().with_default(LevelFilter::TRACE),
        |t, target| t.with_target(*target, LevelFilter::OFF),
    )
}

/// Installs the subscriber: `filter` as the user asked, [`muted`] beneath it, lines to stderr
/// (and `log` records from other crates through the same filters).
pub fn init(filter: EnvFilter) {
    let lines = fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_filter(muted());
    tracing_subscriber::registry()
        .with(filter)
        .with(lines)
        .init();
}

#[cfg(test)]
mod tests {
    use tracing::Level;

    use super::*;

    #[test]
    fn cookie_logging_targets_stay_off_at_every_level() {
        let muted = muted();
        for target in [
            "cookie_store",
            "cookie_store::cookie_store",
            "reqwest_cookie_store",
            "reqwest::connect::verbose",
        ] {
            for level in [Level::ERROR, Level::INFO, Level::TRACE] {
                assert!(!muted.would_enable(target, &level), "{target} at {level}");
            }
        }
        for target in ["wxbridge::bridge", "reqwest::connect", "hyper", "rumqttc"] {
            assert!(muted.would_enable(target, &Level::TRACE), "{target}");
        }
    }
}
