//! The test harness: a fake WeChat on 127.0.0.1, a state dir in a temp folder, and the real
//! `wxbridge` binary started against them, its stdout read as JSON lines.
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;
use wxbridge_fake::{FakeWeChat, Options};

/// How long a scenario waits for something that should happen promptly.
pub const WAIT: Duration = Duration::from_secs(20);

/// The `send.limits` line the harness writes (one line, so a test can replace it).
pub const GENEROUS_LIMITS: &str =
    "limits: { per_recipient: { per_minute: 100000, per_hour: 100000 }, \
     per_day: 1000000, jitter: [0s, 0s] }";

/// A fake WeChat and a state dir to run bridges in.
pub struct World {
    pub fake: FakeWeChat,
    pub dir: tempfile::TempDir,
}

impl World {
    /// A fake with short holds, so scenarios don't wait 25 s for a long-poll.
    pub async fn new() -> World {
        Self::with(Options::default()).await
    }

    /// A fake with these options (holds shortened).
    pub async fn with(opts: Options) -> World {
        let fake = FakeWeChat::start_with(Options {
            poll_hold: Duration::from_millis(300),
            sync_hold: Duration::from_millis(500),
            ..opts
        })
        .await;
        World {
            fake,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// The config file the bridges of this world use; `extra` is appended YAML. `send.limits`
    /// is [`GENEROUS_LIMITS`]: tests that are not about the limits send at test speed.
    pub fn config(&self, extra: &str) -> PathBuf {
        let path = self.dir.path().join("bridge.yaml");
        let yaml = format!(
            "account: test\n\
             state_dir: {state}\n\
             wechat:\n  login_url: {url}\n  qr_png: {qr}\n\
             retry:\n  initial: 50ms\n  max: 500ms\n\
             send:\n  rate: {{ per_second: 50, burst: 50 }}\n  {limits}\n\
             {extra}",
            state = self.state_dir().display(),
            url = self.fake.url(),
            qr = self.dir.path().join("qr.png").display(),
            limits = GENEROUS_LIMITS,
        );
        std::fs::write(&path, yaml).unwrap();
        path
    }

    /// Starts `wxbridge <args>` with this world's config.
    pub fn start(&self, args: &[&str]) -> Bridge {
        let config = self.config("");
        Bridge::spawn(&config, args)
    }

    /// Runs a one-shot command to completion: (exit code, stdout, stderr).
    pub async fn command(&self, args: &[&str]) -> (i32, String, String) {
        let config = self.config("");
        let out = Command::new(env!("CARGO_BIN_EXE_wxbridge"))
            .arg("--config")
            .arg(&config)
            .args(args)
            .stdin(Stdio::null())
            .output();
        let out = tokio::time::timeout(Duration::from_secs(60), out)
            .await
            .expect("command finished")
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Starts `run`, scans and confirms its QR code, and waits until it is online.
    pub async fn run_logged_in(&self) -> Bridge {
        let mut bridge = self.start(&["run"]);
        self.scan_and_confirm().await;
        bridge.wait_state("online").await;
        bridge
    }

    /// Plays the phone: scan the QR code being polled, then confirm.
    pub async fn scan_and_confirm(&self) {
        tokio::time::timeout(WAIT, self.fake.wait_for_login_poll())
            .await
            .expect("the bridge polls a QR code");
        self.fake.scan();
        self.fake.confirm();
    }
}

/// A running `wxbridge` process.
pub struct Bridge {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::UnboundedReceiver<Value>,
    /// Every stdout line seen so far, in order.
    pub seen: Vec<Value>,
    stderr: Arc<Mutex<String>>,
}

impl Bridge {
    pub fn spawn(config: &Path, args: &[&str]) -> Bridge {
        Self::spawn_with_env(config, args, &[])
    }

    /// [`Bridge::spawn`] with extra environment variables.
    pub fn spawn_with_env(config: &Path, args: &[&str], env: &[(&str, &str)]) -> Bridge {
        Self::spawn_under(&[], config, args, env)
    }

    /// [`Bridge::spawn_with_env`], the binary started through `wrapper`: a command that execs
    /// its arguments in the same process, such as `prlimit --nofile=256:256 --`.
    pub fn spawn_under(
        wrapper: &[&str],
        config: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Bridge {
        let bin = env!("CARGO_BIN_EXE_wxbridge");
        let mut command = match wrapper.split_first() {
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        let mut child = command
            .arg("--config")
            .arg(config)
            .args(args)
            .env("RUST_LOG", "wxbridge=debug,info")
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the wxbridge binary starts");
        let (tx, lines) = mpsc::unbounded_channel();
        let stdout = child.stdout.take().unwrap();
        tokio::spawn(async move {
            let mut r = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = r.next_line().await {
                let v: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line}"));
                assert!(v["kind"].is_string(), "stdout line without a kind: {line}");
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let err_buf = stderr.clone();
        let err = child.stderr.take().unwrap();
        tokio::spawn(async move {
            let mut r = BufReader::new(err).lines();
            while let Ok(Some(line)) = r.next_line().await {
                if std::env::var_os("WXBRIDGE_TEST_STDERR").is_some() {
                    eprintln!("bridge: {line}");
                }
                let mut b = err_buf.lock().unwrap();
                b.push_str(&line);
                b.push('\n');
            }
        });
        let stdin = child.stdin.take();
        Bridge {
            child,
            stdin,
            lines,
            seen: Vec::new(),
            stderr,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("still running")
    }

    /// What the bridge wrote on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The next stdout line matching `pred`, skipping others (they stay in `seen`).
    pub async fn next_where(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(v)) => {
                    crate::schema::assert_valid(&v);
                    self.seen.push(v.clone());
                    if pred(&v) {
                        return v;
                    }
                }
                Ok(None) => panic!(
                    "stdout closed while waiting for {what}; stderr:\n{}",
                    self.stderr()
                ),
                Err(_) => panic!(
                    "timed out waiting for {what}; seen {:#?}\nstderr:\n{}",
                    self.seen,
                    self.stderr()
                ),
            }
        }
    }

    /// A line already seen that matches `pred`, else the next one that does.
    pub async fn seen_or_next(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(v) = self.seen.iter().find(|v| pred(v)) {
            return v.clone();
        }
        self.next_where(what, pred).await
    }

    /// The `n`-th line (from 1) ever seen that matches `pred`, waiting for it if need be.
    /// Robust to state lines and spooled events overtaking each other on stdout.
    pub async fn nth(&mut self, what: &str, n: usize, pred: impl Fn(&Value) -> bool) -> Value {
        loop {
            if let Some(v) = self.seen.iter().filter(|v| pred(v)).nth(n - 1) {
                return v.clone();
            }
            self.next_where(what, &pred).await;
        }
    }

    /// Waits for a `state` line with this state.
    ///
    /// State lines are written as the state changes, while events go through the spool: a
    /// state line can overtake an event that a test waited for first. So when the latest
    /// state line already seen is this state, that one counts.
    pub async fn wait_state(&mut self, state: &str) -> Value {
        let latest = self.seen.iter().rev().find(|v| v["kind"] == "state");
        if let Some(v) = latest.filter(|v| v["state"] == state) {
            return v.clone();
        }
        self.next_where(&format!("state {state}"), |v| {
            v["kind"] == "state" && v["state"] == state
        })
        .await
    }

    /// The next `message` event.
    pub async fn next_message(&mut self) -> Value {
        self.next_where("a message", |v| v["kind"] == "message")
            .await
    }

    /// The next `result` line.
    pub async fn next_result(&mut self) -> Value {
        self.next_where("a result", |v| v["kind"] == "result").await
    }

    /// Collects the lines that arrive within `d`.
    pub async fn drain_for(&mut self, d: Duration) -> Vec<Value> {
        let mut got = Vec::new();
        let deadline = tokio::time::Instant::now() + d;
        while let Ok(Some(v)) = tokio::time::timeout_at(deadline, self.lines.recv()).await {
            crate::schema::assert_valid(&v);
            self.seen.push(v.clone());
            got.push(v);
        }
        got
    }

    /// Writes one line on stdin.
    pub async fn send_line(&mut self, line: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(line).await.unwrap();
        stdin.write_all(b"\n").await.unwrap();
        stdin.flush().await.unwrap();
    }

    /// SIGTERM, then waits for the exit code.
    pub async fn stop(mut self) -> i32 {
        let pid = self.pid().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .unwrap();
        let status = tokio::time::timeout(WAIT, self.child.wait())
            .await
            .expect("the bridge stops within the wait")
            .unwrap();
        status.code().unwrap_or(-1)
    }

    /// Waits for the process to exit on its own: (code, stderr).
    pub async fn exit(mut self) -> (i32, String) {
        drop(self.stdin.take());
        let status = tokio::time::timeout(WAIT, self.child.wait())
            .await
            .expect("the bridge exits")
            .unwrap();
        // Let the stderr reader catch up.
        tokio::time::sleep(Duration::from_millis(100)).await;
        (status.code().unwrap_or(-1), self.stderr())
    }
}

/// A message's `text`, for short assertions.
pub fn text(v: &Value) -> &str {
    v["text"].as_str().unwrap_or_default()
}
