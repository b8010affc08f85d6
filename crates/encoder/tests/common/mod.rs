//! Helpers shared by the encoder's integration tests (each test binary uses some of them).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use serde_json::Value;
use splade_encoder::SparseVector;

/// `fixtures/encoder`.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/encoder")
}

/// A JSON fixture with its shared-data references resolved, or a panic naming it.
pub fn read_json(path: &Path) -> Value {
    splade_testkit::read_fixture(path)
}

/// The held texts of the parity fixtures (`fixtures/encoder/texts.json`).
pub fn texts() -> Vec<String> {
    serde_json::from_value(read_json(&fixtures().join("texts.json"))).unwrap()
}

/// A `{"indices", "values"}` JSON object as a sparse vector.
pub fn sparse(v: &Value) -> SparseVector {
    let indices: Vec<u32> = serde_json::from_value(v["indices"].clone()).unwrap();
    let values: Vec<f32> = serde_json::from_value(v["values"].clone()).unwrap();
    SparseVector::new(indices, values).unwrap()
}

/// A fixture model folder under `fixtures/encoder/models`.
pub fn fixture_model(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/encoder/models")
        .join(name)
}

/// Copies a folder tree.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
