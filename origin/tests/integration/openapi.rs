//! `GET /openapi.json`: the document parses, is OpenAPI 3.x, its references resolve, and it
//! describes exactly the routes the router serves.
//!
//! Every route is declared once, by a handler's `#[utoipa::path]` registered with
//! utoipa-axum's router (`routes::api`), so the served document and the router cannot differ
//! by construction; what could still go wrong is checked three ways: the live document lists
//! exactly `routes::served()`; no source routes anything with plain axum (`.route("...")`,
//! `.nest("...")`), which would bypass the document; and on a live origin every documented
//! `(method, path)` is served (neither the 404 fallback nor a 405) while every other method on
//! those paths is a 405.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

use crate::support::{self, ADMIN_TOKEN, TestDb, TestOrigin};

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

fn routes() -> BTreeSet<(String, String)> {
    authz_origin::routes::served()
        .into_iter()
        .map(|(method, path)| (method, path.to_owned()))
        .collect()
}

fn documented(document: &Value) -> BTreeSet<(String, String)> {
    let mut found = BTreeSet::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            found.insert((method.to_uppercase(), path.clone()));
        }
    }
    found
}

/// Every `$ref` string in `value`.
fn references(value: &Value, into: &mut Vec<String>) {
    match value {
        Value::Object(object) => {
            for (key, inner) in object {
                match (key.as_str(), inner) {
                    ("$ref", Value::String(reference)) => into.push(reference.clone()),
                    _ => references(inner, into),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| references(item, into)),
        _ => {}
    }
}

/// The string literal arguments of every `.{call}(` in `source`.
fn literal_arguments(source: &str, call: &str) -> Vec<String> {
    let needle = format!(".{call}(");
    let mut found = Vec::new();
    for (at, _) in source.match_indices(&needle) {
        let rest = source[at + needle.len()..].trim_start();
        if let Some(rest) = rest.strip_prefix('"')
            && let Some(end) = rest.find('"')
        {
            found.push(rest[..end].to_owned());
        }
    }
    found
}

fn rust_sources(folder: &Path, into: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(folder).expect("read_dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_sources(&path, into);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            into.push(path);
        }
    }
}

#[tokio::test]
async fn the_document_is_openapi_3_and_lists_exactly_the_routes() {
    let db = TestDb::new().await;
    let origin = TestOrigin::start(support::origin_vars(&db, None)).await;
    let response = support::http_client()
        .get(format!("{}/openapi.json", origin.base))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().expect("ascii"),
        "application/json"
    );
    let document: Value = response.json().await.expect("the document is json");
    let version = document["openapi"].as_str().expect("openapi field");
    assert!(version.starts_with("3."), "{version}");
    assert_eq!(document["info"]["title"], "authz-origin");

    let documented = documented(&document);
    let routes = routes();
    assert_eq!(
        documented.difference(&routes).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "documented but not served"
    );
    assert_eq!(
        routes.difference(&documented).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "served but not documented"
    );
    for (method, path) in &routes {
        let operation = &document["paths"][path][method.to_lowercase()];
        assert!(
            operation["summary"].as_str().is_some_and(|s| !s.is_empty()),
            "{method} {path} has no summary"
        );
        assert!(
            operation["responses"]
                .as_object()
                .is_some_and(|r| !r.is_empty()),
            "{method} {path} has no responses"
        );
    }

    // Every reference resolves.
    let mut refs = Vec::new();
    references(&document, &mut refs);
    assert!(!refs.is_empty());
    for reference in refs {
        let name = reference
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("unexpected reference {reference}"));
        assert!(
            document["components"]["schemas"].get(name).is_some(),
            "dangling reference {reference}"
        );
    }

    // The decision and error shapes of API.md.
    let decision = &document["components"]["schemas"]["Decision"];
    for field in [
        "granted",
        "access_method",
        "effective_role",
        "reason",
        "revision",
        "valid_until",
        "ttl_ms",
        "source",
    ] {
        assert!(
            decision["properties"].get(field).is_some(),
            "Decision.{field}"
        );
    }
    let codes = &document["components"]["schemas"]["ErrorCode"]["enum"];
    for code in [
        "invalid_uuid",
        "unauthenticated",
        "rate_limited",
        "unavailable",
    ] {
        assert!(
            codes.as_array().expect("enum").contains(&Value::from(code)),
            "{code}"
        );
    }
    // Issue 15: the request bodies say what the core accepts (schemathesis checks the rest).
    let schemas = &document["components"]["schemas"];
    for name in ["AuthorizeRequest", "BatchRequest"] {
        assert_eq!(
            schemas[name]["additionalProperties"],
            Value::Bool(false),
            "{name}: the core refuses unknown fields"
        );
    }
    let question = &schemas["AuthorizeRequest"]["properties"];
    for field in ["user_id", "resource_id"] {
        assert_eq!(
            question[field]["pattern"],
            authz_origin::openapi::schemas::UUID_PATTERN,
            "{field}"
        );
    }
    assert_eq!(question["min_revision"]["maximum"], u64::MAX);
    assert_eq!(
        schemas["BatchRequest"]["properties"]["checks"]["maxItems"],
        100
    );
    for path in ["/v1/authorize", "/v1/authorize/batch"] {
        let responses = &document["paths"][path]["post"]["responses"];
        for status in ["400", "401", "403", "408", "413", "429", "503"] {
            assert!(responses.get(status).is_some(), "{path} {status}");
        }
    }
    let too_many = &document["paths"]["/v1/authorize"]["post"]["responses"]["429"];
    assert!(
        too_many["headers"].get("Retry-After").is_some(),
        "{too_many}"
    );
}

#[test]
fn no_source_routes_outside_the_document() {
    let mut files = Vec::new();
    rust_sources(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    let mut declared = 0;
    for file in &files {
        let source = std::fs::read_to_string(file).expect("source");
        declared += source.matches(".routes(routes!(").count();
        for call in ["route", "route_service", "nest", "nest_service"] {
            let plain = literal_arguments(&source, call);
            assert!(
                plain.is_empty(),
                "{}: .{call}({plain:?}) routes outside the OpenAPI router; declare the handler \
                 with #[utoipa::path] and register it with routes!",
                file.display()
            );
        }
    }
    assert!(declared >= 10, "the scan found {declared} declarations");
}

#[tokio::test]
async fn every_listed_route_is_served_and_no_other_method_is() {
    let db = TestDb::new().await;
    let origin = TestOrigin::start(support::origin_vars(&db, None)).await;
    let routes = routes();
    let paths: BTreeSet<&String> = routes.iter().map(|(_, path)| path).collect();
    for path in paths {
        for method in METHODS {
            let response = support::http_client()
                .request(
                    method.parse().expect("method"),
                    format!("{}{path}", origin.base),
                )
                .bearer_auth(ADMIN_TOKEN)
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await
                .expect("request");
            let status = response.status().as_u16();
            let body = response.text().await.unwrap_or_default();
            let fell_back = status == 404 && body.contains("\"not_found\"");
            if routes.contains(&(method.to_owned(), path.clone())) {
                assert!(
                    !fell_back && status != 405,
                    "{method} {path} is documented but not served: {status} {body}"
                );
            } else {
                assert_eq!(
                    status, 405,
                    "{method} {path} is served ({status}) but not documented"
                );
            }
        }
    }
    // An unknown path falls back to the JSON 404.
    let (status, body) = origin.get("/no/such/route", None).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "not_found");
}
