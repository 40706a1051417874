//! What the numbers were measured on (CPU model, cores, date) and what a process costs,
//! read from Linux's `/proc`: resident memory (`VmRSS`, its peak `VmHWM`) and CPU time.
use std::path::Path;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Clock ticks per second of `/proc/<pid>/stat`'s times. `getconf CLK_TCK` is 100 on every
/// Linux architecture the project builds for; reading it for real needs libc's `sysconf`.
pub const CLOCK_TICKS: f64 = 100.0;

/// The machine a report was measured on.
#[derive(Debug, Clone)]
pub struct Machine {
    /// `model name` from `/proc/cpuinfo`.
    pub cpu: String,
    /// Logical CPUs available to this process.
    pub cores: usize,
    /// The day of the run, `YYYY-MM-DD` (UTC).
    pub date: String,
}

impl Machine {
    /// Describes this machine.
    pub fn detect() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| {
                let (key, value) = l.split_once(':')?;
                (key.trim() == "model name").then(|| value.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown CPU".to_owned());
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let date = time::OffsetDateTime::now_utc()
            .format(time::macros::format_description!("[year]-[month]-[day]"))
            .unwrap_or_default();
        Machine { cpu, cores, date }
    }
}

/// The 1-minute load average (`/proc/loadavg`): how busy the machine was, the benchmark
/// included.
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// A process's memory and CPU at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    /// Resident set size now, in KiB.
    pub rss_kib: u64,
    /// The highest resident set size so far (`VmHWM`), in KiB.
    pub hwm_kib: u64,
    /// Of the resident set, anonymous memory (heap, stacks: `RssAnon`), in KiB.
    pub anon_kib: u64,
    /// Of the resident set, file-backed pages (the binary's code as it gets run: `RssFile`),
    /// in KiB.
    pub file_kib: u64,
    /// User + system CPU time so far.
    pub cpu: Duration,
    /// Bytes the process caused to be written to storage so far (`write_bytes` in
    /// `/proc/<pid>/io`; counted when a page is first dirtied between two write-backs).
    pub write_bytes: Option<u64>,
    /// The spool's syncs to storage so far (`wxbridge_spool_fsyncs_total` from the bridge's
    /// `/metrics`; `None` for a bridge without that counter).
    pub spool_fsyncs: Option<u64>,
}

/// The HTTP port of each bridge process the benchmark started, by pid.
static METRICS_PORTS: std::sync::Mutex<Vec<(u32, u16)>> = std::sync::Mutex::new(Vec::new());

/// Notes that bridge `pid` serves `/metrics` on 127.0.0.1:`port`.
pub fn metrics_port(pid: u32, port: u16) {
    let mut ports = METRICS_PORTS.lock().unwrap_or_else(|e| e.into_inner());
    ports.retain(|&(p, _)| p != pid);
    ports.push((pid, port));
}

/// `wxbridge_spool_fsyncs_total` of bridge `pid`, read with a plain blocking GET (loopback,
/// a few hundred microseconds).
fn spool_fsyncs(pid: u32) -> Option<u64> {
    use std::io::{Read, Write};
    let port = METRICS_PORTS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .find(|&&(p, _)| p == pid)?
        .1;
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut body = String::new();
    stream.read_to_string(&mut body).ok()?;
    counter_total(&body, "wxbridge_spool_fsyncs_total")
}

/// The sum of counter `name` over all its series in a Prometheus text exposition (one series
/// per account since metrics carry an `account` label); `None` when it has none.
fn counter_total(exposition: &str, name: &str) -> Option<u64> {
    let values: Vec<f64> = exposition
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?;
            // `name {…} v` or `name v`, not another metric that starts with `name`.
            let rest = match rest.strip_prefix('{') {
                Some(labelled) => &labelled[labelled.find('}')? + 1..],
                None => rest,
            };
            rest.strip_prefix(' ')?.trim().parse::<f64>().ok()
        })
        .collect();
    (!values.is_empty()).then(|| values.iter().sum::<f64>() as u64)
}

/// `write_bytes` of `/proc/<pid>/io`.
fn write_bytes(pid: u32) -> Option<u64> {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    io.lines()
        .find_map(|l| l.strip_prefix("write_bytes:")?.trim().parse().ok())
}

/// Reads `pid`'s usage; `None` once the process is gone.
pub fn usage(pid: u32) -> Option<Usage> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let kib = |key: &str| {
        status.lines().find_map(|l| {
            let rest = l.strip_prefix(key)?.strip_prefix(':')?;
            rest.split_whitespace().next()?.parse::<u64>().ok()
        })
    };
    Some(Usage {
        rss_kib: kib("VmRSS")?,
        hwm_kib: kib("VmHWM")?,
        anon_kib: kib("RssAnon").unwrap_or_default(),
        file_kib: kib("RssFile").unwrap_or_default(),
        cpu: cpu_time(&stat)?,
        write_bytes: write_bytes(pid),
        spool_fsyncs: spool_fsyncs(pid),
    })
}

/// Resets `pid`'s peak resident memory (`VmHWM`) to what it holds now, by writing `5` to
/// `/proc/<pid>/clear_refs` (Linux 4.0 and later; allowed for a process of the same user), so
/// the next [`usage`] reads the peak since this call rather than since the process started.
/// Answers whether the reset was made.
pub fn reset_peak(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// utime + stime of a `/proc/<pid>/stat` line. The command name (field 2) may hold spaces
/// and parentheses, so fields are counted after its closing `)`: state is the first, utime
/// the 12th and stime the 13th.
fn cpu_time(stat: &str) -> Option<Duration> {
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_secs_f64(
        (utime + stime) as f64 / CLOCK_TICKS,
    ))
}

/// Samples a process's RSS every 100 ms until stopped.
pub struct RssSampler {
    stop: watch::Sender<bool>,
    task: JoinHandle<Vec<u64>>,
}

impl RssSampler {
    /// Starts sampling `pid`.
    pub fn start(pid: u32) -> RssSampler {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stopped.changed() => break,
                }
                match usage(pid) {
                    Some(u) => samples.push(u.rss_kib),
                    None => break,
                }
            }
            samples
        });
        RssSampler { stop, task }
    }

    /// Stops and answers the samples in KiB, oldest first.
    pub async fn finish(self) -> Vec<u64> {
        let _ = self.stop.send(true);
        self.task.await.unwrap_or_default()
    }
}

/// The size in bytes of a file, or of every file below a directory.
pub fn disk_bytes(path: &Path) -> u64 {
    let Ok(meta) = std::fs::metadata(path) else {
        return 0;
    };
    if meta.is_file() {
        return meta.len();
    }
    std::fs::read_dir(path)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| disk_bytes(&e.path()))
                .sum::<u64>()
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_counter_is_summed_over_its_labelled_series_and_not_confused_with_a_longer_name() {
        let text = "# TYPE wxbridge_spool_fsyncs_total counter\n\
            wxbridge_spool_fsyncs_total{account=\"home\"} 12\n\
            wxbridge_spool_fsyncs_total{account=\"office\"} 30\n\
            wxbridge_spool_fsyncs_total_other 99\n";
        let name = "wxbridge_spool_fsyncs_total";
        assert_eq!(counter_total(text, name), Some(42));
        assert_eq!(
            counter_total("wxbridge_spool_fsyncs_total 7\n", name),
            Some(7)
        );
        assert_eq!(counter_total("other 1\n", name), None);
    }

    #[test]
    fn cpu_time_counts_fields_after_the_command_name() {
        let stat =
            "4242 (wx (br) idge) S 1 4242 4242 0 -1 4194560 2000 0 0 0 150 25 0 0 20 0 9 0 1 1 1";
        assert_eq!(cpu_time(stat), Some(Duration::from_millis(1750)));
    }

    #[test]
    fn a_reset_peak_forgets_memory_given_back() {
        let pid = std::process::id();
        // Filled with ones, so every page is touched; above malloc's mmap threshold, so
        // dropping it hands the pages back to the kernel.
        let block = vec![1u8; 64 << 20];
        std::hint::black_box(&block);
        drop(block);
        let before = usage(pid).expect("our own /proc entry");
        assert!(
            reset_peak(pid),
            "clear_refs is writable for our own process"
        );
        let after = usage(pid).expect("our own /proc entry");
        assert!(
            after.hwm_kib + 32 * 1024 < before.hwm_kib,
            "VmHWM {} KiB before the reset, {} KiB after",
            before.hwm_kib,
            after.hwm_kib
        );
    }

    #[test]
    fn this_process_has_usage() {
        let u = usage(std::process::id()).expect("our own /proc entry");
        assert!(u.rss_kib > 0 && u.hwm_kib >= u.rss_kib);
    }
}
