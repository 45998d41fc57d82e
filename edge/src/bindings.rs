//! The worker's bindings: their names, as declared in `wrangler.toml`, and reading them from
//! the `Env` once per request.
//!
//! Every binding name the worker uses is a constant here and nowhere else; a unit test parses
//! `../wrangler.toml` and checks that each one is declared there (KV namespaces and vars as
//! tables, secrets in the `secrets.required` list, which wrangler 4.86 reads for type generation
//! and local-dev warnings), and that no secret is also a var: Cloudflare refuses a secret whose
//! name a var already uses, and a deployment whose var names an existing secret (error 10053,
//! "binding name already in use"), so a name is one or the other per environment.
//! This module must not hold any rule: it only hands values to the handlers.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use authz_core::jwt::{JwtConfig, JwtKey, KeySet};
use worker::{Env, KvStore};

use crate::error::EdgeError;

/// KV namespace holding cache entries (`authz_core::cache` format) under `CacheKey`s.
pub const AUTHZ_CACHE: &str = "AUTHZ_CACHE";
/// Var: the origin's base URL, e.g. `https://authz-origin.example.com` (no trailing slash needed).
pub const ORIGIN_URL: &str = "ORIGIN_URL";
/// Var (optional): how many decisions each isolate keeps in memory in front of KV; `0` turns
/// the in-memory tier off. Default [`DEFAULT_MEMORY_CACHE_ENTRIES`].
pub const AUTHZ_EDGE_MEMORY_CACHE_ENTRIES: &str = "AUTHZ_EDGE_MEMORY_CACHE_ENTRIES";
/// Secret: the origin's `AUTHZ_SERVICE_TOKEN`, sent as the bearer token on origin calls.
pub const AUTHZ_SERVICE_TOKEN: &str = "AUTHZ_SERVICE_TOKEN";
/// Secret: the HS256 secret of end-user JWTs (the origin's `AUTHZ_JWT_SECRET`).
pub const AUTHZ_JWT_SECRET: &str = "AUTHZ_JWT_SECRET";

/// Secret (or var): the identity provider's JWKS document, whose keys verify RS256, ES256 and
/// EdDSA end-user tokens. Declared as a secret; a deployment may make it a var instead (the
/// worker reads either as a string), never both. Blank or unset: no key set.
pub const AUTHZ_JWKS: &str = "AUTHZ_JWKS";

/// Rate limiter (optional): every request, per token `sub` (`edge/src/limits.rs`).
pub const AUTHZ_USER_RATE_LIMIT: &str = "AUTHZ_USER_RATE_LIMIT";
/// Rate limiter (optional): every request, per client address (`CF-Connecting-IP`).
pub const AUTHZ_IP_RATE_LIMIT: &str = "AUTHZ_IP_RATE_LIMIT";
/// Rate limiter (optional, tighter): requests that reach the origin, per token `sub`.
pub const AUTHZ_USER_MISS_RATE_LIMIT: &str = "AUTHZ_USER_MISS_RATE_LIMIT";
/// Rate limiter (optional, tighter): requests that reach the origin, per client address.
pub const AUTHZ_IP_MISS_RATE_LIMIT: &str = "AUTHZ_IP_MISS_RATE_LIMIT";
/// The rate limiter bindings.
pub const RATE_LIMITERS: [&str; 4] = [
    AUTHZ_USER_RATE_LIMIT,
    AUTHZ_IP_RATE_LIMIT,
    AUTHZ_USER_MISS_RATE_LIMIT,
    AUTHZ_IP_MISS_RATE_LIMIT,
];
/// The period of every rate limiter, in seconds, and so a refused request's `Retry-After`: the
/// binding cannot tell its period to the worker, so a unit test checks that `wrangler.toml`
/// declares each limiter with this one (Cloudflare allows 10 or 60).
pub const RATE_LIMIT_PERIOD_SECONDS: u64 = 10;

/// The KV namespace bindings.
pub const KV_NAMESPACES: [&str; 1] = [AUTHZ_CACHE];
/// The plain-text vars.
pub const VARS: [&str; 6] = [
    ORIGIN_URL,
    AUTHZ_EDGE_MEMORY_CACHE_ENTRIES,
    JwtConfig::VARIABLES[0],
    JwtConfig::VARIABLES[1],
    JwtConfig::VARIABLES[2],
    JwtConfig::VARIABLES[3],
];
/// The secrets (set with `wrangler secret put NAME`).
pub const SECRETS: [&str; 3] = [AUTHZ_SERVICE_TOKEN, AUTHZ_JWT_SECRET, AUTHZ_JWKS];

/// Default of [`AUTHZ_EDGE_MEMORY_CACHE_ENTRIES`].
pub const DEFAULT_MEMORY_CACHE_ENTRIES: usize = 4096;

/// The JWT key, or `None` when no secret is bound (every token is then refused, anonymous
/// requests still work).
pub fn jwt_key(env: &Env) -> Option<JwtKey> {
    let secret = env.secret(AUTHZ_JWT_SECRET).ok()?.to_string();
    JwtKey::new(secret.as_bytes())
}

/// The identity provider's key set, or `None` when [`AUTHZ_JWKS`] is unset or blank; parsed once
/// per isolate (`keys::key_set`). A document the core refuses is 503 (logged, naming the
/// binding). A secret and a var are both strings to the runtime, so one read serves either.
pub fn jwt_key_set(env: &Env) -> Result<Option<Rc<KeySet>>, EdgeError> {
    let document = env.var(AUTHZ_JWKS).ok().map(|value| value.to_string());
    crate::keys::key_set(document.as_deref().filter(|text| !text.trim().is_empty()))
}

/// The end-user JWT policy (audience, issuer, leeway, maximum lifetime) from the origin's
/// variables (`JwtConfig::VARIABLES`), parsed by the core as the origin parses them, so the edge
/// refuses exactly the tokens the origin refuses. A bad value is refused (503, logged).
pub fn jwt_config(env: &Env) -> Result<JwtConfig, EdgeError> {
    let values: Vec<(&str, String)> = JwtConfig::VARIABLES
        .iter()
        .filter_map(|name| env.var(name).ok().map(|value| (*name, value.to_string())))
        .collect();
    JwtConfig::from_vars(|name| {
        values
            .iter()
            .find(|(variable, _)| *variable == name)
            .map(|(_, value)| value.as_str())
    })
    .map_err(|(variable, _)| {
        EdgeError::Misconfigured(if variable == "AUTHZ_JWT_LEEWAY_SECONDS" {
            "AUTHZ_JWT_LEEWAY_SECONDS must be a whole number of seconds"
        } else {
            "AUTHZ_JWT_MAX_LIFETIME_SECONDS must be a positive whole number of seconds"
        })
    })
}

/// What the token check needs from the bindings: the policy, the HS256 key, the key set.
#[derive(Debug)]
pub struct TokenPolicy {
    /// `jwt_config`.
    pub config: JwtConfig,
    /// `jwt_key`.
    pub secret: Option<JwtKey>,
    /// `jwt_key_set`.
    pub set: Option<Rc<KeySet>>,
}

thread_local! {
    /// [`token_policy`], once read: an isolate's bindings do not change during its life (a new
    /// secret or var is a new version, served by new isolates).
    static TOKEN_POLICY: RefCell<Option<Rc<TokenPolicy>>> = const { RefCell::new(None) };
    /// [`memory_cache_entries`], once read.
    static MEMORY_CACHE_ENTRIES: Cell<Option<usize>> = const { Cell::new(None) };
}

/// The token policy, read from the bindings on the isolate's first request and kept: six
/// binding reads (each a crossing into JavaScript and a copy) and the key's preparation per
/// request otherwise. A misconfiguration is not kept: it is refused (503) on every request.
pub fn token_policy(env: &Env) -> Result<Rc<TokenPolicy>, EdgeError> {
    if let Some(policy) = TOKEN_POLICY.with(|kept| kept.borrow().clone()) {
        return Ok(policy);
    }
    let policy = Rc::new(TokenPolicy {
        config: jwt_config(env)?,
        set: jwt_key_set(env)?,
        secret: jwt_key(env),
    });
    TOKEN_POLICY.with(|kept| *kept.borrow_mut() = Some(Rc::clone(&policy)));
    Ok(policy)
}

/// The KV namespace.
pub fn cache(env: &Env) -> Result<KvStore, EdgeError> {
    env.kv(AUTHZ_CACHE)
        .map_err(|_| EdgeError::Misconfigured("the AUTHZ_CACHE kv binding is missing"))
}

/// How to reach the origin.
#[derive(Debug, Clone)]
pub struct OriginConfig {
    /// Base URL without a trailing slash.
    pub base_url: String,
    /// Bearer token of trusted callers.
    pub service_token: String,
}

/// The origin's URL and service token.
pub fn origin(env: &Env) -> Result<OriginConfig, EdgeError> {
    let base_url = env
        .var(ORIGIN_URL)
        .map_err(|_| EdgeError::Misconfigured("the ORIGIN_URL var is missing"))?
        .to_string();
    let service_token = env
        .secret(AUTHZ_SERVICE_TOKEN)
        .map_err(|_| EdgeError::Misconfigured("the AUTHZ_SERVICE_TOKEN secret is missing"))?
        .to_string();
    Ok(OriginConfig {
        base_url: base_url.trim_end_matches('/').to_owned(),
        service_token,
    })
}

/// The in-memory tier's capacity (`0` = off). A value that is not a whole number is refused
/// (503, logged), as the origin refuses a bad variable, rather than silently replaced.
pub fn memory_cache_entries(env: &Env) -> Result<usize, EdgeError> {
    if let Some(entries) = MEMORY_CACHE_ENTRIES.with(Cell::get) {
        return Ok(entries);
    }
    let value = env
        .var(AUTHZ_EDGE_MEMORY_CACHE_ENTRIES)
        .ok()
        .map(|value| value.to_string());
    let entries = parse_memory_cache_entries(value.as_deref()).map_err(EdgeError::Misconfigured)?;
    MEMORY_CACHE_ENTRIES.with(|kept| kept.set(Some(entries)));
    Ok(entries)
}

/// [`memory_cache_entries`] of the var's text: unset or blank is the default.
fn parse_memory_cache_entries(value: Option<&str>) -> Result<usize, &'static str> {
    match value.map(str::trim).filter(|text| !text.is_empty()) {
        None => Ok(DEFAULT_MEMORY_CACHE_ENTRIES),
        Some(text) => text
            .parse()
            .map_err(|_| "AUTHZ_EDGE_MEMORY_CACHE_ENTRIES must be a whole number of entries"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_memory_capacity_is_refused() {
        assert_eq!(
            parse_memory_cache_entries(None),
            Ok(DEFAULT_MEMORY_CACHE_ENTRIES)
        );
        assert_eq!(
            parse_memory_cache_entries(Some(" ")),
            Ok(DEFAULT_MEMORY_CACHE_ENTRIES)
        );
        assert_eq!(parse_memory_cache_entries(Some("0")), Ok(0));
        assert_eq!(parse_memory_cache_entries(Some(" 200 ")), Ok(200));
        for bad in ["lots", "-1", "1e3", "4096 entries"] {
            assert!(parse_memory_cache_entries(Some(bad)).is_err(), "{bad}");
        }
    }

    fn wrangler() -> toml::Table {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../wrangler.toml");
        let text = std::fs::read_to_string(path).expect("read ../wrangler.toml");
        text.parse().expect("wrangler.toml is valid toml")
    }

    /// The binding names of one environment table (the top level or an `[env.NAME]` table).
    fn declared(table: &toml::Table) -> (Vec<String>, Vec<String>, Vec<String>) {
        let kv = table
            .get("kv_namespaces")
            .and_then(|value| value.as_array())
            .map(|namespaces| {
                namespaces
                    .iter()
                    .filter_map(|ns| ns.get("binding")?.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let vars = table
            .get("vars")
            .and_then(|value| value.as_table())
            .map(|vars| vars.keys().cloned().collect())
            .unwrap_or_default();
        let secrets = table
            .get("secrets")
            .and_then(|value| value.get("required"))
            .and_then(|value| value.as_array())
            .map(|names| {
                names
                    .iter()
                    .filter_map(|name| name.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        (kv, vars, secrets)
    }

    /// The rate limiters of one environment table: name and `simple.period`.
    fn rate_limiters(table: &toml::Table) -> Vec<(String, Option<i64>)> {
        table
            .get("ratelimits")
            .and_then(|value| value.as_array())
            .map(|limiters| {
                limiters
                    .iter()
                    .filter_map(|limiter| {
                        let name = limiter.get("name")?.as_str()?.to_owned();
                        let period = limiter
                            .get("simple")
                            .and_then(|simple| simple.get("period"))
                            .and_then(|period| period.as_integer());
                        Some((name, period))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    fn check(label: &str, table: &toml::Table) {
        let limiters = rate_limiters(table);
        for name in RATE_LIMITERS {
            let declared = limiters.iter().find(|(declared, _)| declared == name);
            assert_eq!(
                declared.map(|(_, period)| *period),
                Some(Some(i64::try_from(RATE_LIMIT_PERIOD_SECONDS).unwrap())),
                "{label}: rate limiter {name} declared with a period of {RATE_LIMIT_PERIOD_SECONDS} s"
            );
        }
        let (kv, vars, secrets) = declared(table);
        for name in KV_NAMESPACES {
            assert!(
                kv.iter().any(|n| n == name),
                "{label}: kv binding {name} not declared"
            );
        }
        for name in VARS {
            assert!(
                vars.iter().any(|n| n == name),
                "{label}: var {name} not declared"
            );
        }
        for name in SECRETS {
            assert!(
                secrets.iter().any(|n| n == name),
                "{label}: secret {name} not in secrets.required"
            );
            assert!(
                !vars.iter().any(|n| n == name),
                "{label}: secret {name} must not be a var"
            );
        }
    }

    #[test]
    fn every_binding_constant_is_declared_in_wrangler_toml() {
        let wrangler = wrangler();
        check("top level", &wrangler);
        // Bindings are not inherited by environments: each one must declare them again.
        let envs = wrangler
            .get("env")
            .and_then(|value| value.as_table())
            .expect("wrangler.toml has [env.*] tables");
        assert!(
            envs.contains_key("staging"),
            "wrangler.toml has [env.staging]"
        );
        for (name, table) in envs {
            check(&format!("env.{name}"), table.as_table().expect("env table"));
        }
    }

    #[test]
    fn the_build_points_at_the_edge_crate() {
        let wrangler = wrangler();
        assert_eq!(
            wrangler.get("main").and_then(|v| v.as_str()),
            Some("edge/build/worker/shim.mjs")
        );
        let command = wrangler
            .get("build")
            .and_then(|build| build.get("command"))
            .and_then(|command| command.as_str())
            .expect("[build] command");
        assert!(command.contains("worker-build --profile edge"), "{command}");
        assert!(command.contains("cd edge"), "{command}");
    }
}
