//! Kernels against naive references.
