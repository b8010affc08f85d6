//! What the benchmark harnesses share.

#![allow(dead_code)]

/// The harness's arguments without the `--bench` flag `cargo bench` adds; `None` (after
/// printing `usage`) when there are none, as under a plain `cargo bench`.
pub fn args_or_usage(usage: &str) -> Option<Vec<String>> {
    let args = bench_args();
    if args.is_empty() {
        eprintln!("{usage}");
        return None;
    }
    Some(args)
}

/// The harness's arguments without the `--bench` flag `cargo bench` adds.
pub fn bench_args() -> Vec<String> {
    std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect()
}
