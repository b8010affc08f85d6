//! Running the `splade` binary from the CLI's test binaries (each includes this file with
//! `#[path]` and uses what it needs).
#![allow(dead_code)]

use std::io::Write;
use std::process::{Command, Output, Stdio};

/// Runs `splade` with `args` (no standard input).
pub fn splade(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_splade"))
        .args(args)
        .output()
        .expect("run splade")
}

/// Runs `splade` with `args`, writing `stdin` to its standard input.
pub fn splade_with_stdin(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_splade"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run splade");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

/// The standard output of a run that must have succeeded (its standard error otherwise).
pub fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "splade failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
