//! The real servers' wire layout (one JSON member per line, gzip) reaches the bridge, and the
//! embedded default still prints every event as exactly one line.
use std::process::Stdio;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use wxbridge::wechat::compact::compact;
use wxbridge_fake::Msg;

use crate::support::{World, WAIT};

#[tokio::test]
async fn a_message_in_the_servers_layout_is_one_stdout_line() {
    let world = World::new().await;
    let alice = world.fake.add_contact("Alice", "Mom");
    // Read stdout as bytes, split at '\n' only: the harness's JSON reader would hide how
    // the lines are cut.
    let mut child = Command::new(env!("CARGO_BIN_EXE_wxbridge"))
        .arg("--config")
        .arg(world.config(""))
        .arg("run")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the wxbridge binary starts");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    world.scan_and_confirm().await;
    let text = "dinner at 7?\nbring {\"cake\": [1, 2]} \u{2028}and\u{2029}wine\u{85}";
    let queued = world.fake.queue(Msg::text(&alice, text));

    let line = tokio::time::timeout(WAIT, async {
        loop {
            let mut line = Vec::new();
            let n = out.read_until(b'\n', &mut line).await.unwrap();
            assert!(n > 0, "stdout closed before the message");
            assert_eq!(line.pop(), Some(b'\n'));
            let v: Value = serde_json::from_slice(&line).unwrap_or_else(|e| {
                panic!(
                    "a line that is not one JSON object ({e}): {}",
                    String::from_utf8_lossy(&line)
                )
            });
            if v["kind"] == "message" {
                return String::from_utf8(line).unwrap();
            }
        }
    })
    .await
    .expect("the message event arrives");

    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["id"], queued.msg_id.as_str());
    assert_eq!(v["text"], text);
    assert_eq!(v["raw"]["MsgId"], queued.msg_id.as_str());
    // NewMsgId's digits as sent (the fake's ids are above 2^53).
    assert!(
        line.contains(&format!("\"NewMsgId\":{}", queued.msg_id)),
        "{line}"
    );
    assert_eq!(
        compact(&line),
        line,
        "no whitespace between tokens, `raw` included"
    );
    for sep in ['\r', '\u{2028}', '\u{2029}', '\u{85}'] {
        assert!(!line.contains(sep), "{sep:?} is escaped: {line}");
    }
    assert!(line.contains(r"\u2028and\u2029wine\u0085"), "{line}");
}
