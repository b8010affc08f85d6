//! `--quantize int8` and `--no-screened-projection` on `splade encode`, `bench` and
//! `index build`: the flags reach the library (same vectors as `SparseEncoder::load_with`),
//! and a bad value is one clear line.

use std::path::{Path, PathBuf};
use std::process::Output;

use candle_core::Device;
use splade_encoder::{EncodeOptions, LoadOptions, Quantize, SparseEncoder};

#[path = "common/run.rs"]
mod run;
use run::splade_with_stdin as splade;

fn model(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/encoder/models")
        .join(name)
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "splade failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

const TEXTS: &str = "what causes rain\nRain forms when water vapour condenses into droplets heavy enough to fall.\na\n";

fn library(dir: &Path, options: &LoadOptions) -> Vec<(Vec<u32>, Vec<f32>)> {
    let encoder = SparseEncoder::load_with(dir, &Device::Cpu, options).unwrap();
    let texts: Vec<&str> = TEXTS.lines().collect();
    let batch = encoder.encode(&texts, &EncodeOptions::default()).unwrap();
    batch
        .rows()
        .map(|r| (r.indices().to_vec(), r.values().to_vec()))
        .collect()
}

fn rows(stdout: &str) -> Vec<(Vec<u32>, Vec<f32>)> {
    stdout
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                serde_json::from_value(v["indices"].clone()).unwrap(),
                serde_json::from_value(v["values"].clone()).unwrap(),
            )
        })
        .collect()
}

#[test]
fn encode_takes_quantize_and_screening_flags() {
    let dir = model("bert-tied-v6");
    let d = dir.to_str().unwrap();
    let int8 = LoadOptions {
        quantize: Quantize::Int8,
        ..LoadOptions::default()
    };
    let got = rows(&ok(&splade(
        &["encode", "--model", d, "--quantize", "int8"],
        TEXTS.as_bytes(),
    )));
    assert_eq!(got, library(&dir, &int8));
    let f32_rows = library(&dir, &LoadOptions::default());
    assert_ne!(got, f32_rows, "int8 gave the f32 vectors bit for bit");
    let unscreened = rows(&ok(&splade(
        &["encode", "--model", d, "--no-screened-projection"],
        TEXTS.as_bytes(),
    )));
    let want = library(
        &dir,
        &LoadOptions {
            screened_projection: false,
            ..LoadOptions::default()
        },
    );
    assert_eq!(unscreened, want);
    // The screened default has the same active entries.
    let screened = rows(&ok(&splade(&["encode", "--model", d], TEXTS.as_bytes())));
    for (a, b) in screened.iter().zip(&unscreened) {
        assert_eq!(a.0, b.0);
    }
}

#[test]
fn bad_quantize_value_is_one_clear_line() {
    let d = model("bert-tied-v6");
    let out = splade(
        &[
            "encode",
            "--model",
            d.to_str().unwrap(),
            "--quantize",
            "int4",
        ],
        b"",
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("int4") && err.contains("int8"), "{err}");
}

#[test]
fn bench_and_index_build_take_quantize() {
    let tmp = tempfile::tempdir().unwrap();
    let texts = tmp.path().join("texts.txt");
    std::fs::write(&texts, TEXTS).unwrap();
    let d = model("distilbert-tied-seedlayout");
    let d = d.to_str().unwrap();
    let out = ok(&splade(
        &[
            "bench",
            "--model",
            d,
            "--input",
            texts.to_str().unwrap(),
            "--quantize",
            "int8",
        ],
        b"",
    ));
    let report: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(report["quantize"], "int8");
    assert!(report["screen"]["logits"].as_u64().unwrap() > 0, "{report}");
    let idx = tmp.path().join("idx");
    ok(&splade(
        &[
            "index",
            "build",
            "--out",
            idx.to_str().unwrap(),
            "--corpus",
            texts.to_str().unwrap(),
            "--model",
            d,
            "--quantize",
            "int8",
        ],
        b"",
    ));
    assert!(idx.exists());
}

/// `bench` names the f32 and int8 kernels the run took: the CPU's widest by default, and the
/// one `SPLADE_F32_KERNEL` / `SPLADE_INT8_KERNEL` force (benchmark tables record these).
#[test]
fn bench_reports_the_kernels_it_ran() {
    let tmp = tempfile::tempdir().unwrap();
    let texts = tmp.path().join("texts.txt");
    std::fs::write(&texts, TEXTS).unwrap();
    let d = model("distilbert-tied-seedlayout");
    let args = [
        "bench",
        "--model",
        d.to_str().unwrap(),
        "--input",
        texts.to_str().unwrap(),
        "--quantize",
        "int8",
    ];
    let report = |env: &[(&str, &str)]| -> serde_json::Value {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_splade"))
            .args(args)
            .env_remove("SPLADE_F32_KERNEL")
            .env_remove("SPLADE_INT8_KERNEL")
            .envs(env.iter().copied())
            .output()
            .expect("run splade");
        serde_json::from_str(ok(&out).trim()).unwrap()
    };
    let forced = report(&[
        ("SPLADE_F32_KERNEL", "portable"),
        ("SPLADE_INT8_KERNEL", "portable"),
    ]);
    assert_eq!(forced["f32_kernel"], "portable", "{forced}");
    assert_eq!(forced["int8_kernel"], "portable", "{forced}");
    let default = report(&[]);
    let f32_kernel = default["f32_kernel"].as_str().unwrap_or_default();
    assert!(
        ["avx512", "avx2", "portable"].contains(&f32_kernel),
        "{default}"
    );
    assert!(default["int8_kernel"].is_string(), "{default}");
}
