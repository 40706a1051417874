//! The media phase in the report: the inbound mix with media (messages and bytes to the store
//! per second, CPU, memory), the large video's memory while it streams, and the target that
//! memory stays flat meanwhile.
use std::fmt::Write as _;

use super::{mb, thousands, Check, Report, MB};

/// "Flat": the peak while the video streams is within max(10 %, 2 MB) of the resident memory
/// before it, as for the message bursts.
fn flat(before_kib: u64, growth_kib: u64) -> bool {
    growth_kib <= (before_kib / 10).max(2_000_000 / 1024)
}

impl Report {
    /// What of the media phase did not arrive complete.
    pub(super) fn media_incomplete(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mix = &self.media.mix;
        if mix.run.received < mix.run.expected {
            out.push(format!(
                "media mix: {} of {} arrived",
                mix.run.received, mix.run.expected
            ));
        }
        if mix.stored() < mix.media_sent() {
            out.push(format!(
                "media mix: {} of {} media events arrived with their file stored",
                mix.stored(),
                mix.media_sent()
            ));
        }
        let v = &self.media.video;
        if v.bytes > 0 && !v.complete() {
            out.push(format!(
                "media: the {} MB video's event did not arrive with the whole file stored \
                 (size {:?})",
                v.bytes / 1_000_000,
                v.stored_size
            ));
        }
        out
    }

    /// The media target: memory stays flat while a large video streams.
    pub(super) fn media_checks(&self) -> Vec<Check> {
        let v = &self.media.video;
        let growth = v.rss_before_kib.zip(v.growth_kib());
        vec![Check {
            target: format!(
                "RSS flat while a {} MB video streams into the store (peak − before ≤ max(10 %, \
                 2 MB))",
                v.bytes / 1_000_000
            ),
            measured: growth.map_or("–".into(), |(_, g)| format!("+{:.1} MB", mb(g))),
            met: growth.map(|(b, g)| flat(b, g)),
        }]
    }

    pub(super) fn write_media(&self, md: &mut String) {
        let mix = &self.media.mix;
        let r = &mix.run;
        let _ = writeln!(
            md,
            "### Media\n\n{} inbound messages to MQTT (QoS 1), {} of them media: images of \
             50–200 KB, voice notes of 10–30 KB, stickers of about 40 KB, files of about 1 MB; \
             the rest texts. Queued while the bridge idles in its held synccheck; a media event \
             goes out only once its file is in the store, so the run is timed from the first \
             queueing to the last event at the subscriber, every download included \
             (`media.wait` raised to {} s, `mqtt.media` off: the bytes go to the store only).\n",
            thousands(r.expected as f64),
            mix.media_sent(),
            crate::phases::media::MEDIA_WAIT.as_secs()
        );
        md.push_str("| kind | messages | stored (with sha256) | MB stored |\n|---|---|---|---|\n");
        for k in &mix.kinds {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {:.1} |",
                k.kind.label(),
                k.sent,
                k.stored,
                k.bytes as f64 / MB
            );
        }
        let _ = writeln!(
            md,
            "| all media | {} | {} | {:.1} |\n",
            mix.media_sent(),
            mix.stored(),
            mix.stored_bytes() as f64 / MB
        );
        let opt = |v: Option<u64>| v.map_or("–".into(), |k| format!("{:.1}", mb(k)));
        md.push_str("| the mix | measured |\n|---|---|\n");
        let _ = writeln!(
            md,
            "| messages/s (all {} in {:.2} s) | {} |",
            thousands(r.expected as f64),
            r.secs,
            thousands(r.rate())
        );
        let _ = writeln!(
            md,
            "| media written to the store (sum of the stored sizes ÷ the run's seconds) | {:.1} MB/s |",
            mix.store_rate() / MB
        );
        let _ = writeln!(
            md,
            "| CPU-s per 1,000 messages | {} |",
            mix.cpu_per_1k().map_or("–".into(), |c| format!("{c:.2}"))
        );
        let _ = writeln!(
            md,
            "| RSS before → sampled peak → after | {} → {} → {} MB |",
            opt(r.rss_before_kib),
            opt(r.rss_peak_kib),
            opt(r.rss_after_kib)
        );
        let _ = writeln!(
            md,
            "| peak RSS since start (VmHWM) | {} MB |",
            opt(r.hwm_kib)
        );
        let _ = writeln!(
            md,
            "| the store's directory on disk after the mix | {:.1} MB |\n",
            mix.dir_bytes as f64 / MB
        );
        if !mix.errors.is_empty() {
            let errors: Vec<String> = mix
                .errors
                .iter()
                .map(|(e, n)| format!("{e} × {n}"))
                .collect();
            let _ = writeln!(md, "Media errors: {}.\n", errors.join(", "));
        }
        self.write_video(md);
    }

    fn write_video(&self, md: &mut String) {
        let v = &self.media.video;
        if v.bytes == 0 {
            return;
        }
        let opt = |v: Option<u64>| v.map_or("–".into(), |k| format!("{:.1}", mb(k)));
        let _ = writeln!(
            md,
            "Then one video of {} MB (`webwxgetvideo` with `Range`), on the same bridge right \
             after the mix, timed from queueing its message to its event at the subscriber. \
             The peak is `VmHWM` reset just before the video (`/proc/<pid>/clear_refs`), so it \
             is the peak while the video streamed; RSS was also sampled every 100 ms ({} \
             samples).\n",
            v.bytes / 1_000_000,
            v.samples
        );
        md.push_str("| the video | measured |\n|---|---|\n");
        let _ = writeln!(
            md,
            "| queued → event with its sha256 | {} |",
            if v.complete() {
                format!(
                    "{:.2} s ({:.1} MB/s)",
                    v.secs,
                    v.bytes as f64 / MB / v.secs.max(1e-9)
                )
            } else {
                format!("did not arrive stored within {:.0} s", v.secs)
            }
        );
        let _ = writeln!(
            md,
            "| RSS before → peak → after | {} → {} → {} MB (sampled peak {} MB) |",
            opt(v.rss_before_kib),
            opt(v.peak_kib()),
            opt(v.rss_after_kib),
            opt(v.rss_sampled_peak_kib)
        );
        let verdict = match v.rss_before_kib.zip(v.growth_kib()) {
            Some((b, g)) if flat(b, g) => "flat",
            Some(_) => "**not flat**",
            None => "–",
        };
        let _ = writeln!(
            md,
            "| peak − before, while it streamed | {} MB: {verdict} |\n",
            v.growth_kib()
                .map_or("–".into(), |g| format!("+{:.1}", mb(g)))
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_allows_ten_percent_or_two_megabytes() {
        // 20 MB before: 2 MB (1953 KiB) is the larger allowance.
        assert!(flat(20_000, 1_953));
        assert!(!flat(20_000, 2_100));
        // 100 MB before: 10 % (10,000 KiB).
        assert!(flat(100_000, 9_000));
        assert!(!flat(100_000, 10_001));
    }
}
