//! The pure core: keys, events, the rules that accept or refuse them, and the
//! projections they build. No I/O, no clock, no prost types in its API.

pub mod event;
pub mod keys;
pub mod openpgp;
pub mod projection;
pub mod query;
pub mod refusal;
pub mod roles;

#[cfg(test)]
mod tests;
