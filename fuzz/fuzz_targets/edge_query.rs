//! The edge's query string and batch body parsing: never a panic.
#![no_main]

use authz_core::Principal;
use authz_edge::request::{parse_batch, parse_query};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(query) = std::str::from_utf8(data) {
        let _ = parse_query(Some(query), Principal::Anonymous);
    }
    let _ = parse_batch(data, Principal::Anonymous);
});
