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

/// `train --eval-beir` reads the layouts `eval beir` reads: a BEIR folder and the same
/// data as a parquet repository folder give the same evaluations.
#[test]
fn train_eval_beir_reads_beir_and_parquet_folders() {
    let tmp = tempfile::tempdir().unwrap();
    let train = tmp.path().join("triplets.jsonl");
    let rows: String = (0..4)
        .map(|i| format!("{{\"anchor\":\"question {i}\",\"positive\":\"same question {i}\",\"negative\":\"other topic {i}\"}}\n"))
        .collect();
    std::fs::write(&train, rows).unwrap();
    let run = |eval_dir: &str, name: &str| -> serde_json::Value {
        let out_dir = tmp.path().join(name);
        let o = Command::new(env!("CARGO_BIN_EXE_splade"))
            .args(["train", "--model"])
            .arg(root().join("fixtures/encoder/models/bert-tied-v6"))
            .arg("--train")
            .arg(&train)
            .arg("--output")
            .arg(&out_dir)
            .args(["--max-steps", "1", "--batch-size", "2", "--eval-steps", "1"])
            .args(["--eval-beir", eval_dir])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let text = std::fs::read_to_string(out_dir.join("evaluations.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    };
    let beir = run(&fixture("beir/NanoTiny"), "beir");
    let parquet = run(&fixture("zeta-alpha/NanoTiny"), "parquet");
    assert_eq!(beir, parquet);
    assert!(
        beir.to_string().contains("NanoTiny_cosine_ndcg@10"),
        "{beir}"
    );
    // A folder of several datasets: one must be chosen.
    let o = Command::new(env!("CARGO_BIN_EXE_splade"))
        .args(["train", "--model"])
        .arg(root().join("fixtures/encoder/models/bert-tied-v6"))
        .arg("--train")
        .arg(&train)
        .arg("--output")
        .arg(tmp.path().join("several"))
        .args(["--max-steps", "1", "--batch-size", "2"])
        .args(["--eval-beir", &fixture("beir")])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("2 datasets there (NanoSmall, NanoTiny)"),
        "{err}"
    );
}
