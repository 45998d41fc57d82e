//! SVG charts of load reports (plotters): the latency distribution of one or more runs, one
//! run's throughput and hit rate over time, and latency against dataset size over several
//! runs (`authz-bench chart`).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use plotters::prelude::*;

use crate::report::Report;

fn failed<E: std::fmt::Display>(error: E) -> anyhow::Error {
    anyhow::anyhow!("drawing: {error}")
}

const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(23, 190, 207),
];

fn name(report: &Report) -> String {
    if report.label.is_empty() {
        format!("{} {}", report.target, report.mode)
    } else {
        report.label.clone()
    }
}

/// Latency against percentile (x in "nines": 1 = p90, 2 = p99, 3 = p99.9), log-scale
/// latency, one line per report.
pub fn latency(reports: &[&Report], path: &Path) -> anyhow::Result<()> {
    let top = reports
        .iter()
        .flat_map(|report| report.summary.spectrum.iter().map(|(_, ms)| *ms))
        .fold(0.01f64, f64::max);
    let bottom = reports
        .iter()
        .flat_map(|report| report.summary.spectrum.iter().map(|(_, ms)| *ms))
        .fold(top, f64::min)
        .max(0.001);
    let root = SVGBackend::new(path, (800, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(failed)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("Latency distribution", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..5f64, (bottom / 1.5..top * 1.5).log_scale())
        .map_err(failed)?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (ms)")
        .x_label_formatter(&|nines| match (*nines * 10.0).round() as i64 {
            0 => "p0".to_owned(),
            10 => "p90".to_owned(),
            20 => "p99".to_owned(),
            30 => "p99.9".to_owned(),
            40 => "p99.99".to_owned(),
            50 => "p99.999".to_owned(),
            _ => String::new(),
        })
        .draw()
        .map_err(failed)?;
    for (index, report) in reports.iter().enumerate() {
        let color = COLORS[index % COLORS.len()];
        chart
            .draw_series(LineSeries::new(
                report.summary.spectrum.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(failed)?
            .label(name(report))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color));
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(failed)?;
    root.present().map_err(failed)?;
    Ok(())
}

/// Throughput (answers a second) and cache hit rate over time.
pub fn timeline(report: &Report, path: &Path) -> anyhow::Result<()> {
    let timeline = &report.summary.timeline;
    let seconds = timeline.len().max(2) as f64;
    let peak = timeline
        .iter()
        .map(|second| second.requests as f64)
        .fold(1.0, f64::max);
    let root = SVGBackend::new(path, (800, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(failed)?;
    let (upper, lower) = root.split_vertically(280);
    let mut rate = ChartBuilder::on(&upper)
        .caption(
            format!("{}: answers per second", name(report)),
            ("sans-serif", 18),
        )
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..seconds, 0f64..peak * 1.1)
        .map_err(failed)?;
    rate.configure_mesh()
        .x_desc("seconds")
        .y_desc("req/s")
        .draw()
        .map_err(failed)?;
    rate.draw_series(LineSeries::new(
        timeline
            .iter()
            .map(|second| (second.t as f64, second.requests as f64)),
        COLORS[0].stroke_width(2),
    ))
    .map_err(failed)?
    .label("answers")
    .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], COLORS[0]));
    rate.draw_series(LineSeries::new(
        timeline
            .iter()
            .map(|second| (second.t as f64, second.errors as f64)),
        COLORS[1].stroke_width(2),
    ))
    .map_err(failed)?
    .label("errors")
    .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], COLORS[1]));
    rate.configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(failed)?;
    let mut hits = ChartBuilder::on(&lower)
        .caption("cache hit rate (l1 + l2 + edge)", ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..seconds, 0f64..100.5f64)
        .map_err(failed)?;
    hits.configure_mesh()
        .x_desc("seconds")
        .y_desc("% of decisions")
        .draw()
        .map_err(failed)?;
    hits.draw_series(LineSeries::new(
        timeline
            .iter()
            .filter(|second| second.requests > 0)
            .map(|second| (second.t as f64, second.hit_rate * 100.0)),
        COLORS[2].stroke_width(2),
    ))
    .map_err(failed)?;
    root.present().map_err(failed)?;
    Ok(())
}

/// p50 and p99 latency, and throughput, against dataset rows (log scale), over reports that
/// carry `dataset_rows`.
pub fn sizes(reports: &[&Report], path: &Path) -> anyhow::Result<()> {
    let mut points: Vec<(f64, &Report)> = reports
        .iter()
        .filter_map(|report| report.dataset_rows.map(|rows| (rows as f64, *report)))
        .collect();
    if points.is_empty() {
        bail!("no report carries dataset_rows (run the loads with --dataset-rows)");
    }
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (low, high) = (points[0].0 / 2.0, points[points.len() - 1].0 * 2.0);
    let top = points
        .iter()
        .map(|(_, report)| report.summary.latency_ms.p99)
        .fold(0.01, f64::max);
    let peak = points
        .iter()
        .map(|(_, report)| report.summary.throughput)
        .fold(1.0, f64::max);
    let root = SVGBackend::new(path, (800, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(failed)?;
    let (upper, lower) = root.split_vertically(280);
    let mut latency = ChartBuilder::on(&upper)
        .caption("Latency against dataset size", ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .build_cartesian_2d((low..high).log_scale(), 0f64..top * 1.2)
        .map_err(failed)?;
    latency
        .configure_mesh()
        .x_desc("rows")
        .y_desc("ms")
        .draw()
        .map_err(failed)?;
    for (index, (label, pick)) in [
        (
            "p50",
            (|report: &Report| report.summary.latency_ms.p50) as fn(&Report) -> f64,
        ),
        ("p99", |report: &Report| report.summary.latency_ms.p99),
    ]
    .into_iter()
    .enumerate()
    {
        let color = COLORS[index];
        latency
            .draw_series(LineSeries::new(
                points.iter().map(|(rows, report)| (*rows, pick(report))),
                color.stroke_width(2),
            ))
            .map_err(failed)?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color));
        latency
            .draw_series(
                points
                    .iter()
                    .map(|(rows, report)| Circle::new((*rows, pick(report)), 4, color.filled())),
            )
            .map_err(failed)?;
    }
    latency
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()
        .map_err(failed)?;
    let mut throughput = ChartBuilder::on(&lower)
        .caption("Throughput against dataset size", ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .build_cartesian_2d((low..high).log_scale(), 0f64..peak * 1.2)
        .map_err(failed)?;
    throughput
        .configure_mesh()
        .x_desc("rows")
        .y_desc("req/s")
        .draw()
        .map_err(failed)?;
    throughput
        .draw_series(LineSeries::new(
            points
                .iter()
                .map(|(rows, report)| (*rows, report.summary.throughput)),
            COLORS[2].stroke_width(2),
        ))
        .map_err(failed)?;
    root.present().map_err(failed)?;
    Ok(())
}

/// Options of `authz-bench chart`.
#[derive(Debug, clap::Args)]
pub struct Options {
    /// Reports written by `authz-bench load --json`.
    #[arg(required = true)]
    reports: Vec<PathBuf>,
    /// Draw the latency distributions of all reports on one chart here.
    #[arg(long)]
    latency: Option<PathBuf>,
    /// Draw latency and throughput against dataset size here.
    #[arg(long)]
    sizes: Option<PathBuf>,
}

/// Draws the asked charts from saved reports.
pub fn run(options: &Options) -> anyhow::Result<()> {
    let reports: Vec<Report> = options
        .reports
        .iter()
        .map(|path| {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
        })
        .collect::<anyhow::Result<_>>()?;
    let borrowed: Vec<&Report> = reports.iter().collect();
    if let Some(path) = &options.latency {
        latency(&borrowed, path)?;
    }
    if let Some(path) = &options.sizes {
        sizes(&borrowed, path)?;
    }
    if options.latency.is_none() && options.sizes.is_none() {
        bail!("nothing to draw: give --latency or --sizes");
    }
    Ok(())
}
