//! The `splade` binary end to end, checked against the library it is built on.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use splade_encoder::{EncodeOptions, SparseEncoder};

#[path = "common/run.rs"]
mod run;
use run::splade_with_stdin as splade;

fn model(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/encoder/models")
        .join(name)
}

fn stdout_lines(out: &Output) -> Vec<String> {
    assert!(
        out.status.success(),
        "splade failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn json_rows(lines: &[String]) -> Vec<(Vec<u32>, Vec<f32>)> {
    lines
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                serde_json::from_value(v["indices"].clone()).unwrap(),
                serde_json::from_value(v["values"].clone()).unwrap(),
            )
        })
        .collect()
}

fn assert_same_as_library(rows: &[(Vec<u32>, Vec<f32>)], expected: &splade_encoder::SparseBatch) {
    assert_eq!(rows.len(), expected.len());
    for ((indices, values), exp) in rows.iter().zip(expected.rows()) {
        assert_eq!(indices.as_slice(), exp.indices());
        assert!(
            indices.windows(2).all(|w| w[0] < w[1]),
            "indices must ascend"
        );
        for (a, b) in values.iter().zip(exp.values()) {
            // Batch composition changes padding, hence float rounding: allow the parity tolerance.
            assert!((a - b).abs() <= 1e-4 * b.abs().max(1.0), "{a} vs {b}");
        }
    }
}

#[test]
fn encode_writes_one_json_object_per_line_in_input_order() {
    let dir = model("bert-tied-v6");
    let texts = [
        "a much longer text about retrieval, sparse vectors and inverted indexes",
        "",
        "short one",
    ];
    let input = format!("{}\n{}\n{}\n", texts[0], texts[1], texts[2]);
    let out = splade(
        &[
            "encode",
            "--model",
            dir.to_str().unwrap(),
            "--batch-size",
            "2",
        ],
        input.as_bytes(),
    );
    let rows = json_rows(&stdout_lines(&out));
    let enc = SparseEncoder::load(&dir, &candle_core::Device::Cpu).unwrap();
    assert_same_as_library(
        &rows,
        &enc.encode(&texts, &EncodeOptions::default()).unwrap(),
    );

    // --query uses the model's query prompt; --max-active-dims keeps the top K.
    let out = splade(
        &[
            "encode",
            "--model",
            dir.to_str().unwrap(),
            "--query",
            "--max-active-dims",
            "5",
        ],
        input.as_bytes(),
    );
    let rows = json_rows(&stdout_lines(&out));
    let opts = EncodeOptions {
        max_active_dims: Some(5),
        ..Default::default()
    };
    assert_same_as_library(&rows, &enc.encode_query(&texts, &opts).unwrap());
    assert!(rows.iter().all(|(i, _)| i.len() <= 5));
}

#[test]
fn encode_reads_jsonl_fields_and_files() {
    let dir = model("distilbert-untied-v6");
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("corpus.jsonl");
    std::fs::write(
        &path,
        "{\"_id\":\"1\",\"text\":\"first doc\"}\n{\"_id\":\"2\",\"text\":\"second doc\"}\n",
    )
    .unwrap();
    let out = splade(
        &[
            "encode",
            "--model",
            dir.to_str().unwrap(),
            "--input",
            path.to_str().unwrap(),
            "--jsonl-field",
            "text",
            "--document",
        ],
        b"",
    );
    let rows = json_rows(&stdout_lines(&out));
    let enc = SparseEncoder::load(&dir, &candle_core::Device::Cpu).unwrap();
    assert_same_as_library(
        &rows,
        &enc.encode_document(&["first doc", "second doc"], &EncodeOptions::default())
            .unwrap(),
    );
}

#[test]
fn top_tokens_prints_a_readable_view() {
    let dir = model("bert-tied-v6");
    let out = splade(
        &[
            "encode",
            "--model",
            dir.to_str().unwrap(),
            "--top-tokens",
            "3",
        ],
        b"hello world\n",
    );
    let lines = stdout_lines(&out);
    assert_eq!(lines[0], "[1] hello world");
    assert!(lines[1].trim().ends_with("active dims"), "{lines:?}");
    let enc = SparseEncoder::load(&dir, &candle_core::Device::Cpu).unwrap();
    let batch = enc
        .encode(&["hello world"], &EncodeOptions::default())
        .unwrap();
    let top = enc.decode(batch.row(0).unwrap(), Some(3));
    let expected: Vec<String> = top.iter().map(|(t, w)| format!("{t} {w:.3}")).collect();
    assert_eq!(lines[2].trim(), expected.join("  "));
}

#[test]
fn similarity_scores_two_texts_with_the_model_function() {
    let dir = model("bert-tied-v6"); // similarity_fn_name: cosine
    let out = splade(
        &[
            "similarity",
            "--model",
            dir.to_str().unwrap(),
            "sparse retrieval",
            "inverted index",
        ],
        b"",
    );
    let score: f32 = stdout_lines(&out)[0].parse().unwrap();
    let enc = SparseEncoder::load(&dir, &candle_core::Device::Cpu).unwrap();
    let a = enc
        .encode(&["sparse retrieval"], &EncodeOptions::default())
        .unwrap();
    let b = enc
        .encode(&["inverted index"], &EncodeOptions::default())
        .unwrap();
    assert!((score - enc.similarity(&a, &b).get(0, 0)).abs() < 1e-6);
    assert!(score > 0.0 && score <= 1.0 + 1e-6);
}

fn assert_one_line_error(out: &Output, needle: &str) {
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line on stderr, got: {err}");
    assert!(
        lines[0].starts_with("error: ") && lines[0].contains(needle),
        "{err}"
    );
}

#[test]
fn bad_input_fails_with_one_clear_line() {
    let dir = model("bert-tied-v6");
    let out = splade(
        &["encode", "--model", dir.to_str().unwrap()],
        b"fine\nbroken \xff\xfe\n",
    );
    assert_one_line_error(&out, "<stdin>: line 2: invalid UTF-8");
    let out = splade(&["encode", "--model", "./does/not/exist"], b"x\n");
    assert_one_line_error(&out, "does/not/exist");
    let out = splade(
        &[
            "encode",
            "--model",
            dir.to_str().unwrap(),
            "--jsonl-field",
            "text",
        ],
        b"{\"text\": 1}\n",
    );
    assert_one_line_error(&out, "line 1: field 'text' is not a string");
    let out = splade(
        &[
            "encode",
            "--model",
            dir.to_str().unwrap(),
            "--input",
            "/no/such/file.txt",
        ],
        b"",
    );
    assert_one_line_error(&out, "/no/such/file.txt");
}

#[test]
fn default_model_encodes_real_text() {
    let out = splade(
        &["encode", "--top-tokens", "5"],
        b"what is the capital of france\n",
    );
    let lines = stdout_lines(&out);
    assert!(
        lines[2].contains("capital") && lines[2].contains("france"),
        "{lines:?}"
    );
}

#[test]
fn train_runs_from_a_config_file_with_flag_overrides() {
    let tmp = tempfile::tempdir().unwrap();
    let train = tmp.path().join("triplets.jsonl");
    let mut rows = String::new();
    for i in 0..8 {
        rows.push_str(&format!("{{\"anchor\":\"question {i}\",\"positive\":\"same question {i}\",\"negative\":\"other topic {i}\"}}\n"));
    }
    std::fs::write(&train, rows).unwrap();
    let config = tmp.path().join("run.toml");
    std::fs::write(
        &config,
        format!(
            "model = \"{}\"\nbatch_size = 4\nlr = 1e-3\nmax_steps = 50\n",
            model("distilbert-tied-seedlayout").display()
        ),
    )
    .unwrap();
    let out_dir = tmp.path().join("run");
    let out = splade(
        &[
            "train",
            "--config",
            config.to_str().unwrap(),
            "--train",
            train.to_str().unwrap(),
            "--output",
            out_dir.to_str().unwrap(),
            "--max-steps",
            "3",
            "--logging-steps",
            "1",
        ],
        b"",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = std::fs::read_to_string(out_dir.join("training_log.jsonl")).unwrap();
    assert_eq!(
        log.lines().count(),
        3,
        "the flag --max-steps 3 wins over the file's 50"
    );
    assert!(out_dir.join("final/model.safetensors").is_file());
    let card = std::fs::read_to_string(out_dir.join("final/README.md")).unwrap();
    for section in [
        "## Model Details",
        "## Usage",
        "### Training Logs",
        "### Training Hyperparameters",
        "- `per_device_train_batch_size`: 4",
        "SpladeLoss",
    ] {
        assert!(
            card.contains(section),
            "model card lacks {section:?}:\n{card}"
        );
    }
    let bad = tmp.path().join("bad.toml");
    std::fs::write(&bad, "batch_sise = 4\n").unwrap();
    let out = splade(
        &[
            "train",
            "--config",
            bad.to_str().unwrap(),
            "--train",
            train.to_str().unwrap(),
            "--output",
            out_dir.to_str().unwrap(),
        ],
        b"",
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("batch_sise"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The Python with sentence-transformers 6.x used for the round trip below: the
/// `SPLADE_RS_REFERENCE_PYTHON` environment variable (the parity scripts' venv).
fn reference_python() -> Option<PathBuf> {
    std::env::var_os("SPLADE_RS_REFERENCE_PYTHON")
        .map(PathBuf::from)
        .filter(|p| p.is_file())
}

#[test]
fn train_distills_from_parquet_and_sentence_transformers_loads_the_result() {
    let tmp = tempfile::tempdir().unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/train/parquet");
    let out_dir = tmp.path().join("run");
    let pairs = tmp.path().join("pairs.tsv");
    let args = |train: &Path| -> Vec<String> {
        [
            "train",
            "--model",
            model("distilbert-tied-seedlayout").to_str().unwrap(),
            "--train",
            train.to_str().unwrap(),
            "--output",
            out_dir.to_str().unwrap(),
            "--loss",
            "margin-mse",
            "--label-column",
            "extra",
            "--batch-size",
            "2",
            "--max-steps",
            "4",
            "--logging-steps",
            "1",
            "--eval-steps",
            "2",
            "--eval-pairs",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([pairs.display().to_string()])
        .collect()
    };
    std::fs::write(
        &pairs,
        "sentence1\tsentence2\tlabel\nhow do I learn python\tbest way to learn python\t1\nwhy is the sky blue\thow to cook rice\t0\nwhat is rust\twhat is the rust language\t1\nbest laptop\tcheap flights\t0\n",
    )
    .unwrap();
    let run = |a: Vec<String>| {
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        splade(&refs, b"")
    };
    // The `extra` int64 column of the fixture holds the teacher margins (0..5).
    let out = run(args(&fixtures.join("triplets")));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = std::fs::read_to_string(out_dir.join("training_log.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 4);
    let plot = std::fs::read(out_dir.join("final/training_plot.png")).unwrap();
    assert_eq!(&plot[1..4], b"PNG");
    let card = std::fs::read_to_string(out_dir.join("final/README.md")).unwrap();
    assert!(card.contains("SparseMarginMSELoss"), "{card}");
    assert!(card.contains("training_plot.png"), "{card}");
    // A mapped label column that does not exist is named in the error.
    let mut bad = args(&fixtures.join("triplets"));
    let i = bad.iter().position(|a| a == "extra").unwrap();
    bad[i] = "teacher".into();
    let out = run(bad);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no label column 'teacher'"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The Python reference loads the trained folder and encodes the same vectors.
    match reference_python() {
        Some(python) => {
            let script = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../scripts/parity/check_saved_model.py");
            let check = Command::new(python)
                .arg(script)
                .arg(out_dir.join("final"))
                .arg("--splade")
                .arg(env!("CARGO_BIN_EXE_splade"))
                .env("HF_HUB_OFFLINE", "1")
                .output()
                .unwrap();
            assert!(
                check.status.success(),
                "sentence-transformers round trip failed:\n{}\n{}",
                String::from_utf8_lossy(&check.stdout),
                String::from_utf8_lossy(&check.stderr)
            );
        }
        None => eprintln!(
            "note: SPLADE_RS_REFERENCE_PYTHON is not set; the sentence-transformers round trip \
             ran only in Rust (the reload above)"
        ),
    }
    let reloaded = SparseEncoder::load(&out_dir.join("final"), &candle_core::Device::Cpu).unwrap();
    let v = reloaded
        .encode(&["how do I learn python"], &EncodeOptions::default())
        .unwrap();
    assert!(v.len() == 1 && v.nnz() > 0);
}
