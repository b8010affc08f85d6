//! The screened vocabulary projection equals the unscreened one: same active entries, values
//! within float rounding, on real splade-tiny texts and on a random base-size head with
//! adversarial rows (logits all near zero, exact zeros, ties).

mod common;

use candle_core::{Device, Tensor};
use splade_encoder::model::MlmHead;
use splade_encoder::pooling::{pool_sparse_packed, pool_sparse_packed_screened, HeadScreen};
use splade_encoder::quant::Int8Path;
use splade_encoder::{
    EncodeOptions, LoadOptions, PoolingActivation, PoolingConfig, SparseEncoder, SparseVector,
};

/// Same indices, values within `tol · max(1, |v|)`.
fn assert_same(a: &SparseVector, b: &SparseVector, tol: f32, what: &str) {
    assert_eq!(a.indices(), b.indices(), "{what}: active entries differ");
    for (x, y) in a.values().iter().zip(b.values()) {
        assert!(
            (x - y).abs() <= tol * x.abs().max(1.0),
            "{what}: {x} vs {y}"
        );
    }
}

#[test]
fn splade_tiny_screened_equals_unscreened() {
    let dir = splade_encoder::default_model::ensure_default_model().unwrap();
    let plain = SparseEncoder::load_with(
        &dir,
        &Device::Cpu,
        &LoadOptions {
            screened_projection: false,
            ..LoadOptions::default()
        },
    )
    .unwrap();
    assert!(plain.screen_stats().is_none());
    let screened = SparseEncoder::load(&dir, &Device::Cpu).unwrap();
    let texts = common::texts();
    let options = EncodeOptions::default();
    let want = plain.encode(&texts, &options).unwrap();
    let got = screened.encode(&texts, &options).unwrap();
    for i in 0..texts.len() {
        assert_same(
            &want.row(i).unwrap().to_owned(),
            &got.row(i).unwrap().to_owned(),
            1e-5,
            &format!("text {i}"),
        );
    }
    let stats = screened.screen_stats().unwrap();
    eprintln!(
        "splade-tiny, {} texts: {} logits, {} positive-possible ({:.3} %), {} exact ({:.3} %)",
        texts.len(),
        stats.logits,
        stats.positive_possible,
        100.0 * stats.positive_possible as f64 / stats.logits as f64,
        stats.exact,
        100.0 * stats.exact as f64 / stats.logits as f64
    );
    assert!(
        stats.logits > 0 && stats.exact < stats.logits / 10,
        "{stats:?}"
    );
}

fn normal(seed: &mut u64) -> f32 {
    // Box–Muller over a 64-bit LCG.
    let mut u = || {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*seed >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    let (a, b) = (u(), u());
    ((-2.0 * a.ln()).sqrt() * (2.0 * std::f64::consts::PI * b).cos()) as f32
}

#[test]
fn random_base_head_screened_equals_unscreened() {
    let dev = Device::Cpu;
    let (vocab, h) = (30522, 768);
    let mut seed = 11;
    let mut w: Vec<f32> = (0..vocab * h).map(|_| normal(&mut seed) * 0.05).collect();
    let mut bias: Vec<f32> = (0..vocab).map(|_| normal(&mut seed) - 3.0).collect();
    // Adversarial entries: a zero row (every logit exactly 0: active iff its bias is
    // positive), a tiny row with zero bias (logits near 0 on both sides), a duplicate row
    // (ties between entries), a row whose bias cancels a logit.
    w[..h].fill(0.0);
    bias[0] = 0.5;
    bias[1] = 0.0;
    for v in &mut w[h..2 * h] {
        *v *= 1e-6;
    }
    w.copy_within(2 * h..3 * h, 3 * h);
    bias[3] = bias[2];
    // Three texts of 70, 1 and 120 tokens; the second text's token repeats one of the first's
    // (ties between tokens), and a run of the third is all zeros (logits exactly 0).
    let n = 191;
    let mut x: Vec<f32> = (0..n * h).map(|_| normal(&mut seed)).collect();
    x.copy_within(5 * h..6 * h, 70 * h);
    x.copy_within(5 * h..6 * h, 6 * h);
    x[100 * h..110 * h].fill(0.0);
    // Entry 4 gets a bias that makes token 3's logit + bias exactly 0 (not active).
    let logit4: f32 = (0..h).map(|i| x[3 * h + i] * w[4 * h + i]).sum();
    bias[4] = -logit4;
    let starts = [0, 70, 71, n];
    let head = MlmHead {
        weight: Tensor::from_vec(w, (vocab, h), &dev).unwrap(),
        bias: Tensor::from_vec(bias, vocab, &dev).unwrap(),
    };
    let tokens = Tensor::from_vec(x, (n, h), &dev).unwrap();
    for activation in [PoolingActivation::Relu, PoolingActivation::Log1pRelu] {
        let config = PoolingConfig {
            activation,
            ..PoolingConfig::default()
        };
        let want = pool_sparse_packed(&tokens, &starts, &head, config).unwrap();
        for path in Int8Path::available() {
            let screen = HeadScreen::new(&head, path).unwrap();
            let got =
                pool_sparse_packed_screened(&tokens, &starts, &head, &screen, config).unwrap();
            for (r, (a, b)) in want.iter().zip(&got).enumerate() {
                assert_same(a, b, 1e-5, &format!("{path:?} {activation:?} text {r}"));
            }
            let s = screen.stats();
            eprintln!(
                "base-size random head ({path:?}): {} logits, {} positive-possible, {} exact ({:.3} %); actives {:?}",
                s.logits,
                s.positive_possible,
                s.exact,
                100.0 * s.exact as f64 / s.logits as f64,
                got.iter().map(|v| v.nnz()).collect::<Vec<_>>()
            );
            assert!(s.exact < s.logits / 10, "the screen pruned little: {s:?}");
        }
        // The adversarial entries: the zero row is active (bias 0.5) in every text, the
        // duplicate rows agree.
        for v in &want {
            let pos = |j: u32| v.indices().iter().position(|&i| i == j);
            assert!(pos(0).is_some());
            assert_eq!(pos(2).is_some(), pos(3).is_some());
        }
    }
}
