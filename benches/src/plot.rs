//! SVG plots of the contended workloads: throughput against threads and
//! fairness against threads, one panel per permit count, one line per
//! row (`permits` drawn thick).

use crate::adapters;
use crate::report::Report;
use crate::workloads::contended::{workload_id, PERMITS, THREADS};
use plotters::prelude::*;
use std::path::{Path, PathBuf};

/// File names of the plots.
pub const THROUGHPUT: &str = "contended-throughput.svg";
/// File names of the plots.
pub const FAIRNESS: &str = "contended-fairness.svg";

const PALETTE: [RGBColor; 12] = [
    RGBColor(0xd6, 0x27, 0x28), // permits: red
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0xe3, 0x77, 0xc2),
    RGBColor(0x7f, 0x7f, 0x7f),
    RGBColor(0xbc, 0xbd, 0x22),
    RGBColor(0x17, 0xbe, 0xcf),
    RGBColor(0x39, 0x3b, 0x79),
    RGBColor(0x63, 0x79, 0x39),
];

/// Which number a plot shows.
#[derive(Clone, Copy)]
enum Metric {
    Throughput,
    Fairness,
}

/// One line: row id and `(threads, value)` points for each permit count.
type Series = (&'static str, Vec<Vec<(f64, f64)>>);

fn series(report: &Report, metric: Metric) -> Vec<Series> {
    let mut ids: Vec<&'static str> = Vec::new();
    for w in report.workloads.iter().filter(|w| w.family == "contended") {
        for r in &w.rows {
            if !ids.contains(&r.id) {
                ids.push(r.id);
            }
        }
    }
    ids.into_iter()
        .map(|id| {
            let per_permits = PERMITS
                .iter()
                .map(|&p| {
                    THREADS
                        .iter()
                        .filter_map(|&t| {
                            let w = report.workload(&workload_id(p, t))?;
                            let r = w.row(id)?;
                            let y = match metric {
                                Metric::Throughput => r.summary.median? / 1e6,
                                Metric::Fairness => r.fairness?,
                            };
                            Some((t as f64, y))
                        })
                        .collect()
                })
                .collect();
            (id, per_permits)
        })
        .collect()
}

fn draw(path: &Path, report: &Report, metric: Metric) -> Result<(), Box<dyn std::error::Error>> {
    let lines = series(report, metric);
    let root = SVGBackend::new(path, (1200, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let (title, y_desc) = match metric {
        Metric::Throughput => (
            "Contended threads: throughput (median; higher is better)",
            "M acquire→section→release / s",
        ),
        Metric::Fairness => (
            "Contended threads: fairness, slowest thread ÷ mean (1 = even)",
            "slowest thread ÷ mean",
        ),
    };
    let root = root.titled(title, ("sans-serif", 22))?;
    let (plots, legend) = root.split_horizontally(1200 - LEGEND_WIDTH);
    draw_legend(&legend, &lines)?;
    let panels = plots.split_evenly((1, PERMITS.len()));
    let ys = || {
        lines
            .iter()
            .flat_map(|(_, per)| per.iter().flatten().map(|p| p.1))
    };
    let max_y = ys().fold(0.0f64, f64::max);
    // A log axis starting a little below the smallest value.
    let min_y = ys().filter(|y| *y > 0.0).fold(f64::INFINITY, f64::min) * 0.7;
    let min_y = if min_y.is_finite() { min_y } else { 0.01 };
    for (k, panel) in panels.iter().enumerate() {
        let mut chart = ChartBuilder::on(panel);
        chart
            .caption(
                format!(
                    "{} permit{}",
                    PERMITS[k],
                    if PERMITS[k] == 1 { "" } else { "s" }
                ),
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60);
        let x_range = (1.6f64..80.0f64)
            .log_scale()
            .with_key_points(THREADS.iter().map(|&t| t as f64).collect());
        match metric {
            Metric::Throughput => {
                let y_range = (min_y..(max_y * 1.6).max(1.0)).log_scale();
                let mut c = chart.build_cartesian_2d(x_range, y_range)?;
                c.configure_mesh()
                    .x_desc("threads (2 cores)")
                    .y_desc(y_desc)
                    .x_label_formatter(&|x| format!("{x:.0}"))
                    .y_label_formatter(&|y| format!("{y}"))
                    .draw()?;
                draw_lines(&mut c, &lines, k)?;
            }
            Metric::Fairness => {
                let mut c = chart.build_cartesian_2d(x_range, -0.02f64..1.05f64)?;
                c.configure_mesh()
                    .x_desc("threads (2 cores)")
                    .y_desc(y_desc)
                    .x_label_formatter(&|x| format!("{x:.0}"))
                    .draw()?;
                draw_lines(&mut c, &lines, k)?;
            }
        }
    }
    root.present()?;
    Ok(())
}

/// Width of the legend strip on the right, px.
const LEGEND_WIDTH: u32 = 190;

fn style(i: usize, id: &str) -> ShapeStyle {
    let width = if id == adapters::OURS { 4 } else { 2 };
    PALETTE[i % PALETTE.len()].stroke_width(width)
}

fn draw_lines<'a, X, Y>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>,
    lines: &[Series],
    panel: usize,
) -> Result<(), Box<dyn std::error::Error>>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    for (i, (id, per)) in lines.iter().enumerate() {
        let points = per[panel].clone();
        chart.draw_series(LineSeries::new(points.clone(), style(i, id)))?;
        let color = PALETTE[i % PALETTE.len()];
        chart.draw_series(
            points
                .into_iter()
                .map(|p| Circle::new(p, 3, color.filled())),
        )?;
    }
    Ok(())
}

fn draw_legend(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    lines: &[Series],
) -> Result<(), Box<dyn std::error::Error>> {
    for (i, (id, _)) in lines.iter().enumerate() {
        let y = 70 + 22 * i as i32;
        area.draw(&PathElement::new(vec![(8, y), (34, y)], style(i, id)))?;
        area.draw(&Text::new(
            id.to_string(),
            (42, y - 7),
            ("sans-serif", 14).into_font(),
        ))?;
    }
    Ok(())
}

/// Writes both plots into `dir`; returns their paths.
pub fn write(dir: &Path, report: &Report) -> Result<Vec<PathBuf>, String> {
    if report.workloads.iter().all(|w| w.family != "contended") {
        return Ok(Vec::new());
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut out = Vec::new();
    for (name, metric) in [
        (THROUGHPUT, Metric::Throughput),
        (FAIRNESS, Metric::Fairness),
    ] {
        let path = dir.join(name);
        draw(&path, report, metric).map_err(|e| format!("cannot draw {}: {e}", path.display()))?;
        out.push(path);
    }
    Ok(out)
}
