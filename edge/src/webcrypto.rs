//! Public-key token signatures (RS256, ES256, EdDSA) checked by the runtime's WebCrypto
//! (`crypto.subtle`), so that the worker's wasm holds no public-key crypto of its own.
//!
//! RS256 is RSASSA-PKCS1-v1_5 with SHA-256, ES256 ECDSA on P-256 with SHA-256 (a JWS signature
//! is the raw `r || s` that WebCrypto takes), EdDSA WebCrypto's `Ed25519`. Each key is imported
//! from the core's minimal public JWK once per isolate and kept (`thread_local`: an isolate is
//! single-threaded). Every failure of WebCrypto (a missing `crypto.subtle`, a key it will not
//! import, a rejected promise) is an invalid signature: this module fails closed and never
//! panics. It decides nothing else; which key and algorithm a token may use is the core's.

use std::cell::RefCell;

use authz_core::jwt::{Algorithm, Jwk, SignatureCheck};
use js_sys::{Array, Object, Reflect};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{CryptoKey, SubtleCrypto};

use crate::request::Verifier;

/// More imported keys than any one key set holds; past it the cache starts again (a key set
/// only changes with a new deployment, so this bound is never reached in practice).
const MAX_IMPORTED_KEYS: usize = 64;

thread_local! {
    /// Imported keys by their public JWK (the core's fixed rendering of the key's members).
    static IMPORTED: RefCell<Vec<(String, CryptoKey)>> = const { RefCell::new(Vec::new()) };
}

/// The runtime's WebCrypto as the edge's [`Verifier`].
#[derive(Debug, Clone, Copy, Default)]
pub struct WebCrypto;

impl Verifier for WebCrypto {
    async fn verify(&self, check: SignatureCheck<'_>) -> bool {
        match verify(&check).await {
            Ok(valid) => valid,
            Err(error) => {
                worker::console_warn!(
                    "WebCrypto refused a {} verification: {error:?}",
                    check.key.alg.name()
                );
                false
            }
        }
    }
}

async fn verify(check: &SignatureCheck<'_>) -> Result<bool, JsValue> {
    let subtle = subtle()?;
    let key = imported(&subtle, check.key).await?;
    let algorithm = match check.key.alg {
        Algorithm::Rs256 => object(&[("name", "RSASSA-PKCS1-v1_5")])?,
        Algorithm::Es256 => object(&[("name", "ECDSA"), ("hash", "SHA-256")])?,
        Algorithm::EdDsa => object(&[("name", "Ed25519")])?,
        Algorithm::Hs256 => return Err(JsValue::from_str("HS256 is the core's")),
    };
    let promise = subtle.verify_with_object_and_u8_array_and_u8_array(
        &algorithm,
        &key,
        check.signature,
        check.signing_input,
    )?;
    Ok(JsFuture::from(promise).await?.as_bool() == Some(true))
}

/// `globalThis.crypto.subtle`.
fn subtle() -> Result<SubtleCrypto, JsValue> {
    let crypto = Reflect::get(&js_sys::global(), &JsValue::from_str("crypto"))?;
    if !crypto.is_object() {
        return Err(JsValue::from_str("no globalThis.crypto"));
    }
    let subtle = Reflect::get(&crypto, &JsValue::from_str("subtle"))?;
    if !subtle.is_object() {
        return Err(JsValue::from_str("no crypto.subtle"));
    }
    Ok(subtle.unchecked_into())
}

/// The key's `CryptoKey`, imported on first use in this isolate.
async fn imported(subtle: &SubtleCrypto, jwk: &Jwk) -> Result<CryptoKey, JsValue> {
    let cached = IMPORTED.with_borrow(|keys| {
        keys.iter()
            .find(|(public_jwk, _)| *public_jwk == jwk.public_jwk)
            .map(|(_, key)| key.clone())
    });
    if let Some(key) = cached {
        return Ok(key);
    }
    let algorithm = match jwk.alg {
        Algorithm::Rs256 => object(&[("name", "RSASSA-PKCS1-v1_5"), ("hash", "SHA-256")])?,
        Algorithm::Es256 => object(&[("name", "ECDSA"), ("namedCurve", "P-256")])?,
        Algorithm::EdDsa => object(&[("name", "Ed25519")])?,
        Algorithm::Hs256 => return Err(JsValue::from_str("HS256 is the core's")),
    };
    let key_data: Object = js_sys::JSON::parse(&jwk.public_jwk)?.unchecked_into();
    let usages = Array::of1(&JsValue::from_str("verify"));
    let promise = subtle.import_key_with_object("jwk", &key_data, &algorithm, false, &usages)?;
    let key: CryptoKey = JsFuture::from(promise).await?.unchecked_into();
    IMPORTED.with_borrow_mut(|keys| {
        if keys.len() >= MAX_IMPORTED_KEYS {
            keys.clear();
        }
        keys.push((jwk.public_jwk.clone(), key.clone()));
    });
    Ok(key)
}

/// A plain object of string members, a WebCrypto algorithm's parameters.
fn object(members: &[(&str, &str)]) -> Result<Object, JsValue> {
    let object = Object::new();
    for (name, value) in members {
        Reflect::set(&object, &JsValue::from_str(name), &JsValue::from_str(value))?;
    }
    Ok(object)
}
