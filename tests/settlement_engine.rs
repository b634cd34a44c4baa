//! The unit tests of the RFC 0038 test engine (`examples/settlement_engine.rs`: scale conversion
//! with leftovers, its journal, two engines end to end), compiled here so that `cargo test` runs
//! them while the example itself stays one plain binary (which tests/settlement.rs starts).

#[allow(dead_code)]
#[path = "../examples/settlement_engine.rs"]
mod settlement_engine;
