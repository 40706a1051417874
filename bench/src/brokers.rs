//! The real brokers the bridge publishes to: `mosquitto` and `nats-server -js`, each started
//! on a free loopback port from a generated config in a temp dir, and killed on drop.
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};

/// A free TCP port on 127.0.0.1 (bound, then released for the server to take).
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// `name` from the usual system directories, else as given (found on `PATH`).
fn find_binary(name: &str) -> PathBuf {
    ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"]
        .iter()
        .map(|dir| Path::new(dir).join(name))
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from(name))
}

/// Waits until something accepts connections on `port`, failing early if `child` exits.
pub async fn wait_for_port(port: u16, child: &mut Child, name: &str) -> Result<()> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            bail!("{name} exited early with {status}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("{name} did not listen on port {port} within 15 s")
}

/// A broker process; killed when dropped.
pub struct Broker {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Its config, store and log.
    pub dir: tempfile::TempDir,
}

impl Broker {
    async fn spawn(
        name: &str,
        args: Vec<String>,
        port: u16,
        dir: tempfile::TempDir,
    ) -> Result<Broker> {
        let log = std::fs::File::create(dir.path().join("broker.log"))?;
        let mut child = Command::new(find_binary(name))
            .args(&args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {name}; install Debian's `{name}` package"))?;
        wait_for_port(port, &mut child, name).await?;
        Ok(Broker { child, port, dir })
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// mosquitto on a free port: anonymous access on loopback, in-memory sessions, otherwise its
/// defaults (among them `set_tcp_nodelay false`, which BENCHMARKS.md's notes come back to).
/// `user root` keeps it from switching to the `mosquitto` user when the benchmark runs as
/// root; it has no effect otherwise.
pub async fn mosquitto() -> Result<Broker> {
    mosquitto_with("").await
}

/// [`mosquitto`] with `set_tcp_nodelay true`, as the README advises for send latency: the
/// broker then writes a command to the bridge at once, not after the bridge's delayed ACK of
/// the broker's last small write.
pub async fn mosquitto_nodelay() -> Result<Broker> {
    mosquitto_with("set_tcp_nodelay true\n").await
}

async fn mosquitto_with(extra: &str) -> Result<Broker> {
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let conf = dir.path().join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\nuser root\n\
             message_size_limit 0\nmax_queued_messages 100000\n{extra}"
        ),
    )?;
    let args = vec!["-c".to_owned(), conf.display().to_string()];
    Broker::spawn("mosquitto", args, port, dir).await
}

/// nats-server with JetStream on a free port, its store in a temp dir.
pub async fn nats_server() -> Result<Broker> {
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let store = dir.path().join("js");
    let args = vec![
        "-a".to_owned(),
        "127.0.0.1".to_owned(),
        "-p".to_owned(),
        port.to_string(),
        "-js".to_owned(),
        "-sd".to_owned(),
        store.display().to_string(),
    ];
    Broker::spawn("nats-server", args, port, dir).await
}
