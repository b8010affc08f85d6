//! The u8 × i8 → i32 matrix product on one tile, dispatched to the widest kernel the CPU has.

use std::ops::Range;
use std::sync::OnceLock;

use super::pack::{QuantizedRows, QuantizedWeights, PANEL};

/// Which kernel computes the int8 products.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Int8Path {
    /// AMX-INT8 (`tdpbusd` on tiles: 16 × 16 channels × 64 products per instruction), with
    /// the VNNI kernel for the edges.
    Amx,
    /// AVX-512 with VNNI (`vpdpbusd`): 16 channels × 4 products per instruction.
    Vnni512,
    /// AVX-VNNI (VEX `vpdpbusd` on ymm: 8 channels × 4 products per instruction), for the
    /// AVX2-class CPUs that have it.
    AvxVnni,
    /// AVX2 (`vpmaddubsw` + `vpmaddwd`).
    Avx2,
    /// Plain Rust (any CPU).
    Portable,
}

/// The environment variable that forces a path: `amx`, `vnni`, `avxvnni`, `avx2` or
/// `portable`.
pub const PATH_ENV: &str = "SPLADE_INT8_KERNEL";

impl Int8Path {
    /// This path's value of the `SPLADE_INT8_KERNEL` environment variable (what
    /// [`Int8Path::parse`] accepts).
    pub fn name(self) -> &'static str {
        match self {
            Int8Path::Amx => "amx",
            Int8Path::Vnni512 => "vnni",
            Int8Path::AvxVnni => "avxvnni",
            Int8Path::Avx2 => "avx2",
            Int8Path::Portable => "portable",
        }
    }

    /// Whether this CPU can run the path.
    pub fn is_available(self) -> bool {
        match self {
            Int8Path::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Int8Path::Amx => Int8Path::Vnni512.is_available() && super::amx::available(),
            #[cfg(target_arch = "x86_64")]
            Int8Path::AvxVnni => {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("avxvnni")
            }
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
        [
            Int8Path::Amx,
            Int8Path::Vnni512,
            Int8Path::AvxVnni,
            Int8Path::Avx2,
            Int8Path::Portable,
        ]
        .into_iter()
        .filter(|p| p.is_available())
        .collect()
    }

    /// The path to use: the one the `SPLADE_INT8_KERNEL` environment variable names (an error
    /// if it is unknown or this CPU lacks it), else (unset or empty) the widest available.
    /// Read once per process.
    pub fn selected() -> Result<Int8Path, String> {
        static SELECTED: OnceLock<Result<Int8Path, String>> = OnceLock::new();
        SELECTED
            .get_or_init(|| match std::env::var(PATH_ENV) {
                Ok(name) if !name.is_empty() => Self::parse(&name),
                _ => Ok(Self::available()[0]),
            })
            .clone()
    }

    /// The path named `name` (`amx`, `vnni`, `avxvnni`, `avx2`, `portable`) if this CPU can run
    /// it.
    pub fn parse(name: &str) -> Result<Int8Path, String> {
        let path = match name {
            "amx" => Int8Path::Amx,
            "vnni" => Int8Path::Vnni512,
            "avxvnni" => Int8Path::AvxVnni,
            "avx2" => Int8Path::Avx2,
            "portable" => Int8Path::Portable,
            other => {
                return Err(format!(
                    "{PATH_ENV}={other}: unknown int8 kernel (expected amx, vnni, avxvnni, avx2 or portable)"
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
            let sink = super::x86::I32Sink::new(out, ldc);
            super::x86::gemm_vnni(a_data, m, b_data, np, b.k4, &sink)
        },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above (AMX availability included).
        Int8Path::Amx => unsafe {
            let sink = super::x86::I32Sink::new(out, ldc);
            super::amx::gemm_amx(a_data, m, b_data, np, b.k4, &sink)
        },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Int8Path::AvxVnni => unsafe {
            let sink = super::x86::I32Sink::new(out, ldc);
            super::x86::gemm_avxvnni(a_data, m, b_data, np, b.k4, &sink)
        },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Int8Path::Avx2 => unsafe {
            let sink = super::x86::I32Sink::new(out, ldc);
            super::x86::gemm_avx2(a_data, m, b_data, np, b.k4, &sink)
        },
        _ => gemm_portable(a_data, m, b_data, np, b.k4, out, ldc),
    }
}

/// How a tile's i32 sums become f32 outputs:
/// `y[r][j] = (s_x[r] · s_w[j]) · (acc[r][j] − z[r] · Σ_k q_w[j][k]) + b[j]`.
#[derive(Debug, Clone, Copy)]
pub struct Dequant<'a> {
    /// `s_x` of every row of the activations.
    pub row_scales: &'a [f32],
    /// `z` of every row of the activations.
    pub row_zeros: &'a [i32],
    /// `s_w` of every channel, padded with zeros to whole panels.
    pub col_scales: &'a [f32],
    /// `Σ_k q_w` of every channel, padded to whole panels.
    pub col_sums: &'a [i32],
    /// The bias of every channel (zeros for a layer without one), padded to whole panels.
    pub bias: &'a [f32],
}

impl Dequant<'_> {
    /// The output of row `r` and channel `j` from their exact sum `acc` (the scalar definition
    /// every kernel's vector epilogue computes, operation for operation).
    #[inline(always)]
    pub fn apply(&self, r: usize, j: usize, acc: i32) -> f32 {
        let diff = acc - self.row_zeros[r] * self.col_sums[j];
        (self.row_scales[r] * self.col_scales[j]) * diff as f32 + self.bias[j]
    }
}

/// `out[r][j] = deq.apply(row, channel, Σ_k a·b)` for the rows `rows` of `a` and the channels
/// of the panels `panels` of `b` that are below `b.n`: the int8 product with its
/// dequantization fused into the kernel's stores (no i32 buffer). `out` is row-major with
/// leading dimension `ldc`; its element `[0][0]` is row `rows.start`, channel
/// `panels.start · 16`. Single-threaded: callers split the work.
///
/// # Panics
/// When `a` and `b` disagree on `k`, the ranges are out of bounds, `out` or one of `deq`'s
/// slices is too small, or `path` is not available on this CPU.
#[allow(clippy::too_many_arguments)]
pub fn gemm_dequant(
    path: Int8Path,
    a: &QuantizedRows,
    rows: Range<usize>,
    b: &QuantizedWeights,
    panels: Range<usize>,
    deq: &Dequant,
    out: &mut [f32],
    ldc: usize,
) {
    let c0 = panels.start * PANEL;
    let cols = b.n.min(panels.end * PANEL).saturating_sub(c0);
    if !rows.is_empty() && cols > 0 {
        assert!(ldc >= cols && out.len() >= (rows.len() - 1) * ldc + cols);
    }
    // SAFETY: `out` holds every element the tile writes (checked above).
    unsafe { gemm_dequant_raw(path, a, rows, b, panels, deq, out.as_mut_ptr(), ldc) }
}

/// [`gemm_dequant`] into a raw tile, for tasks that write disjoint tiles of one output.
///
/// # Safety
/// `out` is valid for writes of rows `0..rows.len()` (leading dimension `ldc`), columns
/// `0..cols` where `cols = min(b.n, panels.end · 16) − panels.start · 16`, with `ldc ≥ cols`,
/// and nothing else accesses those elements during the call (they may be uninitialized:
/// the call writes every one of them and reads none).
///
/// # Panics
/// As [`gemm_dequant`].
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemm_dequant_raw(
    path: Int8Path,
    a: &QuantizedRows,
    rows: Range<usize>,
    b: &QuantizedWeights,
    panels: Range<usize>,
    deq: &Dequant,
    out: *mut f32,
    ldc: usize,
) {
    assert_eq!(
        a.k4, b.k4,
        "int8 product: activations and weights differ in k"
    );
    assert!(rows.end <= a.m && panels.end <= b.panels());
    assert!(path.is_available(), "int8 kernel {path:?} is not available");
    let (m, np) = (rows.len(), panels.len());
    let c0 = panels.start * PANEL;
    let cols = b.n.min(panels.end * PANEL).saturating_sub(c0);
    if m == 0 || cols == 0 {
        return;
    }
    assert!(ldc >= cols);
    assert!(deq.row_scales.len() >= rows.end && deq.row_zeros.len() >= rows.end);
    let padded = panels.end * PANEL;
    assert!(
        deq.col_scales.len() >= padded && deq.col_sums.len() >= padded && deq.bias.len() >= padded
    );
    let a_data = &a.data[rows.start * a.k4..rows.end * a.k4];
    let panel_len = b.k4 * PANEL;
    let b_data = &b.packed[panels.start * panel_len..panels.end * panel_len];
    let tile = Dequant {
        row_scales: &deq.row_scales[rows.clone()],
        row_zeros: &deq.row_zeros[rows.clone()],
        col_scales: &deq.col_scales[c0..padded],
        col_sums: &deq.col_sums[c0..padded],
        bias: &deq.bias[c0..padded],
    };
    match path {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the CPU has the features (asserted above); the slices cover every access
        // (`m` rows of `k4` bytes, `np` panels, `tile`'s `m` rows and `np` panels of
        // channels); the sink writes only the first `cols` columns of each of the `m` rows
        // (the caller's contract).
        Int8Path::Vnni512 => {
            let sink = super::x86::DequantSink::new(&tile, out, ldc, cols);
            super::x86::gemm_vnni(a_data, m, b_data, np, b.k4, &sink)
        }
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above (AMX availability included).
        Int8Path::Amx => {
            let sink = super::x86::DequantSink::new(&tile, out, ldc, cols);
            super::amx::gemm_amx(a_data, m, b_data, np, b.k4, &sink)
        }
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Int8Path::AvxVnni => {
            let sink = super::x86::DequantSink::new(&tile, out, ldc, cols);
            super::x86::gemm_avxvnni(a_data, m, b_data, np, b.k4, &sink)
        }
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Int8Path::Avx2 => {
            let sink = super::x86::DequantSink::new(&tile, out, ldc, cols);
            super::x86::gemm_avx2(a_data, m, b_data, np, b.k4, &sink)
        }
        _ => {
            let w = np * PANEL;
            let mut acc = vec![0i32; m * w];
            gemm_portable(a_data, m, b_data, np, b.k4, &mut acc, w);
            for r in 0..m {
                for j in 0..cols {
                    // SAFETY: row r < m, column j < cols (the caller's contract).
                    out.add(r * ldc + j).write(tile.apply(r, j, acc[r * w + j]));
                }
            }
        }
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
