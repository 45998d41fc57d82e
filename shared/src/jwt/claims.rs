//! The claims of a token whose signature is valid: `exp` (required), `nbf`, `iat`, `aud`,
//! `iss`, the lifetime and `sub`, checked against [`JwtConfig`] at `now`.

use serde::Deserialize;
use serde_json::Value;

use super::{Claims, JwtConfig, JwtError, Present, is_json_object};
use crate::id::UserId;

/// The claims we look at. serde refuses a repeated field; unknown ones are ignored.
#[derive(Deserialize)]
struct Payload {
    #[serde(default)]
    sub: Present,
    #[serde(default)]
    exp: Present,
    #[serde(default)]
    nbf: Present,
    #[serde(default)]
    iat: Present,
    #[serde(default)]
    aud: Present,
    #[serde(default)]
    iss: Present,
}

pub(super) fn check_claims(json: &[u8], config: &JwtConfig, now: i64) -> Result<Claims, JwtError> {
    if !is_json_object(json) {
        return Err(JwtError::InvalidClaims);
    }
    let payload: Payload = serde_json::from_slice(json).map_err(|_| JwtError::InvalidClaims)?;

    let exp = numeric_date(payload.exp.0.as_ref())?.ok_or(JwtError::MissingExp)?;
    let nbf = numeric_date(payload.nbf.0.as_ref())?;
    let iat = numeric_date(payload.iat.0.as_ref())?;

    let leeway = i64::try_from(config.leeway_seconds).unwrap_or(i64::MAX);
    if now >= exp.saturating_add(leeway) {
        return Err(JwtError::Expired);
    }
    if nbf.is_some_and(|nbf| now.saturating_add(leeway) < nbf) {
        return Err(JwtError::NotYetValid);
    }
    if let Some(audience) = &config.audience
        && !audience_matches(payload.aud.0.as_ref(), audience)
    {
        return Err(JwtError::WrongAudience);
    }
    if let Some(issuer) = &config.issuer
        && !matches!(&payload.iss.0, Some(Value::String(iss)) if iss == issuer)
    {
        return Err(JwtError::WrongIssuer);
    }
    if let Some(max) = config.max_lifetime_seconds {
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        let too_long = iat
            .or(nbf)
            .is_none_or(|start| exp.saturating_sub(start) > max);
        if too_long {
            return Err(JwtError::LifetimeTooLong);
        }
    }
    let sub = match &payload.sub.0 {
        Some(Value::String(sub)) => {
            UserId::parse(sub, "sub").map_err(|_| JwtError::InvalidSubject)?
        }
        _ => return Err(JwtError::InvalidSubject),
    };
    Ok(Claims { sub, exp, nbf, iat })
}

/// A present numeric date must be a JSON integer that fits an `i64`.
fn numeric_date(value: Option<&Value>) -> Result<Option<i64>, JwtError> {
    match value {
        None => Ok(None),
        Some(Value::Number(number)) => number.as_i64().map(Some).ok_or(JwtError::InvalidClaims),
        Some(_) => Err(JwtError::InvalidClaims),
    }
}

fn audience_matches(aud: Option<&Value>, audience: &str) -> bool {
    match aud {
        Some(Value::String(aud)) => aud == audience,
        Some(Value::Array(auds)) => auds
            .iter()
            .any(|aud| matches!(aud, Value::String(aud) if aud == audience)),
        _ => false,
    }
}
