//! The core's `GET /v1/authorize` query parser, for anonymous and for a user: never a panic,
//! and a refusal is always a 400 naming a parameter.
#![no_main]

use authz_core::Principal;
use authz_core::wire::request::parse_query;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(query) = std::str::from_utf8(data) else {
        return;
    };
    let user = authz_core::UserId::parse("a0000000-0000-4000-8000-000000000001", "sub");
    let Ok(user) = user else {
        return;
    };
    for principal in [Principal::Anonymous, Principal::User(user)] {
        if let Err(error) = parse_query(Some(query), principal) {
            assert_eq!(error.status(), 400);
            assert!(error.field.is_some());
        }
    }
});
