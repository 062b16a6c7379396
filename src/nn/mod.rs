//! nn (to be written).
