//! `accounts:` from the command line: `--account` on the session commands, `check-config`
//! over every account, and a single-account state dir that keeps its session after the move
//! to `accounts:` (README "Several accounts").
use std::path::PathBuf;

use tokio::process::Command;

use crate::support::{Bridge, World, GENEROUS_LIMITS};

/// A config listing `accounts` (YAML list items, indented two spaces) for this world's fake,
/// each account's QR file and media store at their defaults in its own dir.
fn accounts_config(world: &World, accounts: &str) -> PathBuf {
    let path = world.dir.path().join("accounts.yaml");
    let yaml = format!(
        "state_dir: {state}\n\
         wechat:\n  login_url: {url}\n\
         retry:\n  initial: 50ms\n  max: 500ms\n\
         send:\n  rate: {{ per_second: 50, burst: 50 }}\n  {limits}\n\
         accounts:\n{accounts}",
        state = world.state_dir().display(),
        url = world.fake.url(),
        limits = GENEROUS_LIMITS,
    );
    std::fs::write(&path, yaml).unwrap();
    path
}

/// `wxbridge --config <config> <args>` to completion: (exit code, stdout, stderr).
async fn wxbridge(config: &PathBuf, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_wxbridge"))
        .arg("--config")
        .arg(config)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output();
    let out = tokio::time::timeout(std::time::Duration::from_secs(60), out)
        .await
        .expect("the command finishes")
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn session_commands_act_on_the_account_named_and_need_one_with_several() {
    let world = World::new().await;
    let mom = world.fake.add_contact("Mother", "Mom");
    let config = accounts_config(&world, "  - account: home\n  - account: office\n");

    for args in [
        &["send", "--to", "Mom", "hi"][..],
        &["contacts"][..],
        &["login"][..],
        &["logout"][..],
    ] {
        let (code, _, stderr) = wxbridge(&config, args).await;
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(
            stderr.contains("--account") && stderr.contains("home, office"),
            "{args:?}: {stderr}"
        );
    }
    let (code, _, stderr) = wxbridge(&config, &["contacts", "--account", "shop"]).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("--account shop") && stderr.contains("home, office"),
        "{stderr}"
    );
    assert!(
        !world.state_dir().exists(),
        "a usage error touches no state"
    );

    let login = Bridge::spawn(&config, &["login", "--account", "office"]);
    world.scan_and_confirm().await;
    assert_eq!(login.exit().await.0, 0);
    let office = world.state_dir().join("office");
    assert!(office.join("session.json").is_file());
    assert!(!world.state_dir().join("home").join("session.json").exists());

    let (code, stdout, stderr) = wxbridge(&config, &["contacts", "--account", "office"]).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("Mother"), "{stdout}");
    let (code, _, stderr) = wxbridge(&config, &["contacts", "--account", "home"]).await;
    assert_eq!(code, 1, "home has no session: {stderr}");
    assert!(stderr.contains("no stored session"), "{stderr}");

    let (code, _, stderr) = wxbridge(
        &config,
        &[
            "send",
            "--account",
            "office",
            "--to",
            "Mom",
            "from the office",
        ],
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    let sent = world.fake.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (sent[0].to.as_str(), sent[0].content.as_str()),
        (mom.as_str(), "from the office")
    );
}

#[tokio::test]
async fn with_one_account_the_name_is_optional_but_must_match() {
    let world = World::new().await;
    let login = world.start(&["login", "--account", "test"]);
    world.scan_and_confirm().await;
    assert_eq!(login.exit().await.0, 0);
    let (code, _, stderr) = world.command(&["contacts", "--account", "test"]).await;
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) = world.command(&["contacts", "--account", "office"]).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("it has: test"), "{stderr}");
}

#[tokio::test]
async fn check_config_shows_every_account_and_refuses_a_bad_account_section() {
    let world = World::new().await;
    let config = accounts_config(
        &world,
        "  - account: home\n  - account: office\n    wechat: { desktop_mode: false }\n",
    );
    let (code, stdout, stderr) = wxbridge(&config, &["check-config"]).await;
    assert_eq!(code, 0, "{stderr}");
    let shown: serde_json::Value = yaml_serde::from_str(&stdout).expect("YAML");
    assert!(shown.get("account").is_none(), "{stdout}");
    let accounts = shown["accounts"].as_array().expect("accounts: shown");
    let each = |key: &dyn Fn(&serde_json::Value) -> serde_json::Value| {
        accounts.iter().map(key).collect::<Vec<_>>()
    };
    assert_eq!(each(&|a| a["account"].clone()), ["home", "office"]);
    assert_eq!(
        each(&|a| a["wechat"]["desktop_mode"].clone()),
        [true, false],
        "each account's effective wechat section"
    );

    let bad = accounts_config(
        &world,
        "  - account: home\n  - account: office\n    send: { rate: { burst: 0 } }\n",
    );
    let (code, _, stderr) = wxbridge(&bad, &["check-config"]).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("accounts[1].send.rate.burst: must be at least 1"),
        "{stderr}"
    );

    let missing = world.dir.path().join("no-such-dir");
    let bad = accounts_config(
        &world,
        &format!(
            "  - account: home\n  - account: office\n    media: {{ paths: [{}] }}\n",
            missing.display()
        ),
    );
    for args in [&["check-config"][..], &["run"][..]] {
        let (code, _, stderr) = wxbridge(&bad, args).await;
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(
            stderr.contains("accounts[1].media.paths[0]"),
            "{args:?}: {stderr}"
        );
    }
}

#[tokio::test]
async fn a_single_account_state_dir_keeps_its_session_after_the_move_to_accounts() {
    let world = World::new().await;
    // The old layout: `account: test`, the session and spool directly in the state dir.
    let bridge = world.run_logged_in().await;
    assert_eq!(bridge.stop().await, 0);
    let state = world.state_dir();
    assert!(state.join("session.json").is_file());
    assert_eq!(world.fake.logins(), 1);

    let config = accounts_config(&world, "  - account: test\n");
    let mut bridge = Bridge::spawn(&config, &["run"]);
    bridge.wait_state("online").await;
    assert_eq!(
        world.fake.logins(),
        1,
        "the stored session resumed: no new scan"
    );
    let stderr = bridge.stderr();
    assert!(
        stderr.contains("moved the single-account state") && stderr.contains("session.json"),
        "{stderr}"
    );
    assert_eq!(bridge.stop().await, 0);
    assert!(state.join("test").join("session.json").is_file());
    assert!(state.join("test").join("spool.redb").is_file());
    assert!(!state.join("session.json").exists());

    // The one-shot commands use the moved session too.
    let (code, _, stderr) = wxbridge(&config, &["contacts"]).await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(world.fake.logins(), 1);
}
