//! Test fixtures for zkpilot.
//!
//! With feature `moto`: moto (the AWS emulator) on 127.0.0.1, one server per test, and an Auto
//! Scaling group with its bucket inside it (see [`Moto`]).
#![deny(missing_docs)]

#[cfg(feature = "moto")]
mod moto;

#[cfg(feature = "moto")]
pub use moto::*;
