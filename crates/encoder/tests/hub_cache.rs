//! A Hub id resolves from the standard Hugging Face cache layout when offline.

mod common;

use common::{copy_dir, fixture_model};

use splade_encoder::{EncodeOptions, SparseEncoder};

#[test]
fn hub_id_loads_from_the_offline_cache() {
    let fixture = fixture_model("bert-tied-v6");
    let home = tempfile::tempdir().unwrap();
    let repo = home
        .path()
        .join("hub")
        .join("models--sparse-encoder--tiny-test");
    let commit = "0123456789abcdef0123456789abcdef01234567";
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs").join("main"), commit).unwrap();
    copy_dir(&fixture, &repo.join("snapshots").join(commit));

    // An inference-free model (a Router with one folder per module) from the cache too.
    let router_fixture = fixture_model("router-learned");
    let router_repo = home
        .path()
        .join("hub")
        .join("models--sparse-encoder--router-test");
    std::fs::create_dir_all(router_repo.join("refs")).unwrap();
    std::fs::write(router_repo.join("refs").join("main"), commit).unwrap();
    copy_dir(&router_fixture, &router_repo.join("snapshots").join(commit));

    // A CSR model (Transformer + Pooling + SparseAutoEncoder, one folder per module).
    let csr_fixture = fixture_model("csr-bert");
    let csr_repo = home
        .path()
        .join("hub")
        .join("models--sparse-encoder--csr-test");
    std::fs::create_dir_all(csr_repo.join("refs")).unwrap();
    std::fs::write(csr_repo.join("refs").join("main"), commit).unwrap();
    copy_dir(&csr_fixture, &csr_repo.join("snapshots").join(commit));

    std::env::set_var("HF_HOME", home.path());
    std::env::set_var("HF_HUB_OFFLINE", "1");
    let from_hub = SparseEncoder::from_pretrained("sparse-encoder/tiny-test").unwrap();
    let router_from_hub = SparseEncoder::from_pretrained("sparse-encoder/router-test").unwrap();
    let csr_from_hub = SparseEncoder::from_pretrained("sparse-encoder/csr-test").unwrap();
    // An id that is not in the cache fails clearly when offline.
    let missing = SparseEncoder::from_pretrained("sparse-encoder/not-cached")
        .err()
        .expect("an uncached id must fail offline")
        .to_string();
    std::env::remove_var("HF_HUB_OFFLINE");
    std::env::remove_var("HF_HOME");
    assert!(missing.contains("sparse-encoder/not-cached"), "{missing}");

    let local = SparseEncoder::load(&fixture, &candle_core::Device::Cpu).unwrap();
    let texts = ["learned sparse retrieval"];
    let a = from_hub.encode(&texts, &EncodeOptions::default()).unwrap();
    let b = local.encode(&texts, &EncodeOptions::default()).unwrap();
    assert_eq!(a, b);
    assert_eq!(
        from_hub.prompts().get("query").map(String::as_str),
        Some("query: ")
    );

    let router_local = SparseEncoder::load(&router_fixture, &candle_core::Device::Cpu).unwrap();
    assert!(router_from_hub.is_inference_free());
    for (a, b) in [
        (
            router_from_hub.encode_query(&texts, &EncodeOptions::default()),
            router_local.encode_query(&texts, &EncodeOptions::default()),
        ),
        (
            router_from_hub.encode_document(&texts, &EncodeOptions::default()),
            router_local.encode_document(&texts, &EncodeOptions::default()),
        ),
    ] {
        assert_eq!(a.unwrap(), b.unwrap());
    }

    let csr_local = SparseEncoder::load(&csr_fixture, &candle_core::Device::Cpu).unwrap();
    assert!(csr_from_hub.is_csr());
    assert_eq!(
        csr_from_hub
            .encode(&texts, &EncodeOptions::default())
            .unwrap(),
        csr_local.encode(&texts, &EncodeOptions::default()).unwrap()
    );
}
