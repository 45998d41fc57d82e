//! The core's request bodies (single check and batch) for every source of the principal (a
//! service, an end user at the origin, the edge's token): never a panic, and the fast path
//! agrees with the precise path.
#![no_main]

use authz_core::Principal;
use authz_core::wire::request::{
    PrincipalSource, json_object, parse_batch, parse_check_object, parse_single,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let user = authz_core::UserId::parse("a0000000-0000-4000-8000-000000000001", "sub");
    let Ok(user) = user else {
        return;
    };
    for source in [
        PrincipalSource::Named,
        PrincipalSource::Subject(user),
        PrincipalSource::Fixed(Principal::Anonymous),
    ] {
        let fast = parse_single(data, source);
        match json_object(data) {
            // Both paths accept the same bodies, with the same check, or refuse alike.
            Ok(object) => assert_eq!(fast, parse_check_object(&object, "", source)),
            Err(_) => assert!(fast.is_err()),
        }
        let _ = parse_batch(data, source);
    }
});
