//! tensor (to be written).
