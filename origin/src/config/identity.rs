//! The identity provider's keys from the environment: `AUTHZ_JWKS` (a document, parsed by the
//! core now) or `AUTHZ_JWKS_URL` (`https`, or `http` to a loopback address; fetched by the
//! state at start), with `AUTHZ_JWKS_REFRESH_SECONDS` and `AUTHZ_JWKS_MIN_REFRESH_SECONDS`.

use std::sync::Arc;
use std::time::Duration;

use authz_core::jwt::KeySet;

use super::vars::Env;
use super::{ConfigError, invalid};
use crate::jwks::KeyStore;

/// The identity provider's keys: `AUTHZ_JWKS` parsed now, or a store of `AUTHZ_JWKS_URL`
/// that the state fetches at start.
pub(super) fn jwks(env: Env<'_>) -> Result<Option<Arc<KeyStore>>, ConfigError> {
    let refresh = Duration::from_secs(env.number("AUTHZ_JWKS_REFRESH_SECONDS")?);
    let min_refresh = Duration::from_secs(env.number("AUTHZ_JWKS_MIN_REFRESH_SECONDS")?);
    if refresh.is_zero() {
        return Err(invalid(
            "AUTHZ_JWKS_REFRESH_SECONDS",
            "expected a positive number",
        ));
    }
    match (env.get("AUTHZ_JWKS"), env.get("AUTHZ_JWKS_URL")) {
        (None, None) => Ok(None),
        (Some(_), Some(_)) => Err(invalid(
            "AUTHZ_JWKS",
            "set AUTHZ_JWKS or AUTHZ_JWKS_URL, not both",
        )),
        (Some(document), None) => KeySet::parse(document.as_bytes())
            .map(|set| Some(Arc::new(KeyStore::from_document(set))))
            .map_err(|error| invalid("AUTHZ_JWKS", error.message())),
        (None, Some(url)) => {
            let parsed = reqwest::Url::parse(url)
                .map_err(|_| invalid("AUTHZ_JWKS_URL", format!("not a URL: \"{url}\"")))?;
            if !crate::jwks::is_trusted_address(&parsed) {
                return Err(invalid(
                    "AUTHZ_JWKS_URL",
                    "expected an https URL (http only to a loopback address)",
                ));
            }
            KeyStore::from_url(parsed, refresh, min_refresh)
                .map(|store| Some(Arc::new(store)))
                .map_err(|error| invalid("AUTHZ_JWKS_URL", error.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use crate::config::Config;

    fn error_of(pairs: &[(&str, &str)]) -> String {
        let mut vars: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        vars.insert("DATABASE_URL".into(), "postgres://x@127.0.0.1/db".into());
        Config::from_vars(&vars).unwrap_err().to_string()
    }

    const ED25519: &str = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;

    #[test]
    fn jwks_errors_name_the_variable() {
        assert_eq!(
            error_of(&[("AUTHZ_JWKS", "{}")]),
            "invalid AUTHZ_JWKS: expected a JWKS document: a JSON object with a \"keys\" array"
        );
        assert_eq!(
            error_of(&[
                ("AUTHZ_JWKS", ED25519),
                ("AUTHZ_JWKS_URL", "https://idp.test/jwks")
            ]),
            "invalid AUTHZ_JWKS: set AUTHZ_JWKS or AUTHZ_JWKS_URL, not both"
        );
        assert_eq!(
            error_of(&[("AUTHZ_JWKS_URL", "http://idp.test/jwks")]),
            "invalid AUTHZ_JWKS_URL: expected an https URL (http only to a loopback address)"
        );
        assert_eq!(
            error_of(&[("AUTHZ_JWKS_URL", "idp")]),
            "invalid AUTHZ_JWKS_URL: not a URL: \"idp\""
        );
        assert_eq!(
            error_of(&[("AUTHZ_JWKS_REFRESH_SECONDS", "0")]),
            "invalid AUTHZ_JWKS_REFRESH_SECONDS: expected a positive number"
        );
    }

    #[test]
    fn a_jwks_document_is_parsed_at_start() {
        let mut vars = HashMap::new();
        vars.insert(
            "DATABASE_URL".to_owned(),
            "postgres://x@127.0.0.1/db".to_owned(),
        );
        vars.insert("AUTHZ_JWKS".to_owned(), ED25519.to_owned());
        let config = Config::from_vars(&vars).expect("config");
        let store = config.jwks.expect("a key store");
        assert_eq!(store.current().keys().len(), 1);
    }
}
