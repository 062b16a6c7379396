//! Every op against finite differences.
