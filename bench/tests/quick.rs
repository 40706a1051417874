//! The benchmark's smoke run, so it cannot rot: every phase with a few hundred messages
//! against the debug build of wxbridge, asserting that every message arrived at every sink.
//! Targets are never asserted here; they are measured by the full run.
use std::path::PathBuf;

use wxbridge_bench::settings::Settings;

/// `target/<profile>/wxbridge`: this test runs from `target/<profile>/deps`, and
/// `cargo test --workspace` builds the wxbridge binary before any test runs.
fn bridge_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let profile_dir = exe.parent()?.parent()?;
    Some(profile_dir.join("wxbridge")).filter(|p| p.is_file())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_benchmark_delivers_every_message_to_every_sink() {
    let Some(bridge) = bridge_binary() else {
        eprintln!(
            "skipped: no wxbridge binary next to the test executable; run \
             `cargo build --bin wxbridge` (or `cargo test --workspace`, which builds it)"
        );
        return;
    };
    let report = wxbridge_bench::run(Settings::quick(Some(bridge)))
        .await
        .expect("every phase of the quick benchmark runs");
    let missing = report.incomplete();
    assert!(missing.is_empty(), "messages went missing: {missing:#?}");
    for sink in &report.throughput.sinks {
        assert_eq!(sink.bridge.len(), 1, "{:?} bridge runs", sink.target);
        assert_eq!(sink.raw.len(), 1, "{:?} raw runs", sink.target);
    }
    assert_eq!(report.throughput.no_sink.len(), 1);
    assert_eq!(report.startup.len(), 1);
    assert!(report.memory.small.usage.rss_kib > 0);
    assert!(report.memory.spool_bytes > 0);
    let mix = &report.media.mix;
    assert_eq!(mix.run.expected, 60, "the quick media mix");
    assert!(
        mix.media_sent() > 0 && mix.stored() == mix.media_sent(),
        "{} of {} media events stored",
        mix.stored(),
        mix.media_sent()
    );
    assert!(mix.stored_bytes() > 0 && mix.store_rate() > 0.0);
    assert!(report.media.video.complete(), "{:?}", report.media.video);
    assert!(report.media.video.peak_kib().is_some());
    let md = report.markdown("cargo run --release -p wxbridge-bench -- --quick");
    for section in [
        "### Targets",
        "### Inbound throughput",
        "### Latency",
        "### Memory",
        "### CPU",
        "### Start-up",
        "### Media",
    ] {
        assert!(md.contains(section), "the report lacks {section}:\n{md}");
    }
}
