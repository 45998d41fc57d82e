//! The identity provider's key set (`AUTHZ_JWKS`) of this isolate: parsed by the core once per
//! document text, not once per request, and shared by every request the isolate serves.
//!
//! An isolate is single-threaded, so the cache is a `thread_local` holding the last document
//! and what the core made of it (the set, or why it refused it: a refused document is not
//! parsed again on every request either). A new document (a new deployment) replaces it. This
//! module only caches; every rule of what a usable key is lives in `authz_core::jwt`.

use std::cell::RefCell;
use std::rc::Rc;

use authz_core::jwt::{JwksError, KeySet};

use crate::error::EdgeError;

/// The last document this isolate parsed and the core's verdict on it.
type Parsed = (String, Result<Rc<KeySet>, JwksError>);

thread_local! {
    static PARSED: RefCell<Option<Parsed>> = const { RefCell::new(None) };
}

/// The key set of `document` (the binding's text; `None` = unset), parsed at most once per
/// isolate for one text. A document the core refuses is 503 (logged, naming `AUTHZ_JWKS`).
pub fn key_set(document: Option<&str>) -> Result<Option<Rc<KeySet>>, EdgeError> {
    let Some(document) = document else {
        return Ok(None);
    };
    let cached = PARSED.with_borrow(|parsed| match parsed {
        Some((text, verdict)) if text == document => Some(verdict.clone()),
        _ => None,
    });
    let verdict = cached.unwrap_or_else(|| {
        let verdict = KeySet::parse(document.as_bytes()).map(Rc::new);
        PARSED.set(Some((document.to_owned(), verdict.clone())));
        verdict
    });
    verdict.map(Some).map_err(|error| {
        EdgeError::Misconfigured(match error {
            JwksError::NotAKeySet => {
                "AUTHZ_JWKS: expected a JWKS document (a JSON object with a \"keys\" array)"
            }
            JwksError::NoUsableKey => {
                "AUTHZ_JWKS: no key of the set is an RS256, ES256 or EdDSA signing key"
            }
            JwksError::PrivateKey => {
                "AUTHZ_JWKS: a key of the set has private members; publish public keys only"
            }
            JwksError::DuplicateKid => "AUTHZ_JWKS: two keys of the set share a kid",
            JwksError::BadKey => "AUTHZ_JWKS: a key of the set has missing or malformed members",
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED25519: &str = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"a","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;

    #[test]
    fn a_document_is_parsed_once_per_text() {
        assert_eq!(key_set(None), Ok(None));
        let first = key_set(Some(ED25519)).unwrap().unwrap();
        let again = key_set(Some(ED25519)).unwrap().unwrap();
        assert!(
            Rc::ptr_eq(&first, &again),
            "the second request reuses the parsed set"
        );
        assert_eq!(first.keys().len(), 1);
        let other = ED25519.replace(r#""kid":"a""#, r#""kid":"b""#);
        let replaced = key_set(Some(&other)).unwrap().unwrap();
        assert!(!Rc::ptr_eq(&first, &replaced), "a new document is parsed");
        assert_eq!(replaced.keys()[0].kid.as_deref(), Some("b"));
    }

    #[test]
    fn a_refused_document_is_misconfigured_naming_the_binding() {
        for document in [
            "not json",
            r#"{"keys":[]}"#,
            r#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"AA"}]}"#,
        ] {
            let Err(EdgeError::Misconfigured(message)) = key_set(Some(document)) else {
                panic!("{document} accepted");
            };
            assert!(message.starts_with("AUTHZ_JWKS: "), "{message}");
        }
    }
}
