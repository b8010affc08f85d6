//! The engines the scale-out tests run for real: milvus-lite (Milvus's gRPC API, started on
//! 127.0.0.1 on a free port with a temporary data directory, killed when dropped) and the
//! Python that has `qdrant-edge-py` (Qdrant's engine as an embedded shard).
//!
//! Where they are found: `SPLADE_RS_MILVUS_LITE` (the `milvus-lite` program) and
//! `SPLADE_RS_ENGINES_PYTHON` (a python with `qdrant_edge`), which `.ci/run` sets; else the
//! virtual environment `.ci/run` creates, `$SPLADE_RS_ENGINES_VENV` or
//! `~/.cache/splade-rs/engines-venv`; else `milvus-lite` on `PATH`. A test that needs one of
//! them and cannot find it fails, saying how to install it: it never passes without it.

#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const INSTALL: &str = "install the engines with `bash .ci/run` or: python3 -m venv ~/.cache/splade-rs/engines-venv && ~/.cache/splade-rs/engines-venv/bin/pip install milvus-lite==3.2.2 pymilvus 'qdrant-edge-py>=0.9,<0.10'";

/// The virtual environment `.ci/run` installs the engines into.
fn venv() -> PathBuf {
    if let Some(v) = std::env::var_os("SPLADE_RS_ENGINES_VENV") {
        return PathBuf::from(v);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    home.join(".cache/splade-rs/engines-venv")
}

/// The `milvus-lite` program; panics (failing the test) when there is none.
pub fn milvus_lite_program() -> PathBuf {
    if let Some(p) = std::env::var_os("SPLADE_RS_MILVUS_LITE") {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "SPLADE_RS_MILVUS_LITE={} is not a file; {INSTALL}",
            p.display()
        );
        return p;
    }
    let in_venv = venv().join("bin/milvus-lite");
    if in_venv.is_file() {
        return in_venv;
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join("milvus-lite");
            if p.is_file() {
                return p;
            }
        }
    }
    panic!("this test runs a real Milvus and milvus-lite is not installed: {INSTALL}");
}

/// A python with `qdrant_edge` importable; panics (failing the test) when there is none.
pub fn qdrant_edge_python() -> PathBuf {
    let python = match std::env::var_os("SPLADE_RS_ENGINES_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => venv().join("bin/python"),
    };
    let ok = Command::new(&python)
        .args(["-c", "import qdrant_edge"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "this test runs Qdrant's engine (qdrant-edge-py) and {} cannot import qdrant_edge: {INSTALL}",
        python.display()
    );
    python
}

/// A port nobody listens on now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("no free local port")
        .port()
}

/// A running `milvus-lite server`, killed (and waited for) when dropped.
pub struct MilvusLite {
    child: Option<Child>,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Its data directory.
    pub data_dir: PathBuf,
    log: PathBuf,
}

impl MilvusLite {
    /// Starts a server on a free port with its data in `data_dir`; waits (at most 120 s)
    /// until it accepts connections.
    pub fn start(data_dir: &Path) -> Self {
        Self::start_on(data_dir, free_port())
    }

    /// Starts a server on `port` (e.g. again on the port of a killed one).
    pub fn start_on(data_dir: &Path, port: u16) -> Self {
        let program = milvus_lite_program();
        std::fs::create_dir_all(data_dir).unwrap();
        let log = data_dir.with_extension(format!("{port}.log"));
        let log_file = std::fs::File::create(&log).unwrap();
        let child = Command::new(&program)
            .args(["server", "--host", "127.0.0.1", "--port"])
            .arg(port.to_string())
            .arg("--data-dir")
            .arg(data_dir)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}; {INSTALL}", program.display()));
        let mut server = Self {
            child: Some(child),
            port,
            data_dir: data_dir.to_path_buf(),
            log,
        };
        server.wait_ready(Duration::from_secs(120));
        server
    }

    fn wait_ready(&mut self, limit: Duration) {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "milvus-lite exited ({status}) before serving: {}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            assert!(
                start.elapsed() < limit,
                "milvus-lite did not listen on port {} within {limit:?}: {}",
                self.port,
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn uri(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `milvus://127.0.0.1:PORT/COLLECTION`.
    pub fn address(&self, collection: &str) -> String {
        format!("milvus://127.0.0.1:{}/{collection}", self.port)
    }

    /// Kills the server at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for MilvusLite {
    fn drop(&mut self) {
        self.kill();
    }
}
