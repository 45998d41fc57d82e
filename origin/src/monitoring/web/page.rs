//! `GET /admin/`: the dashboard page, server-rendered HTML with inline SVG charts (latency
//! percentiles, throughput, hit rate per tier, pool utilisation over the last hour) and the
//! open alerts; it reloads itself every 10 s, loads nothing from anywhere (a
//! `default-src 'none'` content security policy proves it) and needs no script.
//! The HTML is written with maud's `html!`, which escapes every spliced value; only the
//! constant style sheet goes in verbatim.
//!
//! Credentials: an admin `Authorization: Bearer` header, or the session cookie of the login
//! form or of a one-time login link (see `session`). Without them: 401 (the login form for a
//! browser asking for HTML, API.md's JSON error otherwise); with another valid credential:
//! 403. Nothing about the service is shown before login.

use axum::extract::State;
use axum::http::header::{
    ACCEPT, AUTHORIZATION, CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY,
    WWW_AUTHENTICATE, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, PreEscaped, html};

use crate::auth::authorize_admin;
use crate::config::{Config, POOL_NAMES};
use crate::error::AppError;
use crate::monitoring::Handles;
use crate::monitoring::measure::tier::tier_of;
use crate::monitoring::measure::window::{RING_SECONDS, unix_now};
use crate::monitoring::web::session;
use crate::monitoring::web::svg::{Chart, Series, clock, line_chart};
use crate::monitoring::web::tables::{alerts_table, millis, percent, pools_and_tiers};
use crate::openapi::schemas::ErrorSchema;

/// How often the page reloads itself.
const REFRESH_SECONDS: u32 = 10;
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; \
                   frame-ancestors 'none'; base-uri 'none'";
const POOL_COLORS: [&str; 6] = [
    "#1c7ed6", "#7048e8", "#2b8a3e", "#e67700", "#c92a2a", "#0c8599",
];

pub(super) fn html(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    for (name, value) in [
        (CONTENT_TYPE, "text/html; charset=utf-8"),
        (CONTENT_SECURITY_POLICY, CSP),
        (CACHE_CONTROL, "no-store"),
        (REFERRER_POLICY, "no-referrer"),
        (X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (X_FRAME_OPTIONS, "DENY"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(ACCEPT)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"))
}

/// The page's credential check: a bearer header is judged as on every admin endpoint; else
/// the session cookie.
fn check(headers: &HeaderMap, config: &Config) -> Result<(), AppError> {
    if headers.contains_key(AUTHORIZATION) {
        return authorize_admin(headers, config);
    }
    let Some(admin_token) = &config.admin_token else {
        return authorize_admin(headers, config);
    };
    match session::cookie(headers) {
        Some(value)
            if session::session_valid(
                value,
                admin_token,
                unix_now() as u64,
                config.monitoring.admin_session,
            ) =>
        {
            Ok(())
        }
        Some(_) => Err(AppError::Unauthenticated("invalid or expired session")),
        None => Err(AppError::Unauthenticated("missing bearer token")),
    }
}

pub(super) fn login_page(status: StatusCode, notice: Option<&str>) -> Response {
    html(status, login_markup(notice).into_string())
}

/// The login form, with `notice` (escaped like every spliced value) above it.
fn login_markup(notice: Option<&str>) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { "authz origin: sign in" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                main class="login" {
                    h1 { "Authorization origin" }
                    @if let Some(text) = notice {
                        p class="notice" { (text) }
                    }
                    form method="post" action="/admin/login" {
                        label {
                            "Admin token "
                            input type="password" name="token" autocomplete="current-password"
                                required autofocus;
                        }
                        button type="submit" { "Sign in" }
                    }
                }
            }
        }
    }
}

fn refused(error: AppError, headers: &HeaderMap) -> Response {
    if matches!(error, AppError::Unauthenticated(_)) && wants_html(headers) {
        let mut response = login_page(StatusCode::UNAUTHORIZED, None);
        response
            .headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return response;
    }
    error.into_response()
}

/// `GET /admin/`: the dashboard page.
#[utoipa::path(
    get,
    path = "/admin/",
    tag = "monitoring",
    summary = "the dashboard web page",
    description = "the admin token in the Authorization header, or the session cookie of `POST /admin/login` or of a login link; without credentials a browser asking for HTML gets the login form (401)",
    responses(
        (status = 200, description = "an HTML page", body = String, content_type = "text/html"),
        (status = 401, description = "no valid credentials: the login form for a browser asking for HTML, API.md's JSON error otherwise",
            content((String = "text/html"), (ErrorSchema = "application/json"))),
        (status = 403, description = "valid credentials that are not the admin token", body = ErrorSchema),
    ),
    security(("admin_token" = []), ("admin_session" = [])),
)]
pub async fn page(State(state): State<Handles>, headers: HeaderMap) -> Response {
    match check(&headers, &state.config) {
        Ok(()) => html(StatusCode::OK, render(&state)),
        Err(error) => refused(error, &headers),
    }
}

/// The page's HTML.
pub fn render(state: &Handles) -> String {
    let now = unix_now();
    let window = state.monitoring.window();
    let span = state.monitoring.config().alert_window;
    let series = window.series(now);
    let summary = window.summary(span, now);
    let tier = tier_of(&summary).map_or("no data", |tier| tier.as_str());
    let first = series.first().map_or(now, |point| point.start_unix as f64);
    // From the oldest bucket (at most an hour ago, at least a minute ago) to now.
    let x_range = (first.max(now - RING_SECONDS as f64).min(now - 60.0), now);

    let with_decisions = || {
        series
            .iter()
            .filter(|point| point.summary.counts.decisions() > 0)
    };
    let line = |name: &str, color: &'static str, points: Vec<(f64, f64)>| Series {
        name: name.to_owned(),
        color,
        points,
    };
    let at = |point: &crate::monitoring::measure::window::Point| point.start_unix as f64;
    let latency = Chart {
        id: "latency",
        title: "Decision latency percentiles",
        unit: "ms",
        x_range,
        y_max: None,
        series: vec![
            line(
                "p50",
                "#2b8a3e",
                with_decisions()
                    .filter_map(|p| Some((at(p), p.summary.p50_ms?)))
                    .collect(),
            ),
            line(
                "p95",
                "#e67700",
                with_decisions()
                    .filter_map(|p| Some((at(p), p.summary.p95_ms?)))
                    .collect(),
            ),
            line(
                "p99",
                "#c92a2a",
                with_decisions()
                    .filter_map(|p| Some((at(p), p.summary.p99_ms?)))
                    .collect(),
            ),
        ],
    };
    let throughput = Chart {
        id: "throughput",
        title: "Throughput (decisions per second)",
        unit: "/s",
        x_range,
        y_max: None,
        series: vec![line(
            "decisions",
            "#1c7ed6",
            series
                .iter()
                .map(|p| (at(p), p.summary.throughput_rps))
                .collect(),
        )],
    };
    let hit_rates = Chart {
        id: "hit-rate",
        title: "Cache hit rate per tier",
        unit: "%",
        x_range,
        y_max: Some(100.0),
        series: vec![
            line(
                "l1",
                "#2b8a3e",
                with_decisions()
                    .filter_map(|p| Some((at(p), p.summary.l1_hit_rate? * 100.0)))
                    .collect(),
            ),
            line(
                "l2 (redis)",
                "#7048e8",
                with_decisions()
                    .filter_map(|p| Some((at(p), p.summary.l2_hit_rate? * 100.0)))
                    .collect(),
            ),
        ],
    };
    let pools = Chart {
        id: "pools",
        title: "Pool utilisation (peak per 10 s)",
        unit: "%",
        x_range,
        y_max: Some(100.0),
        series: POOL_NAMES
            .iter()
            .zip(POOL_COLORS)
            .enumerate()
            .map(|(index, (name, color))| {
                line(
                    name,
                    color,
                    series
                        .iter()
                        .filter(|p| p.summary.counts.pool_samples > 0)
                        .map(|p| {
                            (
                                at(p),
                                p.summary
                                    .counts
                                    .pool_peak
                                    .get(index)
                                    .copied()
                                    .unwrap_or(0.0)
                                    * 100.0,
                            )
                        })
                        .collect(),
                )
            })
            .collect(),
    };

    let board = state.monitoring.alerts().view();
    let evaluated = board.evaluated_at.map_or_else(
        || "not evaluated yet".to_owned(),
        |at| format!("evaluated {} UTC", clock(at)),
    );

    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta http-equiv="refresh" content=(REFRESH_SECONDS);
                title { "authz origin: performance" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    h1 { "Authorization origin: performance" }
                    form method="post" action="/admin/logout" {
                        button type="submit" { "Sign out" }
                    }
                }
                section class="cards" {
                    div class="card" id="tier" { span { "performance tier" } b { (tier) } }
                    div class="card" {
                        span { "p50 / p95 / p99" }
                        b {
                            (millis(summary.p50_ms)) " / " (millis(summary.p95_ms)) " / "
                            (millis(summary.p99_ms))
                        }
                    }
                    div class="card" {
                        span { "throughput" }
                        b { (format!("{:.2}", summary.throughput_rps)) " /s" }
                    }
                    div class="card" {
                        span { "hit rate l1 / l2 / any" }
                        b {
                            (percent(summary.l1_hit_rate)) " / " (percent(summary.l2_hit_rate))
                            " / " (percent(summary.cache_hit_rate))
                        }
                    }
                    div class="card" {
                        span { "error rate (5xx)" }
                        b { (percent(summary.error_rate)) }
                    }
                    div class="card" {
                        span { "decisions in window" }
                        b { (summary.counts.decisions()) }
                    }
                }
                p class="meta" {
                    "Window: last " (span.as_secs()) " s · refreshes every " (REFRESH_SECONDS)
                    " s · rendered " (clock(now)) " UTC"
                }
                section class="charts" {
                    (line_chart(&latency)) (line_chart(&throughput)) (line_chart(&hit_rates))
                    (line_chart(&pools))
                }
                section {
                    h2 { "Open alerts " small { (evaluated) } }
                    (alerts_table(&board.open))
                }
                section class="tables" { (pools_and_tiers(state, summary.l1_hit_rate)) }
            }
        }
    }
    .into_string()
}

const STYLE: &str = "body{font:14px/1.4 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0 24px 24px;color:#1d2125;background:#f6f7f9}\
header{display:flex;justify-content:space-between;align-items:center}\
h1{font-size:20px}h2{font-size:16px}h2 small{font-weight:normal;color:#666}\
.cards{display:grid;grid-template-columns:repeat(6,1fr);gap:10px}\
.card{background:#fff;border:1px solid #d0d4da;border-radius:6px;padding:10px}\
.card span{display:block;color:#666;font-size:12px}.card b{font-size:16px}\
.charts{display:grid;grid-template-columns:repeat(2,1fr);gap:14px;margin-top:8px}\
figure{margin:0;background:#fff;border:1px solid #d0d4da;border-radius:6px;padding:8px}\
figcaption{font-weight:600;margin-bottom:4px}svg{width:100%;height:auto}\
.legend span{margin-right:12px;font-size:12px}.legend i{display:inline-block;width:10px;height:10px;margin-right:4px;border-radius:2px}\
table{border-collapse:collapse;background:#fff;margin:8px 16px 8px 0;display:inline-table;vertical-align:top}\
td,th{border:1px solid #d0d4da;padding:4px 8px;text-align:left;font-size:13px}\
tr.critical td{background:#ffe3e3}tr.warning td{background:#fff3bf}.ok{color:#2b8a3e}.meta{color:#666}\
.login{max-width:360px;margin:80px auto;background:#fff;border:1px solid #d0d4da;border-radius:6px;padding:24px}\
.login input{display:block;width:100%;margin:6px 0 12px;padding:6px;box-sizing:border-box}.notice{color:#c92a2a}\
button{padding:6px 14px}";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notice_cannot_inject_markup() {
        let login = login_markup(Some("<script>alert(1)</script>")).into_string();
        assert!(login.contains(r#"<p class="notice">&lt;script&gt;alert(1)&lt;/script&gt;</p>"#));
        assert!(!login.contains("<script"), "{login}");
        assert!(
            login.contains(&format!("<style>{STYLE}</style>")),
            "the style is verbatim"
        );
        assert!(login.contains(r#"action="/admin/login""#) && login.contains("required"));
    }
}
