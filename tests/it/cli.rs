//! The commands as a process: check-config, logout, what they say, and how fast `run` stops.
use crate::support::World;

#[tokio::test]
async fn check_config_prints_the_effective_config_with_secrets_masked() {
    let world = World::new().await;
    let config = world.config("webhooks:\n  - url: http://127.0.0.1:9/hook\n    secret: hunter2\n");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_wxbridge"))
        .args(["--config", config.to_str().unwrap(), "check-config"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("account: test"), "{stdout}");
    assert!(
        stdout.contains("'***'") || stdout.contains("\"***\""),
        "{stdout}"
    );
    assert!(!stdout.contains("hunter2"), "the secret is masked");
}

#[tokio::test]
async fn a_bad_config_exits_2_naming_the_key() {
    let world = World::new().await;
    let config = world.config("mqtt:\n  qos: 3\n");
    for args in [&["check-config"][..], &["run"][..]] {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_wxbridge"))
            .arg("--config")
            .arg(&config)
            .args(args)
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("mqtt.qos"), "{stderr}");
    }
    let missing = tokio::process::Command::new(env!("CARGO_BIN_EXE_wxbridge"))
        .args(["--config", "/nonexistent/bridge.yaml", "check-config"])
        .output()
        .await
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
}

#[tokio::test]
async fn logout_ends_the_session_at_wechat_and_forgets_it() {
    let world = World::new().await;
    let login = world.start(&["login"]);
    world.scan_and_confirm().await;
    assert_eq!(login.exit().await.0, 0);
    let (code, _, stderr) = world.command(&["logout"]).await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(world.fake.requests("webwxlogout").len(), 1);
    assert!(!world.state_dir().join("session.json").exists());
    let (code, _, stderr) = world.command(&["contacts"]).await;
    assert_eq!(code, 1);
    assert!(stderr.contains("wxbridge login"), "{stderr}");
}

#[tokio::test]
async fn the_shipped_configs_are_valid() {
    let root = env!("CARGO_MANIFEST_DIR");
    for file in ["deploy/bridge.yaml", "bridge.example.yaml"] {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_wxbridge"))
            .args(["--config", &format!("{root}/{file}"), "check-config"])
            .output()
            .await
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[tokio::test]
async fn sigterm_stops_run_promptly_while_stdin_stays_open() {
    let world = World::new().await;
    // The stdio default: stdin is read for commands and stays open (the harness holds it).
    let mut bridge = world.start(&["run"]);
    bridge.wait_state("login_required").await;
    let started = std::time::Instant::now();
    assert_eq!(bridge.stop().await, 0);
    let took = started.elapsed();
    // A stdin read on tokio's blocking pool held the runtime's shutdown for over a second.
    eprintln!("run stopped {took:?} after SIGTERM");
    assert!(took < std::time::Duration::from_secs(1), "took {took:?}");
}
