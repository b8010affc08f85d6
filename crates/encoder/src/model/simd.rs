//! The f32 vector kernels' instruction sets, chosen at run time, and the small vector type
//! their bodies are written over once (`Simd`: one zmm register of 16 lanes on AVX-512, one
//! ymm register of 8 lanes on AVX2 + FMA, one lane in plain Rust).
//!
//! A kernel is a generic body over `Simd` with `#[inline(always)]` helpers, instantiated
//! inside a `#[target_feature]` function per path, so each copy is compiled for its
//! instruction set and dispatched by [`F32Path::selected`]. `SPLADE_F32_KERNEL=avx512|avx2|
//! portable` forces a path (to test the AVX2 one on an AVX-512 machine, for instance), for
//! these kernels and for the ones that dispatch on their own (GELU, softmax, activation
//! quantization, the vocabulary screen's row pass: `F32Path::current`). The dense products themselves
//! stay the `gemm` crate's, which dispatches on its own (without its `x86-v4` feature it
//! never uses AVX-512: `scripts/bench/build_avx2_splade.sh`).

use std::sync::OnceLock;

/// Which instruction set the f32 vector kernels (attention, the fused epilogues) use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum F32Path {
    /// AVX-512F (16 lanes, 32 registers).
    Avx512,
    /// AVX2 with FMA (8 lanes, 16 registers).
    Avx2,
    /// Plain Rust, one value at a time (any CPU).
    Portable,
}

/// The environment variable that forces a path: `avx512`, `avx2` or `portable`.
pub const F32_PATH_ENV: &str = "SPLADE_F32_KERNEL";

impl F32Path {
    /// The name [`F32_PATH_ENV`] takes.
    pub fn name(self) -> &'static str {
        match self {
            F32Path::Avx512 => "avx512",
            F32Path::Avx2 => "avx2",
            F32Path::Portable => "portable",
        }
    }

    /// Whether this CPU can run the path.
    pub fn is_available(self) -> bool {
        match self {
            F32Path::Portable => true,
            #[cfg(target_arch = "x86_64")]
            F32Path::Avx512 => {
                std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
            }
            #[cfg(target_arch = "x86_64")]
            F32Path::Avx2 => {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// Every path this CPU can run, widest first.
    pub fn available() -> Vec<F32Path> {
        [F32Path::Avx512, F32Path::Avx2, F32Path::Portable]
            .into_iter()
            .filter(|p| p.is_available())
            .collect()
    }

    /// The path to use: the one [`F32_PATH_ENV`] names (an error if it is unknown or this CPU
    /// lacks it), else the widest available. Read once per process.
    pub fn selected() -> Result<F32Path, String> {
        Self::choice().clone()
    }

    /// [`Self::selected`], or the widest available path when the variable is invalid (the
    /// model's layers report that error; the small kernels that dispatch on their own,
    /// GELU, softmax, activation quantization and the vocabulary screen, need a path anyway).
    /// Whatever it returns, this CPU can run.
    pub(crate) fn current() -> F32Path {
        match Self::choice() {
            Ok(path) => *path,
            Err(_) => F32Path::available()[0],
        }
    }

    fn choice() -> &'static Result<F32Path, String> {
        static SELECTED: OnceLock<Result<F32Path, String>> = OnceLock::new();
        SELECTED.get_or_init(|| {
            let widest = F32Path::available()[0];
            let Ok(name) = std::env::var(F32_PATH_ENV) else {
                return Ok(widest);
            };
            let path = [F32Path::Avx512, F32Path::Avx2, F32Path::Portable]
                .into_iter()
                .find(|p| p.name() == name.trim())
                .ok_or_else(|| {
                    format!("{F32_PATH_ENV}={name:?}: expected avx512, avx2 or portable")
                })?;
            if !path.is_available() {
                return Err(format!(
                    "{F32_PATH_ENV}={name}: this CPU cannot run the {name} kernels"
                ));
            }
            Ok(path)
        })
    }
}

/// A vector of f32 lanes. Every method is `unsafe`: it may only run on a CPU with the
/// instruction set of the implementation (the callers are `#[target_feature]` functions
/// chosen by [`F32Path`]), and pointers must be valid for [`Self::LANES`] values.
pub(crate) trait Simd: Copy {
    /// Lanes per vector.
    const LANES: usize;
    unsafe fn splat(x: f32) -> Self;
    unsafe fn load(p: *const f32) -> Self;
    unsafe fn store(self, p: *mut f32);
    unsafe fn add(self, o: Self) -> Self;
    unsafe fn sub(self, o: Self) -> Self;
    unsafe fn mul(self, o: Self) -> Self;
    unsafe fn max(self, o: Self) -> Self;
    /// `self · b + c` (one rounding where the CPU has FMA; two in the portable copy).
    unsafe fn mul_add(self, b: Self, c: Self) -> Self;
    unsafe fn reduce_sum(self) -> f32;
    unsafe fn reduce_max(self) -> f32;
    /// `e^x` lane by lane, within 2 ulps (see [`exp_poly`]); inputs below -87.3 give
    /// `e^-87.3`-ish tiny values, not 0 (callers only feed it `s - max ≤ 0` and never rely on
    /// exact zeros).
    unsafe fn exp(self) -> Self;
}

/// Cephes' `expf` polynomial on `r ∈ [-ln2/2, ln2/2]`: `e^r ≈ 1 + r + r²·P(r)`.
pub(crate) const EXP_P: [f32; 6] = [
    0.5,
    1.666_666_5e-1,
    4.166_579_6e-2,
    8.333_452e-3,
    1.398_199_9e-3,
    1.987_569_1e-4,
];
/// `ln 2` split so that `n · LN2_HI` is exact for the `n` that occur.
pub(crate) const LN2_HI: f32 = 0.693_359_4;
pub(crate) const LN2_LO: f32 = -2.121_944_4e-4;
/// The range [`Simd::exp`] clamps its input to (so `2^n` is a normal f32).
pub(crate) const EXP_LO: f32 = -87.336_54;
pub(crate) const EXP_HI: f32 = 88.0;

/// `e^r` for the reduced argument, the polynomial evaluated with [`Simd::mul_add`].
#[inline(always)]
pub(crate) unsafe fn exp_poly<V: Simd>(r: V) -> V {
    let mut p = V::splat(EXP_P[5]);
    for &c in EXP_P[..5].iter().rev() {
        p = p.mul_add(r, V::splat(c));
    }
    let r2 = r.mul(r);
    p.mul_add(r2, r.add(V::splat(1.0)))
}

/// One f32: the portable copy.
#[derive(Clone, Copy)]
pub(crate) struct Scalar(f32);

impl Simd for Scalar {
    const LANES: usize = 1;
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        Scalar(x)
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        Scalar(*p)
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        *p = self.0
    }
    #[inline(always)]
    unsafe fn add(self, o: Self) -> Self {
        Scalar(self.0 + o.0)
    }
    #[inline(always)]
    unsafe fn sub(self, o: Self) -> Self {
        Scalar(self.0 - o.0)
    }
    #[inline(always)]
    unsafe fn mul(self, o: Self) -> Self {
        Scalar(self.0 * o.0)
    }
    #[inline(always)]
    unsafe fn max(self, o: Self) -> Self {
        Scalar(self.0.max(o.0))
    }
    #[inline(always)]
    unsafe fn mul_add(self, b: Self, c: Self) -> Self {
        Scalar(self.0 * b.0 + c.0)
    }
    #[inline(always)]
    unsafe fn reduce_sum(self) -> f32 {
        self.0
    }
    #[inline(always)]
    unsafe fn reduce_max(self) -> f32 {
        self.0
    }
    #[inline(always)]
    unsafe fn exp(self) -> Self {
        Scalar(self.0.clamp(EXP_LO, EXP_HI).exp())
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) use x86::{Avx2, Avx512};

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{exp_poly, Simd, EXP_HI, EXP_LO, LN2_HI, LN2_LO};
    use std::arch::x86_64::*;

    /// One zmm register.
    #[derive(Clone, Copy)]
    pub(crate) struct Avx512(__m512);

    impl Simd for Avx512 {
        const LANES: usize = 16;
        #[inline(always)]
        unsafe fn splat(x: f32) -> Self {
            Avx512(_mm512_set1_ps(x))
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            Avx512(_mm512_loadu_ps(p))
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32) {
            _mm512_storeu_ps(p, self.0)
        }
        #[inline(always)]
        unsafe fn add(self, o: Self) -> Self {
            Avx512(_mm512_add_ps(self.0, o.0))
        }
        #[inline(always)]
        unsafe fn sub(self, o: Self) -> Self {
            Avx512(_mm512_sub_ps(self.0, o.0))
        }
        #[inline(always)]
        unsafe fn mul(self, o: Self) -> Self {
            Avx512(_mm512_mul_ps(self.0, o.0))
        }
        #[inline(always)]
        unsafe fn max(self, o: Self) -> Self {
            Avx512(_mm512_max_ps(self.0, o.0))
        }
        #[inline(always)]
        unsafe fn mul_add(self, b: Self, c: Self) -> Self {
            Avx512(_mm512_fmadd_ps(self.0, b.0, c.0))
        }
        #[inline(always)]
        unsafe fn reduce_sum(self) -> f32 {
            _mm512_reduce_add_ps(self.0)
        }
        #[inline(always)]
        unsafe fn reduce_max(self) -> f32 {
            _mm512_reduce_max_ps(self.0)
        }
        #[inline(always)]
        unsafe fn exp(self) -> Self {
            let x = _mm512_min_ps(
                _mm512_max_ps(self.0, _mm512_set1_ps(EXP_LO)),
                _mm512_set1_ps(EXP_HI),
            );
            let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
                _mm512_mul_ps(x, _mm512_set1_ps(std::f32::consts::LOG2_E)),
            );
            let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_HI), x);
            let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_LO), r);
            let p = exp_poly(Avx512(r));
            Avx512(_mm512_scalef_ps(p.0, n))
        }
    }

    /// One ymm register (AVX2 + FMA).
    #[derive(Clone, Copy)]
    pub(crate) struct Avx2(__m256);

    impl Simd for Avx2 {
        const LANES: usize = 8;
        #[inline(always)]
        unsafe fn splat(x: f32) -> Self {
            Avx2(_mm256_set1_ps(x))
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            Avx2(_mm256_loadu_ps(p))
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32) {
            _mm256_storeu_ps(p, self.0)
        }
        #[inline(always)]
        unsafe fn add(self, o: Self) -> Self {
            Avx2(_mm256_add_ps(self.0, o.0))
        }
        #[inline(always)]
        unsafe fn sub(self, o: Self) -> Self {
            Avx2(_mm256_sub_ps(self.0, o.0))
        }
        #[inline(always)]
        unsafe fn mul(self, o: Self) -> Self {
            Avx2(_mm256_mul_ps(self.0, o.0))
        }
        #[inline(always)]
        unsafe fn max(self, o: Self) -> Self {
            Avx2(_mm256_max_ps(self.0, o.0))
        }
        #[inline(always)]
        unsafe fn mul_add(self, b: Self, c: Self) -> Self {
            Avx2(_mm256_fmadd_ps(self.0, b.0, c.0))
        }
        #[inline(always)]
        unsafe fn reduce_sum(self) -> f32 {
            let s = _mm_add_ps(
                _mm256_castps256_ps128(self.0),
                _mm256_extractf128_ps::<1>(self.0),
            );
            let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
            let s = _mm_add_ss(s, _mm_shuffle_ps::<1>(s, s));
            _mm_cvtss_f32(s)
        }
        #[inline(always)]
        unsafe fn reduce_max(self) -> f32 {
            let s = _mm_max_ps(
                _mm256_castps256_ps128(self.0),
                _mm256_extractf128_ps::<1>(self.0),
            );
            let s = _mm_max_ps(s, _mm_movehl_ps(s, s));
            let s = _mm_max_ss(s, _mm_shuffle_ps::<1>(s, s));
            _mm_cvtss_f32(s)
        }
        #[inline(always)]
        unsafe fn exp(self) -> Self {
            let x = _mm256_min_ps(
                _mm256_max_ps(self.0, _mm256_set1_ps(EXP_LO)),
                _mm256_set1_ps(EXP_HI),
            );
            let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
                _mm256_mul_ps(x, _mm256_set1_ps(std::f32::consts::LOG2_E)),
            );
            let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_HI), x);
            let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_LO), r);
            let p = exp_poly(Avx2(r));
            // 2^n from the exponent bits (n ∈ [-126, 127] after the clamp).
            let e = _mm256_slli_epi32::<23>(_mm256_add_epi32(
                _mm256_cvtps_epi32(n),
                _mm256_set1_epi32(127),
            ));
            Avx2(_mm256_mul_ps(p.0, _mm256_castsi256_ps(e)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `e^x` through `V`, for `xs.len()` a multiple of `V::LANES`.
    unsafe fn exps<V: Simd>(xs: &[f32]) -> Vec<f32> {
        let mut out = vec![0f32; xs.len()];
        for (o, x) in out.chunks_mut(V::LANES).zip(xs.chunks(V::LANES)) {
            V::load(x.as_ptr()).exp().store(o.as_mut_ptr());
        }
        out
    }

    fn check_exp(got: &[f32], xs: &[f32], what: &str) {
        for (&g, &x) in got.iter().zip(xs) {
            let want = (x as f64).clamp(EXP_LO as f64, EXP_HI as f64).exp();
            let err = (g as f64 - want).abs() / want;
            assert!(err <= 2.5e-7, "{what}: exp({x}) = {g}, want {want}");
        }
    }

    #[test]
    fn exp_is_within_two_ulps_on_every_path() {
        let xs: Vec<f32> = (-400_000..400_000)
            .map(|i| i as f32 * 2.3e-4)
            .chain([-200.0, -87.4, -87.3, 0.0, -0.0, 87.9, 100.0, -1e-30])
            .collect();
        let mut xs = xs;
        xs.truncate(xs.len() / 16 * 16);
        // SAFETY: the portable copy runs anywhere; the others only where available.
        check_exp(&unsafe { exps::<Scalar>(&xs) }, &xs, "portable");
        #[cfg(target_arch = "x86_64")]
        {
            if F32Path::Avx2.is_available() {
                check_exp(&unsafe { avx2_exps(&xs) }, &xs, "avx2");
            }
            if F32Path::Avx512.is_available() {
                check_exp(&unsafe { avx512_exps(&xs) }, &xs, "avx512");
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn avx2_exps(xs: &[f32]) -> Vec<f32> {
        exps::<Avx2>(xs)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn avx512_exps(xs: &[f32]) -> Vec<f32> {
        exps::<Avx512>(xs)
    }

    #[test]
    fn reductions_and_selection() {
        let v: Vec<f32> = (0..16).map(|i| (i as f32 - 7.5) * 1.25).collect();
        let (sum, max): (f32, f32) = (v.iter().sum(), 9.375);
        #[cfg(target_arch = "x86_64")]
        {
            #[target_feature(enable = "avx2,fma")]
            unsafe fn avx2(v: &[f32]) -> (f32, f32) {
                let a = Avx2::load(v.as_ptr()).max(Avx2::load(v.as_ptr().add(8)));
                let s = Avx2::load(v.as_ptr()).add(Avx2::load(v.as_ptr().add(8)));
                (s.reduce_sum(), a.reduce_max())
            }
            #[target_feature(enable = "avx512f,avx2,fma")]
            unsafe fn avx512(v: &[f32]) -> (f32, f32) {
                let a = Avx512::load(v.as_ptr());
                (a.reduce_sum(), a.reduce_max())
            }
            if F32Path::Avx2.is_available() {
                assert_eq!(unsafe { avx2(&v) }, (sum, max));
            }
            if F32Path::Avx512.is_available() {
                assert_eq!(unsafe { avx512(&v) }, (sum, max));
            }
        }
        let _ = (sum, max);
        assert!(F32Path::available().contains(&F32Path::Portable));
        let selected = F32Path::selected().unwrap();
        assert!(selected.is_available());
    }
}
