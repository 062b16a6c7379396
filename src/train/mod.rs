//! train (to be written).
