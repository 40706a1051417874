//! The embedded default (DESIGN.md): every stdout line is one JSON object with a `kind`
//! (`message`, the `/event` kinds, `state`, `result`), and every stdin line is a send command.
//! Logs and the QR go to stderr, so `wxbridge run | jq` works with no broker. A line counts as
//! delivered once it is written and flushed. With several accounts every account's lines go
//! to the one standard output (each names its `account`), and a stdin command names the
//! account it is for (`"account": "home"`).
use std::sync::Arc;

use std::io::BufRead;

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch, Mutex};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{Control, DeliveryError, Intake, Link, Origin, Sink, Started};
use crate::event::{SessionStatus, StateEvent, StateKind};
use crate::spool::{Entry, Kind};

/// Standard output, shared by the sink and the state writer so their lines never interleave.
pub type SharedOut = Arc<Mutex<Box<dyn AsyncWrite + Send + Unpin>>>;

/// Wraps a writer (stdout, or a buffer in tests) for sharing.
pub fn shared(out: impl AsyncWrite + Send + Unpin + 'static) -> SharedOut {
    Arc::new(Mutex::new(Box::new(out)))
}

/// Writes the lines in one write (stdout's every write is a trip to a blocking thread).
async fn write_lines<'a>(
    out: &SharedOut,
    lines: impl Iterator<Item = &'a [u8]> + Clone,
) -> std::io::Result<()> {
    let mut text = Vec::with_capacity(lines.clone().map(|l| l.len() + 1).sum());
    for line in lines {
        push_line(&mut text, line);
        text.push(b'\n');
    }
    let mut out = out.lock().await;
    out.write_all(&text).await?;
    out.flush().await
}

/// Appends one JSON payload with U+0085, U+2028 and U+2029 written as `\u` escapes.
///
/// JSON allows them raw inside strings and serde_json leaves them raw, but line splitters
/// other than `read`'s (JavaScript's, Python's `str.splitlines`) break lines at them, and
/// every stdout line must be one whole object. Outside strings a payload has none of them
/// (it is serde_json's output), so the escape cannot change what the line means. Newlines
/// and other control characters never occur raw: serde_json escapes them, and the `raw`
/// entry is compacted (`wechat::compact`) from text JSON already forbids them in.
fn push_line(text: &mut Vec<u8>, line: &[u8]) {
    let mut copied = 0;
    let mut i = 0;
    while i < line.len() {
        let escape: Option<(&[u8], usize)> = match line[i..] {
            [0xC2, 0x85, ..] => Some((b"\\u0085", 2)),
            [0xE2, 0x80, 0xA8, ..] => Some((b"\\u2028", 3)),
            [0xE2, 0x80, 0xA9, ..] => Some((b"\\u2029", 3)),
            _ => None,
        };
        match escape {
            Some((escaped, len)) => {
                text.extend_from_slice(&line[copied..i]);
                text.extend_from_slice(escaped);
                i += len;
                copied = i;
            }
            None => i += 1,
        }
    }
    text.extend_from_slice(&line[copied..]);
}

/// The stdout sink and the stdin reader, ready to [`Prepared::start`]. There is no section to
/// check: `max_bytes` is `send.max_bytes` (a stdin line is kept up to one byte past it), and
/// `stop` is cancelled when stdout closes (the reader went away) and ends the stdin reader: it
/// is the bridge's own shutdown, not the sinks'.
pub fn prepare(max_bytes: usize, stop: CancellationToken) -> Prepared {
    Prepared { max_bytes, stop }
}

/// [`prepare`]'s answer.
#[derive(Debug)]
pub struct Prepared {
    max_bytes: usize,
    stop: CancellationToken,
}

impl Prepared {
    /// Starts the state writer and the stdin reader (tracked on `tracker`) and answers the sink.
    pub fn start(self, control: Control, tracker: &TaskTracker) -> Started<StdoutSink> {
        self.start_all(vec![control], tracker)
            .pop()
            .expect("one sink per control")
    }

    /// [`Prepared::start`] for several accounts: one sink per control (in that order), all
    /// writing whole lines to the one standard output (each line carries its `account`), a
    /// state writer per account, and one stdin reader. With several accounts each stdin
    /// command names its account (`"account": "home"`, taken out before the command is
    /// read); a line that does not is refused on stderr.
    pub fn start_all(
        self,
        controls: Vec<Control>,
        tracker: &TaskTracker,
    ) -> Vec<Started<StdoutSink>> {
        let out = shared(tokio::io::stdout());
        for control in &controls {
            tracker.spawn(write_states(
                control.status.clone(),
                control.account.clone(),
                out.clone(),
                control.shutdown.clone(),
            ));
        }
        let intakes = controls
            .iter()
            .map(|c| (c.account.clone(), c.intake.clone()))
            .collect();
        tracker.spawn(read_commands(self.max_bytes, intakes, self.stop.clone()));
        controls
            .iter()
            .map(|_| Started {
                sink: StdoutSink::new(out.clone(), self.stop.clone()),
                health: Link::connectionless(),
            })
            .collect()
    }
}

/// Spooled entries as JSON lines.
pub struct StdoutSink {
    out: SharedOut,
    closed: CancellationToken,
}

impl StdoutSink {
    /// A sink writing to `out`; a closed `out` (the reader went away) cancels `closed`.
    pub fn new(out: SharedOut, closed: CancellationToken) -> StdoutSink {
        StdoutSink { out, closed }
    }
}

impl Sink for StdoutSink {
    fn name(&self) -> &str {
        "stdout"
    }

    fn accepts(&self, _kind: Kind) -> bool {
        true
    }

    async fn deliver(&mut self, batch: &[Entry]) -> Result<(), DeliveryError> {
        write_lines(&self.out, batch.iter().map(|e| e.payload.as_slice()))
            .await
            .map_err(|e| {
                tracing::error!(cause = %e, "stdout is closed; stopping");
                self.closed.cancel();
                DeliveryError {
                    delivered: 0,
                    cause: e.to_string(),
                }
            })
    }
}

/// Writes a `state` line for the current state and each change, until shutdown.
async fn write_states(
    mut status: watch::Receiver<SessionStatus>,
    account: String,
    out: SharedOut,
    shutdown: CancellationToken,
) {
    loop {
        let line = {
            let current = status.borrow_and_update().clone();
            serde_json::to_vec(&StateEvent {
                kind: StateKind,
                account: account.clone(),
                status: current,
            })
        };
        if let Ok(line) = line {
            if write_lines(&out, std::iter::once(line.as_slice()))
                .await
                .is_err()
            {
                return;
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            changed = status.changed() => if changed.is_err() { return },
        }
    }
}

/// A line as read: its bytes, or for a line over the cap only its first `cap + 1` bytes (the
/// rest is skipped without being kept, so a 10 MB line costs no 10 MB).
fn read_capped_line(r: &mut impl BufRead, cap: usize) -> std::io::Result<Option<Vec<u8>>> {
    let mut buf = Vec::new();
    let mut any = false;
    loop {
        let chunk = match r.fill_buf() {
            Ok(chunk) => chunk,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            return Ok(any.then(|| trim_cr(buf)));
        }
        any = true;
        let (part, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (&chunk[..i], Some(i + 1)),
            None => (chunk, None),
        };
        let room = (cap + 1).saturating_sub(buf.len());
        buf.extend_from_slice(&part[..part.len().min(room)]);
        let used = done.unwrap_or(chunk.len());
        r.consume(used);
        if done.is_some() {
            return Ok(Some(trim_cr(buf)));
        }
    }
}

fn trim_cr(mut buf: Vec<u8>) -> Vec<u8> {
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    buf
}

/// Reads lines from `input` (capped as [`read_capped_line`] says) into `lines` until the
/// input ends or nobody listens. Blocking: runs on its own thread.
fn read_lines(mut input: impl BufRead, max_bytes: usize, lines: mpsc::Sender<Vec<u8>>) {
    loop {
        match read_capped_line(&mut input, max_bytes) {
            Ok(Some(line)) if line.iter().all(u8::is_ascii_whitespace) => {}
            Ok(Some(line)) => {
                if lines.blocking_send(line).is_err() {
                    return;
                }
            }
            Ok(None) => {
                tracing::debug!("stdin closed; no more commands from it");
                return;
            }
            Err(e) => {
                tracing::warn!(cause = %e, "cannot read stdin");
                return;
            }
        }
    }
}

/// Reads send commands from standard input, one per line, into the intake; the bridge answers
/// each with a result line. End of input leaves the bridge running.
///
/// The reads happen on a thread of their own that is never joined. Tokio's stdin reads on its
/// blocking pool, and a read blocked on a terminal or an idle pipe cannot be cancelled, so the
/// runtime's shutdown waited for it (about a second and a half after SIGTERM); a plain thread
/// blocked in `read` keeps nothing from exiting. One line is read ahead at most: the channel
/// holds one, so the bridge's pace still holds the reader back.
async fn read_commands(
    max_bytes: usize,
    intakes: Vec<(String, Intake)>,
    shutdown: CancellationToken,
) {
    let (tx, rx) = mpsc::channel(1);
    let spawned = std::thread::Builder::new()
        .name("stdin".to_owned())
        .spawn(move || read_lines(std::io::stdin().lock(), max_bytes, tx));
    if let Err(e) = spawned {
        tracing::error!(cause = %e, "cannot start the stdin reader; no commands from stdin");
        return;
    }
    submit_lines(rx, intakes, shutdown).await;
}

/// Hands each line to its account's intake, one at a time, until the lines end or shutdown.
async fn submit_lines(
    mut lines: mpsc::Receiver<Vec<u8>>,
    intakes: Vec<(String, Intake)>,
    shutdown: CancellationToken,
) {
    loop {
        let line = tokio::select! {
            _ = shutdown.cancelled() => return,
            l = lines.recv() => l,
        };
        let Some(bytes) = line else { return };
        let routed = match intakes.as_slice() {
            [(_, only)] => Ok((only, bytes)),
            several => route(several, &bytes),
        };
        match routed {
            Ok((intake, bytes)) => {
                if !intake.submit(bytes, Origin::Stdin).await {
                    return;
                }
            }
            Err(problem) => tracing::error!("stdin command refused: {problem}"),
        }
    }
}

/// The intake a stdin line names with `"account"` among several, and the line without that
/// field; or what is wrong with it.
fn route<'a>(
    intakes: &'a [(String, Intake)],
    line: &[u8],
) -> Result<(&'a Intake, Vec<u8>), String> {
    let names = || {
        intakes
            .iter()
            .map(|(name, _)| name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let Ok(serde_json::Value::Object(mut command)) = serde_json::from_slice(line) else {
        return Err(format!(
            "not a JSON object; with several accounts each line is a send command naming its \
             account, as in {{\"account\":\"home\",\"to\":\"Mom\",\"text\":\"hi\"}} \
             (accounts: {})",
            names()
        ));
    };
    let Some(serde_json::Value::String(account)) = command.remove("account") else {
        return Err(format!(
            "with several accounts a stdin command names its account: add \"account\": \
             \"<name>\" (accounts: {})",
            names()
        ));
    };
    let Some((_, intake)) = intakes.iter().find(|(name, _)| *name == account) else {
        return Err(format!(
            "no account `{account}` runs here (accounts: {})",
            names()
        ));
    };
    let bytes = serde_json::to_vec(&command).map_err(|e| e.to_string())?;
    Ok((intake, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_separators_in_strings_are_escaped_and_the_value_kept() {
        let payload = serde_json::to_vec(&serde_json::json!({
            "text": "a\u{2028}b\u{2029}c\u{85}d \u{2027}\u{80}好\n"
        }))
        .unwrap();
        let mut line = Vec::new();
        push_line(&mut line, &payload);
        let text = std::str::from_utf8(&line).unwrap();
        assert_eq!(
            text, "{\"text\":\"a\\u2028b\\u2029c\\u0085d \u{2027}\u{80}好\\n\"}",
            "neighbours of the three (U+2027, U+0080) stay raw"
        );
        assert!(!text.contains(['\n', '\u{2028}', '\u{2029}', '\u{85}']));
        let back: serde_json::Value = serde_json::from_slice(&line).unwrap();
        let orig: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(back, orig);
    }

    #[test]
    fn long_lines_keep_only_what_the_size_check_needs() {
        let mut data = vec![b'x'; 100_000];
        data.extend_from_slice(b"\n{\"a\":1}\r\nlast");
        let mut r = std::io::BufReader::with_capacity(64, &data[..]);
        let long = read_capped_line(&mut r, 1000).unwrap().unwrap();
        assert_eq!(long.len(), 1001, "one byte over the cap is kept, no more");
        assert_eq!(
            read_capped_line(&mut r, 1000).unwrap().unwrap(),
            b"{\"a\":1}"
        );
        assert_eq!(read_capped_line(&mut r, 1000).unwrap().unwrap(), b"last");
        assert!(read_capped_line(&mut r, 1000).unwrap().is_none());
    }

    #[test]
    fn blank_lines_are_skipped_and_the_end_of_input_ends_the_reader() {
        let (tx, mut rx) = mpsc::channel(8);
        read_lines(&b"\n  \r\n{\"a\":1}\n\n"[..], 100, tx);
        assert_eq!(rx.try_recv().unwrap(), b"{\"a\":1}");
        assert!(rx.try_recv().is_err());
    }
}
