//! The body of a large answer, read into one buffer that is reused from answer to answer.
//!
//! A large account's webwxbatchgetcontact answers run to several megabytes each (50 groups of
//! up to 500 members, in the servers' one-member-per-line layout). Read as a fresh text each
//! time, every answer is a new multi-megabyte block, and glibc, having freed the first one,
//! raises its mmap threshold past that size: the next answers are carved from the heap, between
//! the members parsed meanwhile, where freeing them gives nothing back to the system (about
//! 13 MB of a large account's idle RSS). One buffer for all of a login's answers, grown once and
//! freed at the end, leaves no such holes, and parsing from it stays a borrowing `from_slice`.
//! (Parsing the chunks as they come, through `serde_json::from_reader`, saved the same memory
//! but doubled the login's CPU time.)

use super::{host_of, WxError};

/// Sends `req` and reads the whole body of a 2xx answer into `buf` (emptied first), chunk by
/// chunk as the decoder hands them over, so no chunk outlives its copy.
pub(super) async fn read_into(
    endpoint: &'static str,
    req: reqwest::RequestBuilder,
    buf: &mut Vec<u8>,
) -> Result<(), WxError> {
    let http = |source: reqwest::Error| WxError::Http {
        endpoint,
        host: source.url().map(host_of).unwrap_or_default(),
        source: source.without_url(),
    };
    let mut resp = req.send().await.map_err(http)?;
    let status = resp.status().as_u16();
    if !(200..=299).contains(&status) {
        return Err(WxError::Status { endpoint, status });
    }
    buf.clear();
    while let Some(chunk) = resp.chunk().await.map_err(http)? {
        buf.extend_from_slice(&chunk);
    }
    Ok(())
}
