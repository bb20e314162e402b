//! Helpers shared by the integration tests that read an exposition.

pub mod exposition;
