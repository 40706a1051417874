//! Start-up: from spawning `wxbridge run` to its `online` state line, with a stored session
//! (webwxinit, status notify and the address book; no scan). The session is made once by a
//! QR login, then the bridge is stopped with SIGTERM and started again, repeatedly.
use std::time::Duration;

use anyhow::{bail, Result};

use crate::bridge::Sinks;
use crate::env::{Env, Stage};
use crate::tally::Tally;

/// Runs the phase; answers one duration per restart.
pub async fn run(env: &Env) -> Result<Vec<Duration>> {
    let stage = Stage::new(env, env.settings.small_book).await?;
    let first = stage.launch(env, &Sinks::none(), Tally::new(0)).await?;
    first.stop().await?;
    let mut times = Vec::with_capacity(env.settings.startup_reps);
    for _ in 0..env.settings.startup_reps {
        let tally = Tally::new(0);
        let bridge = stage.spawn(env, &Sinks::none(), tally.clone())?;
        if !tally.wait_online(Duration::from_secs(30)).await {
            bail!(
                "the bridge did not resume its stored session; {}",
                stage.log()
            );
        }
        times.push(bridge.started.elapsed());
        bridge.stop().await?;
    }
    anyhow::ensure!(
        stage.fake.logins() == 1,
        "a restart logged in again instead of resuming the stored session"
    );
    Ok(times)
}
