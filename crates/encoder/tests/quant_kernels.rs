//! The int8 kernels: every path this CPU has equals the portable one bit for bit (i32 sums are
//! exact), on the model's shapes and on awkward ones, and the portable one equals an
//! independent i64 computation from the unpacked values.

use splade_encoder::quant::{
    gemm_dequant, gemm_i32, Dequant, Int8Path, QuantizedLinear, QuantizedRows, QuantizedWeights,
    ACT_MAX, PANEL, WEIGHT_MAX,
};

fn lcg(seed: &mut u64) -> f32 {
    *seed = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    ((*seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
}

fn random(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..len).map(|_| lcg(&mut s)).collect()
}

/// `[m, panels · 16]` i32 products on `path`, split into a few uneven tiles.
fn product(path: Int8Path, a: &QuantizedRows, b: &QuantizedWeights) -> Vec<i32> {
    let ldc = b.panels() * PANEL;
    let mut out = vec![i32::MIN; a.m * ldc];
    let row_cut = a.m / 3;
    let panel_cut = b.panels() / 2;
    for rows in [0..row_cut, row_cut..a.m] {
        for panels in [0..panel_cut, panel_cut..b.panels()] {
            let mut tile = vec![0i32; rows.len() * panels.len() * PANEL];
            let w = panels.len() * PANEL;
            gemm_i32(path, a, rows.clone(), b, panels.clone(), &mut tile, w);
            for (i, r) in rows.clone().enumerate() {
                out[r * ldc + panels.start * PANEL..r * ldc + panels.end * PANEL]
                    .copy_from_slice(&tile[i * w..(i + 1) * w]);
            }
        }
    }
    out
}

/// The same products from the unpacked quantized values, in i64.
fn reference(a: &QuantizedRows, b: &QuantizedWeights) -> Vec<i32> {
    let ldc = b.panels() * PANEL;
    let mut out = vec![0i32; a.m * ldc];
    for r in 0..a.m {
        for j in 0..b.n {
            let s: i64 = (0..b.k)
                .map(|i| a.row(r)[i] as i64 * b.q(j, i) as i64)
                .sum();
            out[r * ldc + j] = i32::try_from(s).unwrap();
        }
    }
    out
}

fn check_paths(m: usize, n: usize, k: usize, seed: u64) {
    let x = random(m * k, seed);
    let w = random(n * k, seed + 1);
    let a = QuantizedRows::quantize(&x, m, k);
    let b = QuantizedWeights::quantize(&w, n, k);
    let portable = product(Int8Path::Portable, &a, &b);
    let ldc = b.panels() * PANEL;
    if m * n * k <= 4_000_000 {
        let want = reference(&a, &b);
        for r in 0..m {
            assert_eq!(
                portable[r * ldc..r * ldc + n],
                want[r * ldc..r * ldc + n],
                "[{m},{n},{k}] row {r}"
            );
        }
    }
    for path in Int8Path::available() {
        assert_eq!(
            product(path, &a, &b),
            portable,
            "{path:?} on [{m}, {n}, {k}]"
        );
    }
}

#[test]
fn every_path_equals_portable_on_awkward_shapes() {
    eprintln!("int8 paths on this CPU: {:?}", Int8Path::available());
    for (i, &(m, n, k)) in [
        (1, 1, 1),
        (1, 16, 4),
        (7, 17, 5),
        (13, 33, 63),
        (6, 32, 768),
        (25, 50, 130),
        // k a multiple of 64, m past whole 32-row AMX blocks, an odd number of panels.
        (70, 40, 192),
        (32, 32, 64),
    ]
    .iter()
    .enumerate()
    {
        check_paths(m, n, k, 100 + i as u64);
    }
}

#[test]
fn every_path_equals_portable_on_model_shapes() {
    // tokens × 768 by 768 × {768, 2304, 3072}, 3072 × 768, and a slice of the vocabulary.
    for (i, &(m, n, k)) in [
        (37, 768, 768),
        (37, 2304, 768),
        (19, 3072, 768),
        (19, 768, 3072),
        (11, 30522 / 8, 768),
    ]
    .iter()
    .enumerate()
    {
        check_paths(m, n, k, 200 + i as u64);
    }
}

/// The extremes: activations at ACT_MAX against weights at ±WEIGHT_MAX everywhere (the AVX2 kernel's i16
/// pair sums at their largest, 127·127·2), and the longest k the model has.
#[test]
fn extreme_values_do_not_saturate() {
    let (m, n, k) = (5, 48, 3072);
    let mut a = QuantizedRows::quantize(&vec![1.0; m * k], m, k);
    a.data.iter_mut().for_each(|v| *v = ACT_MAX as u8);
    let w: Vec<f32> = (0..n * k)
        .map(|i| if (i / k) % 2 == 0 { 1.0 } else { -1.0 })
        .collect();
    let b = QuantizedWeights::quantize(&w, n, k);
    assert_eq!(b.q(0, 0) as i32, WEIGHT_MAX);
    assert_eq!(b.q(1, 0) as i32, -WEIGHT_MAX);
    let expect = (ACT_MAX * WEIGHT_MAX) * k as i32;
    for path in Int8Path::available() {
        let out = product(path, &a, &b);
        for r in 0..m {
            for j in 0..n {
                let want = if j % 2 == 0 { expect } else { -expect };
                assert_eq!(out[r * b.panels() * PANEL + j], want, "{path:?}");
            }
        }
    }
}

/// The quantized layer against the f32 product: within the bound the quantization steps
/// give, |err| ≤ ‖x − x̂‖₂·‖w‖₂ + ‖x̂‖₂·‖w − ŵ‖₂, and far from trivially (a random matrix
/// would not be).
#[test]
fn quantized_linear_is_within_its_error_bound() {
    let (m, n, k) = (9, 40, 300);
    let x = random(m * k, 5);
    let w: Vec<f32> = random(n * k, 6).iter().map(|v| v * 0.05).collect();
    let bias: Vec<f32> = random(n, 7);
    let layer = QuantizedLinear::new(&w, n, k, Some(bias.clone()));
    let a = QuantizedRows::quantize(&x, m, k);
    for path in Int8Path::available() {
        let y = layer.forward(&x, m, path);
        for r in 0..m {
            let xr = &x[r * k..(r + 1) * k];
            let xh: Vec<f64> = (0..k)
                .map(|i| a.scales[r] as f64 * (a.row(r)[i] as f64 - a.zeros[r] as f64))
                .collect();
            let ex = xr
                .iter()
                .zip(&xh)
                .map(|(&v, h)| (v as f64 - h).powi(2))
                .sum::<f64>()
                .sqrt();
            let nxh = xh.iter().map(|v| v * v).sum::<f64>().sqrt();
            for j in 0..n {
                let wr = &w[j * k..(j + 1) * k];
                let wh = layer.weights.dequantized_row(j);
                let nw = wr.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt();
                let ew = wr
                    .iter()
                    .zip(&wh)
                    .map(|(&v, &h)| (v as f64 - h as f64).powi(2))
                    .sum::<f64>()
                    .sqrt();
                let exact: f64 = xr
                    .iter()
                    .zip(wr)
                    .map(|(&a, &b)| a as f64 * b as f64)
                    .sum::<f64>()
                    + bias[j] as f64;
                let bound = ex * nw + nxh * ew + 1e-4;
                let err = (y[r * n + j] as f64 - exact).abs();
                assert!(
                    err <= bound,
                    "{path:?} ({r}, {j}): err {err} > bound {bound}"
                );
                assert!(bound < 0.1, "bound {bound} is loose");
            }
        }
    }
}

/// The fused dequantization of every path against the scalar definition applied to the
/// reference i64 sums: equal bit for bit (the same f32 operations in the same order), on
/// shapes whose m, n and k are not multiples of the tiles, with and without a bias.
#[test]
fn every_layer_path_equals_the_scalar_dequantization() {
    for (i, &(m, n, k, with_bias)) in [
        (1, 1, 1, true),
        (7, 17, 5, false),
        (13, 33, 63, true),
        (25, 50, 130, true),
        (97, 270, 131, false),
        (11, 300, 770, true),
        (45, 40, 256, true),
        (96, 33, 128, false),
    ]
    .iter()
    .enumerate()
    {
        let seed = 300 + 10 * i as u64;
        let x = random(m * k, seed);
        let w = random(n * k, seed + 1);
        let bias = with_bias.then(|| random(n, seed + 2));
        let layer = QuantizedLinear::new(&w, n, k, bias.clone());
        let a = QuantizedRows::quantize(&x, m, k);
        let sums = reference(&a, &layer.weights);
        let ldc = layer.weights.panels() * PANEL;
        let padded = |v: Vec<f32>| {
            let mut v = v;
            v.resize(ldc, 0.0);
            v
        };
        let col_scales = padded(layer.weights.scales.clone());
        let mut col_sums = layer.weights.col_sums.clone();
        col_sums.resize(ldc, 0);
        let col_bias = padded(bias.clone().unwrap_or_default());
        let deq = Dequant {
            row_scales: &a.scales,
            row_zeros: &a.zeros,
            col_scales: &col_scales,
            col_sums: &col_sums,
            bias: &col_bias,
        };
        let want: Vec<f32> = (0..m * n)
            .map(|e| deq.apply(e / n, e % n, sums[(e / n) * ldc + e % n]))
            .collect();
        for path in Int8Path::available() {
            let got = layer.forward(&x, m, path);
            assert_eq!(
                got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                "{path:?} layer on [{m}, {n}, {k}]"
            );
            // One tile away from the origin, into a wider output: only the tile is written.
            let (rows, panels) = (m / 3..m, layer.weights.panels() / 2..layer.weights.panels());
            let (c0, c1) = (panels.start * PANEL, n);
            let ld = n + 3;
            let mut out = vec![f32::MAX; rows.len() * ld];
            gemm_dequant(
                path,
                &a,
                rows.clone(),
                &layer.weights,
                panels.clone(),
                &deq,
                &mut out,
                ld,
            );
            for (i, r) in rows.clone().enumerate() {
                assert_eq!(
                    out[i * ld..i * ld + (c1 - c0)],
                    want[r * n + c0..r * n + c1],
                    "{path:?} tile row {r} on [{m}, {n}, {k}]"
                );
                assert!(out[i * ld + (c1 - c0)..(i + 1) * ld]
                    .iter()
                    .all(|&v| v == f32::MAX));
            }
        }
    }
}

#[test]
fn unknown_or_missing_paths_are_named() {
    let err = Int8Path::parse("sse9").unwrap_err();
    assert!(
        err.contains("sse9") && err.contains("SPLADE_INT8_KERNEL"),
        "{err}"
    );
    assert_eq!(Int8Path::parse("portable"), Ok(Int8Path::Portable));
    for path in [
        Int8Path::Amx,
        Int8Path::Vnni512,
        Int8Path::AvxVnni,
        Int8Path::Avx2,
    ] {
        assert_eq!(Int8Path::parse(path.name()).is_ok(), path.is_available());
    }
}
