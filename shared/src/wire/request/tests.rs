//! The request parsers' tables: every source of the principal, the query, the batch body and
//! the fast path against the precise one.

use alloc::vec;

use super::*;

const GENERATION: &str = "d0000000-0000-4000-8000-000000000001";
const USER: &str = "a0000000-0000-4000-8000-000000000001";
const OTHER: &str = "a0000000-0000-4000-8000-000000000002";

fn user(text: &str) -> UserId {
    UserId::parse(text, "sub").unwrap()
}

fn edge() -> PrincipalSource {
    PrincipalSource::Fixed(Principal::User(user(USER)))
}

/// `query` → `Ok(min_revision)` or `Err((code, field))`.
fn check(query: &str, expected: Result<Option<u64>, (&str, &str)>) {
    let got = parse_query(Some(query), Principal::Anonymous);
    match (got, expected) {
        (Ok(check), Ok(min_revision)) => assert_eq!(check.min_revision, min_revision, "{query}"),
        (Err(error), Err((code, field))) => {
            assert_eq!(
                (error.code, error.field.as_deref()),
                (code, Some(field)),
                "{query}"
            );
            assert_eq!(error.status(), 400);
        }
        (got, expected) => panic!("{query}: got {got:?}, expected {expected:?}"),
    }
}

#[test]
fn query_table() {
    let ok = format!("resource_type=generation&resource_id={GENERATION}&operation=read");
    check(&ok, Ok(None));
    check(&format!("{ok}&min_revision=42"), Ok(Some(42)));
    for bad in ["-1", "%2B1", ""] {
        check(
            &format!("{ok}&min_revision={bad}"),
            Err(("invalid_request", "min_revision")),
        );
    }
    check(
        &format!("{ok}&user_id={USER}"),
        Err(("invalid_request", "user_id")),
    );
    check(
        &format!("{ok}&operation=read"),
        Err(("invalid_request", "operation")),
    );
    check(
        &format!("resource_id={GENERATION}&operation=read"),
        Err(("invalid_request", "resource_type")),
    );
    check(
        "resource_type=generation&operation=read",
        Err(("invalid_request", "resource_id")),
    );
    check(
        &format!("resource_type=file&resource_id={GENERATION}&operation=read"),
        Err(("invalid_resource_type", "resource_type")),
    );
    check(
        "resource_type=project&resource_id=00000000-0000-0000-0000-000000000000&operation=read",
        Err(("invalid_uuid", "resource_id")),
    );
    check(
        &format!("resource_type=team&resource_id={GENERATION}&operation=READ"),
        Err(("invalid_operation", "operation")),
    );
}

#[test]
fn messages_quote_the_input_shortened() {
    let error = parse_query(
        Some("resource_type=generation&resource_id=nope&operation=read"),
        Principal::Anonymous,
    )
    .unwrap_err();
    assert!(error.message.contains("\"nope\""), "{}", error.message);
    let long = "x".repeat(500);
    for error in [
        parse_query(Some(&format!("{long}=1")), Principal::Anonymous).unwrap_err(),
        parse_single(
            format!(r#"{{"{long}":1}}"#).as_bytes(),
            PrincipalSource::Named,
        )
        .unwrap_err(),
        parse_single(
            format!(r#"{{"resource_type":["{long}"],"resource_id":"x","operation":"read"}}"#)
                .as_bytes(),
            PrincipalSource::Named,
        )
        .unwrap_err(),
        parse_single(
            format!(r#"{{"resource_type":"team","resource_id":"{long}","operation":"read"}}"#)
                .as_bytes(),
            PrincipalSource::Named,
        )
        .unwrap_err(),
    ] {
        assert!(error.message.len() < 200, "{}", error.message);
        assert!(error.message.contains("..."), "{}", error.message);
    }
}

#[test]
fn batch_table() {
    let good = format!(
        r#"{{"checks":[{{"resource_type":"generation","resource_id":"{GENERATION}","operation":"read"}},{{"resource_type":"team","resource_id":"{GENERATION}","operation":"admin","min_revision":7}}]}}"#
    );
    let checks = parse_batch(good.as_bytes(), edge()).unwrap();
    assert_eq!(checks.len(), 2);
    assert_eq!(checks[0].question.principal, Principal::User(user(USER)));
    assert_eq!(checks[1].min_revision, Some(7));

    let error = |body: &str| parse_batch(body.as_bytes(), edge()).unwrap_err();
    let field = |body: &str| {
        let error = error(body);
        (error.code, error.field)
    };
    assert_eq!(field("[]"), ("invalid_request", None));
    assert_eq!(field("{"), ("invalid_request", None));
    assert_eq!(field("{}"), ("invalid_request", Some("checks".to_owned())));
    let named = format!(
        r#"{{"checks":[{{"user_id":"{USER}","resource_type":"team","resource_id":"{GENERATION}","operation":"read"}}]}}"#
    );
    assert_eq!(
        field(&named),
        ("invalid_request", Some("checks[0].user_id".to_owned()))
    );
    assert!(error(&named).message.contains("bearer token"));
    assert_eq!(
        field(r#"{"checks":[{"resource_type":"team","resource_id":"x","operation":"read"}]}"#),
        ("invalid_uuid", Some("checks[0].resource_id".to_owned()))
    );
    assert_eq!(
        field(&format!(
            r#"{{"checks":[{{"resource_type":"team","resource_id":"{GENERATION}","operation":"read","min_revision":-3}}]}}"#
        )),
        ("invalid_request", Some("checks[0].min_revision".to_owned()))
    );
    assert_eq!(
        field(r#"{"checks":[1]}"#),
        ("invalid_request", Some("checks[0]".to_owned()))
    );
    let one =
        format!(r#"{{"resource_type":"team","resource_id":"{GENERATION}","operation":"read"}}"#);
    let many = format!(
        r#"{{"checks":[{}]}}"#,
        vec![one; MAX_BATCH_CHECKS + 1].join(",")
    );
    assert_eq!(error(&many).status(), 413);
    let huge = format!(r#"{{"checks":[],"pad":"{}"}}"#, "x".repeat(MAX_BODY_BYTES));
    assert_eq!(error(&huge), WireError::body_too_large());
    // A service may name the principal in a batch.
    let checks = parse_batch(named.as_bytes(), PrincipalSource::Named).unwrap();
    assert_eq!(checks[0].question.principal, Principal::User(user(USER)));
}

fn single(user_id: Option<&str>) -> String {
    let user_id = user_id.map_or("null".to_owned(), |id| format!("\"{id}\""));
    format!(
        r#"{{"user_id":{user_id},"resource_type":"generation","resource_id":"{GENERATION}","operation":"read"}}"#
    )
}

#[test]
fn the_source_decides_the_principal() {
    let principal = |body: &str, source| {
        parse_single(body.as_bytes(), source).map(|check| check.question.principal)
    };
    let me = user(USER);
    // A service names it, or asks as anonymous.
    assert_eq!(
        principal(&single(Some(USER)), PrincipalSource::Named),
        Ok(Principal::User(me))
    );
    assert_eq!(
        principal(&single(None), PrincipalSource::Named),
        Ok(Principal::Anonymous)
    );
    // An end user is it, may repeat it, may not name another.
    let subject = PrincipalSource::Subject(me);
    assert_eq!(principal(&single(None), subject), Ok(Principal::User(me)));
    assert_eq!(
        principal(&single(Some(USER)), subject),
        Ok(Principal::User(me))
    );
    let refused = principal(&single(Some(OTHER)), subject).unwrap_err();
    assert_eq!((refused.code, refused.status()), ("forbidden", 403));
    // The edge's checks have no user_id at all.
    assert_eq!(
        principal(&single(Some(USER)), edge())
            .unwrap_err()
            .field
            .as_deref(),
        Some("user_id")
    );
    let without = format!(
        r#"{{"resource_type":"generation","resource_id":"{GENERATION}","operation":"read"}}"#
    );
    assert_eq!(principal(&without, edge()), Ok(Principal::User(me)));
}

#[test]
fn fields_are_judged_in_order() {
    let field = |body: &str| parse_single(body.as_bytes(), PrincipalSource::Named).unwrap_err();
    let error = field(r#"{"user_id":"bad","resource_type":"file"}"#);
    assert_eq!(
        (error.code, error.field.as_deref()),
        ("invalid_uuid", Some("user_id"))
    );
    let error = field(r#"{"user_id":7}"#);
    assert_eq!(
        (error.code, error.field.as_deref()),
        ("invalid_uuid", Some("user_id"))
    );
    let error = field(r#"{"resource_id":"x"}"#);
    assert_eq!(error.field.as_deref(), Some("resource_type"));
    let error = field(r#"{"resource_type":"file","resource_id":1,"operation":"read"}"#);
    assert_eq!(error.field.as_deref(), Some("resource_id"));
    let error = field(r#"{"min_revison":1}"#);
    assert_eq!(error.field.as_deref(), Some("min_revison"));
    assert_eq!(field("").field, None);
    assert_eq!(field("[]").field, None);
}

#[test]
fn the_fast_path_agrees_with_the_precise_path() {
    let bodies = [
        single(Some(USER)),
        single(None),
        format!(
            r#"{{"resource_type":"team","resource_id":"{GENERATION}","operation":"admin","min_revision":3}}"#
        ),
        // An escaped string: only the precise path reads it.
        format!(
            r#"{{"resource_type":"gener\u0061tion","resource_id":"{GENERATION}","operation":"read"}}"#
        ),
    ];
    for body in bodies {
        for source in [
            PrincipalSource::Named,
            PrincipalSource::Subject(user(USER)),
            edge(),
        ] {
            let precise = parse_check_object(&json_object(body.as_bytes()).unwrap(), "", source);
            assert_eq!(parse_single(body.as_bytes(), source), precise, "{body}");
        }
    }
}

/// Issue 15: JSON Schema's `integer` (the OpenAPI document's `min_revision`) counts `7.0` and
/// `7e2` as integers, so the body parsers take them; a fraction, a negative number and
/// anything past `u64::MAX` are still a 400.
#[test]
fn min_revision_is_any_integral_json_number() {
    let single = |revision: &str| {
        let body = format!(
            r#"{{"resource_type":"team","resource_id":"{GENERATION}","operation":"read","min_revision":{revision}}}"#
        );
        parse_single(body.as_bytes(), PrincipalSource::Named)
            .map(|check| check.min_revision)
            .map_err(|error| (error.code, error.field))
    };
    let batch = |revision: &str| {
        let body = format!(
            r#"{{"checks":[{{"resource_type":"team","resource_id":"{GENERATION}","operation":"read","min_revision":{revision}}}]}}"#
        );
        parse_batch(body.as_bytes(), edge())
            .map(|checks| checks[0].min_revision)
            .map_err(|error| error.code)
    };
    for (text, expected) in [
        ("7", 7),
        ("7.0", 7),
        ("7e2", 700),
        ("7.5e1", 75),
        ("0.0", 0),
        ("-0.0", 0),
        ("45148884079488.0", 45_148_884_079_488),
        ("18446744073709551615", u64::MAX),
        ("9007199254740992.0", 9_007_199_254_740_992),
    ] {
        assert_eq!(single(text), Ok(Some(expected)), "{text}");
        assert_eq!(batch(text), Ok(Some(expected)), "{text}");
    }
    for text in [
        "7.5",
        "-1",
        "-1.0",
        "1e-3",
        "18446744073709551616",
        "1.8446744073709552e19",
        "1e300",
        "\"7\"",
        "true",
    ] {
        assert_eq!(
            single(text),
            Err(("invalid_request", Some("min_revision".to_owned()))),
            "{text}"
        );
        assert_eq!(batch(text), Err("invalid_request"), "{text}");
    }
}
