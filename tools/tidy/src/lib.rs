//! Nothing to use: this crate holds the tidy test (`tests/tidy.rs`), which reads the
//! repository's sources as text and runs `cargo tree`, so that the rules of ARCHITECTURE.md
//! that can be checked mechanically are.
