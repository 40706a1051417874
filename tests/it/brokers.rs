//! Real brokers for the tests: `mosquitto` and `nats-server -js`, started on free loopback
//! ports from generated configs, waited for, and killed on drop. The binaries come from
//! Debian's packages (`.ci/run` installs them).
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::time::Instant;

/// A free TCP port on 127.0.0.1 for a broker or a listener to take, never the same twice in
/// this process.
///
/// Not a port the kernel picks (`bind(0)`): those come from the ephemeral range, where every
/// outgoing connection of the other tests also takes its local port, and two concurrent tests
/// could be handed the same one once it is released. Then a second broker cannot bind, the
/// test talks to another test's broker, and loses it when that test ends. These come from a
/// counter below the ephemeral range (Linux: 32768 and up), from a block chosen by the process
/// id so two test processes rarely meet, each checked free by binding it.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 10_000;
    const SPAN: u32 = 22_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let block = std::process::id() % 22 * 1_000;
    for _ in 0..SPAN {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (FIRST + (block + n) % SPAN) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!(
        "no free port on 127.0.0.1 between {FIRST} and {}",
        FIRST + SPAN
    );
}

fn find_binary(name: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"] {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return p;
        }
    }
    PathBuf::from(name)
}

fn wait_for_port(port: u16, child: &mut Child, name: &str) {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            // Whoever answered, it is not this broker if this broker has already exited
            // (could not bind).
            if let Ok(Some(status)) = child.try_wait() {
                panic!("{name} exited early with {status}; is port {port} taken?");
            }
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{name} exited early with {status}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{name} did not listen on port {port}");
}

/// A broker process; stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Broker {
    child: Option<Child>,
    /// Its port on 127.0.0.1.
    pub port: u16,
    program: PathBuf,
    args: Vec<String>,
    name: &'static str,
    /// Its working files (config, persistence, JetStream store).
    pub dir: tempfile::TempDir,
}

impl Broker {
    fn spawn(
        name: &'static str,
        program: PathBuf,
        args: Vec<String>,
        port: u16,
        dir: tempfile::TempDir,
    ) -> Broker {
        let mut b = Broker {
            child: None,
            port,
            program,
            args,
            name,
            dir,
        };
        b.start();
        b
    }

    /// Starts the process again on the same port with the same files.
    pub fn start(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("broker.log")).unwrap();
        let mut child = Command::new(&self.program)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {} ({e}); install it (see .ci/run)", self.name)
            });
        wait_for_port(self.port, &mut child, self.name);
        self.child = Some(child);
    }

    /// Stops it with SIGTERM (a clean shutdown: mosquitto saves its persistence) and waits.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The broker's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("broker.log")).unwrap_or_default()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// mosquitto on a free port: anonymous access on loopback, persistence on (so a SIGTERM
/// restart keeps persistent sessions and their queued messages). `user root` keeps it from
/// dropping to the `mosquitto` user when the tests run as root (CI does), which could not
/// write its database into the temp dir; it has no effect otherwise.
pub fn mosquitto() -> Broker {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let conf = dir.path().join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\nuser root\npersistence true\npersistence_location {}/\nmessage_size_limit 0\nmax_queued_messages 100000\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let args = vec!["-c".to_owned(), conf.display().to_string()];
    Broker::spawn("mosquitto", find_binary("mosquitto"), args, port, dir)
}

/// nats-server with JetStream on a free port, its store in a temp dir.
pub fn nats_server() -> Broker {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
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
    Broker::spawn("nats-server", find_binary("nats-server"), args, port, dir)
}
