//! Server-rendered line charts as inline SVG: no script, no external asset, so the page works
//! offline and under a `default-src 'none'` content security policy. Each series is one
//! `<polyline>` (plus a dot on its last point, so a single sample still shows), and each chart
//! carries `data-points` (the samples drawn) for tests and scripts. Written with maud's `html!`, which
//! escapes every spliced value, so a series name or a caption cannot inject markup.

use maud::{Markup, html};

const WIDTH: f64 = 560.0;
const HEIGHT: f64 = 210.0;
const LEFT: f64 = 52.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 26.0;

/// One line.
#[derive(Debug, Clone)]
pub struct Series {
    /// Its legend.
    pub name: String,
    /// A CSS colour.
    pub color: &'static str,
    /// `(Unix seconds, value)`, oldest first.
    pub points: Vec<(f64, f64)>,
}

/// One chart.
#[derive(Debug, Clone)]
pub struct Chart {
    /// Its `id` (`chart-<id>`).
    pub id: &'static str,
    /// Its caption.
    pub title: &'static str,
    /// The values' unit (`ms`, `/s`, `%`).
    pub unit: &'static str,
    /// The time span drawn, in Unix seconds.
    pub x_range: (f64, f64),
    /// A fixed top of the scale (1 for ratios), else from the data.
    pub y_max: Option<f64>,
    /// Its lines.
    pub series: Vec<Series>,
}

/// `HH:MM:SS` (UTC) of a Unix time.
pub fn clock(unix: f64) -> String {
    let seconds = (unix.max(0.0) as u64) % 86_400;
    format!(
        "{:02}:{:02}:{:02}",
        seconds / 3_600,
        seconds / 60 % 60,
        seconds % 60
    )
}

/// The smallest 1, 2 or 5 × 10^k at or above `value`.
fn nice_ceiling(value: f64) -> f64 {
    if value <= 0.0 || !value.is_finite() {
        return 1.0;
    }
    let magnitude = 10_f64.powf(value.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|step| step * magnitude)
        .find(|candidate| *candidate >= value)
        .unwrap_or(10.0 * magnitude)
}

fn label(value: f64) -> String {
    if value == 0.0 {
        "0".to_owned()
    } else if value >= 100.0 {
        format!("{value:.0}")
    } else if value >= 1.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.3}")
    }
}

/// A coordinate or a scale value as drawn: one decimal.
fn at(value: f64) -> String {
    format!("{value:.1}")
}

/// The chart as a `<figure>` holding the SVG and a legend with each series' last value.
pub fn line_chart(chart: &Chart) -> Markup {
    let total: usize = chart.series.iter().map(|series| series.points.len()).sum();
    let highest = chart
        .series
        .iter()
        .flat_map(|series| series.points.iter().map(|(_, y)| *y))
        .fold(0.0, f64::max);
    let y_max = chart.y_max.unwrap_or_else(|| nice_ceiling(highest * 1.1));
    let (x_from, x_to) = chart.x_range;
    let x_span = (x_to - x_from).max(1.0);
    let plot_width = WIDTH - LEFT - RIGHT;
    let plot_height = HEIGHT - TOP - BOTTOM;
    let x = |t: f64| LEFT + ((t - x_from) / x_span).clamp(0.0, 1.0) * plot_width;
    let y = |v: f64| TOP + plot_height - (v / y_max).clamp(0.0, 1.0) * plot_height;
    let polyline = |series: &Series| -> String {
        let points: Vec<String> = series
            .points
            .iter()
            .map(|(t, v)| format!("{},{}", at(x(*t)), at(y(*v))))
            .collect();
        points.join(" ")
    };
    let axis_y = HEIGHT - 8.0;

    // SVG elements are closed explicitly (`{}`): inline SVG in HTML has no void elements.
    html! {
        figure class="chart" id={ "chart-" (chart.id) } data-points=(total) {
            figcaption { (chart.title) }
            svg viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } role="img" aria-label=(chart.title)
                xmlns="http://www.w3.org/2000/svg" {
                // Grid and axis labels: 0, half and the top of the scale; the span's ends in
                // time.
                @for fraction in [0.0, 0.5, 1.0] {
                    @let value = y_max * fraction;
                    line x1=(LEFT) x2=(WIDTH - RIGHT) y1=(at(y(value))) y2=(at(y(value)))
                        stroke="#d0d4da" stroke-width="1" {}
                    text x=(LEFT - 6.0) y=(at(y(value) + 4.0)) text-anchor="end" font-size="11"
                        fill="#555" { (label(value)) " " (chart.unit) }
                }
                text x=(LEFT) y=(axis_y) font-size="11" fill="#555" { (clock(x_from)) }
                text x=(LEFT + plot_width / 2.0) y=(axis_y) text-anchor="middle" font-size="11"
                    fill="#555" { (clock(x_from + x_span / 2.0)) }
                text x=(WIDTH - RIGHT) y=(axis_y) text-anchor="end" font-size="11" fill="#555" {
                    (clock(x_to)) " UTC"
                }
                @for series in &chart.series {
                    @if let Some((t, v)) = series.points.last() {
                        polyline class="series" data-series=(series.name) points=(polyline(series))
                            fill="none" stroke=(series.color) stroke-width="2"
                            stroke-linejoin="round" {}
                        circle cx=(at(x(*t))) cy=(at(y(*v))) r="3" fill=(series.color) {}
                    }
                }
                @if total == 0 {
                    text x=(LEFT + plot_width / 2.0) y=(TOP + plot_height / 2.0)
                        text-anchor="middle" font-size="13" fill="#888" { "no data yet" }
                }
            }
            div class="legend" {
                @for series in &chart.series {
                    span {
                        i style={ "background:" (series.color) } {}
                        (series.name) ": "
                        b {
                            @match series.points.last() {
                                Some((_, v)) => (label(*v)),
                                None => "n/a",
                            }
                        }
                        " " (chart.unit)
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_points_and_escapes() {
        let chart = Chart {
            id: "t",
            title: "a <b>",
            unit: "ms",
            x_range: (0.0, 100.0),
            y_max: None,
            series: vec![Series {
                name: "p99".to_owned(),
                color: "#000",
                points: vec![(0.0, 1.0), (50.0, 2.0), (100.0, 4.0)],
            }],
        };
        let svg = line_chart(&chart).into_string();
        assert!(svg.contains(r#"id="chart-t" data-points="3""#), "{svg}");
        assert!(svg.contains("a &lt;b&gt;"));
        assert!(svg.contains(r#"points="52.0,"#), "{svg}");
        assert!(svg.contains("p99: <b>4.0</b>"));
        let empty = line_chart(&Chart {
            series: vec![],
            ..chart
        })
        .into_string();
        assert!(empty.contains("no data yet") && empty.contains(r#"data-points="0""#));
    }

    #[test]
    fn a_series_name_cannot_inject_markup() {
        let svg = line_chart(&Chart {
            id: "t",
            title: "<script>alert(1)</script>",
            unit: "ms",
            x_range: (0.0, 100.0),
            y_max: None,
            series: vec![Series {
                name: "<script>alert(1)</script>".to_owned(),
                color: "#000",
                points: vec![(0.0, 1.0)],
            }],
        })
        .into_string();
        assert!(
            svg.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{svg}"
        );
        assert!(!svg.contains("<script"), "{svg}");
    }

    #[test]
    fn scales_and_clocks() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(3.2), 5.0);
        assert_eq!(nice_ceiling(0.012), 0.02);
        assert_eq!(nice_ceiling(100.0), 100.0);
        assert_eq!(clock(3_661.0), "01:01:01");
    }
}
