//! Hostile input as regression tests: every file under `tests/corpus/<target>/` (the seed
//! corpus, and each input a fuzzer ever crashed on) is run through the same checks as the
//! `cargo fuzz` target of that name (`fuzz/src/lib.rs`, included here), without libFuzzer.
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

#[path = "../../fuzz/src/lib.rs"]
mod checks;

/// Runs `check` on every file of `tests/corpus/<target>/` and reports all that fail at once.
fn replay(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(
        files.len() >= 5,
        "the {target} corpus has only {} inputs",
        files.len()
    );
    let failed: Vec<String> = files
        .iter()
        .filter(|path| {
            let data = std::fs::read(path).unwrap();
            catch_unwind(AssertUnwindSafe(|| check(&data))).is_err()
        })
        .map(|path| path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(failed.is_empty(), "{target}: failing inputs {failed:?}");
}

#[test]
fn js_text_corpus_parses_without_panics() {
    replay("js_text", checks::js_text);
}

#[test]
fn login_xml_corpus_never_yields_a_partial_ticket() {
    replay("login_xml", checks::login_xml);
}

#[test]
fn sync_response_corpus_normalizes_to_events_that_read_back() {
    replay("sync_response", checks::sync_response);
}

#[test]
fn message_content_corpus_keeps_the_event_shape() {
    replay("message_content", checks::message_content);
}

#[test]
fn command_corpus_never_accepts_over_max_bytes() {
    replay("command", checks::command);
}

#[test]
fn media_xml_corpus_downloads_what_the_entry_names() {
    replay("media_xml", checks::media_xml);
}

#[test]
fn upload_answer_corpus_reads_only_what_the_answer_says() {
    replay("upload_answer", checks::upload_answer);
}
