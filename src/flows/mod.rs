//! flows (to be written).
