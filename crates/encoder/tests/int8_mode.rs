//! `--quantize int8` end to end: splade-tiny loads with int8 linear layers, encodes the
//! fixture texts close to f32 (active-set Jaccard and score agreement), on every int8 path
//! this CPU has giving the same vectors.

mod common;

use candle_core::Device;
use splade_encoder::{EncodeOptions, LoadOptions, Quantize, SparseEncoder, SparseView};

fn jaccard(a: SparseView, b: SparseView) -> f64 {
    let (a, b) = (a.indices(), b.indices());
    let inter = a.iter().filter(|i| b.binary_search(i).is_ok()).count();
    let union = a.len() + b.len() - inter;
    if union == 0 {
        1.0
    } else {
        inter as f64 / union as f64
    }
}

#[test]
fn splade_tiny_int8_is_close_to_f32() {
    let dir = splade_encoder::default_model::ensure_default_model().unwrap();
    let f32_model = SparseEncoder::load(&dir, &Device::Cpu).unwrap();
    let int8 = SparseEncoder::load_with(
        &dir,
        &Device::Cpu,
        &LoadOptions {
            quantize: Quantize::Int8,
            ..LoadOptions::default()
        },
    )
    .unwrap();
    assert_eq!(int8.load_options().quantize, Quantize::Int8);
    let texts: Vec<String> = common::texts()
        .into_iter()
        .filter(|t| !t.trim().is_empty())
        .collect();
    let options = EncodeOptions::default();
    let want = f32_model.encode(&texts, &options).unwrap();
    let got = int8.encode(&texts, &options).unwrap();
    let mut sum = 0.0;
    let mut worst = 1.0f64;
    let mut score_err = 0.0f64;
    for i in 0..texts.len() {
        let (a, b) = (want.row(i).unwrap(), got.row(i).unwrap());
        let j = jaccard(a, b);
        sum += j;
        worst = worst.min(j);
        let (aa, ab) = (a.dot(&a) as f64, a.dot(&b) as f64);
        score_err = score_err.max(((ab - aa) / aa.max(1e-9)).abs());
    }
    let mean = sum / texts.len() as f64;
    eprintln!(
        "splade-tiny int8 vs f32 on {} texts: mean Jaccard {mean:.4}, worst {worst:.4}, \
         worst relative self-score change {score_err:.4}",
        texts.len()
    );
    assert!(mean >= 0.95, "mean Jaccard {mean}");
    assert!(score_err < 0.1, "self-score change {score_err}");
}
