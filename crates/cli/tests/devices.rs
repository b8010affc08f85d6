//! `--device` on every command that runs a model (#12 item 6): `cpu` and `auto` run (on
//! the CPU in a build without the `cuda` feature), `cuda` in such a build is a clear error
//! saying how to get a GPU build, and a malformed name is refused.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/encoder/models/bert-tied-v6")
}

fn splade(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_splade"))
        .args(args)
        .output()
        .expect("run splade")
}

#[test]
fn every_model_command_takes_device() {
    let tmp = tempfile::tempdir().unwrap();
    let texts = tmp.path().join("t.txt");
    std::fs::write(&texts, "sparse retrieval\nlearned sparse vectors\n").unwrap();
    let m = model();
    let m = m.to_str().unwrap();
    let idx = tmp.path().join("idx");
    let idx = idx.to_str().unwrap();
    let t = texts.to_str().unwrap();
    let reference = splade(&["encode", "--model", m, "--input", t]);
    assert!(reference.status.success());
    for device in ["cpu", "auto"] {
        let out = splade(&["encode", "--model", m, "--input", t, "--device", device]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            out.stdout, reference.stdout,
            "same vectors on --device {device}"
        );
    }
    let cases: Vec<Vec<&str>> = vec![
        vec!["encode", "--model", m, "--input", t],
        vec!["similarity", "--model", m, "a", "b"],
        vec!["info", "--model", m],
        vec!["bench", "--model", m, "--input", t],
        vec![
            "index",
            "build",
            "--out",
            idx,
            "--model",
            m,
            "--corpus",
            t,
            "--overwrite",
        ],
        vec!["search", "--index", idx, "--model", m, "sparse"],
    ];
    for args in &cases {
        let mut a = args.clone();
        a.extend(["--device", "cpu"]);
        let out = splade(&a);
        assert!(
            out.status.success(),
            "{a:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    if cfg!(not(feature = "cuda")) {
        for args in &cases {
            let mut a = args.clone();
            a.extend(["--device", "cuda"]);
            let out = splade(&a);
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{a:?}");
            assert!(err.contains("cuda"), "{a:?}: {err}");
        }
    }
    let out = splade(&["encode", "--model", m, "--input", t, "--device", "gpu0"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected cpu, auto, cuda"));
}
