//! Runs a fake WeChat server for manual tries: `wxbridge-fake [--port N]` prints the URL to
//! use as `wechat.login_url` and serves until interrupted. No test controls over HTTP.
#![forbid(unsafe_code)]

use wxbridge_fake::{FakeWeChat, Options};

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let mut opts = Options::default();
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next().map(|v| v.parse::<u16>())) {
            ("--port", Some(Ok(port))) => opts.port = port,
            _ => {
                eprintln!("usage: wxbridge-fake [--port N]");
                std::process::exit(2);
            }
        }
    }
    let fake = FakeWeChat::start_with(opts).await;
    println!("{}", fake.url());
    std::future::pending::<()>().await;
}
