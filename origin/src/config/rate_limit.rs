//! The rate limits' settings (`AUTHZ_RATE_LIMIT*`; the limiters are `crate::rate_limit`).

use std::num::NonZeroU32;

use super::{ConfigError, Env, invalid};

/// The rate limits of the authorize endpoints (see `crate::rate_limit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// `AUTHZ_RATE_LIMIT`: `on` (default) or `off`.
    pub enabled: bool,
    /// `AUTHZ_RATE_LIMIT_USER_PER_MINUTE`: questions per end user per minute (default 100).
    pub user_per_minute: NonZeroU32,
    /// `AUTHZ_RATE_LIMIT_IP_PER_MINUTE`: questions per end-user client IP per minute
    /// (default 500).
    pub ip_per_minute: NonZeroU32,
    /// `AUTHZ_RATE_LIMIT_SERVICE_PER_MINUTE`: questions per service-token client IP per minute;
    /// unset (the default) exempts service-token callers.
    pub service_per_minute: Option<NonZeroU32>,
}

impl RateLimitConfig {
    /// Reads the `AUTHZ_RATE_LIMIT*` variables of `env`.
    pub fn from_env(env: Env<'_>) -> Result<Self, ConfigError> {
        let per_minute = |name: &'static str| -> Result<Option<NonZeroU32>, ConfigError> {
            env.get(name)
                .map(|text| {
                    text.parse::<NonZeroU32>().map_err(|_| {
                        invalid(
                            name,
                            format!("expected a positive number per minute, got \"{text}\""),
                        )
                    })
                })
                .transpose()
        };
        let required =
            |name: &'static str| per_minute(name)?.ok_or_else(|| invalid(name, "required"));
        Ok(Self {
            enabled: env.switch("AUTHZ_RATE_LIMIT")?,
            user_per_minute: required("AUTHZ_RATE_LIMIT_USER_PER_MINUTE")?,
            ip_per_minute: required("AUTHZ_RATE_LIMIT_IP_PER_MINUTE")?,
            service_per_minute: per_minute("AUTHZ_RATE_LIMIT_SERVICE_PER_MINUTE")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn from_vars(vars: &HashMap<String, String>) -> Result<RateLimitConfig, ConfigError> {
        RateLimitConfig::from_env(Env::new(vars))
    }

    #[test]
    fn config_defaults_and_errors() {
        let config = from_vars(&vars(&[])).unwrap();
        assert_eq!(config.user_per_minute.get(), 100);
        assert_eq!(config.ip_per_minute.get(), 500);
        assert!(config.enabled && config.service_per_minute.is_none());
        let config = from_vars(&vars(&[
            ("AUTHZ_RATE_LIMIT", "off"),
            ("AUTHZ_RATE_LIMIT_SERVICE_PER_MINUTE", "100000"),
        ]))
        .unwrap();
        assert!(!config.enabled);
        assert_eq!(
            config.service_per_minute.map(NonZeroU32::get),
            Some(100_000)
        );
        let error = from_vars(&vars(&[("AUTHZ_RATE_LIMIT_USER_PER_MINUTE", "0")])).unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid AUTHZ_RATE_LIMIT_USER_PER_MINUTE: expected a positive number per minute, got \"0\""
        );
        let error = from_vars(&vars(&[("AUTHZ_RATE_LIMIT", "maybe")])).unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid AUTHZ_RATE_LIMIT: expected on or off, got \"maybe\""
        );
    }
}
