//! autodiff (to be written).
