//! Crash safety of every writing command: `splade index build --overwrite`, `index add`,
//! `index delete` and `index optimize` are killed (SIGKILL) at points spread over their
//! run, while another thread opens and searches the index in a loop. After every kill the
//! index must open (checksums verified) and hold exactly the old or the new set of live
//! documents, and no search may fail. `SPLADE_CRASH_RUNS` sets the kills per command
//! (default 6, what CI runs); RELIABILITY.md records a long run.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use splade_index::Index;
use splade_sparse::SparseVector;

#[path = "common/fs.rs"]
mod fs;
use fs::copy_dir;

fn runs() -> usize {
    std::env::var("SPLADE_CRASH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6)
}

fn splade() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_splade"));
    c.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

fn run_ok(args: &[String]) {
    let out = splade().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "splade {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

/// `n` documents over 50 terms as JSONL, ids `{prefix}{d}`.
fn write_vectors(path: &Path, n: usize, prefix: &str) {
    let mut text = String::with_capacity(n * 60);
    for d in 0..n {
        let pairs: BTreeSet<u32> = (0..(d % 7 + 2) as u32)
            .map(|j| ((d as u32).wrapping_mul(31) + j * 13) % 50)
            .collect();
        let idx: Vec<u32> = pairs.into_iter().collect();
        let vals: Vec<f32> = idx.iter().map(|t| 0.5 + (t % 5) as f32).collect();
        text += &serde_json::json!({"id": format!("{prefix}{d}"), "indices": idx, "values": vals})
            .to_string();
        text.push('\n');
    }
    std::fs::write(path, text).unwrap();
}

fn live_ids(dir: &Path) -> BTreeSet<String> {
    let index = Index::open(dir).unwrap_or_else(|e| panic!("index after a kill: {e}"));
    (0..index.max_doc() as u32)
        .filter_map(|d| index.id(d).map(str::to_string))
        .collect()
}

/// A thread that opens (checksums verified) and searches an index in a loop until
/// stopped; every open must succeed with the old or the new number of documents.
struct Searching {
    stop: Arc<AtomicBool>,
    searches: Arc<AtomicUsize>,
    thread: std::thread::JoinHandle<()>,
}

impl Searching {
    fn start(dir: &Path, old: usize, new: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let searches = Arc::new(AtomicUsize::new(0));
        let thread = {
            let (dir, stop, searches) = (dir.to_path_buf(), stop.clone(), searches.clone());
            std::thread::spawn(move || {
                let q = SparseVector::new(vec![3, 16, 29], vec![1.0, 2.0, 0.5]).unwrap();
                while !stop.load(Ordering::Relaxed) {
                    let index = Index::open(&dir).expect("a search during the command");
                    assert!(index.len() == old || index.len() == new, "{}", index.len());
                    let _ = index.top_k(q.view(), 10);
                    searches.fetch_add(1, Ordering::Relaxed);
                }
            })
        };
        Self {
            stop,
            searches,
            thread,
        }
    }

    /// Stops the loop; panics if a search failed.
    fn stop(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("no search failed");
        self.searches.load(Ordering::Relaxed)
    }
}

/// Kills `args` at points spread over `full` (its uninterrupted duration) `runs` times,
/// restoring `start` before each run; checks old-or-new after each kill with searches
/// running. Returns (kills that left the old state, kills that left the new state).
fn kill_repeatedly(
    name: &str,
    start: &Path,
    work: &Path,
    args: &[String],
    old: &BTreeSet<String>,
    new: &BTreeSet<String>,
) -> (usize, usize) {
    // One uninterrupted run, with searches running as in the killed ones: its duration
    // and its result.
    let _ = std::fs::remove_dir_all(work);
    copy_dir(start, work);
    let searching = Searching::start(work, old.len(), new.len());
    let t = Instant::now();
    run_ok(args);
    let full = t.elapsed().max(Duration::from_millis(100));
    searching.stop();
    assert_eq!(&live_ids(work), new, "{name}: the uninterrupted run");

    let (mut olds, mut news) = (0, 0);
    let n = runs();
    for run in 0..n {
        let _ = std::fs::remove_dir_all(work);
        copy_dir(start, work);
        let searching = Searching::start(work, old.len(), new.len());
        let mut child = splade().args(args).spawn().unwrap();
        // Spread over the command's duration, and a little beyond.
        std::thread::sleep(full.mul_f64((run as f64 + 0.5) / n as f64 * 1.2));
        let _ = child.kill();
        let _ = child.wait();
        searching.stop();
        let after = live_ids(work);
        if &after == old {
            olds += 1;
        } else if &after == new {
            news += 1;
        } else {
            panic!(
                "{name}: run {run} left neither the old nor the new state ({} documents)",
                after.len()
            );
        }
        // The next commit cleans up and works.
        run_ok(&["index".into(), "info".into(), "--index".into(), s(work)]);
    }
    eprintln!("{name}: {n} kills, {olds} old state, {news} new state, 0 failures");
    (olds, news)
}

#[test]
fn every_writing_command_survives_kill_9_with_concurrent_searches() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (a, b) = (t.join("a.jsonl"), t.join("b.jsonl"));
    write_vectors(&a, 20_000, "a");
    write_vectors(&b, 20_000, "b");
    let ids = |prefix: &str, n: usize| -> BTreeSet<String> {
        (0..n).map(|d| format!("{prefix}{d}")).collect()
    };
    let start = t.join("start");
    run_ok(&[
        "index".into(),
        "build".into(),
        "--out".into(),
        s(&start),
        "--vectors".into(),
        s(&a),
    ]);
    let work = t.join("work");
    let mut total = (0, 0);
    let mut add = |x: (usize, usize)| {
        total.0 += x.0;
        total.1 += x.1;
    };

    // A rebuild.
    add(kill_repeatedly(
        "index build --overwrite",
        &start,
        &work,
        &[
            "index",
            "build",
            "--out",
            &s(&work),
            "--vectors",
            &s(&b),
            "--overwrite",
        ]
        .map(String::from),
        &ids("a", 20_000),
        &ids("b", 20_000),
    ));
    // An add (new segment, with a merge: --max-segments 1).
    let both: BTreeSet<String> = ids("a", 20_000).union(&ids("b", 20_000)).cloned().collect();
    add(kill_repeatedly(
        "index add",
        &start,
        &work,
        &[
            "index",
            "add",
            "--index",
            &s(&work),
            "--vectors",
            &s(&b),
            "--max-segments",
            "1",
        ]
        .map(String::from),
        &ids("a", 20_000),
        &both,
    ));
    // A delete of half the documents.
    let ids_file = t.join("ids.txt");
    let gone: Vec<String> = (0..20_000).step_by(2).map(|d| format!("a{d}")).collect();
    std::fs::write(&ids_file, gone.join("\n")).unwrap();
    let halved: BTreeSet<String> = (1..20_000).step_by(2).map(|d| format!("a{d}")).collect();
    add(kill_repeatedly(
        "index delete",
        &start,
        &work,
        &[
            "index",
            "delete",
            "--index",
            &s(&work),
            "--ids-file",
            &s(&ids_file),
        ]
        .map(String::from),
        &ids("a", 20_000),
        &halved,
    ));
    // An optimize of a segmented index with deletions (same live set before and after:
    // checked for completeness and openability).
    let segmented = t.join("segmented");
    copy_dir(&start, &segmented);
    run_ok(
        &[
            "index",
            "add",
            "--index",
            &s(&segmented),
            "--vectors",
            &s(&b),
        ]
        .map(String::from),
    );
    run_ok(
        &[
            "index",
            "delete",
            "--index",
            &s(&segmented),
            "--ids-file",
            &s(&ids_file),
        ]
        .map(String::from),
    );
    let live = live_ids(&segmented);
    add(kill_repeatedly(
        "index optimize",
        &segmented,
        &work,
        &["index", "optimize", "--index", &s(&work)].map(String::from),
        &live,
        &live,
    ));
    // Both states were seen for the commands that change the live set (the kill points
    // span the whole run).
    assert!(total.0 > 0 && total.1 > 0, "{total:?}");
    let _: PathBuf = work;
}
