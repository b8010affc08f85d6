//! Runs the Python tests of the `splade_rs` package (`tests/python`, pytest) from
//! `cargo test`, so the README's test command covers them: builds the wheel with maturin
//! (abi3, release, the `extension-module` feature, this workspace's target directory),
//! installs it into a virtual environment and runs pytest there.
//!
//! The environment is `SPLADE_RS_PYTHON_VENV` when set (CI keeps one in `~/.cache/splade-rs`,
//! so a clean clone does not install torch again), else `target/python-venv`, created with
//! `python3 -m venv` and filled from `requirements-test.txt` (PyPI: maturin, numpy, scipy,
//! pytest, ray[data], torch and sentence-transformers 6.2, the reference of the in-process
//! tests) when it lacks them or was filled from another version of that file (a copy kept in
//! the environment says which); pip keeps no cache (torch and its libraries are gigabytes).
//! A lock file beside the environment makes runs that share it take turns. A skipped test
//! fails the run.
//! Missing Python or pip is a failure with a clear message, never a silent pass.

use std::path::{Path, PathBuf};
use std::process::Command;

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The workspace's target directory (`CARGO_TARGET_TMPDIR` is `<target>/tmp`).
fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("CARGO_TARGET_TMPDIR has a parent")
        .to_path_buf()
}

fn run(cmd: &mut Command, what: &str) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{text}",
        out.status
    );
    text
}

/// The test environment: `SPLADE_RS_PYTHON_VENV`, else `target/python-venv`.
fn venv_dir() -> PathBuf {
    std::env::var_os("SPLADE_RS_PYTHON_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("python-venv"))
}

/// The test environment's python, created and filled when needed.
fn venv_python() -> PathBuf {
    let venv = venv_dir();
    let python = venv.join("bin").join("python");
    if !python.exists() {
        run(
            Command::new("python3").args(["-m", "venv"]).arg(&venv),
            "creating the Python test environment (python3 -m venv; install python3 and python3-venv)",
        );
    }
    let requirements_path = crate_dir().join("requirements-test.txt");
    let requirements = std::fs::read_to_string(&requirements_path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", requirements_path.display()));
    // The requirements the environment was last filled from: a changed pin fills it again.
    let filled_from = venv.join("splade-rs-requirements-test.txt");
    let same_pins = std::fs::read_to_string(&filled_from).is_ok_and(|s| s == requirements);
    // Importing torch and ray takes seconds: only checked where the pins are the same.
    let imports = || {
        Command::new(&python)
            .args([
                "-c",
                "import maturin, numpy, scipy, pytest, ray.data, torch, sentence_transformers",
            ])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !(same_pins && imports()) {
        run(
            Command::new(&python)
                .args(["-m", "pip", "install", "-q", "--no-cache-dir", "-r"])
                .arg(&requirements_path),
            "installing maturin, numpy, scipy, pytest, ray, torch and sentence-transformers from PyPI",
        );
        std::fs::write(&filled_from, &requirements)
            .unwrap_or_else(|e| panic!("writing {}: {e}", filled_from.display()));
    }
    python
}

/// The environment's lock (a file beside it), held while it is filled, the wheel installed
/// and pytest run: two runs sharing one environment (`SPLADE_RS_PYTHON_VENV`) take turns
/// (`flock`, on Unix; std's `File::lock` is newer than the workspace's MSRV).
fn lock_venv() -> std::fs::File {
    let path = venv_dir().with_extension("lock");
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .unwrap_or_else(|e| panic!("creating {}: {e}", parent.display()));
    }
    let file =
        std::fs::File::create(&path).unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: flock on a file descriptor this function owns; the lock goes with the file.
        let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        assert_eq!(
            locked,
            0,
            "locking {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        );
    }
    file
}

#[test]
fn python_package_tests_pass() {
    let _lock = lock_venv();
    let python = venv_python();
    let wheels = target_dir().join("python-wheels");
    let _ = std::fs::remove_dir_all(&wheels);
    run(
        Command::new(&python)
            .args(["-m", "maturin", "build", "--release", "--quiet", "-i"])
            .arg(&python)
            .arg("-o")
            .arg(&wheels)
            .current_dir(crate_dir())
            .env("CARGO_TARGET_DIR", target_dir()),
        "building the splade_rs wheel with maturin",
    );
    let wheel = std::fs::read_dir(&wheels)
        .expect("maturin wrote the wheel folder")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .expect("maturin built a wheel");
    run(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "-q",
                "--force-reinstall",
                "--no-deps",
            ])
            .arg(&wheel),
        "installing the wheel",
    );
    let report = run(
        Command::new(&python)
            .args([
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "-rs",
                "tests/python",
            ])
            .current_dir(crate_dir()),
        "pytest tests/python",
    );
    println!("{report}");
    assert!(report.contains(" passed"), "pytest ran no test:\n{report}");
    // The in-process comparison with sentence-transformers and the drop-in example skip when
    // it is missing; here it is installed, so a skip means something is wrong.
    assert!(
        !report.contains(" skipped"),
        "pytest skipped tests (sentence-transformers or torch missing?):\n{report}"
    );
}
