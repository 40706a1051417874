//! Only the large-book login of the memory phase, for profiling it without the whole run:
//! `cargo run --release -p wxbridge-bench --example large_book -- [contacts groups size [reps]]`
//! (default: the 5,000 contacts and 500 groups of 500 members, one run), with the
//! bridge binary beside it or the one `WXBRIDGE_BIN` names. Prints, per run, the seconds from
//! process start to online, the CPU time of the bridge and of the fake, and the bridge's idle
//! VmRSS and VmHWM.
#![forbid(unsafe_code)]
use anyhow::Result;
use clap::Parser;
use std::time::{Duration, Instant};

use wxbridge_bench::env::{Env, Stage, SETTLE};
use wxbridge_bench::machine;
use wxbridge_bench::receivers::MqttSubscriber;
use wxbridge_bench::settings::{BookSize, Cli, Settings};
use wxbridge_bench::tally::Tally;

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let (mut settings, _) = Settings::from_cli(Cli::parse_from(["wxbridge-bench"]));
    let arg = |i: usize, default: usize| args.get(i).copied().unwrap_or(default);
    settings.large_book = BookSize {
        contacts: arg(0, settings.large_book.contacts),
        groups: arg(1, settings.large_book.groups),
        group_size: arg(2, settings.large_book.group_size),
    };
    let reps = arg(3, 1);
    settings.bridge = std::env::var_os("WXBRIDGE_BIN").map(Into::into);
    let book = settings.large_book;
    let env = Env::start(settings).await?;
    let mb = |kib: u64| kib as f64 * 1.024 / 1000.0;
    let own = || machine::usage(std::process::id()).map_or(Duration::ZERO, |u| u.cpu);
    for _ in 0..reps {
        let t = Instant::now();
        let stage = Stage::new(&env, book).await?;
        let populate = t.elapsed();
        let online = Tally::new(0);
        let _sub =
            MqttSubscriber::start(env.mosquitto.port, &stage.account, online.clone()).await?;
        let before = own();
        let bridge = stage.launch(&env, &env.all_sinks(), online).await?;
        let login = bridge.started.elapsed() - SETTLE;
        let fake_cpu = own() - before;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let u = machine::usage(bridge.pid()).unwrap_or_default();
        bridge.stop().await?;
        println!(
            "book filled in {:.2} s; login → online {:.2} s; bridge CPU {:.2} s, fake (this \
             process) CPU {:.2} s; idle VmRSS {:.1} MB, VmHWM {:.1} MB (anon {:.1} MB)",
            populate.as_secs_f64(),
            login.as_secs_f64(),
            u.cpu.as_secs_f64(),
            fake_cpu.as_secs_f64(),
            mb(u.rss_kib),
            mb(u.hwm_kib),
            mb(u.anon_kib),
        );
    }
    Ok(())
}
