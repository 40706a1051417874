//! The body of a large answer, read into one buffer that is reused from answer to answer.
//!
//! A large account's webwxbatchgetcontact answers run to several megabytes each (50 groups of
//! up to 500 members, in the servers' one-member-per-line layout). Read as a fresh text each
//! time, every answer is a new multi-megabyte block, and glibc, having freed the first one,
//! raises its mmap threshold past that size: the next answers are carved from the heap, between
//! the members parsed meanwhile, where freeing them gives nothing back to the system (about
//! 7 MB of a large account's idle RSS). One buffer for all of a login's answers, grown once and
//! freed at the end, leaves no such holes, and parsing from it stays a borrowing `from_slice`.
//! (Parsing the chunks as they come, through `serde_json::from_reader`, saved the same memory
//! but doubled the login's CPU time.)

/// Appends the whole body of `resp` to `buf`, which is emptied first, chunk by chunk as the
/// decoder hands them over (no chunk outlives its copy).
pub(super) async fn read_into(
    mut resp: reqwest::Response,
    buf: &mut Vec<u8>,
) -> reqwest::Result<()> {
    buf.clear();
    while let Some(chunk) = resp.chunk().await? {
        buf.extend_from_slice(&chunk);
    }
    Ok(())
}
