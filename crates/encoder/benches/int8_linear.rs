//! Throughput of the int8 dense layer at distilbert-base shapes (`m` tokens × 768 → 768,
//! 768 → 3072, 3072 → 768), per kernel path, on 1 and 2 rayon threads: the activations'
//! quantization alone, the whole layer (quantize, int8 product, fused dequantization), and the
//! bare i32 product on one thread. Prints GOP/s (2·m·n·k operations per product).
//!
//! `cargo bench -p splade-encoder --bench int8_linear` (`INT8_BENCH_M` sets the tokens,
//! default 2048).

use std::time::Instant;

use splade_encoder::quant::{gemm_i32, Int8Path, QuantizedLinear, QuantizedRows, PANEL};

fn random(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..len)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// The best of a few runs of `f`, in seconds.
fn best_of(mut f: impl FnMut()) -> f64 {
    f();
    (0..5)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let m: usize = std::env::var("INT8_BENCH_M")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2048);
    for (k, n) in [(768, 768), (768, 3072), (3072, 768)] {
        let x = random(m * k, 1);
        let layer = QuantizedLinear::new(&random(n * k, 2), n, k, Some(random(n, 3)));
        let ops = 2.0 * (m * n * k) as f64;
        let t = best_of(|| {
            std::hint::black_box(QuantizedRows::quantize(&x, m, k));
        });
        println!(
            "[{m} x {k}] quantize: {:.2} ms ({:.2} GB/s of f32 read)",
            t * 1e3,
            (m * k * 4) as f64 / t / 1e9
        );
        for path in Int8Path::available() {
            for threads in [1, 2] {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                let t = pool.install(|| {
                    best_of(|| {
                        std::hint::black_box(layer.forward(&x, m, path));
                    })
                });
                println!(
                    "[{m} x {k}] -> {n} {:>8} layer, {threads} thread(s): {:.2} ms, {:.1} GOP/s",
                    path.name(),
                    t * 1e3,
                    ops / t / 1e9
                );
            }
            let a = QuantizedRows::quantize(&x, m, k);
            let panels = layer.weights.panels();
            let mut out = vec![0i32; m * panels * PANEL];
            let t = best_of(|| {
                gemm_i32(
                    path,
                    &a,
                    0..m,
                    &layer.weights,
                    0..panels,
                    &mut out,
                    panels * PANEL,
                );
            });
            println!(
                "[{m} x {k}] -> {n} {:>8} bare i32 product, 1 thread: {:.1} GOP/s",
                path.name(),
                ops / t / 1e9
            );
        }
    }
}
