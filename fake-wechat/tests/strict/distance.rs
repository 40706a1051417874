//! `Options::answer_delay`: the fake answers as a server one round trip away would. Every
//! answer, refusals and faults included, leaves no sooner than the delay after it is ready;
//! a long poll's hold is not stretched, the delay only follows it; what is answered does not
//! change. The bounds below are lower bounds the delay guarantees, plus generous failure
//! bounds, never speed targets.

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::time::Instant;

use wxbridge_fake::{FakeWeChat, Fault, Msg, Options};

use crate::support::{fast, http, logged_in};

const DELAY: Duration = Duration::from_millis(300);
const NEW: &str = "window.synccheck={retcode:\"0\",selector:\"2\"}";

async fn distant(sync_hold: Duration) -> FakeWeChat {
    FakeWeChat::start_with(Options {
        sync_hold,
        answer_delay: DELAY,
        ..fast()
    })
    .await
}

#[test]
fn the_default_is_loopback_with_no_delay() {
    assert_eq!(Options::default().answer_delay, Duration::ZERO);
}

#[tokio::test]
async fn every_answer_leaves_no_sooner_than_the_delay_and_says_the_same() {
    let fake = distant(Duration::from_millis(200)).await;
    let mut c = logged_in(&fake).await;
    let friend = fake.add_contact("Bob", "");
    let queued = fake.queue(Msg::text(&friend, "from afar"));

    let t = Instant::now();
    let answer = c.sync().await;
    assert!(
        t.elapsed() >= DELAY,
        "webwxsync answered after {:?}",
        t.elapsed()
    );
    assert_eq!(answer["BaseResponse"]["Ret"], 0);
    assert_eq!(answer["AddMsgList"][0]["MsgId"], queued.msg_id.as_str());

    // A refusal (no cookies: 1102) is as far away as an answer.
    let t = Instant::now();
    let refused = c.synccheck_with(&http(false), &c.check_key).await;
    assert!(
        t.elapsed() >= DELAY,
        "the refusal came after {:?}",
        t.elapsed()
    );
    assert!(refused.contains("retcode:\"1102\""), "{refused}");
}

#[tokio::test]
async fn an_injected_fault_is_delayed_too() {
    let fake = distant(Duration::from_millis(200)).await;
    let mut c = logged_in(&fake).await;
    fake.fault("webwxsync", Fault::Status(500), 1);
    let t = Instant::now();
    let status = c
        .http
        .post(c.cgi("webwxsync"))
        .body(
            serde_json::json!({"BaseRequest": c.base_request(), "SyncKey": c.sync_key, "rr": -1})
                .to_string(),
        )
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 500);
    assert!(
        t.elapsed() >= DELAY,
        "the fault came after {:?}",
        t.elapsed()
    );
    assert_eq!(c.sync().await["BaseResponse"]["Ret"], 0);
}

#[tokio::test]
async fn an_idle_synccheck_answers_after_its_hold_and_then_the_delay() {
    let hold = Duration::from_millis(200);
    let fake = distant(hold).await;
    let c = logged_in(&fake).await;
    let t = Instant::now();
    let idle = c.synccheck().await;
    assert!(idle.contains("selector:\"0\""), "{idle}");
    assert!(
        t.elapsed() >= hold + DELAY,
        "answered after {:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn a_message_wakes_a_held_synccheck_and_only_the_delay_follows() {
    let fake = distant(Duration::from_secs(20)).await;
    let c = logged_in(&fake).await;
    let friend = fake.add_contact("Bob", "");
    let wake = Duration::from_millis(100);
    let t = Instant::now();
    let (body, _) = tokio::join!(c.synccheck(), async {
        tokio::time::sleep(wake).await;
        fake.queue(Msg::text(&friend, "hi"));
    });
    assert_eq!(body, NEW);
    let took = t.elapsed();
    assert!(took >= wake + DELAY, "answered after {took:?}");
    assert!(
        took < Duration::from_secs(10),
        "the 20 s hold ran out: {took:?}"
    );
}

/// The binary, killed when the test ends however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn the_binary_takes_the_delay_in_milliseconds_and_refuses_a_bad_one() {
    let bin = env!("CARGO_BIN_EXE_wxbridge-fake");
    let mut fake = Running(
        Command::new(bin)
            .args(["--delay-ms", "300"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // It prints its URL once it listens.
    let stdout = fake.0.stdout.take().unwrap();
    let url = std::io::BufReader::new(stdout)
        .lines()
        .next()
        .expect("a URL line")
        .unwrap();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let t = Instant::now();
    let page = http(false)
        .get(format!("{url}/jslogin?appid=wx782c26e4c19acffb&fun=new"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(t.elapsed() >= DELAY, "answered after {:?}", t.elapsed());
    assert!(page.starts_with("window.QRLogin.code = 200"), "{page}");
    drop(fake);

    let refused = Command::new(bin)
        .args(["--delay-ms", "soon"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--delay-ms"));
}
