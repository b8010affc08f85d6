//! `splade eval beir` on Hugging Face NanoBEIR parquet folders (`fixtures/eval/nanobeir/`):
//! the same metrics as on the same data as BEIR jsonl folders.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn eval_beir(args: &[&str], out: &Path) -> Output {
    let model = root().join("fixtures/encoder/models/bert-tied-v6");
    Command::new(env!("CARGO_BIN_EXE_splade"))
        .args(["eval", "beir", "--model"])
        .arg(&model)
        .args(args)
        .arg("--output")
        .arg(out)
        .output()
        .unwrap()
}

fn metrics(args: &[&str]) -> serde_json::Map<String, serde_json::Value> {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("m.json");
    let o = eval_beir(args, &out);
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let text = std::fs::read_to_string(&out).unwrap();
    serde_json::from_str::<serde_json::Value>(&text)
        .unwrap()
        .as_object()
        .unwrap()
        .clone()
}

fn fixture(p: &str) -> String {
    root()
        .join("fixtures/eval/nanobeir")
        .join(p)
        .display()
        .to_string()
}

#[test]
fn nanobeir_en_parquet_snapshot_equals_beir_folders() {
    let parquet = metrics(&["--data-dir", &fixture("NanoBEIR-en")]);
    let beir = metrics(&["--data-dir", &fixture("beir")]);
    assert_eq!(parquet, beir);
    for prefix in ["NanoTiny_", "NanoSmall_", "NanoBEIR_mean_"] {
        assert!(parquet.keys().any(|k| k.starts_with(prefix)), "{prefix}");
    }
}

#[test]
fn datasets_select_parquet_splits_and_one_dataset_folders() {
    let beir = metrics(&["--data-dir", &fixture("beir"), "--datasets", "NanoTiny"]);
    // a split of the multi-dataset layout, case-insensitively
    let split = metrics(&[
        "--data-dir",
        &fixture("NanoBEIR-en"),
        "--datasets",
        "nanotiny",
    ]);
    assert_eq!(split, beir);
    // a folder of one-dataset repositories (split `train`, named after the folder)
    let zeta = metrics(&["--data-dir", &fixture("zeta-alpha")]);
    assert_eq!(zeta, beir);
    // such a repository folder itself
    let one = metrics(&["--data-dir", &fixture("zeta-alpha/NanoTiny")]);
    assert_eq!(one, beir);
}

#[test]
fn a_bad_parquet_folder_is_one_clear_error() {
    let d = tempfile::tempdir().unwrap();
    let o = eval_beir(
        &["--data-dir", &fixture("bad-column")],
        &d.path().join("m.json"),
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].starts_with("error: ")
            && lines[0].contains("corpus/train-00000-of-00001.parquet")
            && lines[0].contains("missing column 'text'"),
        "{err}"
    );
}
