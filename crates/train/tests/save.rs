//! A saved model reloads (in Rust) to the same vectors, in the sentence-transformers layout.

use std::path::Path;

use candle_core::Device;
use splade_encoder::{EncodeOptions, FolderLayout, SparseEncoder, TrainableEncoder};
use splade_train::save::save_model;

#[test]
fn saved_model_reloads_to_the_same_vectors() {
    for name in [
        "distilbert-tied-seedlayout",
        "bert-untied-seedlayout",
        "bert-tied-v6",
        "roberta-bpe-v6",
        "xlm-roberta-unigram-v6",
        "modernbert-bpe-v6",
    ] {
        let src = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fixtures/encoder/models")
            .join(name);
        let encoder = TrainableEncoder::load(&src, &Device::Cpu).unwrap();
        let vars = encoder.vars();
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("saved");
        save_model(&encoder, vars, &out, |_| Ok(())).unwrap();
        let reloaded = SparseEncoder::load(&out, &Device::Cpu).unwrap();
        assert_eq!(
            reloaded.folder().layout,
            FolderLayout::SentenceTransformersV6
        );
        assert_eq!(
            reloaded.max_seq_length(),
            encoder.max_seq_length(),
            "{name}"
        );
        assert_eq!(reloaded.pooling(), encoder.pooling(), "{name}");
        assert_eq!(reloaded.prompts(), encoder.prompts(), "{name}");
        assert_eq!(reloaded.similarity_fn(), encoder.similarity_fn(), "{name}");
        let texts = ["Sparse retrieval with LEARNED weights", "", "東京"];
        let a = SparseEncoder::load(&src, &Device::Cpu)
            .unwrap()
            .encode(&texts, &EncodeOptions::default())
            .unwrap();
        let b = reloaded.encode(&texts, &EncodeOptions::default()).unwrap();
        assert_eq!(a, b, "{name}: vectors changed by save + reload");
        // Saving again over an existing folder replaces it.
        save_model(&encoder, vars, &out, |dir| {
            std::fs::write(dir.join("README.md"), "card").map_err(|source| {
                splade_train::TrainError::Io {
                    action: "cannot write",
                    path: dir.to_path_buf(),
                    source,
                }
            })
        })
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(out.join("README.md")).unwrap(),
            "card"
        );
    }
}
