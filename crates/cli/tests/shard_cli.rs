//! Sharded encoding (#14 §4): `--shard I/N` on `splade encode` and `splade index build
//! --model`, `--resume` after a crash, and `splade index merge`. The shards' outputs
//! concatenated (and the shard indexes merged) equal the whole corpus's, byte for byte; a
//! resumed run equals an uninterrupted one; bad specs are clear errors.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn model() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/encoder/models/bert-tied-v6")
        .to_str()
        .unwrap()
        .to_string()
}

fn splade(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_splade"))
        .args(args)
        .output()
        .expect("run splade")
}

fn ok(out: Output) -> Vec<u8> {
    assert!(
        out.status.success(),
        "splade failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn failure(out: Output) -> String {
    assert!(!out.status.success(), "expected failure");
    String::from_utf8(out.stderr).unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `n` deterministic texts of 1..40 words (some empty), ids `t0`.. in a BEIR corpus.
fn write_corpus(dir: &Path, n: usize) -> (PathBuf, PathBuf) {
    const WORDS: [&str; 24] = [
        "sparse",
        "retrieval",
        "cats",
        "sleep",
        "inverted",
        "index",
        "neural",
        "search",
        "garden",
        "dogs",
        "vectors",
        "encode",
        "fast",
        "query",
        "document",
        "model",
        "weights",
        "token",
        "expansion",
        "learned",
        "ranking",
        "score",
        "shard",
        "merge",
    ];
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let texts: Vec<String> = (0..n)
        .map(|i| {
            let len = if i % 37 == 5 { 0 } else { 1 + next() % 40 };
            (0..len)
                .map(|_| WORDS[(next() % WORDS.len() as u64) as usize])
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    let plain = dir.join("corpus.txt");
    std::fs::write(&plain, texts.join("\n") + "\n").unwrap();
    let jsonl = dir.join("corpus.jsonl");
    let lines: Vec<String> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| {
            serde_json::json!({"_id": format!("t{i}"), "title": "", "text": t}).to_string()
        })
        .collect();
    std::fs::write(&jsonl, lines.join("\n") + "\n").unwrap();
    (plain, jsonl)
}

/// Every file of an index directory (recursively) by relative path.
fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(
                    p.strip_prefix(dir).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    out
}

fn encode_args<'a>(m: &'a str, jsonl: &'a Path) -> Vec<&'a str> {
    vec![
        "encode",
        "--model",
        m,
        "--document",
        "--input",
        s(jsonl),
        "--jsonl-field",
        "text",
        "--id-field",
        "_id",
        "--batch-size",
        "8",
        "--chunk-size",
        "16",
    ]
}

#[test]
fn encoded_shards_concatenate_to_the_whole_output() {
    let tmp = tempfile::tempdir().unwrap();
    let (plain, jsonl) = write_corpus(tmp.path(), 203);
    let m = model();
    let whole = ok(splade(&encode_args(&m, &jsonl)));
    assert_eq!(whole.iter().filter(|&&b| b == b'\n').count(), 203);
    for n in [1usize, 2, 3, 5] {
        let mut joined = Vec::new();
        for i in 0..n {
            let spec = format!("{i}/{n}");
            let mut args = encode_args(&m, &jsonl);
            args.extend(["--shard", &spec]);
            if i % 2 == 0 {
                joined.extend(ok(splade(&args)));
            } else {
                // Odd shards through --output (FILE.part renamed when complete).
                let out = tmp.path().join(format!("shard-{i}-of-{n}.jsonl"));
                args.extend(["--output", s(&out)]);
                assert!(ok(splade(&args)).is_empty());
                assert!(!tmp
                    .path()
                    .join(format!("shard-{i}-of-{n}.jsonl.part"))
                    .exists());
                joined.extend(std::fs::read(&out).unwrap());
            }
        }
        assert!(joined == whole, "{n} shards concatenated differ");
    }
    // Plain text, queries: the same split by line.
    let plain_whole = ok(splade(&[
        "encode",
        "--model",
        &m,
        "--query",
        "--input",
        s(&plain),
        "--chunk-size",
        "16",
    ]));
    let mut joined = Vec::new();
    for i in 0..4 {
        let spec = format!("{i}/4");
        joined.extend(ok(splade(&[
            "encode",
            "--model",
            &m,
            "--query",
            "--input",
            s(&plain),
            "--chunk-size",
            "16",
            "--shard",
            &spec,
        ])));
    }
    assert!(joined == plain_whole);
}

#[test]
fn index_shards_merged_equal_one_build_bit_for_bit() {
    let tmp = tempfile::tempdir().unwrap();
    let (plain, jsonl) = write_corpus(tmp.path(), 700);
    let m = model();
    for corpus in [&plain, &jsonl] {
        let name = corpus.extension().unwrap().to_str().unwrap();
        let whole = tmp.path().join(format!("whole-{name}"));
        ok(splade(&[
            "index",
            "build",
            "--model",
            &m,
            "--corpus",
            s(corpus),
            "--out",
            s(&whole),
            "--chunk-size",
            "32",
        ]));
        let n = 3;
        let mut shards = Vec::new();
        for i in 0..n {
            let dir = tmp.path().join(format!("{name}-shard-{i}"));
            let spec = format!("{i}/{n}");
            ok(splade(&[
                "index",
                "build",
                "--model",
                &m,
                "--corpus",
                s(corpus),
                "--out",
                s(&dir),
                "--chunk-size",
                "32",
                "--shard",
                &spec,
            ]));
            shards.push(dir);
        }
        let merged = tmp.path().join(format!("merged-{name}"));
        let mut args = vec!["index", "merge", "--out", s(&merged)];
        args.extend(shards.iter().map(|p| s(p)));
        ok(splade(&args));
        let (a, b) = (files(&whole), files(&merged));
        assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
        for (file, bytes) in &a {
            assert!(bytes == &b[file], "{name}: {file:?} differs");
        }
        // Shards in the wrong order: the same documents, another order, other bytes.
        let swapped = tmp.path().join(format!("swapped-{name}"));
        ok(splade(&[
            "index",
            "merge",
            "--out",
            s(&swapped),
            s(&shards[1]),
            s(&shards[0]),
            s(&shards[2]),
        ]));
        assert!(files(&swapped) != a);
        let e = failure(splade(&[
            "index",
            "merge",
            "--out",
            s(&tmp.path().join("dup")),
            s(&shards[0]),
            s(&shards[0]),
        ]));
        assert!(e.contains("ids must be unique"), "{e}");
    }
}

#[test]
fn encode_resumed_after_a_torn_line_equals_an_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, jsonl) = write_corpus(tmp.path(), 150);
    let m = model();
    let whole = tmp.path().join("whole.jsonl");
    let mut args = encode_args(&m, &jsonl);
    args.extend(["--shard", "1/2", "--output", s(&whole)]);
    ok(splade(&args));
    let expected = std::fs::read(&whole).unwrap();
    let newline = expected.iter().position(|&b| b == b'\n').unwrap();
    // Cut points: nothing, mid first line, exactly a line end, mid-line later, all but the
    // final newline.
    for cut in [
        0,
        newline / 2,
        newline + 1,
        expected.len() * 2 / 3,
        expected.len() - 1,
    ] {
        let out = tmp.path().join(format!("resumed-{cut}.jsonl"));
        std::fs::write(
            tmp.path().join(format!("resumed-{cut}.jsonl.part")),
            &expected[..cut],
        )
        .unwrap();
        let mut args = encode_args(&m, &jsonl);
        args.extend(["--shard", "1/2", "--output", s(&out), "--resume"]);
        let run = splade(&args);
        let err = String::from_utf8_lossy(&run.stderr).to_string();
        ok(run);
        if cut > 0 && expected[cut - 1] != b'\n' {
            assert!(err.contains("torn last line"), "{err}");
        }
        assert!(std::fs::read(&out).unwrap() == expected, "cut at {cut}");
        assert!(!tmp
            .path()
            .join(format!("resumed-{cut}.jsonl.part"))
            .exists());
        // Resuming a complete output does nothing.
        let mut args = encode_args(&m, &jsonl);
        args.extend(["--shard", "1/2", "--output", s(&out), "--resume"]);
        let again = splade(&args);
        assert!(String::from_utf8_lossy(&again.stderr).contains("already complete"));
        ok(again);
    }
    // The partial output of another shard is refused, naming the file and line.
    let other = tmp.path().join("other.jsonl");
    std::fs::write(
        tmp.path().join("other.jsonl.part"),
        &expected[..newline + 1],
    )
    .unwrap();
    let mut args = encode_args(&m, &jsonl);
    args.extend(["--shard", "0/2", "--output", s(&other), "--resume"]);
    let e = failure(splade(&args));
    assert!(
        e.contains("other.jsonl.part: line 1") && e.contains("not the partial output"),
        "{e}"
    );
    // A complete line that is not a vector is an error, not silently dropped.
    std::fs::write(tmp.path().join("other.jsonl.part"), b"{\"oops\": 1}\n").unwrap();
    let mut args = encode_args(&m, &jsonl);
    args.extend(["--output", s(&other), "--resume"]);
    let e = failure(splade(&args));
    assert!(e.contains("line 1: no 'indices' array"), "{e}");
}

#[test]
fn index_build_resumed_from_its_checkpoint_equals_an_uninterrupted_build() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, jsonl) = write_corpus(tmp.path(), 300);
    let m = model();
    let build = |out: &Path, resume: bool| {
        let mut args = vec![
            "index",
            "build",
            "--model",
            &m,
            "--corpus",
            s(&jsonl),
            "--out",
            s(out),
            "--shard",
            "1/2",
            "--chunk-size",
            "16",
            "--batch-size",
            "8",
        ];
        if resume {
            args.push("--resume");
        }
        splade(&args)
    };
    let plain = tmp.path().join("plain");
    ok(build(&plain, false));
    let expected = files(&plain);
    // The checkpoint a crashed build leaves: the shard's document vectors (title "", so
    // the text is the field), cut mid-line.
    let mut args = encode_args(&m, &jsonl);
    args.extend(["--shard", "1/2"]);
    let vectors = ok(splade(&args));
    for cut in [0, vectors.len() / 3, vectors.len() - 1] {
        let out = tmp.path().join(format!("resumed-{cut}"));
        let part = tmp.path().join(format!("resumed-{cut}.vectors.jsonl.part"));
        std::fs::write(&part, &vectors[..cut]).unwrap();
        ok(build(&out, true));
        assert!(files(&out) == expected, "cut at {cut}");
        assert!(
            !part.exists(),
            "the checkpoint is removed once the index is written"
        );
        // A crash after the index was renamed into place, before the checkpoint was
        // removed: resuming finds the complete index and removes the checkpoint.
        std::fs::write(&part, &vectors[..cut]).unwrap();
        let again = build(&out, true);
        assert!(String::from_utf8_lossy(&again.stderr).contains("nothing to do"));
        ok(again);
        assert!(!part.exists());
        assert!(files(&out) == expected);
    }
    // A run with --resume from the start gives the same index.
    let fresh = tmp.path().join("fresh");
    ok(build(&fresh, true));
    assert!(files(&fresh) == expected);
    // A checkpoint of the other shard is refused.
    let wrong = tmp.path().join("wrong");
    let mut args = encode_args(&m, &jsonl);
    args.extend(["--shard", "0/2"]);
    std::fs::write(
        tmp.path().join("wrong.vectors.jsonl.part"),
        ok(splade(&args)),
    )
    .unwrap();
    let e = failure(build(&wrong, true));
    assert!(
        e.contains("wrong.vectors.jsonl.part: line 1") && e.contains("not the checkpoint"),
        "{e}"
    );
    assert!(!wrong.exists());
}

#[test]
fn bad_shard_specs_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let (plain, _) = write_corpus(tmp.path(), 10);
    let m = model();
    let cases = [
        ("2/2", "shards are numbered from 0"),
        ("5/2", "1/2 is the last"),
        ("0/0", "N must be at least 1"),
        ("x", "expected I/N"),
        ("1/", "N '' is not a number"),
        ("-1/2", "I '-1' is not a number"),
        ("1/2/3", "N '2/3' is not a number"),
    ];
    for (spec, message) in cases {
        // `--shard=SPEC`, so that a spec starting with '-' is not taken for a flag.
        let flag = format!("--shard={spec}");
        let e = failure(splade(&[
            "encode",
            "--model",
            &m,
            "--input",
            s(&plain),
            &flag,
        ]));
        assert!(
            e.contains(&format!("'{spec}'")) && e.contains(message),
            "{spec}: {e}"
        );
        let out = tmp.path().join("idx");
        let e = failure(splade(&[
            "index",
            "build",
            "--model",
            &m,
            "--corpus",
            s(&plain),
            "--out",
            s(&out),
            &flag,
        ]));
        assert!(e.contains(message), "{spec}: {e}");
        assert!(!out.exists());
    }
    // --shard and --resume of `index build` need a corpus; --resume of `encode` an output.
    let e = failure(splade(&[
        "index",
        "build",
        "--vectors",
        s(&plain),
        "--out",
        s(&tmp.path().join("v")),
        "--shard",
        "0/2",
    ]));
    assert!(e.contains("--corpus"), "{e}");
    let e = failure(splade(&["encode", "--input", s(&plain), "--resume"]));
    assert!(e.contains("--output"), "{e}");
    let e = failure(splade(&[
        "encode",
        "--model",
        &m,
        "--input",
        s(&plain),
        "--chunk-size",
        "0",
    ]));
    assert!(e.contains("--chunk-size"), "{e}");
    // More shards than chunks: the extra shards are empty, and all still concatenate.
    let encode = |extra: &[&str]| {
        let mut args = vec![
            "encode",
            "--model",
            &m,
            "--input",
            s(&plain),
            "--chunk-size",
            "1",
        ];
        args.extend(extra);
        ok(splade(&args))
    };
    let mut joined = Vec::new();
    for i in 0..12 {
        let spec = format!("{i}/12");
        let out = encode(&["--shard", &spec]);
        if i % 6 == 0 {
            assert!(out.is_empty(), "shard {spec} of 10 chunks is empty");
        }
        joined.extend(out);
    }
    assert!(joined == encode(&[]));
}
