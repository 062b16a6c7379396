//! Errors.
/// Placeholder.
#[derive(Debug)]
pub enum Error {}
/// Result alias.
pub type Result<T> = std::result::Result<T, Error>;
