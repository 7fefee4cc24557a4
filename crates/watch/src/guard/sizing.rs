//! `yagura watch size-prometheus`: from an ingestion rate (given, or read from a running Prometheus) and a
//! volume size, recommends `--storage.tsdb.retention.size` and `--storage.tsdb.retention.time`, showing the
//! arithmetic.
//!
//! The figures come from Prometheus's storage documentation (prometheus.io/docs/prometheus/2.42/storage/,
//! "Operational aspects" and "Right-sizing"):
//! - blocks take "around 1-2 bytes per sample" → [`BYTES_PER_SAMPLE`] = 2 (the safe end);
//!   `needed_disk_space = retention_time_seconds * ingested_samples_per_second * bytes_per_sample`;
//! - the WAL lives in 128 MB segments, holds raw, uncompacted samples, and is kept for at least two hours of
//!   data; since Prometheus 2.17 (#7098) WAL truncation keeps "up to around 3 hours" → [`HEAD_HOURS`] = 3;
//! - `retention.size` counts WAL, checkpoint and m-mapped head chunks as well as blocks, but only blocks are
//!   deleted to honour it, so WAL + head chunks must fit inside it with room to spare; the docs recommend
//!   "no more than 80-85% of your allocated Prometheus disk space" → [`MAX_FRACTION`] = 0.8.
//!
//! A raw WAL sample record costs about 13 bytes (varint series reference ≈ 4, timestamp delta ≈ 1, value 8:
//! robustperception.io, "How much space does the WAL take up?") → [`WAL_BYTES_PER_SAMPLE`] = 13; WAL compression
//! (default since 2.20) roughly halves that, so 13 leaves headroom. `retention.size` units are binary: Prometheus
//! parses "MB" as 2^20 bytes.

use serde::Serialize;

/// Bytes per sample in compacted blocks (the docs' "1-2 bytes", safe end).
pub const BYTES_PER_SAMPLE: f64 = 2.0;
/// Bytes per sample in the uncompressed WAL.
pub const WAL_BYTES_PER_SAMPLE: f64 = 13.0;
/// Hours of samples the WAL and the head chunks hold at their peak.
pub const HEAD_HOURS: f64 = 3.0;
/// One WAL segment (the one being written is not truncated).
pub const WAL_SEGMENT_BYTES: f64 = 128.0 * 1024.0 * 1024.0;
/// Largest share of the volume `retention.size` should claim.
pub const MAX_FRACTION: f64 = 0.8;

/// The inputs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SizingInput {
    /// Ingested samples per second.
    pub samples_per_second: f64,
    /// The volume's size in bytes.
    pub volume_bytes: u64,
    /// Bytes per sample in blocks.
    pub bytes_per_sample: f64,
    /// Bytes per sample in the WAL.
    pub wal_bytes_per_sample: f64,
    /// Share of the volume for `retention.size`.
    pub max_fraction: f64,
}

impl SizingInput {
    /// The documented defaults for a rate and a volume.
    pub fn new(samples_per_second: f64, volume_bytes: u64) -> Self {
        Self {
            samples_per_second,
            volume_bytes,
            bytes_per_sample: BYTES_PER_SAMPLE,
            wal_bytes_per_sample: WAL_BYTES_PER_SAMPLE,
            max_fraction: MAX_FRACTION,
        }
    }
}

/// The recommendation and every step of it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sizing {
    /// The inputs.
    pub input: SizingInput,
    /// `retention.size` in bytes (a whole number of MiB, ≤ `max_fraction` of the volume).
    pub retention_size_bytes: u64,
    /// The flag value, e.g. `16384MB` (Prometheus's MB are MiB).
    pub retention_size_flag: String,
    /// Peak WAL (+ checkpoint) size.
    pub wal_peak_bytes: f64,
    /// Peak m-mapped head chunks size.
    pub head_chunks_bytes: f64,
    /// What is left of `retention.size` for blocks.
    pub blocks_bytes: f64,
    /// Blocks written per day.
    pub blocks_bytes_per_day: f64,
    /// Days of blocks that fit.
    pub days_of_blocks: f64,
    /// `retention.time` in seconds (whole days, or whole hours under two days), so that time-based retention
    /// acts before the size limit, which stays the backstop.
    pub retention_time_seconds: u64,
    /// The flag value, e.g. `8d`.
    pub retention_time_flag: String,
    /// Remarks worth reading.
    pub warnings: Vec<String>,
}

/// Why no recommendation can be made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SizingError {
    /// A non-positive or non-finite input.
    #[error("{0}")]
    BadInput(String),
    /// WAL and head chunks alone need more than `retention.size` may have.
    #[error("the volume is too small: at {rate} samples/s the WAL and head chunks alone need {need}, more than {fraction:.0} % of the volume ({have}); use a volume of at least {min}")]
    TooSmall {
        /// The rate.
        rate: f64,
        /// WAL + head peak, human.
        need: String,
        /// The fraction.
        fraction: f64,
        /// `retention.size`, human.
        have: String,
        /// Smallest volume that gives one day of blocks, human.
        min: String,
    },
}

/// A byte count for people: `16.00 GiB`.
pub fn human(b: f64) -> String {
    const U: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = b;
    let mut i = 0;
    while v.abs() >= 1024.0 && i + 1 < U.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{v:.0} B")
    } else {
        format!("{v:.2} {}", U[i])
    }
}

/// Does the arithmetic.
pub fn size(input: SizingInput) -> Result<Sizing, SizingError> {
    let s = input.samples_per_second;
    for (name, v) in [
        ("samples per second", s),
        ("bytes per sample", input.bytes_per_sample),
        ("WAL bytes per sample", input.wal_bytes_per_sample),
    ] {
        if !(v.is_finite() && v > 0.0) {
            return Err(SizingError::BadInput(format!(
                "{name} must be a positive number"
            )));
        }
    }
    if !(input.max_fraction > 0.0 && input.max_fraction <= 0.85) {
        return Err(SizingError::BadInput(
            "the share of the volume must be within (0, 0.85]: the docs advise at most 80-85 %"
                .into(),
        ));
    }
    if input.volume_bytes == 0 {
        return Err(SizingError::BadInput(
            "the volume size must be above 0".into(),
        ));
    }
    const MIB: u64 = 1 << 20;
    let head_secs = HEAD_HOURS * 3600.0;
    let limit = input.volume_bytes as f64 * input.max_fraction;
    let retention_size_bytes = (limit as u64 / MIB) * MIB;
    let wal_peak = s * head_secs * input.wal_bytes_per_sample + WAL_SEGMENT_BYTES;
    let head_chunks = s * head_secs * input.bytes_per_sample;
    let blocks_bytes = retention_size_bytes as f64 - wal_peak - head_chunks;
    let per_day = s * 86_400.0 * input.bytes_per_sample;
    let days = blocks_bytes / per_day;
    if days < 2.0 / 24.0 {
        let min_volume = (wal_peak + head_chunks + per_day) / input.max_fraction;
        return Err(SizingError::TooSmall {
            rate: s,
            need: human(wal_peak + head_chunks),
            fraction: input.max_fraction * 100.0,
            have: human(retention_size_bytes as f64),
            min: human(min_volume),
        });
    }
    let mut warnings = Vec::new();
    let (retention_time_seconds, retention_time_flag) = if days >= 2.0 {
        let d = days.floor() as u64;
        (d * 86_400, format!("{d}d"))
    } else {
        let h = (days * 24.0).floor() as u64;
        warnings.push(format!(
            "only {h} hours of blocks fit: a bigger volume or fewer samples would keep a useful history"
        ));
        (h * 3600, format!("{h}h"))
    };
    if wal_peak + head_chunks > blocks_bytes {
        warnings.push(format!(
            "WAL and head chunks ({}) take more than the blocks ({}): retention.size leaves little history",
            human(wal_peak + head_chunks),
            human(blocks_bytes)
        ));
    }
    Ok(Sizing {
        input,
        retention_size_bytes,
        retention_size_flag: format!("{}MB", retention_size_bytes / MIB),
        wal_peak_bytes: wal_peak,
        head_chunks_bytes: head_chunks,
        blocks_bytes,
        blocks_bytes_per_day: per_day,
        days_of_blocks: days,
        retention_time_seconds,
        retention_time_flag,
        warnings,
    })
}

/// The arithmetic as text.
pub fn render(z: &Sizing) -> String {
    let i = &z.input;
    let s = i.samples_per_second;
    let rows: [(&str, String, String); 6] = [
        (
            "retention.size",
            format!(
                "{:.0} % × {} (rounded down to MiB)",
                i.max_fraction * 100.0,
                human(i.volume_bytes as f64)
            ),
            human(z.retention_size_bytes as f64),
        ),
        (
            "WAL peak",
            format!(
                "{s} samples/s × {HEAD_HOURS} h × {} B + one 128 MiB segment",
                i.wal_bytes_per_sample
            ),
            human(z.wal_peak_bytes),
        ),
        (
            "head chunks",
            format!("{s} samples/s × {HEAD_HOURS} h × {} B", i.bytes_per_sample),
            human(z.head_chunks_bytes),
        ),
        (
            "left for blocks",
            format!(
                "{} − {} − {}",
                human(z.retention_size_bytes as f64),
                human(z.wal_peak_bytes),
                human(z.head_chunks_bytes)
            ),
            human(z.blocks_bytes),
        ),
        (
            "blocks per day",
            format!("{s} samples/s × 86400 s × {} B", i.bytes_per_sample),
            human(z.blocks_bytes_per_day),
        ),
        (
            "history",
            format!(
                "{} / {} per day",
                human(z.blocks_bytes),
                human(z.blocks_bytes_per_day)
            ),
            format!("{:.1} days", z.days_of_blocks),
        ),
    ];
    let w = rows
        .iter()
        .map(|(_, f, _)| f.chars().count())
        .max()
        .unwrap_or(0);
    let mut o = format!(
        "Sizing Prometheus for {s} samples/s on a {} volume\n\n",
        human(i.volume_bytes as f64)
    );
    for (label, formula, result) in &rows {
        let pad = w - formula.chars().count();
        o.push_str(&format!(
            "  {label:<15} = {formula}{} = {result}\n",
            " ".repeat(pad)
        ));
    }
    o.push_str(&format!(
        "\nretention.size counts WAL and head chunks but deletes only blocks; the remaining {:.0} % of the volume\n",
        (1.0 - i.max_fraction) * 100.0
    ));
    o.push_str(
        "absorbs compaction (a new block is written before the old ones go) and bursts.\n\n",
    );
    o.push_str("Recommended flags:\n");
    o.push_str(&format!(
        "  --storage.tsdb.retention.size={}\n  --storage.tsdb.retention.time={}\n",
        z.retention_size_flag, z.retention_time_flag
    ));
    for w in &z.warnings {
        o.push_str(&format!("\nwarning: {w}\n"));
    }
    o
}

/// `yagura watch size-prometheus`.
#[derive(clap::Args, Debug)]
pub struct SizeArgs {
    /// Ingested samples per second (e.g. from `rate(prometheus_tsdb_head_samples_appended_total[1h])`).
    #[arg(long, required_unless_present = "url", conflicts_with = "url")]
    pub samples_per_second: Option<f64>,
    /// Read the rate (and, once it has compacted blocks, the bytes per sample) from this Prometheus.
    #[arg(long, value_name = "PROMETHEUS_URL")]
    pub url: Option<String>,
    /// The volume's size, e.g. `20GiB`.
    #[arg(long)]
    pub volume: String,
    /// Bytes per sample in blocks (default 2, or measured from `--url`).
    #[arg(long)]
    pub bytes_per_sample: Option<f64>,
    /// Bytes per sample in the WAL.
    #[arg(long, default_value_t = WAL_BYTES_PER_SAMPLE)]
    pub wal_bytes_per_sample: f64,
    /// Share of the volume for retention.size (at most 0.85).
    #[arg(long, default_value_t = MAX_FRACTION)]
    pub max_fraction: f64,
    /// Output: text (the arithmetic) or json.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    pub format: String,
}

/// What `--url` measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measured {
    /// Samples per second.
    pub samples_per_second: f64,
    /// Bytes per sample of compacted chunks, once there are any.
    pub bytes_per_sample: Option<f64>,
}

/// Reads the ingestion rate (the largest of its 1h, 5m and instant rates) and the compacted bytes per sample from a Prometheus.
pub fn measure(url: &str) -> Result<Measured, String> {
    let agent = ureq::AgentBuilder::new()
        .timeout(std::time::Duration::from_secs(30))
        .build();
    let q = |q: &str| super::prometheus::instant_query(&agent, url, q);
    // The largest of the 1h and 5m rates and the latest instant rate: on a young server, rate() over a range
    // longer than its history underestimates.
    let mut rate: Option<f64> = None;
    for query in [
        "sum(rate(prometheus_tsdb_head_samples_appended_total[1h]))",
        "sum(rate(prometheus_tsdb_head_samples_appended_total[5m]))",
        "sum(irate(prometheus_tsdb_head_samples_appended_total[5m]))",
    ] {
        if let Some(r) = q(query)? {
            rate = Some(rate.map_or(r, |x| x.max(r)));
        }
    }
    let Some(samples_per_second) = rate.filter(|r| *r > 0.0) else {
        return Err(format!(
            "{url} reports no ingestion (prometheus_tsdb_head_samples_appended_total has no recent samples): give --samples-per-second"
        ));
    };
    let bytes_per_sample = q("sum(rate(prometheus_tsdb_compaction_chunk_size_bytes_sum[1d])) / sum(rate(prometheus_tsdb_compaction_chunk_samples_sum[1d]))")
        .ok()
        .flatten()
        .filter(|b| b.is_finite() && *b > 0.0);
    Ok(Measured {
        samples_per_second,
        bytes_per_sample,
    })
}

/// Runs the subcommand, writing to `out`; returns the exit code (0 ok, 2 bad input or unreachable URL).
pub fn run(a: &SizeArgs, out: &mut dyn std::io::Write, err: &mut dyn std::io::Write) -> u8 {
    let volume = match crate::config::ByteSize::parse(&a.volume) {
        Ok(v) => v.0,
        Err(e) => {
            let _ = writeln!(err, "yagura watch size-prometheus: --volume: {e}");
            return 2;
        }
    };
    let (rate, measured_bps) = match (&a.url, a.samples_per_second) {
        (_, Some(r)) => (r, None),
        (Some(url), None) => match measure(url) {
            Ok(m) => (m.samples_per_second, m.bytes_per_sample),
            Err(e) => {
                let _ = writeln!(err, "yagura watch size-prometheus: {e}");
                return 2;
            }
        },
        (None, None) => {
            let _ = writeln!(
                err,
                "yagura watch size-prometheus: give --samples-per-second or --url"
            );
            return 2;
        }
    };
    let mut input = SizingInput::new(rate, volume);
    input.bytes_per_sample = a
        .bytes_per_sample
        .or(measured_bps)
        .unwrap_or(BYTES_PER_SAMPLE);
    input.wal_bytes_per_sample = a.wal_bytes_per_sample;
    input.max_fraction = a.max_fraction;
    match size(input) {
        Ok(z) => {
            let text = if a.format == "json" {
                format!("{}\n", serde_json::to_string_pretty(&z).unwrap_or_default())
            } else {
                render(&z)
            };
            let _ = out.write_all(text.as_bytes());
            0
        }
        Err(e) => {
            let _ = writeln!(err, "yagura watch size-prometheus: {e}");
            2
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    const GIB: u64 = 1 << 30;

    #[test]
    fn twenty_gib_at_ten_thousand_samples() {
        let z = size(SizingInput::new(10_000.0, 20 * GIB)).unwrap();
        // 80 % of 20 GiB = 16 GiB exactly.
        assert_eq!(z.retention_size_bytes, 16 * GIB);
        assert_eq!(z.retention_size_flag, "16384MB");
        // WAL: 10k × 10800 s × 13 B = 1.404e9 B + 128 MiB.
        assert!((z.wal_peak_bytes - (1.404e9 + 134_217_728.0)).abs() < 1.0);
        // Head chunks: 10k × 10800 × 2 = 216 MB.
        assert!((z.head_chunks_bytes - 2.16e8).abs() < 1.0);
        // Blocks per day: 10k × 86400 × 2 = 1.728 GB.
        assert!((z.blocks_bytes_per_day - 1.728e9).abs() < 1.0);
        let left = 16.0 * GIB as f64 - 1.404e9 - 134_217_728.0 - 2.16e8;
        assert!((z.blocks_bytes - left).abs() < 1.0);
        assert!((z.days_of_blocks - left / 1.728e9).abs() < 1e-9);
        // ≈ 8.9 days → 8d: time retention acts before the size backstop.
        assert_eq!(z.retention_time_flag, "8d");
        assert_eq!(z.retention_time_seconds, 8 * 86_400);
        // Everything Prometheus keeps stays within the volume with the 20 % margin.
        let peak = z.wal_peak_bytes + z.head_chunks_bytes + 8.0 * z.blocks_bytes_per_day;
        assert!(peak <= z.retention_size_bytes as f64);
    }

    #[test]
    fn the_incident_volume_would_have_fitted() {
        // The talk: 20 GB of WAL in 10 days. With the recommendation, retention.size stays at 80 %.
        let z = size(SizingInput::new(20_000.0, 20 * GIB)).unwrap();
        assert!(z.retention_size_bytes as f64 <= 0.8 * (20 * GIB) as f64);
        assert!(z.retention_time_seconds >= 86_400);
    }

    #[test]
    fn small_histories_in_hours_and_too_small_volumes() {
        let z = size(SizingInput::new(100_000.0, 50 * GIB)).unwrap();
        assert!(
            z.retention_time_flag.ends_with('h'),
            "{}",
            z.retention_time_flag
        );
        assert!(!z.warnings.is_empty());
        let e = size(SizingInput::new(1_000_000.0, 20 * GIB)).unwrap_err();
        assert!(matches!(e, SizingError::TooSmall { .. }), "{e}");
        assert!(e.to_string().contains("at least"));
    }

    #[test]
    fn bad_inputs() {
        assert!(size(SizingInput::new(0.0, GIB)).is_err());
        assert!(size(SizingInput::new(f64::NAN, GIB)).is_err());
        assert!(size(SizingInput::new(10.0, 0)).is_err());
        let mut i = SizingInput::new(10.0, GIB);
        i.max_fraction = 0.95;
        assert!(size(i).is_err());
    }

    #[test]
    fn text_shows_the_arithmetic() {
        let t = render(&size(SizingInput::new(10_000.0, 20 * GIB)).unwrap());
        assert!(t.contains("--storage.tsdb.retention.size=16384MB"), "{t}");
        assert!(t.contains("--storage.tsdb.retention.time=8d"), "{t}");
        assert!(t.contains("10000 samples/s × 3 h × 13 B"), "{t}");
    }
}

#[cfg(test)]
mod cli_tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use clap::Parser;

    /// `yagura watch …` as the binary parses it.
    #[derive(Parser)]
    struct Yagura {
        #[command(flatten)]
        watch: crate::cli::WatchArgs,
    }

    fn run(args: &[&str]) -> (u8, String, String) {
        let y =
            Yagura::try_parse_from(std::iter::once("watch").chain(args.iter().copied())).unwrap();
        let Some(crate::cli::WatchCommand::SizePrometheus(a)) = y.watch.command else {
            panic!("not size-prometheus");
        };
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = super::run(&a, &mut out, &mut err);
        (
            code,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    #[test]
    fn json_and_text() {
        let (code, out, _) = run(&[
            "size-prometheus",
            "--samples-per-second",
            "10000",
            "--volume",
            "20GiB",
            "--format",
            "json",
        ]);
        assert_eq!(code, 0);
        let j: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(j["retention_size_flag"], "16384MB");
        assert_eq!(j["retention_time_flag"], "8d");
        let (code, out, _) = run(&[
            "size-prometheus",
            "--samples-per-second",
            "10000",
            "--volume",
            "20GiB",
        ]);
        assert_eq!(code, 0);
        assert!(
            out.contains("--storage.tsdb.retention.size=16384MB"),
            "{out}"
        );
    }

    #[test]
    fn usage_errors() {
        let (code, _, err) = run(&[
            "size-prometheus",
            "--samples-per-second",
            "10",
            "--volume",
            "20 parsecs",
        ]);
        assert_eq!(code, 2);
        assert!(err.contains("--volume"), "{err}");
        let (code, _, err) = run(&[
            "size-prometheus",
            "--samples-per-second",
            "5000000",
            "--volume",
            "1GiB",
        ]);
        assert_eq!(code, 2);
        assert!(err.contains("too small"), "{err}");
        assert!(Yagura::try_parse_from(["watch", "size-prometheus", "--volume", "1GiB"]).is_err());
        assert!(Yagura::try_parse_from([
            "watch",
            "size-prometheus",
            "--samples-per-second",
            "1",
            "--url",
            "http://127.0.0.1:9",
            "--volume",
            "1GiB"
        ])
        .is_err());
    }
}
