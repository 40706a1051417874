//! The bridge under test: finding the `wxbridge` binary, writing its config, running it as a
//! separate process (stdout read as JSON lines into a [`Tally`], stderr to a log file), and
//! stopping it with SIGTERM as a service manager would.
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};

use crate::receivers::Tasks;
use crate::tally::Tally;

/// How long a bridge gets to exit after SIGTERM before it is sent a second one.
pub const GRACE: Duration = Duration::from_secs(1);

/// The wxbridge binary: `explicit` if given, else `wxbridge` beside this executable or one
/// directory up (a test executable lives in `target/<profile>/deps`).
pub fn locate(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = explicit {
        if p.is_file() {
            return Ok(p.to_path_buf());
        }
        bail!("--bridge {}: no such file", p.display());
    }
    let exe = std::env::current_exe().context("cannot find this executable's path")?;
    let dir = exe.parent().context("this executable has no directory")?;
    let candidates = [dir.join("wxbridge"), dir.join("../wxbridge")];
    candidates
        .iter()
        .find(|p| p.is_file())
        .map(|p| p.canonicalize().unwrap_or_else(|_| p.clone()))
        .with_context(|| {
            format!(
                "no wxbridge binary beside {}; build it first (`cargo build --release --bin \
                 wxbridge`) or pass --bridge PATH",
                exe.display()
            )
        })
}

/// Where a bridge sends its events.
#[derive(Debug, Clone, Default)]
pub struct Sinks {
    /// mosquitto's port.
    pub mqtt: Option<u16>,
    /// nats-server's port, and whether to publish to JetStream.
    pub nats: Option<(u16, bool)>,
    /// A webhook URL.
    pub webhook: Option<String>,
}

impl Sinks {
    /// No sink: events go to stdout (the embedded default).
    pub fn none() -> Sinks {
        Sinks::default()
    }
}

/// Everything one bridge config needs.
#[derive(Debug, Clone)]
pub struct BridgeConfig<'a> {
    /// `account`: names topics, subjects, the MQTT client id and the JetStream stream.
    pub account: &'a str,
    /// A fresh directory per bridge: `state/`, the QR, the config and the log go there.
    pub dir: &'a Path,
    /// The fake's URL.
    pub login_url: &'a str,
    /// Where events go.
    pub sinks: &'a Sinks,
    /// `send.rate.per_second` (and the burst).
    pub send_rate: u32,
    /// The HTTP API's port on 127.0.0.1: the benchmark reads the spool's fsync counter from
    /// `/metrics` there.
    pub http_port: u16,
    /// More top-level YAML sections, appended as given (empty: none).
    pub extra: &'a str,
}

/// A YAML string (JSON's quoting is valid YAML).
fn quoted(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

impl BridgeConfig<'_> {
    /// The JetStream stream of this account.
    pub fn stream(account: &str) -> String {
        format!("BENCH_{account}")
    }

    /// The config file's text. `send.limits` is set out of the way: the benchmark measures
    /// the bridge's own path, not the human pace the limits add on purpose.
    pub fn yaml(&self) -> String {
        let path = |p: PathBuf| quoted(&p.display().to_string());
        let mut y = format!(
            "account: {account}\n\
             state_dir: {state}\n\
             wechat:\n  login_url: {url}\n  qr_png: {qr}\n\
             retry:\n  initial: 50ms\n  max: 1s\n\
             send:\n  rate: {{ per_second: {rate}, burst: {rate} }}\n\
             \x20 limits: {{ per_recipient: {{ per_minute: 1000000, per_hour: 1000000 }}, \
             per_day: 1000000, jitter: [0s, 0s] }}\n",
            account = self.account,
            state = path(self.dir.join("state")),
            url = quoted(self.login_url),
            qr = path(self.dir.join("qr.png")),
            rate = self.send_rate,
        );
        y.push_str(&format!("http:\n  listen: 127.0.0.1:{}\n", self.http_port));
        if let Some(port) = self.sinks.mqtt {
            y.push_str(&format!(
                "mqtt:\n  url: mqtt://127.0.0.1:{port}\n  qos: 1\n"
            ));
        }
        if let Some((port, jetstream)) = self.sinks.nats {
            y.push_str(&format!(
                "nats:\n  url: nats://127.0.0.1:{port}\n  jetstream: {jetstream}\n  stream: {}\n",
                BridgeConfig::stream(self.account)
            ));
        }
        if let Some(url) = &self.sinks.webhook {
            // `login` too: the receiver takes it as the sign that the bridge is online.
            y.push_str(&format!(
                "webhooks:\n  - url: {}\n    events: [message, login]\n",
                quoted(url)
            ));
        }
        y.push_str(self.extra);
        y
    }
}

/// A running `wxbridge run`; killed if dropped while running.
pub struct BridgeProcess {
    child: Child,
    pid: u32,
    /// When the process was spawned.
    pub started: Instant,
    /// Held open: with no sink the bridge reads commands from stdin and stops at its end.
    _stdin: Option<ChildStdin>,
    _reader: Tasks,
}

impl BridgeProcess {
    /// Writes `config` into its directory and starts `bin run` with it. Stdout lines go to
    /// `tally`: `state` lines mark it online, `message` lines are recorded.
    pub fn spawn(
        bin: &Path,
        config: &BridgeConfig<'_>,
        tally: Arc<Tally>,
    ) -> Result<BridgeProcess> {
        let config_path = config.dir.join("bridge.yaml");
        std::fs::write(&config_path, config.yaml())?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(config.dir.join("bridge.log"))?;
        let started = Instant::now();
        let mut child = Command::new(bin)
            .arg("--config")
            .arg(&config_path)
            .arg("run")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let pid = child.id().context("the bridge exited at once")?;
        crate::machine::metrics_port(pid, config.http_port);
        let stdout = child.stdout.take().context("no stdout pipe")?;
        let reader = tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if line.starts_with("{\"kind\":\"message\"") {
                    tally.record(line.as_bytes());
                } else if line.starts_with("{\"kind\":\"state\"")
                    && line.contains("\"state\":\"online\"")
                {
                    tally.mark_online();
                }
            }
        });
        Ok(BridgeProcess {
            _stdin: child.stdin.take(),
            child,
            pid,
            started,
            _reader: Tasks(vec![reader]),
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Stops the bridge as a service manager would: SIGTERM, then a second SIGTERM if it has
    /// not exited after [`GRACE`] (the bridge documents that a second signal exits at once),
    /// then SIGKILL. Stdin is closed first: a stdin read cannot be cancelled, so the stdio
    /// bridge would wait out its grace period for it.
    pub async fn stop(mut self) -> Result<()> {
        drop(self._stdin.take());
        for wait in [GRACE, Duration::from_secs(5)] {
            let _ = Command::new("kill")
                .args(["-TERM", &self.pid.to_string()])
                .status()
                .await;
            if let Ok(status) = tokio::time::timeout(wait, self.child.wait()).await {
                status?;
                return Ok(());
            }
        }
        let _ = self.child.kill().await;
        bail!("the bridge did not stop on SIGTERM")
    }
}
