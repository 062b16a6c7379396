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
