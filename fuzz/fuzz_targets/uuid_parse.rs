//! The UUID standard: never panics; whatever parses formats back to the input, lowercased.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(id) = authz_core::id::parse_uuid(text, "id") {
        assert_eq!(id.hyphenated().to_string(), text.to_ascii_lowercase());
        assert!(!id.is_nil() && !id.is_max());
    }
});
