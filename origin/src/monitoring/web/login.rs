//! The dashboard page's login routes: the form, a one-time link's redemption, the token check
//! that starts a session, the link itself and the logout. The session cookie is `session`'s;
//! the forms are drawn by `page`.

use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{RawQuery, State};
use axum::http::header::{CACHE_CONTROL, LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::auth::authorize_admin;
use crate::error::AppError;
use crate::monitoring::Handles;
use crate::monitoring::measure::window::unix_now;
use crate::monitoring::web::page::login_page;
use crate::monitoring::web::session::{self, LINK_LIFETIME};
use crate::openapi::schemas::{ErrorSchema, MonitoringDocument};

fn see_other(location: &'static str, cookie: Option<String>) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    response
        .headers_mut()
        .insert(LOCATION, HeaderValue::from_static(location));
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(value) = cookie.and_then(|cookie| HeaderValue::from_str(&cookie).ok()) {
        response.headers_mut().insert(SET_COOKIE, value);
    }
    response
}

/// `GET /admin/login[?link=<nonce>]`: the login form, or a one-time link's redemption.
#[utoipa::path(
    get,
    path = "/admin/login",
    tag = "monitoring",
    summary = "the dashboard's login form, or a one-time login link",
    description = "without `link`: the HTML login form; with `?link=<nonce>` from `POST /admin/login-link`: sets the page's session cookie and redirects to `/admin/` (303), or 401 when the link is unknown, used or expired",
    params(("link" = Option<String>, Query, description = "a one-time login link's nonce, from `POST /admin/login-link`")),
    responses(
        (status = 200, description = "the login form", body = String, content_type = "text/html"),
        (status = 303, description = "signed in"),
        (status = 401, description = "an invalid link, with the login form", body = String, content_type = "text/html"),
    ),
)]
pub async fn login_form(
    State(state): State<Handles>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let link = query
        .as_deref()
        .and_then(|query| query.split('&').find_map(|pair| pair.strip_prefix("link=")));
    let Some(link) = link else {
        return login_page(StatusCode::OK, None);
    };
    match &state.config.admin_token {
        Some(admin_token) if state.monitoring.login_links().redeem(link) => {
            start_session(admin_token, &state, &headers)
        }
        _ => login_page(
            StatusCode::UNAUTHORIZED,
            Some("this login link is invalid, used or expired"),
        ),
    }
}

fn start_session(admin_token: &str, state: &Handles, headers: &HeaderMap) -> Response {
    let lifetime = state.config.monitoring.admin_session;
    let expires = unix_now() as u64 + lifetime.as_secs();
    match session::session_value(admin_token, expires) {
        Some(value) => see_other(
            "/admin/",
            Some(session::set_cookie(&value, lifetime, headers)),
        ),
        None => AppError::Forbidden("admin endpoints are disabled").into_response(),
    }
}

/// The login form's fields (others are ignored).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct LoginForm {
    /// The admin token.
    token: String,
}

/// `POST /admin/login`: checks the token (constant time) and starts a session.
#[utoipa::path(
    post,
    path = "/admin/login",
    tag = "monitoring",
    summary = "signs a browser in to the dashboard page",
    description = "form field `token` (the admin token): sets the HttpOnly, SameSite=Strict session cookie accepted by `GET /admin/` only, and redirects there (303)",
    request_body(content = LoginForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "signed in"),
        (status = 401, description = "a wrong token, with the login form", body = String, content_type = "text/html"),
        (status = 403, description = "AUTHZ_ADMIN_TOKEN is not set", body = ErrorSchema),
    ),
)]
pub async fn login(
    State(state): State<Handles>,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    let Some(admin_token) = &state.config.admin_token else {
        return AppError::Forbidden("admin endpoints are disabled: AUTHZ_ADMIN_TOKEN is not set")
            .into_response();
    };
    let valid = form.is_ok_and(|Form(form)| {
        bool::from(form.token.trim().as_bytes().ct_eq(admin_token.as_bytes()))
    });
    if valid {
        start_session(admin_token, &state, &headers)
    } else {
        login_page(StatusCode::UNAUTHORIZED, Some("invalid token"))
    }
}

/// `POST /admin/login-link` (admin bearer token): a one-time login link for a browser.
#[utoipa::path(
    post,
    path = "/admin/login-link",
    tag = "monitoring",
    summary = "a one-time login link for the dashboard page",
    description = "`{\"path\": \"/admin/login?link=<nonce>\", \"expires_in_seconds\": 60}`: for a browser that cannot send the Authorization header; valid once",
    responses(
        (status = 200, description = "the link", body = MonitoringDocument),
        (status = 401, description = "invalid bearer token", body = ErrorSchema),
        (status = 403, description = "valid credentials that are not the admin token", body = ErrorSchema),
    ),
    security(("admin_token" = [])),
)]
pub async fn login_link(
    State(state): State<Handles>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    authorize_admin(&headers, &state.config)?;
    let nonce = state.monitoring.login_links().issue();
    let mut response = axum::Json(json!({
        "path": format!("/admin/login?link={nonce}"),
        "expires_in_seconds": LINK_LIFETIME.as_secs(),
    }))
    .into_response();
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// `POST /admin/logout`: ends the browser's session.
#[utoipa::path(
    post,
    path = "/admin/logout",
    tag = "monitoring",
    summary = "signs the browser out of the dashboard page",
    responses((status = 303, description = "cookie cleared")),
)]
pub async fn logout() -> Response {
    see_other("/admin/login", Some(session::clear_cookie()))
}
