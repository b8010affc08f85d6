//! A Hub id resolves from the standard Hugging Face cache layout when offline.

use std::path::Path;

use splade_encoder::{EncodeOptions, SparseEncoder};

fn copy_dir(from: &Path, to: &Path) {
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

#[test]
fn hub_id_loads_from_the_offline_cache() {
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/encoder/models/bert-tied-v6");
    let home = tempfile::tempdir().unwrap();
    let repo = home
        .path()
        .join("hub")
        .join("models--sparse-encoder--tiny-test");
    let commit = "0123456789abcdef0123456789abcdef01234567";
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs").join("main"), commit).unwrap();
    copy_dir(&fixture, &repo.join("snapshots").join(commit));

    std::env::set_var("HF_HOME", home.path());
    std::env::set_var("HF_HUB_OFFLINE", "1");
    let from_hub = SparseEncoder::from_pretrained("sparse-encoder/tiny-test").unwrap();
    std::env::remove_var("HF_HUB_OFFLINE");
    std::env::remove_var("HF_HOME");

    let local = SparseEncoder::load(&fixture, &candle_core::Device::Cpu).unwrap();
    let texts = ["learned sparse retrieval"];
    let a = from_hub.encode(&texts, &EncodeOptions::default()).unwrap();
    let b = local.encode(&texts, &EncodeOptions::default()).unwrap();
    assert_eq!(a, b);
    assert_eq!(
        from_hub.prompts().get("query").map(String::as_str),
        Some("query: ")
    );
}
