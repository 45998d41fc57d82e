//! The origin's request bodies (single check and batch), as a service and as an end user:
//! never a panic, and the fast path agrees with the precise path.
#![no_main]

use authz_origin::auth::Caller;
use authz_origin::routes::request::{json_object, parse_batch, parse_check, parse_single};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let user = authz_core::UserId::parse("a0000000-0000-4000-8000-000000000001", "sub");
    let Ok(user) = user else {
        return;
    };
    for caller in [Caller::Service, Caller::EndUser(user)] {
        let fast = parse_single(data, caller);
        if let Ok(object) = json_object(data) {
            let precise = parse_check(&object, "", caller);
            // Both paths accept the same bodies, with the same question.
            assert_eq!(fast.as_ref().ok(), precise.as_ref().ok());
            let _ = parse_batch(&object, caller);
        } else {
            assert!(fast.is_err());
        }
    }
});
