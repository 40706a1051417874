//! Runs a fake WeChat server for manual tries: `wxbridge-fake [--port N] [--delay-ms MS]`
//! prints the URL to use as `wechat.login_url` and serves until interrupted. `--delay-ms`
//! holds every answer back that long, as a server far away would answer
//! (`Options::answer_delay`). No test controls over HTTP.
#![forbid(unsafe_code)]

use std::time::Duration;

use wxbridge_fake::{FakeWeChat, Options};

const USAGE: &str = "usage: wxbridge-fake [--port N] [--delay-ms MS]";

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let mut opts = Options::default();
    while let Some(arg) = args.next() {
        let value = args.next();
        let parsed = match (arg.as_str(), value.as_deref()) {
            ("--port", Some(v)) => v.parse().map(|port| opts.port = port).is_ok(),
            ("--delay-ms", Some(v)) => v
                .parse()
                .map(|ms| opts.answer_delay = Duration::from_millis(ms))
                .is_ok(),
            _ => false,
        };
        if !parsed {
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    }
    let fake = FakeWeChat::start_with(opts).await;
    println!("{}", fake.url());
    std::future::pending::<()>().await;
}
