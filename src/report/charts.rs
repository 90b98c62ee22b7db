//! The report's charts, drawn with plotters as SVG (or PNG): latency CDFs per fleet and region,
//! box plots per day, p50/p90 and the success rate over time, and the simulator's hops and
//! messages. Text is set in DejaVu Sans, compiled in, so charts look the same on every machine.

use std::{path::Path, sync::Once};

use plotters::{
    coord::Shift,
    prelude::*,
    style::{register_font, FontStyle},
};

use super::data::{EffortHistogram, OperationReport, Report};
use crate::db::aggregates::{GroupStats, Grouping, ReprovideStats};

/// Size of a chart, in pixels.
const SIZE: (u32, u32) = (960, 540);

/// Size of a chart of four panels.
const PANELS_SIZE: (u32, u32) = (1200, 800);

/// A durations axis spans a log scale when its largest value is this many times its smallest.
const LOG_SCALE_SPREAD: f64 = 20.0;

const FONT: &str = "sans-serif";

/// Bars per panel of the effort chart, about.
const EFFORT_BARS: u32 = 30;

/// One chart of a report.
#[derive(Clone, Debug)]
pub struct Chart {
    /// File name without extension (`cdf-retrieval`).
    pub name: String,
    /// Caption.
    pub title: String,
    plot: Plot,
}

#[derive(Clone, Debug)]
enum Plot {
    /// Cumulative share of successful attempts against duration, a line per series.
    Cdf(Vec<Series>),
    /// Per category (a day), a box per series: 25th–75th percentile, median, whiskers at the
    /// 5th and 95th.
    Boxes {
        categories: Vec<String>,
        series: Vec<(String, Vec<Option<[f64; 5]>>)>,
    },
    /// A value per category (an hour or a day), a line per series; `dashed` series are drawn
    /// dashed.
    Timeline(Lines),
    /// Several [`Plot::Timeline`]s side by side, sharing their categories.
    Panels(Vec<Lines>),
    /// Operations per number of hops (left) and of messages (right).
    Effort(Vec<EffortHistogram>),
}

/// Lines over categories (hours, days, network sizes).
#[derive(Clone, Debug)]
struct Lines {
    /// The panel's own heading (a chart of one panel has the chart's caption).
    title: Option<String>,
    categories: Vec<String>,
    x_desc: String,
    series: Vec<TimelineSeries>,
    y_desc: String,
    scale: Scale,
}

/// How a lines plot's values read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scale {
    /// 0–100 %.
    Percent,
    /// Values of a unit, on a log axis when they spread widely.
    Of(Unit),
}

#[derive(Clone, Debug)]
struct Series {
    label: String,
    points: Vec<(f64, f64)>,
}

#[derive(Clone, Debug)]
struct TimelineSeries {
    label: String,
    color: usize,
    dashed: bool,
    values: Vec<Option<f64>>,
}

/// One panel of a [`Chart::comparison`]: its heading, what its values are, and its lines (a label
/// and a value per category).
#[derive(Clone, Debug)]
pub struct ComparisonPanel {
    /// Heading.
    pub title: String,
    /// What the values are (the y axis).
    pub y_desc: String,
    /// (label, value per category); the first line solid, the others dashed.
    pub lines: Vec<(String, Vec<f64>)>,
}

/// Why a chart could not be drawn.
#[derive(Debug, thiserror::Error)]
#[error("drawing the chart {chart} failed: {reason}")]
pub struct ChartError {
    chart: String,
    reason: String,
}

/// The charts of `report`, in reading order.
pub fn charts(report: &Report) -> Vec<Chart> {
    let mut charts = Vec::new();
    for operation in &report.operations {
        charts.extend(cdf(operation));
        charts.extend(implementation_cdf(operation));
        charts.extend(daily_boxes(operation));
        charts.extend(latency_timeline(operation));
    }
    charts.extend(success_timeline(&report.operations));
    charts.extend(reprovide(report));
    if !report.effort.is_empty() {
        charts.push(Chart {
            name: "effort".into(),
            title: "Simulated operations: hops and messages".into(),
            plot: Plot::Effort(report.effort.clone()),
        });
    }
    charts
}

/// Reprovide rounds against their CID count: CIDs per hour and lookups per CID, a line per
/// strategy (a gap where a strategy has no round without error at a count).
fn reprovide(report: &Report) -> Option<Chart> {
    if report.reprovide.is_empty() {
        return None;
    }
    let mut counts: Vec<u64> = report.reprovide.iter().map(|g| g.cids).collect();
    counts.sort_unstable();
    counts.dedup();
    let mut strategies: Vec<&str> = report.reprovide.iter().map(|g| g.strategy.as_str()).collect();
    strategies.sort_unstable();
    strategies.dedup();
    let panel = |title: &str, y_desc: &str, value: fn(&ReprovideStats) -> Option<f64>| Lines {
        title: Some(title.to_owned()),
        categories: counts.iter().map(|&n| format_count(n as f64)).collect(),
        x_desc: "CIDs reprovided".to_owned(),
        series: strategies
            .iter()
            .enumerate()
            .map(|(color, strategy)| TimelineSeries {
                label: (*strategy).to_owned(),
                color,
                dashed: false,
                values: counts
                    .iter()
                    .map(|&n| {
                        report
                            .reprovide
                            .iter()
                            .find(|g| g.strategy == *strategy && g.cids == n)
                            .and_then(value)
                    })
                    .collect(),
            })
            .collect(),
        y_desc: y_desc.to_owned(),
        scale: Scale::Of(Unit::Count),
    };
    Some(Chart {
        name: "reprovide".into(),
        title: "Reprovide rounds by CIDs reprovided, per strategy".into(),
        plot: Plot::Panels(vec![
            panel("CIDs per hour", "CIDs/h", |g| g.cids_per_hour),
            panel("lookups per CID", "lookups/CID", |g| g.lookups_per_cid),
        ]),
    })
}

fn cdf(operation: &OperationReport) -> Option<Chart> {
    cdf_of(operation, &operation.by_region, "", "region")
}

/// Pubsub deliveries per receiver implementation (when more than one received).
fn implementation_cdf(operation: &OperationReport) -> Option<Chart> {
    let (implementations, _) = categories_and_fleets(&operation.by_implementation);
    (implementations.len() > 1)
        .then(|| {
            cdf_of(
                operation,
                &operation.by_implementation,
                "-implementation",
                "receiver implementation",
            )
        })
        .flatten()
}

/// A CDF of `operation` with a line per group of `groups` that has successes; the chart's name
/// ends with `suffix`, its title says what the groups are (`per fleet and {per}`).
fn cdf_of(operation: &OperationReport, groups: &[GroupStats], suffix: &str, per: &str) -> Option<Chart> {
    let series: Vec<Series> = groups
        .iter()
        .filter(|group| !group.quantiles.is_empty())
        .map(|group| Series {
            label: format!("{} · {} (n={})", group.fleet, group.key_label(), group.successes),
            points: group
                .quantiles
                .iter()
                .enumerate()
                .map(|(k, &seconds)| (seconds, k as f64 / 100.0))
                .collect(),
        })
        .collect();
    (!series.is_empty()).then(|| Chart {
        name: format!("cdf-{}{suffix}", operation.operation),
        title: format!(
            "CDF of successful {} per fleet and {per}",
            plural(&operation.operation)
        ),
        plot: Plot::Cdf(series),
    })
}

/// `operation` (as parsec names its step) in the plural.
fn plural(operation: &str) -> String {
    match operation.strip_suffix('y') {
        Some(stem) => format!("{stem}ies"),
        None if operation.ends_with('h') => format!("{operation}es"),
        None => format!("{operation}s"),
    }
}

/// Categories (sorted keys) and fleets (sorted) of `groups`.
fn categories_and_fleets(groups: &[GroupStats]) -> (Vec<String>, Vec<String>) {
    let mut categories: Vec<String> = groups.iter().map(|g| g.key.clone()).collect();
    categories.sort();
    categories.dedup();
    let mut fleets: Vec<String> = groups.iter().map(|g| g.fleet.clone()).collect();
    fleets.sort();
    fleets.dedup();
    (categories, fleets)
}

/// `value` of the group of `fleet` at each category.
fn per_category<T>(
    groups: &[GroupStats],
    categories: &[String],
    fleet: &str,
    value: impl Fn(&GroupStats) -> Option<T>,
) -> Vec<Option<T>> {
    categories
        .iter()
        .map(|category| {
            groups
                .iter()
                .find(|g| g.fleet == fleet && &g.key == category)
                .and_then(&value)
        })
        .collect()
}

fn daily_boxes(operation: &OperationReport) -> Option<Chart> {
    let (categories, fleets) = categories_and_fleets(&operation.by_day);
    let series: Vec<_> = fleets
        .iter()
        .map(|fleet| {
            let boxes = per_category(&operation.by_day, &categories, fleet, |g| {
                Some([5, 25, 50, 75, 95].map(|p| g.percentile(p)))
                    .filter(|q| q.iter().all(Option::is_some))
                    .map(|q| q.map(|v| v.unwrap_or_default()))
            });
            (fleet.clone(), boxes)
        })
        .collect();
    (!operation.by_day.iter().all(|g| g.quantiles.is_empty())).then(|| Chart {
        name: format!("daily-{}", operation.operation),
        title: format!(
            "Successful {} per day (box: p25–p75, line: p50, whiskers: p5–p95)",
            plural(&operation.operation)
        ),
        plot: Plot::Boxes { categories, series },
    })
}

fn latency_timeline(operation: &OperationReport) -> Option<Chart> {
    let (categories, fleets) = categories_and_fleets(&operation.timeline);
    let mut series = Vec::new();
    for (color, fleet) in fleets.iter().enumerate() {
        for (percent, dashed) in [(50, false), (90, true)] {
            series.push(TimelineSeries {
                label: format!("{fleet} p{percent}"),
                color,
                dashed,
                values: per_category(&operation.timeline, &categories, fleet, |g| g.percentile(percent)),
            });
        }
    }
    let step = step_name(operation.timeline_step);
    (!operation.timeline.iter().all(|g| g.quantiles.is_empty())).then(|| Chart {
        name: format!("timeline-{}", operation.operation),
        title: format!("{} p50 and p90 per {step}", operation.operation),
        plot: Plot::Timeline(Lines {
            title: None,
            categories,
            x_desc: step.to_owned(),
            series,
            y_desc: format!("{} duration", operation.operation),
            scale: Scale::Of(Unit::Seconds),
        }),
    })
}

fn success_timeline(operations: &[OperationReport]) -> Option<Chart> {
    let first = operations.first()?;
    let all: Vec<GroupStats> = operations.iter().flat_map(|o| o.timeline.clone()).collect();
    let (categories, fleets) = categories_and_fleets(&all);
    let mut series = Vec::new();
    for (color, fleet) in fleets.iter().enumerate() {
        for (index, operation) in operations.iter().enumerate() {
            series.push(TimelineSeries {
                label: format!("{fleet} {}", operation.operation),
                color,
                dashed: index > 0,
                values: per_category(&operation.timeline, &categories, fleet, |g| {
                    (g.attempts > 0).then(|| 100.0 * g.success_rate())
                }),
            });
        }
    }
    (!categories.is_empty()).then(|| Chart {
        name: "success-rate".into(),
        title: format!("Success rate per {}", step_name(first.timeline_step)),
        plot: Plot::Timeline(Lines {
            title: None,
            categories,
            x_desc: step_name(first.timeline_step).to_owned(),
            series,
            y_desc: "successful attempts (%)".into(),
            scale: Scale::Percent,
        }),
    })
}

fn step_name(step: Grouping) -> &'static str {
    match step {
        Grouping::Hour => "hour (UTC)",
        Grouping::Day | Grouping::Region | Grouping::Implementation => "day (UTC)",
    }
}

impl Chart {
    fn size(&self) -> (u32, u32) {
        match self.plot {
            Plot::Panels(_) => PANELS_SIZE,
            _ => SIZE,
        }
    }

    /// Panels of lines over shared categories, e.g. one peer against the others' median and 90th
    /// percentile per network size.
    pub fn comparison(
        name: &str,
        title: &str,
        x_desc: &str,
        categories: Vec<String>,
        panels: Vec<ComparisonPanel>,
    ) -> Chart {
        let panels = panels
            .into_iter()
            .map(|panel| Lines {
                title: Some(panel.title),
                categories: categories.clone(),
                x_desc: x_desc.to_owned(),
                series: panel
                    .lines
                    .into_iter()
                    .enumerate()
                    .map(|(index, (label, values))| TimelineSeries {
                        label,
                        color: index,
                        dashed: index > 0,
                        values: values.into_iter().map(Some).collect(),
                    })
                    .collect(),
                y_desc: panel.y_desc,
                scale: Scale::Of(Unit::Count),
            })
            .collect();
        Chart {
            name: name.to_owned(),
            title: title.to_owned(),
            plot: Plot::Panels(panels),
        }
    }

    /// The chart as an SVG document.
    pub fn svg(&self) -> Result<String, ChartError> {
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, self.size()).into_drawing_area();
            self.draw(&root).map_err(|reason| self.error(reason))?;
            root.present().map_err(|e| self.error(e.to_string()))?;
        }
        Ok(svg)
    }

    /// Writes the chart as a PNG file.
    pub fn write_png(&self, path: &Path) -> Result<(), ChartError> {
        let root = BitMapBackend::new(path, self.size()).into_drawing_area();
        self.draw(&root).map_err(|reason| self.error(reason))?;
        root.present().map_err(|e| self.error(e.to_string()))
    }

    fn error(&self, reason: String) -> ChartError {
        ChartError {
            chart: self.name.clone(),
            reason,
        }
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        static FONT_REGISTERED: Once = Once::new();
        FONT_REGISTERED.call_once(|| {
            // The font is compiled in and valid; a failure would only lose the text.
            let _ = register_font(FONT, FontStyle::Normal, dejavu::sans::regular());
        });
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let result = match &self.plot {
            Plot::Cdf(series) => draw_cdf(root, &self.title, series),
            Plot::Boxes { categories, series } => draw_boxes(root, &self.title, categories, series),
            Plot::Timeline(lines) => draw_lines(root, &self.title, lines),
            Plot::Panels(panels) => draw_panels(root, &self.title, panels),
            Plot::Effort(histograms) => draw_effort(root, &self.title, histograms),
        };
        result.map_err(|e| e.to_string())
    }
}

/// The (value, operations) pairs of one panel of the effort chart.
type CountsOf = fn(&EffortHistogram) -> &[(u32, u64)];

type DrawResult<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// What an axis counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Unit {
    Seconds,
    Count,
}

/// A value axis: log10 of the values when they spread widely, the values otherwise.
#[derive(Clone, Copy, Debug)]
struct Axis {
    log: bool,
    unit: Unit,
}

impl Axis {
    fn linear(unit: Unit) -> Self {
        Axis { log: false, unit }
    }

    fn over(values: impl Iterator<Item = f64>, unit: Unit) -> (Self, std::ops::Range<f64>) {
        let (min, max) = values
            .filter(|v| v.is_finite())
            .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
        if min > max {
            return (Axis::linear(unit), 0.0..1.0);
        }
        let min_positive = min.max(1e-6);
        // A count of zero has no place on a log axis (it would sit on the floor as if it were
        // the smallest tick), so counts that reach zero stay linear.
        let zero_count = matches!(unit, Unit::Count) && min <= 0.0;
        if !zero_count && max / min_positive > LOG_SCALE_SPREAD {
            let axis = Axis { log: true, unit };
            (axis, axis.at(min_positive) - 0.05..axis.at(max) + 0.05)
        } else {
            let pad = ((max - min) * 0.05).max(max * 0.05).max(1e-6);
            (Axis::linear(unit), (min - pad).max(0.0)..max + pad)
        }
    }

    fn at(self, value: f64) -> f64 {
        if self.log {
            value.max(1e-6).log10()
        } else {
            value
        }
    }

    fn label(self, at: f64) -> String {
        let value = if self.log { 10f64.powf(at) } else { at };
        match self.unit {
            Unit::Seconds => format_seconds(value),
            Unit::Count => format_count(value),
        }
    }

    fn description(self, what: &str) -> String {
        match (self.unit, self.log) {
            (Unit::Seconds, true) => format!("{what} (s, log scale)"),
            (Unit::Seconds, false) => format!("{what} (s)"),
            (Unit::Count, true) => format!("{what} (log scale)"),
            (Unit::Count, false) => what.to_owned(),
        }
    }
}

/// A count with a k/M suffix past a thousand.
pub fn format_count(value: f64) -> String {
    match value.abs() {
        v if v >= 1e6 => format!("{:.1}M", value / 1e6),
        v if v >= 1e3 => format!("{:.1}k", value / 1e3),
        v if v >= 10.0 || v == 0.0 => format!("{value:.0}"),
        v if v >= 0.95 => format!("{value:.1}"),
        v if v >= 0.095 => format!("{value:.2}"),
        _ => format!("{value:.3}"),
    }
}

/// Seconds with the precision their size needs.
pub fn format_seconds(seconds: f64) -> String {
    match seconds.abs() {
        s if s >= 10.0 => format!("{seconds:.0}"),
        s if s >= 1.0 => format!("{seconds:.1}"),
        s if s >= 0.01 => format!("{seconds:.2}"),
        s if s >= 0.001 => format!("{seconds:.3}"),
        0.0 => "0".to_owned(),
        _ => format!("{seconds:.0e}"),
    }
}

fn color(index: usize) -> RGBColor {
    // Colour-blind-safe (Okabe–Ito), then plotters' palette.
    const OKABE_ITO: [RGBColor; 7] = [
        RGBColor(0, 114, 178),
        RGBColor(213, 94, 0),
        RGBColor(0, 158, 115),
        RGBColor(204, 121, 167),
        RGBColor(230, 159, 0),
        RGBColor(86, 180, 233),
        RGBColor(0, 0, 0),
    ];
    OKABE_ITO.get(index).copied().unwrap_or_else(|| {
        let (r, g, b) = Palette99::pick(index).rgb();
        RGBColor(r, g, b)
    })
}

fn legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    position: SeriesLabelPosition,
) -> DrawResult<DB> {
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .label_font((FONT, 14))
        .draw()
}

fn draw_cdf<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    series: &[Series],
) -> DrawResult<DB> {
    // The axis starts at the 1st percentile: a few near-zero outliers (a server that holds the
    // record itself) would otherwise stretch a log axis over decades of nothing.
    let (axis, x_range) = Axis::over(
        series.iter().flat_map(|s| s.points.iter().skip(1).map(|p| p.0)),
        Unit::Seconds,
    );
    let start = x_range.start;
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT, 20))
        .margin(14)
        .x_label_area_size(46)
        .y_label_area_size(60)
        .build_cartesian_2d(x_range, 0.0..1.0)?;
    chart
        .configure_mesh()
        .x_desc(axis.description("duration"))
        .y_desc("share of successful attempts")
        .x_label_formatter(&|x| axis.label(*x))
        .y_label_formatter(&|y| format!("{:.0}%", y * 100.0))
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 15))
        .draw()?;
    for (index, series) in series.iter().enumerate() {
        let style = color(index).stroke_width(2);
        chart
            .draw_series(LineSeries::new(
                series.points.iter().map(|&(x, y)| (axis.at(x).max(start), y)),
                style,
            ))?
            .label(series.label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
    }
    legend(&mut chart, SeriesLabelPosition::UpperLeft)
}

fn draw_boxes<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    categories: &[String],
    series: &[(String, Vec<Option<[f64; 5]>>)],
) -> DrawResult<DB> {
    let values = series
        .iter()
        .flat_map(|(_, boxes)| boxes.iter().flatten().flat_map(|b| b.iter().copied()));
    let (axis, y_range) = Axis::over(values, Unit::Seconds);
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT, 20))
        .margin(14)
        .x_label_area_size(46)
        .y_label_area_size(60)
        .build_cartesian_2d(-0.5..categories.len() as f64 - 0.5, y_range)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(categories.len().min(16))
        .x_label_formatter(&|x| category_label(categories, *x))
        .y_label_formatter(&|y| axis.label(*y))
        .x_desc("day (UTC)")
        .y_desc(axis.description("duration"))
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 15))
        .draw()?;
    let width = 0.8 / series.len().max(1) as f64;
    for (index, (fleet, boxes)) in series.iter().enumerate() {
        let stroke = color(index).stroke_width(2);
        let fill = color(index).mix(0.3).filled();
        let mut shapes = Vec::new();
        for (category, quantiles) in boxes.iter().enumerate() {
            let Some([p5, p25, p50, p75, p95]) = quantiles.map(|q| q.map(|v| axis.at(v))) else {
                continue;
            };
            let left = category as f64 - 0.4 + width * index as f64 + width * 0.1;
            let right = left + width * 0.8;
            let middle = (left + right) / 2.0;
            shapes.push(Rectangle::new([(left, p25), (right, p75)], fill).into_dyn());
            shapes.push(Rectangle::new([(left, p25), (right, p75)], stroke).into_dyn());
            shapes.push(PathElement::new(vec![(left, p50), (right, p50)], stroke).into_dyn());
            shapes.push(PathElement::new(vec![(middle, p75), (middle, p95)], stroke).into_dyn());
            shapes.push(PathElement::new(vec![(middle, p25), (middle, p5)], stroke).into_dyn());
        }
        chart
            .draw_series(shapes)?
            .label(fleet.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 20, y + 5)], fill));
    }
    legend(&mut chart, SeriesLabelPosition::UpperRight)
}

/// The category at axis position `x` (blank between categories).
fn category_label(categories: &[String], x: f64) -> String {
    let index = x.round();
    if (x - index).abs() > 0.01 || index < 0.0 {
        return String::new();
    }
    categories.get(index as usize).cloned().unwrap_or_default()
}

fn draw_panels<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    panels: &[Lines],
) -> DrawResult<DB> {
    let titled = root.titled(title, (FONT, 20))?;
    let columns = panels.len().clamp(1, 2);
    let rows = panels.len().div_ceil(columns).max(1);
    for (area, lines) in titled.split_evenly((rows, columns)).iter().zip(panels) {
        draw_lines(area, lines.title.as_deref().unwrap_or_default(), lines)?;
    }
    Ok(())
}

/// The points of a series, `(category, at(value))`, in runs: consecutive categories with a value
/// form one line; a gap breaks it.
fn runs(values: &[Option<f64>], at: impl Fn(f64) -> f64) -> Vec<Vec<(f64, f64)>> {
    let mut runs: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
    for (index, value) in values.iter().enumerate() {
        match value {
            Some(v) => {
                if let Some(run) = runs.last_mut() {
                    run.push((index as f64, at(*v)));
                }
            }
            None => runs.push(Vec::new()),
        }
    }
    runs
}

fn draw_lines<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    lines: &Lines,
) -> DrawResult<DB> {
    let Lines {
        categories,
        x_desc,
        series,
        y_desc,
        scale,
        ..
    } = lines;
    let percent = *scale == Scale::Percent;
    let values = series.iter().flat_map(|s| s.values.iter().flatten().copied());
    let (axis, y_range) = match scale {
        Scale::Percent => (Axis::linear(Unit::Count), 0.0..105.0),
        Scale::Of(unit) => Axis::over(values, *unit),
    };
    let caption_size = if lines.title.is_some() { 16 } else { 20 };
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT, caption_size))
        .margin(14)
        .x_label_area_size(46)
        .y_label_area_size(60)
        .build_cartesian_2d(-0.5..categories.len() as f64 - 0.5, y_range)?;
    let y_desc = if percent {
        y_desc.clone()
    } else {
        axis.description(y_desc)
    };
    chart
        .configure_mesh()
        .x_labels(categories.len().clamp(1, 12))
        .x_label_formatter(&|x| category_label(categories, *x))
        .y_label_formatter(&|y| {
            if percent {
                format!("{y:.0}%")
            } else {
                axis.label(*y)
            }
        })
        .x_desc(x_desc.as_str())
        .y_desc(y_desc)
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 15))
        .draw()?;
    for series in series {
        let style = color(series.color).stroke_width(2);
        let runs = runs(&series.values, |v| axis.at(v));
        let points: Vec<(f64, f64)> = runs.iter().flatten().copied().collect();
        let dashed = series.dashed;
        for run in runs.iter().filter(|run| !run.is_empty()) {
            if dashed {
                chart.draw_series(DashedLineSeries::new(run.clone(), 8, 5, style))?;
            } else {
                chart.draw_series(LineSeries::new(run.clone(), style))?;
            }
        }
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 3, style.filled())))?
            .label(series.label.clone())
            .legend(move |(x, y)| {
                let end = if dashed { x + 8 } else { x + 20 };
                PathElement::new(vec![(x, y), (end, y)], style)
            });
    }
    // Latencies and success rates are read against the right end; a panel's lines (growing
    // with the network) leave the upper left free.
    let position = match (scale, lines.title.is_some()) {
        (Scale::Percent, _) => SeriesLabelPosition::LowerRight,
        (_, true) => SeriesLabelPosition::UpperLeft,
        (_, false) => SeriesLabelPosition::UpperRight,
    };
    legend(&mut chart, position)
}

fn draw_effort<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    histograms: &[EffortHistogram],
) -> DrawResult<DB> {
    let titled = root.titled(title, (FONT, 20))?;
    let (left, right) = titled.split_horizontally(SIZE.0 / 2);
    let panels: [(&DrawingArea<DB, Shift>, &str, CountsOf); 2] = [
        (&left, "hops to the answer", |h| &h.hops),
        (&right, "messages sent", |h| &h.messages),
    ];
    for (area, x_desc, counts_of) in panels {
        let max_x = histograms
            .iter()
            .flat_map(|h| counts_of(h).iter().map(|c| c.0))
            .max()
            .unwrap_or(1);
        // At most ~30 bars: wide spreads (messages) are counted in bins.
        let bin = (max_x / EFFORT_BARS + 1).max(1);
        let binned: Vec<Vec<(u32, u64)>> = histograms
            .iter()
            .map(|h| {
                let mut bins = std::collections::BTreeMap::<u32, u64>::new();
                for &(value, count) in counts_of(h) {
                    *bins.entry(value / bin * bin).or_default() += count;
                }
                bins.into_iter().collect()
            })
            .collect();
        let max_y = binned.iter().flatten().map(|c| c.1).max().unwrap_or(1);
        let x_desc = if bin > 1 {
            format!("{x_desc} (bins of {bin})")
        } else {
            x_desc.to_owned()
        };
        let mut chart = ChartBuilder::on(area)
            .margin(14)
            .x_label_area_size(46)
            .y_label_area_size(60)
            .build_cartesian_2d(
                -0.5 * f64::from(bin)..f64::from(max_x + bin),
                0.0..max_y as f64 * 1.05,
            )?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_desc(x_desc)
            .y_desc("operations")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| format!("{y:.0}"))
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 15))
            .draw()?;
        let width = 0.8 * f64::from(bin) / histograms.len().max(1) as f64;
        for (index, (histogram, counts)) in histograms.iter().zip(&binned).enumerate() {
            let fill = color(index).mix(0.75).filled();
            chart
                .draw_series(counts.iter().map(|&(value, count)| {
                    let left = f64::from(value) - 0.4 * f64::from(bin) + width * index as f64;
                    Rectangle::new([(left, 0.0), (left + width, count as f64)], fill)
                }))?
                .label(histogram.operation.clone())
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 20, y + 5)], fill));
        }
        legend(&mut chart, SeriesLabelPosition::UpperRight)?;
    }
    Ok(())
}
