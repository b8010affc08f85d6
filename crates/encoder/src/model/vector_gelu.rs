//! The exact (erf) GELU over a slice, vectorized: `gelu(u) = u/2 · (1 + erf(u/√2))` with erf
//! as a rational function evaluated in f64, compiled for the widest vector unit the CPU has.
//!
//! The rational `erf(t) ≈ t · P(t²) / Q(t²)` on `|t| ≤ 3.92` (beyond, `erf(t)` is within
//! `1e-8` of ±1) is a Lawson-weighted least-squares fit with a maximal error of 1.4e-9 in
//! f64; the GELU is then rounded once to f32. Its absolute error (under 2.5e-7 everywhere,
//! within an ulp or two where the GELU is not tiny) is below that of the f32 formula with
//! `libm::erff` (4.5e-7, from the f32 rounding of `1 + erf`). The int8 path uses it on its
//! output tiles and the f32 inference path on the CPU after the bias (`dense_cpu`); the
//! differentiable path (training) keeps `libm::erff` with its backward (`fused.rs`).
//!
//! Every copy performs the same f64 operations (Rust contracts no multiply-add), so every
//! CPU gives the same bits.

/// `P`'s coefficients, lowest degree first.
const P: [f64; 7] = [
    1.128379180815843,
    0.18470032499341538,
    0.0542784930093021,
    0.003832377594722545,
    0.00038038203308467944,
    4.718115502514741e-06,
    -1.3337553534167809e-08,
];
/// `Q`'s coefficients, lowest degree first.
const Q: [f64; 6] = [
    1.0,
    0.4970199297735477,
    0.11377546512859815,
    0.015430982178371728,
    0.0013050431929191144,
    6.342196321469654e-05,
];
/// Where the fit ends: beyond, `erf` is taken as ±1 (it is within 1e-8 of it).
const CLAMP: f64 = 3.92;

/// Replaces every value `u` of `values` by `gelu(u)` (a NaN stays a NaN).
pub(crate) fn gelu_in_place(values: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    match crate::model::simd::F32Path::current() {
        // SAFETY: `current` only returns a path this CPU can run (AVX-512F, resp. AVX2).
        crate::model::simd::F32Path::Avx512 => return unsafe { gelu_avx512(values) },
        // SAFETY: as above.
        crate::model::simd::F32Path::Avx2 => return unsafe { gelu_avx2(values) },
        crate::model::simd::F32Path::Portable => {}
    }
    gelu_generic(values)
}

/// [`gelu_generic`] compiled for AVX-512.
///
/// # Safety
/// The CPU must have AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2")]
unsafe fn gelu_avx512(values: &mut [f32]) {
    gelu_generic(values)
}

/// [`gelu_generic`] compiled for AVX2.
///
/// # Safety
/// The CPU must have AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn gelu_avx2(values: &mut [f32]) {
    gelu_generic(values)
}

/// The GELU of every value, branch-free so that it vectorizes.
#[inline(always)]
fn gelu_generic(values: &mut [f32]) {
    for v in values.iter_mut() {
        let u = *v as f64;
        let t = u * std::f64::consts::FRAC_1_SQRT_2;
        // Comparisons, not `clamp`, so that a NaN passes through.
        let c = if t > CLAMP { CLAMP } else { t };
        let c = if c < -CLAMP { -CLAMP } else { c };
        let z = c * c;
        let p = (((((P[6] * z + P[5]) * z + P[4]) * z + P[3]) * z + P[2]) * z + P[1]) * z + P[0];
        let q = ((((Q[5] * z + Q[4]) * z + Q[3]) * z + Q[2]) * z + Q[1]) * z + Q[0];
        // Past the fit, ±1 exactly: the GELU then tends to 0 (and to u) as it should.
        let erf = if t > CLAMP { 1.0 } else { c * p / q };
        let erf = if t < -CLAMP { -1.0 } else { erf };
        *v = (0.5 * u * (1.0 + erf)) as f32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The GELU in f64 from `libm::erf` (f64, under an ulp).
    fn reference(u: f32) -> f64 {
        let u = u as f64;
        0.5 * u * (1.0 + libm::erf(u * std::f64::consts::FRAC_1_SQRT_2))
    }

    #[test]
    fn matches_the_f64_gelu_and_every_copy_agrees() {
        let values: Vec<f32> = (-200_000..=200_000)
            .map(|i| i as f32 * 6e-5)
            .chain([-30.0, -9.0, -5.6, 5.6, 9.0, 30.0, 1e-30, -1e-30, 0.0, -0.0])
            .collect();
        let mut got = values.clone();
        gelu_in_place(&mut got);
        for (&u, &g) in values.iter().zip(&got) {
            let want = reference(u);
            let err = (g as f64 - want).abs();
            assert!(err <= 2.5e-7, "gelu({u}) = {g}, want {want}");
            if want.abs() >= 1e-2 {
                // Within two f32 ulps where the value is not tiny.
                assert!(
                    err <= 2.0 * f32::EPSILON as f64 * want.abs(),
                    "gelu({u}) = {g}"
                );
            }
        }
        let mut generic = values.clone();
        gelu_generic(&mut generic);
        assert_eq!(
            got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            generic.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            let mut avx2 = values.clone();
            // SAFETY: AVX2 is present (checked above).
            unsafe { gelu_avx2(&mut avx2) };
            assert_eq!(
                avx2.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                generic.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            );
        }
        let mut special = [f32::NAN, f32::INFINITY];
        gelu_in_place(&mut special);
        assert!(special[0].is_nan());
        assert_eq!(special[1], f32::INFINITY);
    }
}
