//! The AMX-INT8 kernel (`tdpbusd` on tile registers: 16 rows × 16 channels × 64 products per
//! instruction) over the same layouts as the other paths: a 16 × 64-byte tile of activations
//! is 16 rows of `a` (stride `k4`), and a 16 × 64-byte tile of weights is 16 consecutive
//! 4-byte groups of one packed panel (stride 64), exactly the panel layout. Blocks of 32 rows
//! × 2 panels run on the tiles; the rows and panels left over (and any `k4` not a multiple of
//! 64) run on the VNNI kernel, which gives the same exact i32 sums.
//!
//! Stable Rust has no AMX intrinsics, so the tile instructions are inline assembly; the tile
//! registers are touched only here, between `ldtilecfg` and `tilerelease`.

use std::arch::asm;
use std::arch::x86_64::*;
use std::sync::OnceLock;

use super::pack::PANEL;
use super::x86::{gemm_vnni, Sink};

/// Rows of one tile.
const TILE_ROWS: usize = 16;
/// Bytes of one tile row (64 products of `k` per row).
const TILE_K: usize = 64;

/// Whether this process can run AMX-INT8: the CPU has AMX-TILE and AMX-INT8, the OS enables
/// the tile state (XCR0 bits 17 and 18), and Linux granted this process the tile data
/// (`arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`, asked once).
pub(super) fn available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(detect)
}

#[cfg(target_os = "linux")]
fn detect() -> bool {
    // `cpuid` exists on every x86-64 CPU (the intrinsic is safe).
    let (max_leaf, leaf1, leaf7) = (
        __cpuid_count(0, 0).eax,
        __cpuid_count(1, 0),
        __cpuid_count(7, 0),
    );
    let osxsave = leaf1.ecx & (1 << 27) != 0;
    let amx = max_leaf >= 7 && leaf7.edx & (1 << 24) != 0 && leaf7.edx & (1 << 25) != 0;
    if !(osxsave && amx) {
        return false;
    }
    let (lo, _hi): (u32, u32);
    // SAFETY: `xgetbv` with ecx = 0 is defined when CPUID reports OSXSAVE (checked above).
    unsafe {
        asm!("xgetbv", in("ecx") 0u32, out("eax") lo, out("edx") _hi, options(nomem, nostack));
    }
    const TILE_STATE: u32 = 0b11 << 17;
    if lo & TILE_STATE != TILE_STATE {
        return false;
    }
    const SYS_ARCH_PRCTL: i64 = 158;
    const ARCH_REQ_XCOMP_PERM: i64 = 0x1023;
    const XFEATURE_XTILEDATA: i64 = 18;
    let ret: i64;
    // SAFETY: the arch_prctl system call only asks the kernel for a permission; it reads and
    // writes no memory of ours (rcx and r11 are clobbered by `syscall`).
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") SYS_ARCH_PRCTL => ret,
            in("rdi") ARCH_REQ_XCOMP_PERM,
            in("rsi") XFEATURE_XTILEDATA,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack)
        );
    }
    ret == 0
}

#[cfg(not(target_os = "linux"))]
fn detect() -> bool {
    false
}

/// The tile configuration (palette 1): tiles 0-3 hold 16 × 16 i32 sums, 4-5 activations,
/// 6-7 weights; every tile is 16 rows of 64 bytes.
#[repr(C, align(64))]
struct TileConfig([u8; 64]);

impl TileConfig {
    fn new() -> Self {
        let mut c = [0u8; 64];
        c[0] = 1;
        for t in 0..8 {
            c[16 + 2 * t..18 + 2 * t].copy_from_slice(&(TILE_K as u16).to_le_bytes());
            c[48 + t] = TILE_ROWS as u8;
        }
        Self(c)
    }
}

/// One 16 × 16 tile of i32 sums, as `tilestored` writes it.
#[repr(C, align(64))]
struct SumTile([i32; TILE_ROWS * PANEL]);

/// A sink whose tile starts `(rows, cols)` into another sink's tile.
struct Offset<'s, S> {
    sink: &'s S,
    rows: usize,
    cols: usize,
}

impl<S: Sink> Sink for Offset<'_, S> {
    #[inline(always)]
    unsafe fn put16(&self, r: usize, c: usize, acc: __m512i) {
        self.sink.put16(self.rows + r, self.cols + c, acc)
    }

    #[inline(always)]
    unsafe fn put8(&self, r: usize, c: usize, acc: __m256i) {
        self.sink.put8(self.rows + r, self.cols + c, acc)
    }
}

/// The AMX kernel (same contract as [`gemm_vnni`]).
///
/// # Safety
/// As [`gemm_vnni`], and [`available`] returned true.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub(super) unsafe fn gemm_amx<S: Sink>(
    a: &[u8],
    m: usize,
    b: &[i8],
    np: usize,
    k4: usize,
    sink: &S,
) {
    if !k4.is_multiple_of(TILE_K) {
        return gemm_vnni(a, m, b, np, k4, sink);
    }
    let panel_len = k4 * PANEL;
    let m_tiles = m / (2 * TILE_ROWS) * (2 * TILE_ROWS);
    let np_tiles = np / 2 * 2;
    if m_tiles > 0 && np_tiles > 0 {
        let config = TileConfig::new();
        let mut out = SumTile([0; TILE_ROWS * PANEL]);
        asm!("ldtilecfg [{}]", in(reg) config.0.as_ptr(), options(nostack, readonly));
        for p in (0..np_tiles).step_by(2) {
            let b0 = b.as_ptr().add(p * panel_len);
            let b1 = b0.add(panel_len);
            for r in (0..m_tiles).step_by(2 * TILE_ROWS) {
                let a0 = a.as_ptr().add(r * k4);
                let a1 = a0.add(TILE_ROWS * k4);
                asm!(
                    "tilezero tmm0",
                    "tilezero tmm1",
                    "tilezero tmm2",
                    "tilezero tmm3",
                    options(nostack, nomem)
                );
                for kk in (0..k4).step_by(TILE_K) {
                    asm!(
                        "tileloadd tmm4, [{a0} + {lda}*1]",
                        "tileloadd tmm5, [{a1} + {lda}*1]",
                        "tileloadd tmm6, [{b0} + {ldb}*1]",
                        "tileloadd tmm7, [{b1} + {ldb}*1]",
                        "tdpbusd tmm0, tmm4, tmm6",
                        "tdpbusd tmm1, tmm4, tmm7",
                        "tdpbusd tmm2, tmm5, tmm6",
                        "tdpbusd tmm3, tmm5, tmm7",
                        a0 = in(reg) a0.add(kk),
                        a1 = in(reg) a1.add(kk),
                        b0 = in(reg) b0.add(kk * PANEL),
                        b1 = in(reg) b1.add(kk * PANEL),
                        lda = in(reg) k4,
                        ldb = in(reg) TILE_K,
                        options(nostack, readonly)
                    );
                }
                // Tile t holds rows r + 16·(t / 2), panel p + t % 2.
                macro_rules! drain {
                    ($tile:literal, $t:expr) => {
                        asm!(
                            concat!("tilestored [{o} + {ld}*1], tmm", $tile),
                            o = in(reg) out.0.as_mut_ptr(),
                            ld = in(reg) TILE_K,
                            options(nostack)
                        );
                        let (dr, dc) = (($t / 2) * TILE_ROWS, ($t % 2) * PANEL);
                        for i in 0..TILE_ROWS {
                            let v = _mm512_load_si512(out.0.as_ptr().add(i * PANEL) as *const _);
                            sink.put16(r + dr + i, p * PANEL + dc, v);
                        }
                    };
                }
                drain!("0", 0);
                drain!("1", 1);
                drain!("2", 2);
                drain!("3", 3);
            }
        }
        asm!("tilerelease", options(nostack, nomem));
    }
    // The panels left over, for the rows done on tiles; then the rows left over.
    if np_tiles < np && m_tiles > 0 {
        let rest = Offset {
            sink,
            rows: 0,
            cols: np_tiles * PANEL,
        };
        gemm_vnni(
            &a[..m_tiles * k4],
            m_tiles,
            &b[np_tiles * panel_len..],
            np - np_tiles,
            k4,
            &rest,
        );
    }
    if m_tiles < m {
        let rest = Offset {
            sink,
            rows: m_tiles,
            cols: 0,
        };
        gemm_vnni(&a[m_tiles * k4..], m - m_tiles, b, np, k4, &rest);
    }
}
