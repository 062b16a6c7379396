//! Derivation pages.
