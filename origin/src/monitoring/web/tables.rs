//! The dashboard page's tables: the open alerts, the pools and the cache tiers, as maud
//! markup (every spliced value escaped, so an alert message cannot inject HTML). It reads the
//! handles it is given and changes nothing.

use maud::{Markup, html};

use crate::monitoring::Handles;
use crate::monitoring::background::alerts::OpenAlert;
use crate::monitoring::background::pools::snapshot;

/// A ratio as a percentage, or `n/a`.
pub fn percent(value: Option<f64>) -> String {
    value.map_or_else(|| "n/a".to_owned(), |v| format!("{:.1} %", v * 100.0))
}

/// Milliseconds, or `n/a`.
pub fn millis(value: Option<f64>) -> String {
    value.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.2} ms"))
}

/// The open alerts, or a line saying there are none.
pub fn alerts_table(open: &[OpenAlert]) -> Markup {
    html! {
        @if open.is_empty() {
            p class="ok" { "No open alerts." }
        } @else {
            table {
                tr {
                    th { "level" } th { "metric" } th { "value" } th { "threshold" }
                    th { "since" } th { "seen" } th { "message" }
                }
                @for alert in open {
                    tr class=(alert.level) {
                        td { (alert.level) }
                        td { (alert.metric_name) }
                        td { (format!("{:.3}", alert.value)) }
                        td { (alert.threshold) }
                        td { (alert.started_at) }
                        td { (alert.occurrences) "×" }
                        td { (alert.message) }
                    }
                }
            }
        }
    }
}

/// The pools' and the cache tiers' current state.
pub fn pools_and_tiers(state: &Handles, l1_hit_rate: Option<f64>) -> Markup {
    html! {
        table {
            tr {
                th { "pool" } th { "in use" } th { "idle" } th { "size / max" } th { "waiters" }
                th { "avg wait" } th { "errors" }
            }
            @for pool in snapshot(state.decider.pools()) {
                tr {
                    td { (pool.name) }
                    td { (pool.in_use) }
                    td { (pool.idle) }
                    td { (pool.size) " / " (pool.max_size) }
                    td { (pool.waiters) }
                    td { (format!("{:.2}", pool.wait_ms_avg)) " ms" }
                    td { (pool.errors) }
                }
            }
        }
        table {
            tr { th { "cache tier" } th { "breaker" } th { "hit rate" } th { "errors" } }
            tr {
                td { "l1 (in process)" } td { "n/a" } td { (percent(l1_hit_rate)) } td { "0" }
            }
            @for tier in state.redis_tiers.values() {
                @let stats = tier.stats().snapshot();
                @let lookups = stats.hits + stats.misses;
                tr {
                    td { (tier.name().as_str()) " (redis)" }
                    td { (tier.breaker_state().as_str()) }
                    td { (percent((lookups > 0).then(|| stats.hits as f64 / lookups as f64))) }
                    td { (stats.errors) }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCRIPT: &str = "<script>alert(1)</script>";
    const ESCAPED: &str = "&lt;script&gt;alert(1)&lt;/script&gt;";

    #[test]
    fn alert_texts_cannot_inject_markup() {
        let alert = OpenAlert {
            id: 1,
            metric_name: SCRIPT.to_owned(),
            level: "critical".to_owned(),
            value: 0.25,
            threshold: 0.1,
            message: SCRIPT.to_owned(),
            started_at: "2024-01-01T00:00:00Z".to_owned(),
            last_seen_at: "2024-01-01T00:00:10Z".to_owned(),
            occurrences: 3,
        };
        let table = alerts_table(&[alert]).into_string();
        assert!(table.contains(&format!("<td>{ESCAPED}</td>")), "{table}");
        assert!(table.contains(r#"<tr class="critical">"#), "{table}");
        assert!(table.contains("<td>0.250</td>") && table.contains("<td>3×</td>"));
        assert!(!table.contains("<script"), "{table}");
        assert!(alerts_table(&[]).into_string().contains("No open alerts."));
    }
}
