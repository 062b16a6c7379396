//! Tolerances, each with where it comes from, and the one comparison helper.

/// Round trips in f64 (DESIGN.md proof 1): a few dozen ulps of error per layer.
pub const INVERSE_RTOL: f64 = 1e-10;
/// log-det against the finite-difference Jacobian (DESIGN.md proof 2): the
/// central-difference error O(h²) at h = 1e-5 is ~1e-10, far inside 1e-6.
pub const LOG_DET_RTOL: f64 = 1e-6;
/// Gradcheck tolerance: central differences at h = 1e-6 carry truncation
/// error O(h²) ≈ 1e-12 and round-off O(ε·|f|/h) ≈ 1e-10; 1e-6 leaves room for
/// the curvature of exp and tanh.
pub const GRADCHECK_RTOL: f64 = 1e-6;
/// Finite-difference step for gradchecks.
pub const GRADCHECK_H: f64 = 1e-6;
/// Kernels against their naive references in f64: same operations, possibly
/// summed in another order.
pub const KERNEL_RTOL: f64 = 1e-12;
/// Kernels in f32 against f64 sums of the same f32 values, relative to the
/// sum of |terms|: a sum of n terms rounds by at most n·2⁻²⁴·Σ|t|, about
/// √n·2⁻²⁴·Σ|t| for random signs (2e-6 at n = 1000); 1e-5 sits above that
/// and far below the 1/n share of Σ|t| a missing or doubled term moves a
/// sum of n < 10⁵ terms.
pub const KERNEL_RTOL_F32: f64 = 1e-5;

/// `|a − b| ≤ rtol · max(1, |a|, |b|)`.
pub fn close(a: f64, b: f64, rtol: f64) -> bool {
    (a - b).abs() <= rtol * 1f64.max(a.abs()).max(b.abs())
}

/// Asserts two equally long slices are elementwise `close`, naming the first
/// differing index and both values.
pub fn assert_all_close(what: &str, got: &[f64], expected: &[f64], rtol: f64) {
    assert_eq!(got.len(), expected.len(), "{what}: lengths differ");
    for (i, (g, e)) in got.iter().zip(expected).enumerate() {
        assert!(
            close(*g, *e, rtol),
            "{what}: index {i}: got {g:.15e}, expected {e:.15e}"
        );
    }
}
