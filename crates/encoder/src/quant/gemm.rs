//! The u8 × i8 → i32 matrix product on one tile, dispatched to the widest kernel the CPU has.

use std::ops::Range;
use std::sync::OnceLock;

use super::pack::{QuantizedRows, QuantizedWeights, PANEL};

/// Which kernel computes the int8 products.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Int8Path {
    /// AVX-512 with VNNI (`vpdpbusd`): 16 channels × 4 products per instruction.
    Vnni512,
    /// AVX2 (`vpmaddubsw` + `vpmaddwd`).
    Avx2,
    /// Plain Rust (any CPU).
    Portable,
}

/// The environment variable that forces a path: `vnni`, `avx2` or `portable`.
pub const PATH_ENV: &str = "SPLADE_INT8_KERNEL";

impl Int8Path {
    /// The name [`PATH_ENV`] takes.
    pub fn name(self) -> &'static str {
        match self {
            Int8Path::Vnni512 => "vnni",
            Int8Path::Avx2 => "avx2",
            Int8Path::Portable => "portable",
        }
    }

    /// Whether this CPU can run the path.
    pub fn is_available(self) -> bool {
        match self {
            Int8Path::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Int8Path::Avx2 => std::arch::is_x86_feature_detected!("avx2"),
            #[cfg(target_arch = "x86_64")]
            Int8Path::Vnni512 => {
                std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512bw")
                    && std::arch::is_x86_feature_detected!("avx512vnni")
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// Every path this CPU can run, widest first.
    pub fn available() -> Vec<Int8Path> {
        [Int8Path::Vnni512, Int8Path::Avx2, Int8Path::Portable]
            .into_iter()
            .filter(|p| p.is_available())
            .collect()
    }

    /// The path to use: the one [`PATH_ENV`] names (an error if it is unknown or this CPU
    /// lacks it), else the widest available. Read once per process.
    pub fn selected() -> Result<Int8Path, String> {
        static SELECTED: OnceLock<Result<Int8Path, String>> = OnceLock::new();
        SELECTED
            .get_or_init(|| match std::env::var(PATH_ENV) {
                Ok(name) if !name.is_empty() => Self::parse(&name),
                _ => Ok(Self::available()[0]),
            })
            .clone()
    }

    /// The path named `name` (`vnni`, `avx2`, `portable`) if this CPU can run it.
    pub fn parse(name: &str) -> Result<Int8Path, String> {
        let path = match name {
            "vnni" => Int8Path::Vnni512,
            "avx2" => Int8Path::Avx2,
            "portable" => Int8Path::Portable,
            other => {
                return Err(format!(
                    "{PATH_ENV}={other}: unknown int8 kernel (expected vnni, avx2 or portable)"
                ))
            }
        };
        if path.is_available() {
            Ok(path)
        } else {
            Err(format!(
                "{PATH_ENV}={name}: this CPU cannot run the {name} int8 kernel"
            ))
        }
    }
}

/// `out[r][j] = Σ_k a[rows.start + r][k] · b[panels.start·16 + j][k]` (exact i32), for the
/// rows `rows` of `a` and the 16-channel panels `panels` of `b`; `out` is row-major with
/// leading dimension `ldc ≥ panels.len() · 16`. Single-threaded: callers split the work.
///
/// # Panics
/// When `a` and `b` disagree on `k`, the ranges are out of bounds, `out` is too small, or
/// `path` is not available on this CPU.
pub fn gemm_i32(
    path: Int8Path,
    a: &QuantizedRows,
    rows: Range<usize>,
    b: &QuantizedWeights,
    panels: Range<usize>,
    out: &mut [i32],
    ldc: usize,
) {
    assert_eq!(
        a.k4, b.k4,
        "int8 product: activations and weights differ in k"
    );
    assert!(rows.end <= a.m && panels.end <= b.panels());
    let (m, np) = (rows.len(), panels.len());
    assert!(path.is_available(), "int8 kernel {path:?} is not available");
    if m == 0 || np == 0 {
        return;
    }
    assert!(ldc >= np * PANEL && out.len() >= (m - 1) * ldc + np * PANEL);
    let a_data = &a.data[rows.start * a.k4..rows.end * a.k4];
    let panel_len = b.k4 * PANEL;
    let b_data = &b.packed[panels.start * panel_len..panels.end * panel_len];
    match path {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the CPU has the features (asserted above); the slices cover every access
        // (`m` rows of `k4` bytes, `np` panels, `out` checked above).
        Int8Path::Vnni512 => unsafe {
            super::x86::gemm_vnni(a_data, m, b_data, np, b.k4, out, ldc)
        },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Int8Path::Avx2 => unsafe { super::x86::gemm_avx2(a_data, m, b_data, np, b.k4, out, ldc) },
        _ => gemm_portable(a_data, m, b_data, np, b.k4, out, ldc),
    }
}

/// The portable kernel over the same packed layout.
fn gemm_portable(a: &[u8], m: usize, b: &[i8], np: usize, k4: usize, out: &mut [i32], ldc: usize) {
    for p in 0..np {
        let panel = &b[p * k4 * PANEL..(p + 1) * k4 * PANEL];
        for r in 0..m {
            let row = &a[r * k4..(r + 1) * k4];
            let mut acc = [0i32; PANEL];
            for (a4, b4) in row.chunks_exact(4).zip(panel.chunks_exact(4 * PANEL)) {
                for (lane, acc) in acc.iter_mut().enumerate() {
                    let w = &b4[lane * 4..lane * 4 + 4];
                    *acc += a4[0] as i32 * w[0] as i32
                        + a4[1] as i32 * w[1] as i32
                        + a4[2] as i32 * w[2] as i32
                        + a4[3] as i32 * w[3] as i32;
                }
            }
            out[r * ldc + p * PANEL..r * ldc + (p + 1) * PANEL].copy_from_slice(&acc);
        }
    }
}
