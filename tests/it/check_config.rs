//! `check-config` and `run` agree: on a table of configs covering every sink-specific rule and
//! every file a config can name, both refuse the bad ones with exit 2 and the same message
//! naming the key, and for the good ones `check-config` exits 0 while `run` gets past its
//! config, reaches WeChat's login and stops cleanly on SIGTERM.
use std::path::Path;

use futures_util::future::join_all;

use crate::brokers::{self, free_port};
use crate::support::{Bridge, World, WAIT};

/// What both commands must do with a config.
enum Expect {
    /// Exit 2, saying what is wrong with this key.
    Refused(&'static str),
    /// `check-config` exits 0; `run` starts.
    Accepted,
}

/// One row of the table: a name for failures, the YAML added to the world's config, and what
/// both commands must do with it.
struct Case {
    name: &'static str,
    yaml: String,
    expect: Expect,
}

/// The lines `wxbridge` itself wrote on stderr (its refusals), not the log's.
fn said(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.starts_with("wxbridge: "))
        .collect()
}

/// Runs a one-shot `wxbridge <command>` to its end: (exit code, stderr).
async fn one_shot(config: &Path, command: &str) -> (Option<i32>, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_wxbridge"))
        .arg("--config")
        .arg(config)
        .arg(command)
        .stdin(std::process::Stdio::null())
        .output();
    let out = tokio::time::timeout(WAIT, out)
        .await
        .expect("the command ends")
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Both commands on one case, in a world of its own; panics naming the case on disagreement.
async fn check(case: Case) {
    let world = World::new().await;
    let config = world.config(&case.yaml);
    let name = case.name;
    let (checked, check_err) = one_shot(&config, "check-config").await;
    match case.expect {
        Expect::Refused(key) => {
            let (ran, run_err) = one_shot(&config, "run").await;
            assert_eq!(checked, Some(2), "{name}: check-config: {check_err}");
            assert_eq!(ran, Some(2), "{name}: run: {run_err}");
            let said_check = said(&check_err);
            assert_eq!(said_check.len(), 1, "{name}: {check_err}");
            assert!(said_check[0].contains(key), "{name}: {check_err}");
            assert_eq!(said_check, said(&run_err), "{name}: both say the same");
            assert!(
                world.fake.requests("").is_empty(),
                "{name}: run refused the config before reaching WeChat"
            );
        }
        Expect::Accepted => {
            assert_eq!(checked, Some(0), "{name}: check-config: {check_err}");
            let bridge = Bridge::spawn(&config, &["run"]);
            tokio::time::timeout(WAIT, world.fake.wait_for_login_poll())
                .await
                .unwrap_or_else(|_| panic!("{name}: run reaches the login: {}", bridge.stderr()));
            let stderr = bridge.stderr();
            assert_eq!(
                bridge.stop().await,
                0,
                "{name}: run stops cleanly: {stderr}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_config_and_run_agree_on_every_sink_rule_and_named_file() {
    if !crate::tls::have_openssl() {
        return;
    }
    let files = tempfile::tempdir().unwrap();
    crate::tls::certificates(files.path());
    let f = files.path().display().to_string();
    std::fs::write(files.path().join("garbage.pem"), "not a PEM file\n").unwrap();
    let mosquitto = brokers::mosquitto();
    let nats = brokers::nats_server();
    let closed = free_port();
    let refused = |name, yaml: String, key| Case {
        name,
        yaml,
        expect: Expect::Refused(key),
    };
    let accepted = |name, yaml: String| Case {
        name,
        yaml,
        expect: Expect::Accepted,
    };
    let cases =
        vec![
        refused(
            "missing CA",
            format!("mqtt:\n  url: mqtts://127.0.0.1:{closed}\n  ca_file: {f}/missing.pem\n"),
            "mqtt.ca_file",
        ),
        refused(
            "a CA file without a certificate",
            format!("mqtt:\n  url: mqtts://127.0.0.1:{closed}\n  ca_file: {f}/garbage.pem\n"),
            "mqtt.ca_file",
        ),
        refused(
            "an unreadable client key",
            format!(
                "mqtt:\n  url: mqtts://127.0.0.1:{closed}\n  ca_file: {f}/ca.pem\n  \
                 cert_file: {f}/client.pem\n  key_file: {f}\n"
            ),
            "mqtt.key_file",
        ),
        refused(
            "a client certificate file without a certificate",
            format!(
                "mqtt:\n  url: mqtts://127.0.0.1:{closed}\n  ca_file: {f}/ca.pem\n  \
                 cert_file: {f}/garbage.pem\n  key_file: {f}/client.key\n"
            ),
            "mqtt.cert_file",
        ),
        refused(
            "a client certificate without its key",
            format!("mqtt:\n  url: mqtt://127.0.0.1:{closed}\n  cert_file: {f}/client.pem\n"),
            "mqtt.cert_file",
        ),
        refused("an MQTT QoS of 3", "mqtt: {qos: 3}\n".to_owned(), "mqtt.qos"),
        refused(
            "bad NATS credentials",
            format!("nats:\n  credentials_file: {f}/garbage.pem\n"),
            "nats.credentials_file",
        ),
        refused(
            "missing NATS credentials",
            format!("nats:\n  credentials_file: {f}/missing.creds\n"),
            "nats.credentials_file",
        ),
        refused(
            "a NATS CA file without a certificate",
            format!("nats:\n  url: tls://127.0.0.1:{closed}\n  ca_file: {f}/garbage.pem\n"),
            "nats.ca_file",
        ),
        refused(
            "a bad stream name",
            "nats: {jetstream: true, stream: WE.CHAT}\n".to_owned(),
            "nats.stream",
        ),
        refused(
            "an empty subject token",
            "nats: {subject_prefix: 'we..chat'}\n".to_owned(),
            "nats.subject_prefix",
        ),
        refused(
            "a wildcard in the subject prefix",
            "nats: {subject_prefix: 'we.*'}\n".to_owned(),
            "nats.subject_prefix",
        ),
        refused(
            "a whsec_ secret that is not base64",
            "webhooks:\n  - url: http://127.0.0.1:9/hook\n    secret: whsec_not*base64\n"
                .to_owned(),
            "webhooks[0].secret",
        ),
        refused(
            "an empty webhook secret",
            "webhooks:\n  - url: http://127.0.0.1:9/hook\n  - url: http://127.0.0.1:9/hook\n    \
             secret: ''\n"
                .to_owned(),
            "webhooks[1].secret",
        ),
        refused(
            "a public listener without a token",
            format!("http:\n  listen: 0.0.0.0:{}\n", free_port()),
            "http.listen",
        ),
        refused(
            "a media path that does not exist",
            format!("media:\n  paths: [{f}, {f}/missing]\n"),
            "media.paths[1]",
        ),
        refused(
            "a media path that is a file",
            format!("media:\n  paths: [{f}/garbage.pem]\n"),
            "media.paths[0]",
        ),
        refused(
            "a media store that is a file",
            format!("media:\n  dir: {f}/garbage.pem\n"),
            "media.dir",
        ),
        accepted("the stdio default", String::new()),
        accepted("a media path that is a directory", format!("media:\n  paths: [{f}]\n")),
        accepted(
            "MQTT",
            format!("mqtt:\n  url: mqtt://127.0.0.1:{}\n", mosquitto.port),
        ),
        accepted(
            "MQTT over TLS with a CA and a client identity, broker away",
            format!(
                "mqtt:\n  url: mqtts://127.0.0.1:{closed}\n  ca_file: {f}/ca.pem\n  \
                 cert_file: {f}/client.pem\n  key_file: {f}/client.key\n"
            ),
        ),
        accepted(
            "NATS with JetStream",
            format!(
                "nats:\n  url: nats://127.0.0.1:{}\n  jetstream: true\n  stream: WECHAT_TEST\n  \
                 subject_prefix: we.chat\n",
                nats.port
            ),
        ),
        accepted(
            "NATS over TLS with a CA, server away",
            format!("nats:\n  url: tls://127.0.0.1:{closed}\n  ca_file: {f}/ca.pem\n"),
        ),
        accepted(
            "a signed webhook and the HTTP API",
            format!(
                "webhooks:\n  - url: http://127.0.0.1:9/hook\n    \
                 secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n\
                 http:\n  listen: 127.0.0.1:{}\n",
                free_port()
            ),
        ),
    ];
    join_all(cases.into_iter().map(check)).await;
}
