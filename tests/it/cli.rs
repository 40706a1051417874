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

/// `wxbridge <command>` with `config` and `env`, for each of `commands`: exit codes and stderr.
async fn outcomes(
    commands: &[&str],
    config: &std::path::Path,
    env: &[(&str, &str)],
) -> Vec<(Option<i32>, String)> {
    let mut outcomes = Vec::new();
    for command in commands {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_wxbridge"))
            .arg("--config")
            .arg(config)
            .arg(command)
            .envs(env.iter().copied())
            .stdin(std::process::Stdio::null())
            .output();
        let out = tokio::time::timeout(std::time::Duration::from_secs(30), out)
            .await
            .expect("the command ends")
            .unwrap();
        outcomes.push((
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ));
    }
    outcomes
}

#[tokio::test]
async fn a_public_listener_without_a_token_or_with_an_empty_one_exits_2() {
    let world = World::new().await;
    let port = crate::brokers::free_port();
    let both = ["check-config", "run"];
    let public = world.config(&format!("http:\n  listen: 0.0.0.0:{port}\n"));
    for (code, stderr) in outcomes(&both, &public, &[]).await {
        assert_eq!(code, Some(2), "{stderr}");
        assert!(
            stderr.contains("http.listen") && stderr.contains("http.token must be set"),
            "{stderr}"
        );
    }
    let plain = world.config(&format!("http:\n  listen: 127.0.0.1:{port}\n"));
    let env = [("WXBRIDGE__HTTP__LISTEN", "0.0.0.0:8787")];
    for (code, stderr) in outcomes(&both, &plain, &env).await {
        assert_eq!(code, Some(2), "{stderr}");
        assert!(
            stderr.contains("WXBRIDGE__HTTP__LISTEN: http.listen"),
            "{stderr}"
        );
    }
    let from_env = world.config(&format!(
        "http:\n  listen: 127.0.0.1:{port}\n  token: ${{WXBRIDGE_TOKEN}}\n"
    ));
    let cases: [(&[(&str, &str)], &str); 2] = [
        (&[("WXBRIDGE_TOKEN", "")], "WXBRIDGE_TOKEN is empty"),
        (
            &[("WXBRIDGE_TOKEN", "t0k"), ("WXBRIDGE__HTTP__TOKEN", "")],
            "WXBRIDGE__HTTP__TOKEN: is empty",
        ),
    ];
    for (env, expected) in cases {
        for (code, stderr) in outcomes(&both, &from_env, env).await {
            assert_eq!(code, Some(2), "{env:?}: {stderr}");
            assert!(stderr.contains(expected), "{env:?}: {stderr}");
        }
    }
    let opted_out = world.config(&format!(
        "http:\n  listen: 0.0.0.0:{port}\n  insecure_no_auth: true\n"
    ));
    let (code, stderr) = &outcomes(&["check-config"], &opted_out, &[]).await[0];
    assert_eq!(*code, Some(0), "an explicit opt-out is valid: {stderr}");
}

#[tokio::test]
async fn a_state_dir_that_another_user_owns_stops_every_command() {
    let world = World::new().await;
    let state = world.state_dir();
    std::fs::create_dir_all(&state).unwrap();
    // Only root can give a directory away; elsewhere the unit tests cover the rule.
    if std::os::unix::fs::chown(&state, Some(65534), None).is_err() {
        return;
    }
    for command in ["run", "contacts"] {
        let (code, _, stderr) = world.command(&[command]).await;
        assert_eq!(code, 1, "{command}: {stderr}");
        assert!(
            stderr.contains("cannot use the state directory") && stderr.contains("uid 65534"),
            "{command}: {stderr}"
        );
    }
}

#[tokio::test]
async fn sigterm_stops_run_promptly_while_stdin_stays_open() {
    let world = World::new().await;
    // The stdio default: stdin is read for commands and stays open (the harness holds it).
    let mut bridge = world.start(&["run"]);
    bridge.wait_state("login_required").await;
    let started = tokio::time::Instant::now();
    assert_eq!(bridge.stop().await, 0);
    let took = started.elapsed();
    // A stdin read on tokio's blocking pool held the runtime's shutdown for over a second.
    eprintln!("run stopped {took:?} after SIGTERM");
    assert!(took < std::time::Duration::from_secs(1), "took {took:?}");
}
