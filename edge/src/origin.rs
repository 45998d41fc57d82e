//! Calling the origin: `POST /v1/authorize`, `POST /v1/authorize/batch` with the service
//! token and the principal as `user_id`, and `GET /api/v1/health`, each raced against a
//! timeout (the request is aborted when the timer wins).
//!
//! Anything but a 200 with the expected JSON is an `EdgeError::Unavailable` (503): the edge
//! never guesses a decision. This module must not cache or judge entries.

use std::time::Duration;

use authz_core::wire::WireDecision;
use futures_util::future::{Either, select};
use serde::Deserialize;
use serde_json::{Value, json};
use worker::{AbortController, Delay, Fetch, Headers, Method, Request, RequestInit, Response};

use crate::bindings::OriginConfig;
use crate::error::EdgeError;
use crate::request::Check;

/// How long a decision (or a batch) may take at the origin before the edge answers 503.
pub const DECISION_TIMEOUT: Duration = Duration::from_millis(3_000);
/// How long `/health` waits for the origin's health.
pub const HEALTH_TIMEOUT: Duration = Duration::from_millis(1_000);

/// The origin's request body for `check`: the principal as `user_id` (null for anonymous).
pub fn check_body(check: &Check) -> Value {
    let question = &check.question;
    let mut body = json!({
        "user_id": question.principal.user_id().map(|user| user.to_string()),
        "resource_type": question.resource.resource_type().as_str(),
        "resource_id": question.resource.id().hyphenated().to_string(),
        "operation": question.operation.as_str(),
    });
    if let Some(min_revision) = check.min_revision {
        body["min_revision"] = json!(min_revision);
    }
    body
}

/// A decision from the origin must be at or after the revision the caller demanded.
pub fn at_revision(decision: WireDecision, check: &Check) -> Result<WireDecision, EdgeError> {
    match check.min_revision {
        Some(min) if decision.revision < min => Err(EdgeError::Unavailable(format!(
            "origin answered at revision {} below min_revision {min}",
            decision.revision
        ))),
        _ => Ok(decision),
    }
}

/// Sends `request`, aborting it after `timeout`.
async fn send(request: Request, timeout: Duration, what: &str) -> Result<Response, EdgeError> {
    let controller = AbortController::default();
    let signal = controller.signal();
    let fetch = Fetch::Request(request);
    let sending = Box::pin(fetch.send_with_signal(&signal));
    let timer = Box::pin(Delay::from(timeout));
    match select(sending, timer).await {
        Either::Left((Ok(response), _)) => Ok(response),
        Either::Left((Err(error), _)) => Err(EdgeError::Unavailable(format!("{what}: {error}"))),
        Either::Right(((), _)) => {
            controller.abort();
            Err(EdgeError::Unavailable(format!(
                "{what}: no answer within {} ms",
                timeout.as_millis()
            )))
        }
    }
}

fn post(origin: &OriginConfig, path: &str, body: &Value) -> Result<Request, EdgeError> {
    let build = || -> worker::Result<Request> {
        let headers = Headers::new();
        headers.set("authorization", &format!("Bearer {}", origin.service_token))?;
        headers.set("content-type", "application/json")?;
        let mut init = RequestInit::new();
        init.with_method(Method::Post)
            .with_headers(headers)
            .with_body(Some(body.to_string().into()));
        Request::new_with_init(&format!("{}{path}", origin.base_url), &init)
    };
    build().map_err(|error| EdgeError::Unavailable(format!("building the origin request: {error}")))
}

/// Reads a 200 JSON body, or explains why not.
async fn json_body<T: for<'de> Deserialize<'de>>(
    mut response: Response,
    what: &str,
) -> Result<T, EdgeError> {
    let status = response.status_code();
    let text = response
        .text()
        .await
        .map_err(|error| EdgeError::Unavailable(format!("{what}: reading the body: {error}")))?;
    if status != 200 {
        let shown: String = text.chars().take(200).collect();
        return Err(EdgeError::Unavailable(format!(
            "{what}: status {status}: {shown}"
        )));
    }
    serde_json::from_str(&text)
        .map_err(|error| EdgeError::Unavailable(format!("{what}: unexpected body: {error}")))
}

/// One decision from the origin.
pub async fn authorize(origin: &OriginConfig, check: &Check) -> Result<WireDecision, EdgeError> {
    const WHAT: &str = "origin /v1/authorize";
    let request = post(origin, "/v1/authorize", &check_body(check))?;
    let response = send(request, DECISION_TIMEOUT, WHAT).await?;
    let decision: WireDecision = json_body(response, WHAT).await?;
    at_revision(decision, check)
}

#[derive(Deserialize)]
struct BatchResults {
    results: Vec<WireDecision>,
}

/// Decisions for `checks`, in order, in one origin call.
pub async fn authorize_batch(
    origin: &OriginConfig,
    checks: &[Check],
) -> Result<Vec<WireDecision>, EdgeError> {
    const WHAT: &str = "origin /v1/authorize/batch";
    let body = json!({ "checks": checks.iter().map(check_body).collect::<Vec<_>>() });
    let request = post(origin, "/v1/authorize/batch", &body)?;
    let response = send(request, DECISION_TIMEOUT, WHAT).await?;
    let BatchResults { results } = json_body(response, WHAT).await?;
    if results.len() != checks.len() {
        return Err(EdgeError::Unavailable(format!(
            "{WHAT}: {} results for {} checks",
            results.len(),
            checks.len()
        )));
    }
    results
        .into_iter()
        .zip(checks)
        .map(|(decision, check)| at_revision(decision, check))
        .collect()
}

/// What `/health` reports about the origin.
#[derive(Debug, Clone, PartialEq)]
pub struct OriginHealth {
    /// Whether it answered its health endpoint with JSON in time.
    pub reachable: bool,
    /// Its own `status` (`ok`, `degraded`, `down`), when it answered.
    pub status: Option<String>,
    /// The HTTP status it answered with.
    pub http_status: Option<u16>,
    /// Why it is not reachable.
    pub error: Option<String>,
}

/// Probes `GET /api/v1/health`.
pub async fn health(origin: &OriginConfig) -> OriginHealth {
    const WHAT: &str = "origin /api/v1/health";
    let unreachable = |error: String| OriginHealth {
        reachable: false,
        status: None,
        http_status: None,
        error: Some(error),
    };
    let request = match Request::new(&format!("{}/api/v1/health", origin.base_url), Method::Get) {
        Ok(request) => request,
        Err(error) => return unreachable(format!("{WHAT}: {error}")),
    };
    let mut response = match send(request, HEALTH_TIMEOUT, WHAT).await {
        Ok(response) => response,
        Err(EdgeError::Unavailable(error)) => return unreachable(error),
        Err(other) => return unreachable(format!("{other:?}")),
    };
    let http_status = response.status_code();
    match response.json::<Value>().await {
        Ok(body) => OriginHealth {
            reachable: true,
            status: body
                .get("status")
                .and_then(Value::as_str)
                .map(str::to_owned),
            http_status: Some(http_status),
            error: None,
        },
        Err(error) => OriginHealth {
            http_status: Some(http_status),
            ..unreachable(format!("{WHAT}: unexpected body: {error}"))
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use authz_core::{Operation, Principal, Question, Resource, UserId};

    #[test]
    fn origin_bodies_name_the_principal() {
        let user = UserId::parse("A0000000-0000-4000-8000-000000000001", "sub").unwrap();
        let resource = Resource::parse("project", "c0000000-0000-4000-8000-00000000000A").unwrap();
        let check = |principal, min_revision| Check {
            question: Question {
                principal,
                resource,
                operation: Operation::Share,
            },
            min_revision,
        };
        assert_eq!(
            check_body(&check(Principal::User(user), Some(9))),
            json!({
                "user_id": "a0000000-0000-4000-8000-000000000001",
                "resource_type": "project",
                "resource_id": "c0000000-0000-4000-8000-00000000000a",
                "operation": "share",
                "min_revision": 9,
            })
        );
        assert_eq!(
            check_body(&check(Principal::Anonymous, None))["user_id"],
            Value::Null
        );
        assert!(
            check_body(&check(Principal::Anonymous, None))
                .get("min_revision")
                .is_none()
        );
    }
}
