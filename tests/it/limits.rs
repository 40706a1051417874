//! `send.limits` end to end: a burst to one recipient, two recipients interleaved, quiet hours
//! on a clock the test sets, `per_day` across a restart and across a crash, and the tightening
//! after a 1205.
use std::time::Duration;

use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::support::{Bridge, World};

/// Runs a logged-in bridge with these environment overrides (`WXBRIDGE__SEND__LIMITS__…`,
/// `WXBRIDGE_TEST_CLOCK`).
async fn run_with(world: &World, env: &[(&str, &str)]) -> Bridge {
    let mut bridge = Bridge::spawn_with_env(&world.config(""), &["run"], env);
    world.scan_and_confirm().await;
    bridge.wait_state("online").await;
    bridge
}

/// A command to `to` with `text` as its text and request_id, expiring in `expires_in` if given.
fn command(to: &str, text: &str, expires_in: Option<Duration>) -> Vec<u8> {
    let mut c = json!({"to": to, "text": text, "request_id": text});
    if let Some(d) = expires_in {
        let at = OffsetDateTime::now_utc() + d;
        c["expires_at"] = json!(at.format(&Rfc3339).unwrap());
    }
    c.to_string().into_bytes()
}

async fn result_of(bridge: &mut Bridge, rid: &str) -> Value {
    bridge
        .seen_or_next(&format!("the result of {rid}"), |v| {
            v["kind"] == "result" && v["request_id"] == rid
        })
        .await
}

fn assert_limit_exceeded(r: &Value, key: &str) {
    assert_eq!(r["ok"], false, "{r}");
    assert_eq!(r["error"]["code"], "limit_exceeded", "{r}");
    let message = r["error"]["message"].as_str().unwrap();
    assert!(message.contains(key), "names {key}: {message}");
}

fn sent_texts(world: &World) -> Vec<String> {
    world.fake.sent().into_iter().map(|s| s.content).collect()
}

#[tokio::test]
async fn a_burst_to_one_recipient_is_held_at_its_limit_and_answered_limit_exceeded_past_its_deadline(
) {
    let world = World::new().await;
    world.fake.add_contact("Alice", "");
    let per_minute = [("WXBRIDGE__SEND__LIMITS__PER_RECIPIENT__PER_MINUTE", "2")];
    let mut bridge = run_with(&world, &per_minute).await;

    for text in ["a1", "a2"] {
        bridge.send_line(&command("Alice", text, None)).await;
        assert_eq!(result_of(&mut bridge, text).await["ok"], true);
    }
    // The minute's third cannot go before its deadline: answered at once, naming the limit.
    bridge
        .send_line(&command("Alice", "a3", Some(Duration::from_secs(5))))
        .await;
    assert_limit_exceeded(
        &result_of(&mut bridge, "a3").await,
        "send.limits.per_recipient.per_minute",
    );
    // One with the default 10 minutes waits for the window instead, and is told so.
    bridge.send_line(&command("Alice", "a4", None)).await;
    let queued = bridge
        .next_where("a4's queued receipt", |v| {
            v["kind"] == "receipt" && v["request_id"] == "a4"
        })
        .await;
    assert_eq!(queued["status"], "queued", "{queued}");
    assert_eq!(queued["position"], 1, "{queued}");
    let later = bridge.drain_for(Duration::from_secs(1)).await;
    assert!(
        bridge
            .seen
            .iter()
            .all(|v| v["kind"] != "result" || v["request_id"] != "a4"),
        "a4 waits: {later:?}"
    );
    assert_eq!(sent_texts(&world), ["a1", "a2"]);
}

#[tokio::test]
async fn a_recipient_at_its_limit_does_not_hold_up_another() {
    let world = World::new().await;
    world.fake.add_contact("Alice", "");
    world.fake.add_contact("Bob", "");
    let per_minute = [("WXBRIDGE__SEND__LIMITS__PER_RECIPIENT__PER_MINUTE", "1")];
    let mut bridge = run_with(&world, &per_minute).await;

    for (to, text) in [
        ("Alice", "a1"),
        ("Alice", "a2"),
        ("Bob", "b1"),
        ("Alice", "a3"),
        ("Bob", "b2"),
    ] {
        bridge.send_line(&command(to, text, None)).await;
    }
    for text in ["a1", "b1"] {
        assert_eq!(result_of(&mut bridge, text).await["ok"], true);
    }
    // b2 is Bob's second in the minute: it waits too, but a2 and a3 never held b1 back.
    let later = bridge.drain_for(Duration::from_secs(2)).await;
    assert!(
        later.iter().all(|v| v["kind"] != "result"),
        "the rest wait: {later:?}"
    );
    assert_eq!(sent_texts(&world), ["a1", "b1"], "order kept per recipient");
}

#[tokio::test]
async fn a_repeated_request_id_is_answered_with_its_first_result_not_held_by_a_limit() {
    let world = World::new().await;
    world.fake.add_contact("Alice", "");
    let per_minute = [("WXBRIDGE__SEND__LIMITS__PER_RECIPIENT__PER_MINUTE", "1")];
    let mut bridge = run_with(&world, &per_minute).await;

    bridge.send_line(&command("Alice", "r1", None)).await;
    let first = result_of(&mut bridge, "r1").await;
    assert_eq!(first["ok"], true, "{first}");
    // Alice is at her minute's limit now, but the repeat sends nothing: it is answered with
    // the first result, not held until its deadline and answered `limit_exceeded`.
    bridge
        .send_line(&command("Alice", "r1", Some(Duration::from_secs(3))))
        .await;
    let repeat = bridge
        .nth("the repeat's result", 2, |v| {
            v["kind"] == "result" && v["request_id"] == "r1"
        })
        .await;
    assert_eq!(repeat["ok"], true, "{repeat}");
    assert_eq!(repeat["duplicate"], true, "{repeat}");
    assert_eq!(repeat["msg_id"], first["msg_id"]);
    // Behind another command that Alice's limit holds (for the rest of the minute), a repeat
    // waits its turn; its deadline passing is not `limit_exceeded` either.
    bridge.send_line(&command("Alice", "b1", None)).await;
    bridge
        .send_line(&command("Alice", "r1", Some(Duration::from_secs(2))))
        .await;
    let behind = bridge
        .nth("the third result of r1", 3, |v| {
            v["kind"] == "result" && v["request_id"] == "r1"
        })
        .await;
    assert_eq!(
        (&behind["ok"], &behind["duplicate"], &behind["msg_id"]),
        (&json!(true), &json!(true), &first["msg_id"]),
        "{behind}"
    );
    assert_eq!(sent_texts(&world), ["r1"]);
}

#[tokio::test]
async fn two_recipients_interleaved_are_served_in_turn() {
    let world = World::new().await;
    world.fake.add_contact("Alice", "");
    world.fake.add_contact("Bob", "");
    let per_minute = [("WXBRIDGE__SEND__LIMITS__PER_RECIPIENT__PER_MINUTE", "2")];
    let mut bridge = run_with(&world, &per_minute).await;

    // Alice's burst is queued first; Bob's two still go while her third waits.
    for (to, text) in [
        ("Alice", "a1"),
        ("Alice", "a2"),
        ("Alice", "a3"),
        ("Alice", "a4"),
        ("Bob", "b1"),
        ("Bob", "b2"),
    ] {
        bridge.send_line(&command(to, text, None)).await;
    }
    for text in ["a1", "a2", "b1", "b2"] {
        assert_eq!(result_of(&mut bridge, text).await["ok"], true);
    }
    let sent = sent_texts(&world);
    let alice: Vec<&String> = sent.iter().filter(|t| t.starts_with('a')).collect();
    assert_eq!(alice, ["a1", "a2"], "Alice in order, held at two");
    assert_eq!(sent.len(), 4, "{sent:?}");
}

#[tokio::test]
async fn quiet_hours_hold_sends_until_they_end_on_the_local_clock() {
    let world = World::new().await;
    // The process starts at 06:59:48 in UTC+8; quiet until 07:00 there.
    let env = [
        ("WXBRIDGE_TEST_CLOCK", "2026-12-06T06:59:48+08:00"),
        ("WXBRIDGE__SEND__LIMITS__QUIET_HOURS", "23:00-07:00"),
    ];
    let mut bridge = run_with(&world, &env).await;

    bridge
        .send_line(&command(
            "filehelper",
            "too-soon",
            Some(Duration::from_secs(1)),
        ))
        .await;
    assert_limit_exceeded(
        &result_of(&mut bridge, "too-soon").await,
        "send.limits.quiet_hours",
    );
    bridge
        .send_line(&command("filehelper", "at-seven", None))
        .await;
    bridge.drain_for(Duration::from_secs(1)).await;
    assert!(world.fake.sent().is_empty(), "nothing goes in the quiet");
    let r = result_of(&mut bridge, "at-seven").await;
    assert_eq!(r["ok"], true, "sent once the quiet ended: {r}");
    assert_eq!(sent_texts(&world), ["at-seven"]);
}

#[tokio::test]
async fn per_day_counts_across_a_restart() {
    let world = World::new().await;
    let env = [
        ("WXBRIDGE_TEST_CLOCK", "2026-12-06T12:00:00+00:00"),
        ("WXBRIDGE__SEND__LIMITS__PER_DAY", "2"),
    ];
    let mut bridge = run_with(&world, &env).await;
    for text in ["d1", "d2"] {
        bridge.send_line(&command("filehelper", text, None)).await;
        assert_eq!(result_of(&mut bridge, text).await["ok"], true);
    }
    assert_eq!(bridge.stop().await, 0);

    // The stored session logs in again without a scan; the day's count is still 2.
    let mut bridge = Bridge::spawn_with_env(&world.config(""), &["run"], &env);
    bridge.wait_state("online").await;
    bridge
        .send_line(&command("filehelper", "d3", Some(Duration::from_secs(5))))
        .await;
    assert_limit_exceeded(&result_of(&mut bridge, "d3").await, "send.limits.per_day");
    assert_eq!(sent_texts(&world), ["d1", "d2"]);
}

#[tokio::test]
async fn per_day_counts_survive_a_crash_right_after_the_result() {
    let world = World::new().await;
    let env = [
        ("WXBRIDGE_TEST_CLOCK", "2026-12-06T12:00:00+00:00"),
        ("WXBRIDGE__SEND__LIMITS__PER_DAY", "1"),
    ];
    let mut bridge = run_with(&world, &env).await;
    bridge.send_line(&command("filehelper", "k1", None)).await;
    assert_eq!(result_of(&mut bridge, "k1").await["ok"], true);
    // Killed the moment the result is out: no graceful stop writes anything more.
    let pid = bridge.pid().to_string();
    let killed = tokio::process::Command::new("kill")
        .args(["-KILL", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    let (code, _) = bridge.exit().await;
    assert_ne!(code, 0, "killed, not stopped");

    let mut bridge = Bridge::spawn_with_env(&world.config(""), &["run"], &env);
    bridge.wait_state("online").await;
    bridge
        .send_line(&command("filehelper", "k2", Some(Duration::from_secs(5))))
        .await;
    assert_limit_exceeded(&result_of(&mut bridge, "k2").await, "send.limits.per_day");
    assert_eq!(sent_texts(&world), ["k1"]);
    assert!(
        !world.state_dir().join("limits.json").exists(),
        "the counts live in the spool"
    );
}

#[tokio::test]
async fn after_a_1205_the_limits_are_halved_and_the_state_says_so() {
    let world = World::new().await;
    world.fake.add_contact("Alice", "");
    let per_minute = [("WXBRIDGE__SEND__LIMITS__PER_RECIPIENT__PER_MINUTE", "2")];
    let mut bridge = run_with(&world, &per_minute).await;

    bridge.send_line(&command("Alice", "a1", None)).await;
    assert_eq!(result_of(&mut bridge, "a1").await["ok"], true);
    world.fake.fail_sends(1205, 0);
    bridge
        .send_line(&command("Alice", "a2", Some(Duration::from_secs(5))))
        .await;
    let state = bridge
        .next_where("a state that says the limits are halved", |v| {
            v["kind"] == "state" && v["reason"].as_str().is_some_and(|r| r.contains("1205"))
        })
        .await;
    let reason = state["reason"].as_str().unwrap();
    assert!(reason.contains("halved for 60 minutes"), "{reason}");
    assert_eq!(state["state"], "online");
    // Its retry finds one sent this minute: within 2, but not within the halved 1. Without
    // the tightening it would retry into 1205 until answered `rate_limited`.
    assert_limit_exceeded(
        &result_of(&mut bridge, "a2").await,
        "send.limits.per_recipient.per_minute",
    );
    assert_eq!(sent_texts(&world), ["a1"]);
}

#[tokio::test]
async fn the_status_page_and_metrics_count_sends_waits_and_limit_hits() {
    let world = World::new().await;
    world.fake.add_contact("Alice", "Mom");
    let limits = "limits: { per_recipient: { per_minute: 1, per_hour: 60 }, per_day: 3, \
                  jitter: [0s, 0s] }";
    let (mut bridge, api) = crate::http::start(&world, "", &[limits]).await;
    world.scan_and_confirm().await;
    bridge.wait_state("online").await;

    for (to, text) in [("Mom", "m1"), ("filehelper", "f1"), ("filehelper", "f2")] {
        bridge.send_line(&command(to, text, None)).await;
    }
    assert_eq!(result_of(&mut bridge, "m1").await["ok"], true);
    assert_eq!(result_of(&mut bridge, "f1").await["ok"], true);
    // f2 waits for filehelper's minute; the day's third goes after it.
    bridge
        .send_line(&command("Mom", "m2", Some(Duration::from_secs(3))))
        .await;
    assert_limit_exceeded(
        &result_of(&mut bridge, "m2").await,
        "send.limits.per_recipient.per_minute",
    );

    let (_, status) = api.json("/api/status").await;
    assert_eq!(
        status["sends_today"],
        json!({"count": 2, "per_day": 3}),
        "{status}"
    );
    let scrape = api.scrape().await;
    let sample = |name, labels: &[(&str, &str)]| crate::http::sample(&scrape, name, labels);
    assert_eq!(sample("wxbridge_sends_total", &[("class", "person")]), 1.0);
    assert_eq!(
        sample("wxbridge_sends_total", &[("class", "filehelper")]),
        1.0
    );
    assert_eq!(sample("wxbridge_sends_today", &[]), 2.0);
    assert_eq!(sample("wxbridge_sends_per_day_limit", &[]), 3.0);
    assert_eq!(
        sample(
            "wxbridge_send_limit_waits_total",
            &[("limit", "per_minute")]
        ),
        1.0,
        "f2 waits"
    );
    assert_eq!(
        sample("wxbridge_send_limit_hits_total", &[("limit", "per_minute")]),
        1.0,
        "m2 answered limit_exceeded"
    );
}

#[tokio::test]
async fn a_recipients_minute_holds_across_its_rename() {
    let world = World::new().await;
    world.fake.add_contact("Alice", "");
    let per_minute = [("WXBRIDGE__SEND__LIMITS__PER_RECIPIENT__PER_MINUTE", "2")];
    let mut bridge = run_with(&world, &per_minute).await;
    for text in ["r1", "r2"] {
        bridge.send_line(&command("Alice", text, None)).await;
        assert_eq!(result_of(&mut bridge, text).await["ok"], true);
    }

    // Renamed: the same contact (the same key) under a new display name.
    let alice = world.fake.user_name_of("Alice");
    world.fake.set_nick(&alice, "Ally");
    world.fake.push_mod_contact(&alice);
    bridge
        .next_where("the rename", |v| {
            v["kind"] == "contacts" && v["modified"][0]["name"] == "Ally"
        })
        .await;
    bridge
        .send_line(&command("Ally", "r3", Some(Duration::from_secs(5))))
        .await;
    assert_limit_exceeded(
        &result_of(&mut bridge, "r3").await,
        "send.limits.per_recipient.per_minute",
    );
    assert_eq!(sent_texts(&world), ["r1", "r2"]);
}

#[tokio::test]
async fn a_recipient_over_its_limit_after_a_relogin_holds_only_itself() {
    let world = World::new().await;
    world.fake.add_contact("Alice", "");
    world.fake.add_contact("Bob", "");
    let per_minute = [("WXBRIDGE__SEND__LIMITS__PER_RECIPIENT__PER_MINUTE", "1")];
    let mut bridge = run_with(&world, &per_minute).await;

    bridge.send_line(&command("Alice", "a1", None)).await;
    assert_eq!(result_of(&mut bridge, "a1").await["ok"], true);
    // Bob is served after Alice without a send to count (a repeated request_id sends
    // nothing), so Alice is the one the scheduler takes first below.
    bridge
        .send_line(br#"{"to":"Bob","text":"again","request_id":"a1"}"#)
        .await;
    bridge
        .nth("the repeat's result", 2, |v| {
            v["kind"] == "result" && v["request_id"] == "a1"
        })
        .await;

    // Logged out: nobody can be named, so Alice's next is taken to wait for the login.
    world.fake.expire_session(1101);
    bridge.wait_state("login_required").await;
    bridge.send_line(&command("Alice", "a2", None)).await;
    bridge.send_line(&command("Bob", "b1", None)).await;
    world.scan_and_confirm().await;

    // After the login Alice is over her minute: a2 waits, and b1 is not held behind it.
    assert_eq!(result_of(&mut bridge, "b1").await["ok"], true);
    assert_eq!(sent_texts(&world), ["a1", "b1"], "a2 still waits");
}
