//! The pure core of pg_uproot, compiled as the `uproot-core` crate: no pgrx, no SPI.
pub mod error;
pub mod graph;
pub mod plan;
