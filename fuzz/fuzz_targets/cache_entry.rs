//! Cache-entry decoding: never a panic; a decoded entry re-encodes to a text that decodes to
//! the same entry, and is consistent (a grant has a method and a role, a deny a reason).
#![no_main]

use authz_core::CacheEntry;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(entry) = CacheEntry::decode(text) {
        let again = CacheEntry::decode(&entry.encode());
        assert_eq!(again.as_ref(), Ok(&entry));
        let decision = entry.decision;
        assert_eq!(decision.granted, decision.reason.is_none());
        assert_eq!(decision.granted, decision.access_method.is_some());
        assert!(entry.expires_at >= entry.computed_at);
    }
});
