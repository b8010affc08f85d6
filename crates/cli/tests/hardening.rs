//! Regression tests for the holes closed by the hardening issue (#11), run as a user runs
//! them: through the `splade` binary. Each test names the item it guards.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use splade_index::{Index, IndexBuilder};
use splade_sparse::SparseVector;

fn model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/encoder/models/bert-tied-v6")
}

fn splade(args: &[&str]) -> Output {
    run_with_deadline(
        Command::new(env!("CARGO_BIN_EXE_splade"))
            .args(args)
            .stdout(Stdio::piped()),
        120,
    )
}

/// Runs a command (standard output as the caller set it: piped to be read) and fails the
/// test if it has not finished after `secs` seconds (a hang is one of the bugs guarded
/// here).
fn run_with_deadline(cmd: &mut Command, secs: u64) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run splade");
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "splade did not finish within {secs} s (hang): {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "splade failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The error message of a failed run (exit status 1, no panic).
fn failure(out: Output) -> String {
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "expected exit 1: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn vector_line(id: &str, pairs: &[(u32, f32)]) -> String {
    let (i, v): (Vec<u32>, Vec<f32>) = pairs.iter().copied().unzip();
    serde_json::json!({"id": id, "indices": i, "values": v}).to_string()
}

/// `n` documents over 30 terms as JSONL.
fn vectors(n: usize, prefix: &str) -> String {
    (0..n)
        .map(|d| {
            let pairs: Vec<(u32, f32)> = (0..(d % 5 + 1) as u32)
                .map(|j| {
                    (
                        ((d as u32) * 7 + j * 5) % 30,
                        0.25 + (d + j as usize) as f32 % 4.0,
                    )
                })
                .collect::<std::collections::BTreeMap<_, _>>()
                .into_iter()
                .collect();
            vector_line(&format!("{prefix}{d}"), &pairs) + "\n"
        })
        .collect()
}

/// Every file under `dir` with its contents, for "nothing was touched" checks.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.push((p.clone(), Vec::new()));
            out.extend(snapshot(&p));
        } else {
            out.push((p.clone(), std::fs::read(&p).unwrap()));
        }
    }
    out.sort();
    out
}

/// Item 1: a non-empty folder that is not an index is refused and left as it was.
#[test]
fn build_refuses_a_folder_that_is_not_an_index_and_touches_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let vec_file = tmp.path().join("v.jsonl");
    std::fs::write(&vec_file, vectors(20, "d")).unwrap();
    let out = tmp.path().join("mine");
    std::fs::create_dir_all(out.join("seg-2024")).unwrap();
    std::fs::create_dir_all(out.join("seg-000001")).unwrap();
    std::fs::write(out.join("seg-2024").join("photo.jpg"), b"jpeg").unwrap();
    for f in [
        "del-000001-000001.bin",
        ".forward.terms.tmp-1",
        "notes.txt",
        "forward.terms",
    ] {
        std::fs::write(out.join(f), f.as_bytes()).unwrap();
    }
    let before = snapshot(&out);
    for extra in [&[][..], &["--overwrite"][..]] {
        let mut args = vec![
            "index",
            "build",
            "--out",
            s(&out),
            "--vectors",
            s(&vec_file),
        ];
        args.extend_from_slice(extra);
        let msg = failure(splade(&args));
        assert!(msg.contains("not empty and not a splade index"), "{msg}");
        assert_eq!(snapshot(&out), before, "the folder was changed");
    }
    // A file named like a manifest but not ours counts as someone else's.
    let other = tmp.path().join("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("manifest.json"), br#"{"format": "theirs"}"#).unwrap();
    let msg = failure(splade(&[
        "index",
        "build",
        "--out",
        s(&other),
        "--vectors",
        s(&vec_file),
    ]));
    assert!(msg.contains("not a splade index"), "{msg}");
    // --out naming a file (item 13): says so, before reading any input.
    let file = tmp.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let msg = failure(splade(&[
        "index",
        "build",
        "--out",
        s(&file),
        "--vectors",
        "/nonexistent",
    ]));
    assert!(msg.contains("exists and is not a directory"), "{msg}");
    // An empty folder is fine.
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    ok(splade(&[
        "index",
        "build",
        "--out",
        s(&empty),
        "--vectors",
        s(&vec_file),
    ]));
    assert_eq!(Index::open(&empty).unwrap().len(), 20);
}

/// Item 1: an existing index is replaced only with --overwrite, and files it did not
/// write survive the replacement.
#[test]
fn build_replaces_an_index_only_with_overwrite_and_keeps_foreign_files() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a.jsonl"), tmp.path().join("b.jsonl"));
    std::fs::write(&a, vectors(30, "a")).unwrap();
    std::fs::write(&b, vectors(12, "b")).unwrap();
    let out = tmp.path().join("idx");
    ok(splade(&[
        "index",
        "build",
        "--out",
        s(&out),
        "--vectors",
        s(&a),
    ]));
    // A segmented index with a user's files beside it.
    ok(splade(&[
        "index",
        "add",
        "--index",
        s(&out),
        "--vectors",
        s(&b),
    ]));
    std::fs::create_dir(out.join("seg-2024")).unwrap();
    std::fs::write(out.join("seg-2024").join("keep.txt"), b"keep").unwrap();
    std::fs::write(out.join("del-notes.bin"), b"keep").unwrap();
    std::fs::write(out.join("README.txt"), b"keep").unwrap();
    let msg = failure(splade(&[
        "index",
        "build",
        "--out",
        s(&out),
        "--vectors",
        s(&b),
    ]));
    assert!(
        msg.contains("already holds a splade index") && msg.contains("--overwrite"),
        "{msg}"
    );
    assert_eq!(Index::open(&out).unwrap().len(), 42);
    ok(splade(&[
        "index",
        "build",
        "--out",
        s(&out),
        "--vectors",
        s(&b),
        "--overwrite",
    ]));
    let index = Index::open(&out).unwrap();
    assert_eq!(index.len(), 12);
    assert!(index.doc_number("b3").is_some() && index.doc_number("a3").is_none());
    for kept in ["seg-2024/keep.txt", "del-notes.bin", "README.txt"] {
        assert_eq!(std::fs::read(out.join(kept)).unwrap(), b"keep", "{kept}");
    }
    // The old segments are gone: the live ones are all that remain of ours.
    let ours: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("seg-0") || n.starts_with("forward") || n.starts_with("del-0"))
        .collect();
    assert_eq!(ours.len(), 1, "{ours:?}");
}

/// Item 2: a rebuild killed at any moment leaves the old or the new index, and searches
/// running during rebuilds never fail. The crash-safety test of RELIABILITY.md covers
/// every writing command; this one is the rebuild.
#[test]
fn a_rebuild_killed_at_any_moment_leaves_a_searchable_index() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a.jsonl"), tmp.path().join("b.jsonl"));
    std::fs::write(&a, vectors(2_000, "a")).unwrap();
    std::fs::write(&b, vectors(40_000, "b")).unwrap();
    let out = tmp.path().join("idx");
    ok(splade(&[
        "index",
        "build",
        "--out",
        s(&out),
        "--vectors",
        s(&a),
    ]));
    // How long an uninterrupted rebuild takes, to spread the kills over it.
    let start = Instant::now();
    ok(splade(&[
        "index",
        "build",
        "--out",
        s(&out),
        "--vectors",
        s(&a),
        "--overwrite",
    ]));
    let full = start.elapsed().max(Duration::from_millis(200));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let searcher = {
        let (out, stop) = (out.clone(), stop.clone());
        std::thread::spawn(move || {
            let q = SparseVector::new(vec![1, 5, 9], vec![1.0, 0.5, 2.0]).unwrap();
            let mut searches = 0usize;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let index =
                    Index::open(&out).unwrap_or_else(|e| panic!("search during rebuild: {e}"));
                assert!(
                    index.len() == 2_000 || index.len() == 40_000,
                    "{}",
                    index.len()
                );
                assert!(!index.top_k(q.view(), 10).is_empty());
                searches += 1;
            }
            searches
        })
    };
    let runs = 8;
    let mut outcomes = Vec::new();
    for run in 0..runs {
        let source = if run % 2 == 0 { &b } else { &a };
        let mut child = Command::new(env!("CARGO_BIN_EXE_splade"))
            .args([
                "index",
                "build",
                "--out",
                s(&out),
                "--vectors",
                s(source),
                "--overwrite",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Spread over the rebuild's duration, a little beyond it too.
        let wait = full.mul_f64((run as f64 + 0.5) / runs as f64 * 1.2);
        std::thread::sleep(wait);
        let _ = child.kill(); // SIGKILL
        let status = child.wait().unwrap();
        let index = Index::open(&out).expect("an index after the kill");
        assert!(
            index.len() == 2_000 || index.len() == 40_000,
            "{}",
            index.len()
        );
        outcomes.push((status.success(), index.len()));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let searches = searcher.join().expect("no search failed");
    assert!(searches > 0);
    // The next command cleans up what the killed ones left, and the index is complete.
    ok(splade(&[
        "index",
        "build",
        "--out",
        s(&out),
        "--vectors",
        s(&a),
        "--overwrite",
    ]));
    ok(splade(&["index", "info", "--index", s(&out)]));
    let leftovers: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("splade-build"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    eprintln!("kill outcomes (finished, documents): {outcomes:?}; {searches} searches");
}

/// Item 3: weights that could overflow a score are refused with the line; query weights
/// beyond the bound are scored by brute force, so `--exact` never fires.
#[test]
fn weights_that_could_overflow_are_refused_and_exact_never_fires() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        format!(
            "{}\n{}\n",
            vector_line("a", &[(1, 1.0)]),
            vector_line("b", &[(2, 1e38)])
        ),
    )
    .unwrap();
    let msg = failure(splade(&[
        "index",
        "build",
        "--out",
        s(&tmp.path().join("i")),
        "--vectors",
        s(&bad),
    ]));
    assert!(
        msg.contains("bad.jsonl: line 2, field 'values'") && msg.contains("1e15"),
        "{msg}"
    );

    let docs = tmp.path().join("docs.jsonl");
    let lines: Vec<String> = (0..50)
        .map(|d| {
            vector_line(
                &format!("d{d}"),
                &[(d % 7, 1e15), (7 + d % 3, 1e14 * (d % 5) as f32)],
            )
        })
        .collect();
    std::fs::write(&docs, lines.join("\n")).unwrap();
    let idx = tmp.path().join("idx");
    ok(splade(&[
        "index",
        "build",
        "--out",
        s(&idx),
        "--vectors",
        s(&docs),
        "--dim",
        "16",
    ]));
    let queries = tmp.path().join("q.jsonl");
    std::fs::write(
        &queries,
        format!(
            "{}\n{}\n",
            vector_line("q1", &[(1, 1e15), (8, 1e15)]),
            vector_line("q2", &[(0, 3e38), (3, 1e30), (9, 1.0)]),
        ),
    )
    .unwrap();
    // q2 is beyond the bound for documents, so `--query-vectors` refuses it too.
    let msg = failure(splade(&[
        "search",
        "--index",
        s(&idx),
        "--query-vectors",
        s(&queries),
    ]));
    assert!(msg.contains("line 2"), "{msg}");
    // The library scores such a query by brute force: equal to it, even with infinities.
    let index = Index::open(&idx).unwrap();
    let q = SparseVector::new(vec![0, 3, 9], vec![3e38, 1e30, 1.0]).unwrap();
    assert_eq!(
        index.top_k(q.view(), 10),
        index.brute_force_top_k(q.view(), 10)
    );
    std::fs::write(&queries, vector_line("q1", &[(1, 1e15), (8, 1e15)])).unwrap();
    let run = ok(splade(&[
        "search",
        "--index",
        s(&idx),
        "--query-vectors",
        s(&queries),
        "--exact",
    ]));
    assert!(run.lines().all(|l| !l.contains("inf")), "{run}");
    // And the library refuses such documents whatever the input path.
    let mut b = IndexBuilder::new(10);
    let e = b
        .add("x", SparseVector::new(vec![1], vec![2e15]).unwrap().view())
        .unwrap_err();
    assert!(e.to_string().contains("above the largest weight"), "{e}");
}

/// Item 4: a TREC run always has six fields per line; ids with control characters are
/// refused at ingestion with the line; duplicate query ids in query vectors are refused.
#[test]
fn trec_runs_always_parse() {
    let tmp = tempfile::tempdir().unwrap();
    let docs = tmp.path().join("docs.jsonl");
    std::fs::write(
        &docs,
        format!(
            "{}\n{}\n{}\n",
            vector_line("Global warming:14", &[(1, 2.0)]),
            vector_line("100%", &[(1, 1.0)]),
            vector_line("plain", &[(1, 0.5)])
        ),
    )
    .unwrap();
    let idx = tmp.path().join("idx");
    ok(splade(&[
        "index",
        "build",
        "--out",
        s(&idx),
        "--vectors",
        s(&docs),
    ]));
    let queries = tmp.path().join("q.jsonl");
    std::fs::write(&queries, vector_line("my query", &[(1, 1.0)]) + "\n").unwrap();
    let run = ok(splade(&[
        "search",
        "--index",
        s(&idx),
        "--query-vectors",
        s(&queries),
    ]));
    let lines: Vec<Vec<&str>> = run
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines.len(), 3, "{run}");
    assert!(lines.iter().all(|f| f.len() == 6), "{run}");
    assert_eq!(lines[0][0], "my%20query");
    assert_eq!(lines[0][2], "Global%20warming:14");
    // Ids without whitespace are written as they are.
    assert_eq!(lines[1][2], "100%");
    assert_eq!(lines[2][2], "plain");
    // Control characters in ids: refused when read, naming the line.
    for (name, content) in [
        (
            "tab.jsonl",
            format!(
                "{}\n{}\n",
                vector_line("ok", &[(1, 1.0)]),
                vector_line("a\tb", &[(1, 1.0)])
            ),
        ),
        (
            "nl.jsonl",
            format!("{}\n", vector_line("a\nb", &[(1, 1.0)])),
        ),
    ] {
        let f = tmp.path().join(name);
        std::fs::write(&f, content).unwrap();
        let msg = failure(splade(&[
            "index",
            "build",
            "--out",
            s(&tmp.path().join(name).with_extension("idx")),
            "--vectors",
            s(&f),
        ]));
        assert!(
            msg.contains(name) && msg.contains("field 'id'") && msg.contains("control character"),
            "{msg}"
        );
        let msg = failure(splade(&[
            "search",
            "--index",
            s(&idx),
            "--query-vectors",
            s(&f),
        ]));
        assert!(msg.contains("control character"), "{msg}");
    }
    let out = splade(&[
        "search",
        "--index",
        s(&idx),
        "--query-vectors",
        s(&queries),
        "--run-tag",
        "my run",
    ]);
    assert_eq!(out.status.code(), Some(2), "a usage error");
    assert!(String::from_utf8_lossy(&out.stderr).contains("run tag"));
    std::fs::write(
        &queries,
        format!("{0}\n\n{0}\n", vector_line("q", &[(1, 1.0)])),
    )
    .unwrap();
    let msg = failure(splade(&[
        "search",
        "--index",
        s(&idx),
        "--query-vectors",
        s(&queries),
    ]));
    assert!(
        msg.contains("line 3: duplicate query id \"q\" (first on line 1)"),
        "{msg}"
    );
}

/// Item 9: write errors on standard output: a closed pipe exits quietly, a full disk is
/// an error message, never a panic.
#[test]
fn output_write_errors_are_clean() {
    let tmp = tempfile::tempdir().unwrap();
    let docs = tmp.path().join("docs.jsonl");
    std::fs::write(&docs, vectors(10, "d")).unwrap();
    let idx = tmp.path().join("idx");
    ok(splade(&[
        "index",
        "build",
        "--out",
        s(&idx),
        "--vectors",
        s(&docs),
    ]));
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    for args in [
        vec!["index", "info", "--index", s(&idx)],
        vec!["info", "--model", s(&model())],
    ] {
        let out = run_with_deadline(
            Command::new(env!("CARGO_BIN_EXE_splade"))
                .args(&args)
                .stdout(full.try_clone().unwrap()),
            60,
        );
        let msg = failure(out);
        assert!(msg.contains("No space left on device"), "{msg}");
        // A reader that closes the pipe at once (`| head -0`).
        let mut child = Command::new(env!("CARGO_BIN_EXE_splade"))
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "broken pipe: {stderr}");
        assert!(
            !stderr.contains("panicked") && !stderr.contains("error"),
            "{stderr}"
        );
    }
}

/// Item 10: a thread count the system refuses is capped, never a panic or an abort.
#[test]
fn huge_thread_counts_are_capped() {
    let tmp = tempfile::tempdir().unwrap();
    let texts = tmp.path().join("t.txt");
    std::fs::write(&texts, "hello world\nsparse retrieval\n").unwrap();
    let out = splade(&[
        "--threads",
        "100000",
        "encode",
        "--model",
        s(&model()),
        "--input",
        s(&texts),
    ]);
    let stdout = ok(out);
    assert_eq!(stdout.lines().count(), 2);
    let out = run_with_deadline(
        Command::new(env!("CARGO_BIN_EXE_splade"))
            .env("RAYON_NUM_THREADS", "100000")
            .stdout(Stdio::piped())
            .args(["encode", "--model", s(&model()), "--input", s(&texts)]),
        120,
    );
    assert_eq!(ok(out).lines().count(), 2);
    let msg = failure(run_with_deadline(
        Command::new(env!("CARGO_BIN_EXE_splade"))
            .env("RAYON_NUM_THREADS", "many")
            .args(["index", "info", "--index", "/nonexistent"]),
        60,
    ));
    assert!(msg.contains("RAYON_NUM_THREADS"), "{msg}");
}

/// Item 11: a huge index in the vectors needs --dim, which is capped; nothing tries to
/// allocate per dimension beyond that.
#[test]
fn dimensions_are_inferred_safely_and_capped() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("v.jsonl");
    let idx = tmp.path().join("idx");
    for index in [4294967295u32, 50_000_000, 300_000] {
        std::fs::write(&f, vector_line("a", &[(index, 1.0)])).unwrap();
        let msg = failure(splade(&[
            "index",
            "build",
            "--out",
            s(&idx),
            "--vectors",
            s(&f),
        ]));
        assert!(msg.contains("--dim"), "{msg}");
        assert!(!idx.exists());
    }
    for dim in ["4294967296", "16777217", "0"] {
        let msg = failure(splade(&[
            "index",
            "build",
            "--out",
            s(&idx),
            "--vectors",
            s(&f),
            "--dim",
            dim,
        ]));
        assert!(msg.contains("1..=16777216"), "{msg}");
    }
    // Within the cap, with --dim: fine.
    ok(splade(&[
        "index",
        "build",
        "--out",
        s(&idx),
        "--vectors",
        s(&f),
        "--dim",
        "300001",
    ]));
    assert_eq!(Index::open(&idx).unwrap().dim(), 300_001);
    // The largest dimension: the index's size follows its documents, not the dimension
    // (it was 12 bytes per dimension: 200 MB here).
    let big = tmp.path().join("big");
    ok(splade(&[
        "index",
        "build",
        "--out",
        s(&big),
        "--vectors",
        s(&f),
        "--dim",
        "16777216",
    ]));
    let bytes: u64 = std::fs::read_dir(&big)
        .unwrap()
        .flatten()
        .map(|e| e.metadata().unwrap().len())
        .sum();
    assert!(bytes < 4 << 20, "{bytes} bytes for one document");
    let index = Index::open(&big).unwrap();
    assert_eq!(index.dim(), 16_777_216);
    let q = SparseVector::new(vec![300_000, 16_000_000], vec![1.0, 1.0]).unwrap();
    assert_eq!(index.top_k(q.view(), 5).len(), 1);
}

/// Item 12: a FIFO where a manifest belongs, or a device as input, is an error, not a
/// hang; so is an oversized manifest.
#[test]
fn fifos_devices_and_huge_metadata_are_errors_not_hangs() {
    let tmp = tempfile::tempdir().unwrap();
    let idx = tmp.path().join("idx");
    std::fs::create_dir(&idx).unwrap();
    let status = Command::new("mkfifo")
        .arg(idx.join("manifest.json"))
        .status()
        .unwrap();
    assert!(status.success());
    for args in [
        vec!["index", "info", "--index", s(&idx)],
        vec!["search", "--index", s(&idx), "--query-vectors", "/dev/null"],
        vec!["index", "add", "--index", s(&idx), "--vectors", "/dev/null"],
    ] {
        let msg = failure(splade(&args));
        assert!(
            msg.contains("manifest.json") && msg.contains("FIFO"),
            "{msg}"
        );
    }
    std::fs::remove_file(idx.join("manifest.json")).unwrap();
    let big = std::fs::File::create(idx.join("manifest.json")).unwrap();
    big.set_len(65 << 20).unwrap();
    let msg = failure(splade(&["index", "info", "--index", s(&idx)]));
    assert!(msg.contains("more than the"), "{msg}");
    let msg = failure(splade(&[
        "encode",
        "--model",
        s(&model()),
        "--input",
        "/dev/zero",
    ]));
    assert!(msg.contains("character device"), "{msg}");
    let msg = failure(splade(&[
        "index",
        "build",
        "--out",
        s(&tmp.path().join("x")),
        "--vectors",
        "/dev/zero",
    ]));
    assert!(msg.contains("character device"), "{msg}");
}

/// Item 13: the messages a user reads.
#[test]
fn error_messages_are_clear() {
    let tmp = tempfile::tempdir().unwrap();
    // No repeated OS error.
    let msg = failure(splade(&["index", "info", "--index", "/nonexistent/idx"]));
    assert_eq!(msg.matches("os error 2").count(), 1, "{msg}");
    // --k 0 is refused.
    let docs = tmp.path().join("docs.jsonl");
    std::fs::write(&docs, format!("\u{feff}{}", vectors(5, "d"))).unwrap();
    let idx = tmp.path().join("idx");
    // A byte-order mark at the start of JSONL is accepted.
    ok(splade(&[
        "index",
        "build",
        "--out",
        s(&idx),
        "--vectors",
        s(&docs),
    ]));
    let q = tmp.path().join("q.jsonl");
    std::fs::write(&q, vector_line("q", &[(1, 1.0)])).unwrap();
    let out = splade(&[
        "search",
        "--index",
        s(&idx),
        "--query-vectors",
        s(&q),
        "--k",
        "0",
    ]);
    assert_eq!(out.status.code(), Some(2), "clap's usage error");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--k"));
    // An index built from vectors (dimension = largest index + 1) searched with a model
    // whose vocabulary is larger works, with a note.
    let out = splade(&[
        "search",
        "--index",
        s(&idx),
        "--model",
        s(&model()),
        "sparse retrieval",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("below the model's"), "{stderr}");
    // encode --jsonl-field and index build --corpus agree: blank JSONL lines are skipped,
    // a BOM is not part of the first line.
    let corpus = tmp.path().join("corpus.jsonl");
    std::fs::write(
        &corpus,
        "\u{feff}{\"_id\": \"a\", \"text\": \"sparse retrieval\"}\n\n   \n{\"_id\": \"b\", \"text\": \"dense\"}\n",
    )
    .unwrap();
    let encoded = ok(splade(&[
        "encode",
        "--document",
        "--model",
        s(&model()),
        "--input",
        s(&corpus),
        "--jsonl-field",
        "text",
        "--id-field",
        "_id",
    ]));
    assert_eq!(encoded.lines().count(), 2, "{encoded}");
    let from_corpus = tmp.path().join("from-corpus");
    ok(splade(&[
        "index",
        "build",
        "--out",
        s(&from_corpus),
        "--corpus",
        s(&corpus),
        "--model",
        s(&model()),
    ]));
    let from_vectors = tmp.path().join("from-vectors");
    let enc_file = tmp.path().join("enc.jsonl");
    std::fs::write(&enc_file, &encoded).unwrap();
    ok(splade(&[
        "index",
        "build",
        "--out",
        s(&from_vectors),
        "--vectors",
        s(&enc_file),
        "--dim",
        "30522",
    ]));
    let (x, y) = (
        Index::open(&from_corpus).unwrap(),
        Index::open(&from_vectors).unwrap(),
    );
    assert_eq!(x.len(), 2);
    for d in 0..2 {
        assert_eq!(x.id(d), y.id(d));
        assert_eq!(
            x.document(d).unwrap().indices(),
            y.document(d).unwrap().indices()
        );
    }
}
