//! Real captured payloads end to end: every AddMsgList entry of `tests/corpus/real/entries`
//! (public captures, provenance in `tests/corpus/real/README.md`) is queued verbatim in the
//! fake, fetched by one bridge process through the normal webwxsync answer, and its event
//! compared with `tests/corpus/real/expected.json`.
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use crate::support::World;

fn real_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/real")
}

/// `v` with every string equal to `own` replaced by `me`: the fake stands in for the captured
/// account under its own UserName.
fn own_as(v: &Value, own: Option<&str>, me: &str) -> Value {
    match v {
        Value::String(s) if Some(s.as_str()) == own => Value::String(me.to_owned()),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| (k.clone(), own_as(x, own, me)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(|x| own_as(x, own, me)).collect()),
        other => other.clone(),
    }
}

/// Every key of `want` matches in `got`, recursively; the differences, one per line.
fn differences(path: &str, want: &Value, got: &Value, out: &mut Vec<String>) {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            for (k, wv) in w {
                differences(
                    &format!("{path}.{k}"),
                    wv,
                    g.get(k).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        (Value::Number(w), Value::Number(g)) if w.as_f64() == g.as_f64() => {}
        _ if want == got => {}
        _ => out.push(format!("{path}: want {want} got {got}")),
    }
}

#[tokio::test]
async fn every_real_captured_entry_is_published_as_its_expected_event() {
    let dir = real_dir();
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let expected = expected.as_object().unwrap();
    let world = World::new().await;
    let me = world.fake.self_user().user_name;
    let mut bridge = world.run_logged_in().await;

    // Queued in file-name order; a MsgId seen before is a duplicate the bridge drops.
    let mut want: HashMap<String, (String, Value)> = HashMap::new();
    let mut silent = Vec::new();
    let mut seen_ids = HashSet::new();
    for (name, exp) in expected {
        let text = std::fs::read_to_string(dir.join("entries").join(name)).unwrap();
        let entry: Value = serde_json::from_str(&text).unwrap();
        let own = exp["own"].as_str();
        let queued = world.fake.queue_verbatim(entry.clone(), own);
        assert_eq!(queued.msg_id, entry["MsgId"].as_str().unwrap(), "{name}");
        if !seen_ids.insert(queued.msg_id.clone()) {
            continue;
        }
        match &exp["event"] {
            Value::Null => silent.push((name.clone(), queued.msg_id)),
            event => {
                let mut event = own_as(event, own, &me);
                // The entry as received: the fake swapped only From and To.
                let mut raw = entry.clone();
                for key in ["FromUserName", "ToUserName"] {
                    raw[key] = own_as(&raw[key], own, &me);
                }
                event["raw"] = raw;
                want.insert(queued.msg_id, (name.clone(), event));
            }
        }
    }
    assert!(want.len() >= 20, "the corpus holds {} messages", want.len());

    let mut got: HashMap<String, Value> = HashMap::new();
    while got.len() < want.len() {
        let m = bridge.next_message().await;
        let id = m["id"].as_str().unwrap().to_owned();
        assert!(!got.contains_key(&id), "MsgId {id} published twice");
        got.insert(id, m);
    }
    // Anything still to come would be a duplicate or a status notify.
    for m in bridge.drain_for(Duration::from_secs(2)).await {
        assert_ne!(m["kind"], "message", "unexpected extra message {m}");
    }

    let mut failures = Vec::new();
    for (id, (name, event)) in &want {
        match got.get(id) {
            Some(m) => differences(name, event, m, &mut failures),
            None => failures.push(format!("{name}: no event")),
        }
    }
    for (name, id) in &silent {
        if got.contains_key(id) {
            failures.push(format!("{name}: a status notify was published"));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    bridge.stop().await;
}

#[tokio::test]
async fn the_account_s_own_record_in_the_address_book_is_never_a_recipient() {
    // Real webwxgetcontact answers list the account itself; the fake does too. The bridge
    // must keep it as self: not a contact to list or to send to (a note to self goes to
    // filehelper).
    let world = World::new().await;
    let me = world.fake.self_user();
    let twin = world.fake.add_contact(&me.nick_name, "");
    let mut bridge = world.run_logged_in().await;
    bridge
        .send_line(
            format!(
                r#"{{"to":"{}","text":"hi","request_id":"r-own"}}"#,
                me.nick_name
            )
            .as_bytes(),
        )
        .await;
    let r = bridge.next_result().await;
    // One match only, the friend who shares the name: self is not a candidate.
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["to"]["id"], twin.as_str(), "{r}");
    let sent = world.fake.sent();
    assert_eq!(sent.last().map(|s| s.to.as_str()), Some(twin.as_str()));
    bridge.stop().await;
}
