//! The login policy (DESIGN.md "Login policy") as a state machine without I/O: it is told what
//! happened and answers what to do next. The [`super::supervisor`] does the asking and
//! waiting, [`super::inbound`] the syncing; the rules (how many QR codes, how long a pause,
//! when to stop, when to re-check) live only here, so they can be tested on tokio's paused
//! clock.
//!
//! It reads the time from `tokio::time::Instant`, which is the only clock it needs: a pause
//! is a duration for the caller to wait out, not a timer of its own.
use std::time::Duration;

use tokio::time::Instant;

/// How many QR codes `run` shows in a row before it stops asking for a while.
pub(super) const QR_CODES_PER_ROUND: u32 = 3;
/// A session that dies sooner than this after its login counts as a quick death.
const QUICK_DEATH: Duration = Duration::from_secs(5 * 60);
/// How many quick deaths in a row make the account look restricted.
const QUICK_DEATHS_TO_FORBID: u32 = 2;
/// The longest pause between rounds of QR codes nobody scans.
const QR_PAUSE_MAX: Duration = Duration::from_secs(30 * 60);

/// What happened, as the policy needs to know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Happened {
    /// Neither the stored session nor a push login gave a session (or a pause or
    /// `login_forbidden` is over): QR codes are next.
    NoSession,
    /// Every QR code of a round expired without a scan.
    QrCodesExpired,
    /// WeChat refuses this account web login (ret 1203), for this reason.
    Refused(String),
    /// A session is up: resumed, pushed or scanned.
    LoggedIn,
    /// A sync with WeChat succeeded.
    Synced,
    /// Time passed with the session online (asked before each synccheck).
    Tick,
    /// WeChat ended the session.
    SessionDied,
    /// The session was ended on request (a logout command).
    LoggedOut,
}

/// What to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Decision {
    /// Show up to this many QR codes, a new one as each expires.
    AskForQrCodes(u32),
    /// Stop asking: wait this long, or until a re-login is requested.
    Pause {
        /// How long.
        wait: Duration,
        /// What the session state says meanwhile.
        reason: String,
    },
    /// `login_forbidden`: no login until a re-login is requested.
    Forbid {
        /// What the session state says.
        reason: String,
    },
    /// Go through the login sequence again: stored session, push login, QR codes.
    LogIn,
    /// Ask webwxinit whether the quiet session still lives (PROTOCOL.md §10).
    Recheck,
    /// Go on syncing.
    KeepSyncing,
}

/// The policy's memory: the last pause, the quick deaths in a row, the session's clock.
#[derive(Debug)]
pub(super) struct LoginPolicy {
    first_pause: Duration,
    pause: Duration,
    zombie_after: Duration,
    quick_deaths: u32,
    logged_in_at: Option<Instant>,
    /// The last sign of life: the login, a successful sync, a re-check asked for.
    last_ok: Instant,
}

impl LoginPolicy {
    /// A policy whose pauses start from `first_pause` (`retry.initial`, doubled before the
    /// first use) and which re-checks a session quiet for `zombie_after`.
    pub(super) fn new(first_pause: Duration, zombie_after: Duration) -> LoginPolicy {
        LoginPolicy {
            first_pause,
            pause: first_pause,
            zombie_after,
            quick_deaths: 0,
            logged_in_at: None,
            last_ok: Instant::now(),
        }
    }

    /// Takes what happened and answers what to do.
    pub(super) fn on(&mut self, happened: Happened) -> Decision {
        let now = Instant::now();
        match happened {
            Happened::NoSession => Decision::AskForQrCodes(QR_CODES_PER_ROUND),
            Happened::QrCodesExpired => {
                self.pause = (self.pause * 2).min(QR_PAUSE_MAX);
                Decision::Pause {
                    wait: self.pause,
                    reason: format!(
                        "{QR_CODES_PER_ROUND} QR codes expired without a scan; \
                         waiting for a re-login request"
                    ),
                }
            }
            Happened::Refused(reason) => Decision::Forbid { reason },
            Happened::LoggedIn => {
                self.pause = self.first_pause;
                self.logged_in_at = Some(now);
                self.last_ok = now;
                Decision::KeepSyncing
            }
            Happened::Synced => {
                self.last_ok = now;
                Decision::KeepSyncing
            }
            Happened::Tick => {
                if now.saturating_duration_since(self.last_ok) < self.zombie_after {
                    return Decision::KeepSyncing;
                }
                // Whatever the re-check finds short of an ended session, the next one is
                // due a whole `zombie_after` later, not at every synccheck.
                self.last_ok = now;
                Decision::Recheck
            }
            Happened::SessionDied => {
                let lived = self
                    .logged_in_at
                    .take()
                    .map_or(Duration::MAX, |at| now.saturating_duration_since(at));
                if lived >= QUICK_DEATH {
                    self.quick_deaths = 0;
                    return Decision::LogIn;
                }
                self.quick_deaths += 1;
                if self.quick_deaths < QUICK_DEATHS_TO_FORBID {
                    return Decision::LogIn;
                }
                self.quick_deaths = 0;
                Decision::Forbid {
                    reason: "the session died within 5 minutes of login twice in a row; \
                             WeChat may be restricting this account, so no new login is tried \
                             until one is requested"
                        .to_owned(),
                }
            }
            Happened::LoggedOut => {
                self.logged_in_at = None;
                self.quick_deaths = 0;
                Decision::LogIn
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::advance;

    const MINUTE: Duration = Duration::from_secs(60);

    fn policy() -> LoginPolicy {
        LoginPolicy::new(Duration::from_secs(1), 30 * MINUTE)
    }

    fn pause_of(decision: Decision) -> Duration {
        match decision {
            Decision::Pause { wait, reason } => {
                assert!(reason.contains("3 QR codes expired"), "{reason}");
                wait
            }
            other => panic!("expected a pause, got {other:?}"),
        }
    }

    /// Logs in, lets `lived` pass and reports the session dead.
    async fn session_dies_after(p: &mut LoginPolicy, lived: Duration) -> Decision {
        assert_eq!(p.on(Happened::LoggedIn), Decision::KeepSyncing);
        advance(lived).await;
        p.on(Happened::SessionDied)
    }

    #[tokio::test(start_paused = true)]
    async fn three_unscanned_codes_pause_the_round_and_the_pause_doubles_up_to_thirty_minutes() {
        let mut p = policy();
        assert_eq!(p.on(Happened::NoSession), Decision::AskForQrCodes(3));
        let mut pauses = Vec::new();
        for _ in 0..13 {
            pauses.push(pause_of(p.on(Happened::QrCodesExpired)).as_secs());
            assert_eq!(p.on(Happened::NoSession), Decision::AskForQrCodes(3));
        }
        assert_eq!(
            pauses,
            [2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 1800, 1800, 1800]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_login_starts_the_pauses_again_from_the_shortest() {
        let mut p = policy();
        for _ in 0..5 {
            p.on(Happened::QrCodesExpired);
        }
        p.on(Happened::LoggedIn);
        p.on(Happened::SessionDied);
        assert_eq!(pause_of(p.on(Happened::QrCodesExpired)).as_secs(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn two_quick_deaths_forbid_login_until_a_relogin_request() {
        let mut p = policy();
        assert_eq!(session_dies_after(&mut p, MINUTE).await, Decision::LogIn);
        let Decision::Forbid { reason } = session_dies_after(&mut p, 4 * MINUTE).await else {
            panic!("the second quick death forbids login");
        };
        assert!(reason.contains("twice in a row"), "{reason}");
        // After the requested re-login the count starts again: one quick death is not two.
        assert_eq!(session_dies_after(&mut p, MINUTE).await, Decision::LogIn);
    }

    #[tokio::test(start_paused = true)]
    async fn a_session_that_lived_five_minutes_breaks_the_run_of_quick_deaths() {
        let mut p = policy();
        assert_eq!(session_dies_after(&mut p, MINUTE).await, Decision::LogIn);
        assert_eq!(
            session_dies_after(&mut p, 5 * MINUTE).await,
            Decision::LogIn
        );
        assert_eq!(session_dies_after(&mut p, MINUTE).await, Decision::LogIn);
    }

    #[tokio::test(start_paused = true)]
    async fn a_requested_logout_is_not_a_death() {
        let mut p = policy();
        assert_eq!(session_dies_after(&mut p, MINUTE).await, Decision::LogIn);
        p.on(Happened::LoggedIn);
        advance(MINUTE).await;
        assert_eq!(p.on(Happened::LoggedOut), Decision::LogIn);
        assert_eq!(session_dies_after(&mut p, MINUTE).await, Decision::LogIn);
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_login_is_forbidden_with_wechats_reason() {
        let mut p = policy();
        assert_eq!(
            p.on(Happened::Refused("ret 1203".into())),
            Decision::Forbid {
                reason: "ret 1203".into()
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_session_is_rechecked_after_zombie_after() {
        let mut p = policy();
        // The quiet clock starts at the login, however long the QR codes waited.
        advance(120 * MINUTE).await;
        p.on(Happened::LoggedIn);
        advance(29 * MINUTE).await;
        assert_eq!(p.on(Happened::Tick), Decision::KeepSyncing);
        advance(MINUTE).await;
        assert_eq!(p.on(Happened::Tick), Decision::Recheck);
        // The re-check restarts the quiet clock: not one at every synccheck after it.
        assert_eq!(p.on(Happened::Tick), Decision::KeepSyncing);
        advance(30 * MINUTE).await;
        assert_eq!(p.on(Happened::Tick), Decision::Recheck);
    }

    #[tokio::test(start_paused = true)]
    async fn a_successful_sync_restarts_the_quiet_clock() {
        let mut p = policy();
        p.on(Happened::LoggedIn);
        advance(20 * MINUTE).await;
        assert_eq!(p.on(Happened::Synced), Decision::KeepSyncing);
        advance(20 * MINUTE).await;
        assert_eq!(p.on(Happened::Tick), Decision::KeepSyncing);
        advance(10 * MINUTE).await;
        assert_eq!(p.on(Happened::Tick), Decision::Recheck);
    }
}
