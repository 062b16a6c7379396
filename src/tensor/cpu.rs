//! What the CPU offers and the build allows: the run-time checks for AVX2,
//! FMA and AVX-512F that the kernels with intrinsics ask before they run
//! (`simd.rs`, `gemm.rs`, `conv/`), and the compile-time switch
//! `MMTEST_FEATURE` that keeps them off, as it keeps `matrixmultiply`'s.
//! No element types here, so every kernel module can depend on it.

#[cfg(target_arch = "x86_64")]
pub(crate) fn has_avx2_fma() -> bool {
    ALLOWED_BY_BUILD
        && std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("fma")
}

/// False when the build was told to keep off AVX2 and FMA, as
/// `matrixmultiply` is: with `MMTEST_FEATURE` set at compile time to a
/// comma-separated list that does not name both (`MMTEST_FEATURE=none`),
/// these loops, our f32 GEMM (which then hands over to `matrixmultiply`)
/// and `matrixmultiply`'s kernels all take their plain-Rust
/// paths, the ones `wasm32` runs, and a run gives the bits it gives there
/// (web/README.md, "Determinism").
#[cfg(target_arch = "x86_64")]
const ALLOWED_BY_BUILD: bool = match option_env!("MMTEST_FEATURE") {
    None => true,
    Some(list) => list.is_empty() || (lists(list, b"avx2") && lists(list, b"fma")),
};

/// Which vector width the direct convolution's loops (`conv/same.rs`) are
/// compiled for on this CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Width {
    /// The baseline build: SSE2 on x86-64, the plain scalar or `simd128`
    /// code elsewhere.
    Baseline,
    /// 256-bit AVX2 registers.
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// 512-bit AVX-512F registers.
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

/// The widest vectors this CPU has that the build allows: with
/// `MMTEST_FEATURE` set to a list, AVX-512F only if it names `avx512f`,
/// AVX2 only if it names `avx2`; `MMTEST_FEATURE=none` keeps the baseline.
///
/// Why no FMA: the loops compiled this way add separate products (Rust
/// never fuses a multiply and an add), so every width gives the same bits
/// as the baseline and as `wasm32`; only the speed differs.
pub(crate) fn widest() -> Width {
    #[cfg(target_arch = "x86_64")]
    {
        let allowed = |name: &[u8]| match option_env!("MMTEST_FEATURE") {
            None => true,
            Some(list) => list.is_empty() || lists(list, name),
        };
        if allowed(b"avx512f") && std::arch::is_x86_feature_detected!("avx512f") {
            return Width::Avx512;
        }
        if allowed(b"avx2") && std::arch::is_x86_feature_detected!("avx2") {
            return Width::Avx2;
        }
    }
    Width::Baseline
}

/// Whether the comma-separated `list` holds `name`.
#[cfg(target_arch = "x86_64")]
const fn lists(list: &str, name: &[u8]) -> bool {
    let list = list.as_bytes();
    let mut start = 0;
    while start <= list.len() {
        let mut end = start;
        while end < list.len() && list[end] != b',' {
            end += 1;
        }
        if end - start == name.len() {
            let mut i = 0;
            while i < name.len() && list[start + i] == name[i] {
                i += 1;
            }
            if i == name.len() {
                return true;
            }
        }
        start = end + 1;
    }
    false
}
