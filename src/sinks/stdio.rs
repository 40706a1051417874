//! The embedded default (DESIGN.md): every stdout line is one JSON object with a `kind`, and
//! every stdin line is a send command. Logs and the QR go to stderr, so `wxbridge run | jq`
//! works with no broker. A write to stdout counts as delivered once it is flushed.
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::bridge::{Output, Queued};
use crate::event::{parse_command, SendResult};

/// Writes each output as one JSON line and flushes it. A closed stdout (the reader went away)
/// stops the bridge.
pub async fn write_lines(
    mut rx: mpsc::Receiver<Output>,
    mut out: impl tokio::io::AsyncWrite + Unpin,
    shutdown: CancellationToken,
) {
    while let Some(item) = rx.recv().await {
        let mut line = match serde_json::to_vec(&item) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(cause = %e, "cannot serialize an output line");
                continue;
            }
        };
        line.push(b'\n');
        if let Err(e) = async {
            out.write_all(&line).await?;
            out.flush().await
        }
        .await
        {
            tracing::error!(cause = %e, "stdout is closed; stopping");
            shutdown.cancel();
            return;
        }
    }
}

/// A line as read: its bytes, or only its length when it was over the cap (the rest is
/// skipped without being kept, so a 10 MB line costs no 10 MB).
enum Line {
    Fits(Vec<u8>),
    TooLong(usize),
}

async fn read_capped_line(
    r: &mut (impl AsyncBufRead + Unpin),
    cap: usize,
) -> std::io::Result<Option<Line>> {
    let mut buf = Vec::new();
    let mut len = 0usize;
    let mut any = false;
    loop {
        let chunk = r.fill_buf().await?;
        if chunk.is_empty() {
            return Ok(any.then(|| finish(buf, len, cap)));
        }
        any = true;
        let (part, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (&chunk[..i], Some(i + 1)),
            None => (chunk, None),
        };
        len += part.len();
        if len <= cap {
            buf.extend_from_slice(part);
        } else {
            buf = Vec::new();
        }
        let used = done.unwrap_or(chunk.len());
        r.consume(used);
        if done.is_some() {
            return Ok(Some(finish(buf, len, cap)));
        }
    }
}

fn finish(mut buf: Vec<u8>, len: usize, cap: usize) -> Line {
    if len > cap {
        return Line::TooLong(len);
    }
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    Line::Fits(buf)
}

/// Reads send commands, one JSON object per line. A bad line is answered with its error result
/// and the rest carry on. End of input leaves the bridge running.
pub async fn read_commands(
    input: impl AsyncBufRead + Unpin,
    max_bytes: usize,
    queue: mpsc::Sender<Queued>,
    out: mpsc::Sender<Output>,
    shutdown: CancellationToken,
) {
    let mut input = input;
    loop {
        let line = tokio::select! {
            _ = shutdown.cancelled() => return,
            l = read_capped_line(&mut input, max_bytes) => l,
        };
        let bytes = match line {
            Ok(None) => {
                tracing::debug!("stdin closed; no more commands from it");
                return;
            }
            Err(e) => {
                tracing::warn!(cause = %e, "cannot read stdin");
                return;
            }
            Ok(Some(Line::TooLong(len))) => {
                // One byte over the cap is enough for the parser to give the size error.
                let _ = out.send(Output::Result(oversized(len, max_bytes))).await;
                continue;
            }
            Ok(Some(Line::Fits(b))) => b,
        };
        if bytes.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match parse_command(&bytes, max_bytes) {
            Ok(command) => {
                let queued = Queued {
                    command,
                    received: time::OffsetDateTime::now_utc(),
                };
                if queue.send(queued).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                tracing::info!(code = %e.code, "rejected a command: {}", e.message);
                let _ = out
                    .send(Output::Result(SendResult::err(
                        e.request_id,
                        e.code,
                        e.message,
                    )))
                    .await;
            }
        }
    }
}

fn oversized(len: usize, max_bytes: usize) -> SendResult {
    SendResult::err(
        None,
        crate::event::ErrorCode::InvalidCommand,
        format!("command is {len} bytes, over the limit of {max_bytes} (send.max_bytes)"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn long_lines_are_measured_not_kept() {
        let mut data = vec![b'x'; 100_000];
        data.extend_from_slice(b"\n{\"a\":1}\r\nlast");
        let mut r = tokio::io::BufReader::with_capacity(64, &data[..]);
        match read_capped_line(&mut r, 1000).await.unwrap() {
            Some(Line::TooLong(n)) => assert_eq!(n, 100_000),
            _ => panic!("expected TooLong"),
        }
        match read_capped_line(&mut r, 1000).await.unwrap() {
            Some(Line::Fits(b)) => assert_eq!(b, b"{\"a\":1}"),
            _ => panic!("expected the next line"),
        }
        match read_capped_line(&mut r, 1000).await.unwrap() {
            Some(Line::Fits(b)) => assert_eq!(b, b"last"),
            _ => panic!("expected the unterminated last line"),
        }
        assert!(read_capped_line(&mut r, 1000).await.unwrap().is_none());
    }
}
