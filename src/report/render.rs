//! A report in each format: aligned text, Markdown with the charts beside it, one
//! self-contained HTML file with the charts inline, and CSV or JSON for notebooks.

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
};

use anyhow::Context as _;

use super::{
    charts::{charts, format_seconds, Chart},
    data::{OperationReport, Report},
};
use crate::db::aggregates::{GroupStats, Grouping};

/// How a report is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned tables for a terminal (with --out, the charts as SVG beside report.txt).
    Text,
    /// Markdown tables, the charts as SVG files beside report.md.
    Md,
    /// One self-contained HTML file, the charts inline.
    Html,
    /// One row per group, for notebooks.
    Csv,
    /// Everything, the quantiles included, for notebooks.
    Json,
}

impl Format {
    /// The report file's extension.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Text => "txt",
            Format::Md => "md",
            Format::Html => "html",
            Format::Csv => "csv",
            Format::Json => "json",
        }
    }
}

/// The folder beside a report that holds its chart files.
const CHARTS_DIR: &str = "charts";

/// Writes `report` as `format` into the folder `out` (`report.<ext>`, and the charts for text and
/// Markdown, with PNG copies when `png`), or prints it when `out` is `None`. Returns the files
/// written.
pub fn write(report: &Report, format: Format, out: Option<&Path>, png: bool) -> anyhow::Result<Vec<PathBuf>> {
    let charts = match format {
        Format::Text | Format::Md | Format::Html => charts(report),
        Format::Csv | Format::Json => Vec::new(),
    };
    if let Some(out) = out {
        std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    }
    let mut written = Vec::new();
    let chart_files = match (out, format) {
        (Some(out), Format::Text | Format::Md) => {
            written.extend(write_charts(&charts, &out.join(CHARTS_DIR), png)?);
            true
        }
        _ => false,
    };
    let body = match format {
        Format::Text => text(report),
        Format::Md => markdown(report, if chart_files { &charts } else { &[] }),
        Format::Html => html(report, &charts)?,
        Format::Csv => csv(report)?,
        Format::Json => serde_json::to_string_pretty(report)? + "\n",
    };
    match out {
        Some(out) => {
            let path = out.join(format!("report.{}", format.extension()));
            std::fs::write(&path, body).with_context(|| format!("writing {}", path.display()))?;
            if png && format == Format::Html {
                written.extend(write_charts(&charts, &out.join(CHARTS_DIR), true)?);
            }
            written.insert(0, path);
        }
        None => print!("{body}"),
    }
    Ok(written)
}

/// Writes every format into `out`: what `--report DIR` leaves after a run.
pub fn write_all(report: &Report, out: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for format in [Format::Md, Format::Html, Format::Csv, Format::Json] {
        written.extend(write(report, format, Some(out), false)?);
    }
    Ok(written)
}

fn write_charts(charts: &[Chart], dir: &Path, png: bool) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut written = Vec::new();
    for chart in charts {
        let path = dir.join(format!("{}.svg", chart.name));
        std::fs::write(&path, chart.svg()?).with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
        if png {
            let path = dir.join(format!("{}.png", chart.name));
            chart.write_png(&path)?;
            written.push(path);
        }
    }
    Ok(written)
}

/// A table of any format: a header and rows of cells.
struct Table {
    columns: Vec<String>,
    rows: Vec<Vec<String>>,
}

fn percentile_cell(group: &GroupStats, percent: usize) -> String {
    group
        .percentile(percent)
        .map_or_else(|| "-".to_owned(), |s| format!("{}s", format_seconds(s)))
}

/// Per fleet × region: attempts, success rate, p50/p90/p99, and the change against the previous
/// window when it was read.
fn region_table(operation: &OperationReport) -> Table {
    groups_table(
        operation,
        "region",
        &operation.by_region,
        operation.previous_by_region.as_deref(),
    )
}

/// Per group: attempts, success rate, p50/p90/p99, the pubsub figures when the groups have them,
/// and the change against `previous` groups.
fn groups_table(
    operation: &OperationReport,
    key: &str,
    groups: &[GroupStats],
    previous: Option<&[GroupStats]>,
) -> Table {
    let duplicates = groups.iter().any(|g| g.duplicates.is_some());
    let one_hop = groups.iter().any(|g| g.one_hop.is_some());
    let clock = groups.iter().any(|g| g.clock_uncertainty.is_some());
    let mut columns: Vec<String> = [
        "fleet",
        key,
        "attempts",
        operation.success_label(),
        "p50",
        "p90",
        "p99",
    ]
    .map(String::from)
    .to_vec();
    if duplicates {
        columns.push("dup/delivery".to_owned());
    }
    if one_hop {
        columns.push("one hop".to_owned());
    }
    if clock {
        columns.push("clock ±".to_owned());
    }
    if previous.is_some() {
        columns.extend(["Δ success", "Δ p50", "Δ p90", "Δ p99"].map(String::from));
    }
    let rows = groups
        .iter()
        .map(|group| {
            let mut row = vec![
                group.fleet.clone(),
                group.key_label().to_owned(),
                group.attempts.to_string(),
                format!("{:.1}%", 100.0 * group.success_rate()),
                percentile_cell(group, 50),
                percentile_cell(group, 90),
                percentile_cell(group, 99),
            ];
            if duplicates {
                row.push(
                    group
                        .duplicates
                        .map_or_else(|| "-".to_owned(), |d| format!("{d:.2}")),
                );
            }
            if one_hop {
                row.push(
                    group
                        .one_hop
                        .map_or_else(|| "-".to_owned(), |h| format!("{:.0}%", 100.0 * h)),
                );
            }
            if clock {
                row.push(
                    group
                        .clock_uncertainty
                        .map_or_else(|| "-".to_owned(), |s| format!("{}s", format_seconds(s))),
                );
            }
            if let Some(previous) = previous {
                let before = previous
                    .iter()
                    .find(|p| p.fleet == group.fleet && p.key == group.key);
                row.extend(changes(group, before));
            }
            row
        })
        .collect();
    Table { columns, rows }
}

/// An operation's tables under their captions: the region table (no caption), the deliveries per
/// implementation, the most frequent errors.
fn operation_tables(operation: &OperationReport) -> Vec<(Option<&'static str>, Table)> {
    let mut tables = vec![(None, region_table(operation))];
    if !operation.by_implementation.is_empty() {
        tables.push((
            Some("by the receiver's implementation"),
            groups_table(operation, "implementation", &operation.by_implementation, None),
        ));
    }
    if let Some(errors) = error_table(operation) {
        tables.push((Some("most frequent errors"), errors));
    }
    tables
}

/// The change of the success rate (percentage points) and of p50/p90/p99 (relative).
fn changes(now: &GroupStats, before: Option<&GroupStats>) -> Vec<String> {
    let Some(before) = before.filter(|b| b.attempts > 0) else {
        return vec!["new".to_owned(), "-".to_owned(), "-".to_owned(), "-".to_owned()];
    };
    let mut cells = vec![format!(
        "{:+.1} pp",
        100.0 * (now.success_rate() - before.success_rate())
    )];
    for percent in [50, 90, 99] {
        cells.push(match (now.percentile(percent), before.percentile(percent)) {
            (Some(now), Some(before)) if before > 0.0 => format!("{:+.1}%", 100.0 * (now - before) / before),
            _ => "-".to_owned(),
        });
    }
    cells
}

fn error_table(operation: &OperationReport) -> Option<Table> {
    (!operation.errors.is_empty()).then(|| Table {
        columns: ["fleet", "count", "error"].map(String::from).to_vec(),
        rows: operation
            .errors
            .iter()
            .map(|e| vec![e.fleet.clone(), e.count.to_string(), e.error.clone()])
            .collect(),
    })
}

fn effort_table(report: &Report) -> Option<Table> {
    let summary = |counts: &[(u32, u64)]| {
        let total: u64 = counts.iter().map(|c| c.1).sum();
        let mut seen = 0;
        let mut median = None;
        for &(value, count) in counts {
            seen += count;
            if median.is_none() && seen * 2 >= total {
                median = Some(value);
            }
        }
        let max = counts.last().map_or(0, |c| c.0);
        format!("{}/{max}", median.unwrap_or(0))
    };
    (!report.effort.is_empty()).then(|| Table {
        columns: ["operation", "operations", "hops p50/max", "messages p50/max"]
            .map(String::from)
            .to_vec(),
        rows: report
            .effort
            .iter()
            .map(|h| {
                vec![
                    h.operation.clone(),
                    h.hops.iter().map(|c| c.1).sum::<u64>().to_string(),
                    summary(&h.hops),
                    summary(&h.messages),
                ]
            })
            .collect(),
    })
}

/// Reprovide rounds per strategy and CID count (figures over the rounds without error).
fn reprovide_table(report: &Report) -> Option<Table> {
    let figure = |value: Option<f64>, format: fn(f64) -> String| value.map_or_else(|| "-".to_owned(), format);
    (!report.reprovide.is_empty()).then(|| Table {
        columns: [
            "strategy",
            "CIDs",
            "rounds",
            "ok",
            "CIDs/h",
            "lookups/CID",
            "copies/CID",
            "found",
        ]
        .map(String::from)
        .to_vec(),
        rows: report
            .reprovide
            .iter()
            .map(|group| {
                vec![
                    group.strategy.clone(),
                    group.cids.to_string(),
                    group.rounds.to_string(),
                    group.successes.to_string(),
                    figure(group.cids_per_hour, |v| format!("{v:.0}")),
                    figure(group.lookups_per_cid, |v| format!("{v:.4}")),
                    figure(group.copies_per_cid, |v| format!("{v:.1}")),
                    figure(group.found, |v| format!("{:.1}%", 100.0 * v)),
                ]
            })
            .collect(),
    })
}

fn header_lines(report: &Report) -> Vec<String> {
    let mut lines = vec![
        format!("source: {}", report.source),
        format!("selection: {}", report.selection),
    ];
    if let Some((since, until)) = report.previous_window {
        lines.push(format!(
            "compared with: {} to {}",
            since.format("%Y-%m-%d %H:%M UTC"),
            until.format("%Y-%m-%d %H:%M UTC")
        ));
    }
    lines.push("percentiles: of successful attempts, interpolated as Postgres' percentile_cont".to_owned());
    lines.push(format!(
        "generated: {}",
        report.generated_at.format("%Y-%m-%d %H:%M:%S UTC")
    ));
    lines
}

fn text_table(table: &Table) -> String {
    let widths: Vec<usize> = (0..table.columns.len())
        .map(|i| {
            table
                .rows
                .iter()
                .map(|row| row[i].chars().count())
                .chain([table.columns[i].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[String]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (cell, width))| {
                let pad = width - cell.chars().count();
                // Names left, figures right.
                if i < 2 {
                    format!("{cell}{}", " ".repeat(pad))
                } else {
                    format!("{}{cell}", " ".repeat(pad))
                }
            })
            .collect();
        padded.join("  ").trim_end().to_owned() + "\n"
    };
    let mut out = line(&table.columns);
    for row in &table.rows {
        out += &line(row);
    }
    out
}

fn text(report: &Report) -> String {
    let mut out = format!("{}\n", report.title);
    for line in header_lines(report) {
        let _ = writeln!(out, "  {line}");
    }
    for operation in &report.operations {
        let _ = writeln!(out, "\n{}", operation.title());
        for (caption, table) in operation_tables(operation) {
            if let Some(caption) = caption {
                let _ = writeln!(out, "{caption}:");
            }
            out += &text_table(&table);
        }
    }
    if let Some(effort) = effort_table(report) {
        let _ = write!(out, "\nsimulated effort\n{}", text_table(&effort));
    }
    if let Some(rounds) = reprovide_table(report) {
        let _ = write!(out, "\n{REPROVIDE_HEADING}\n{}", text_table(&rounds));
    }
    out
}

fn markdown_table(table: &Table) -> String {
    let cell = |text: &str| text.replace('|', "\\|");
    let mut out = format!(
        "| {} |\n|{}\n",
        table
            .columns
            .iter()
            .map(|c| cell(c))
            .collect::<Vec<_>>()
            .join(" | "),
        table
            .columns
            .iter()
            .enumerate()
            .map(|(i, _)| if i < 2 { " --- |" } else { " ---: |" })
            .collect::<String>()
    );
    for row in &table.rows {
        let _ = writeln!(
            out,
            "| {} |",
            row.iter().map(|c| cell(c)).collect::<Vec<_>>().join(" | ")
        );
    }
    out
}

fn markdown(report: &Report, charts: &[Chart]) -> String {
    let mut out = format!("# {}\n\n", report.title);
    for line in header_lines(report) {
        let _ = writeln!(out, "- {line}");
    }
    for operation in &report.operations {
        let _ = writeln!(out, "\n## {}", operation.title());
        for (caption, table) in operation_tables(operation) {
            if let Some(caption) = caption {
                let _ = write!(out, "\n{}:\n", capitalized(caption));
            }
            let _ = write!(out, "\n{}", markdown_table(&table));
        }
    }
    if let Some(effort) = effort_table(report) {
        let _ = write!(out, "\n## Simulated effort\n\n{}", markdown_table(&effort));
    }
    if let Some(rounds) = reprovide_table(report) {
        let _ = write!(
            out,
            "\n## {}\n\n{}",
            capitalized(REPROVIDE_HEADING),
            markdown_table(&rounds)
        );
    }
    if !charts.is_empty() {
        out += "\n## Charts\n";
        for chart in charts {
            let _ = write!(out, "\n![{}]({CHARTS_DIR}/{}.svg)\n", chart.title, chart.name);
        }
    }
    out
}

const REPROVIDE_HEADING: &str =
    "reprovide rounds (CIDs/h, lookups and copies per CID, found: over rounds without error)";

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map_or_else(String::new, |first| first.to_uppercase().chain(chars).collect())
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn html_table(table: &Table) -> String {
    let mut out = String::from("<table>\n<thead><tr>");
    for column in &table.columns {
        let _ = write!(out, "<th>{}</th>", escape(column));
    }
    out += "</tr></thead>\n<tbody>\n";
    for row in &table.rows {
        out += "<tr>";
        for (i, cell) in row.iter().enumerate() {
            let class = if i < 2 { "" } else { " class=\"num\"" };
            let _ = write!(out, "<td{class}>{}</td>", escape(cell));
        }
        out += "</tr>\n";
    }
    out + "</tbody>\n</table>\n"
}

const STYLE: &str = "body{font-family:'DejaVu Sans',system-ui,sans-serif;margin:2em auto;max-width:1000px;\
color:#222}table{border-collapse:collapse;margin:1em 0}th,td{padding:.3em .8em;border-bottom:1px solid #ddd;\
text-align:left}td.num{text-align:right;font-variant-numeric:tabular-nums}figure{margin:2em 0}\
figure svg{max-width:100%;height:auto}figcaption{color:#555}ul.meta{color:#555}";

fn html(report: &Report, charts: &[Chart]) -> anyhow::Result<String> {
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{title}</title>\n\
         <style>{STYLE}</style>\n</head>\n<body>\n<h1>{title}</h1>\n<ul class=\"meta\">\n",
        title = escape(&report.title)
    );
    for line in header_lines(report) {
        let _ = writeln!(out, "<li>{}</li>", escape(&line));
    }
    out += "</ul>\n";
    for operation in &report.operations {
        let _ = writeln!(out, "<h2>{}</h2>", escape(operation.title()));
        for (caption, table) in operation_tables(operation) {
            if let Some(caption) = caption {
                let _ = writeln!(out, "<p>{}:</p>", escape(&capitalized(caption)));
            }
            out += &html_table(&table);
        }
    }
    if let Some(effort) = effort_table(report) {
        let _ = write!(out, "<h2>Simulated effort</h2>\n{}", html_table(&effort));
    }
    if let Some(rounds) = reprovide_table(report) {
        let _ = write!(
            out,
            "<h2>{}</h2>\n{}",
            escape(&capitalized(REPROVIDE_HEADING)),
            html_table(&rounds)
        );
    }
    if !charts.is_empty() {
        out += "<h2>Charts</h2>\n";
    }
    for chart in charts {
        let svg = chart.svg()?;
        // Inline: the markup without the XML prolog.
        let svg = svg.find("<svg").map_or(svg.as_str(), |start| &svg[start..]);
        let _ = write!(
            out,
            "<figure id=\"{}\">\n{svg}\n<figcaption>{}</figcaption>\n</figure>\n",
            chart.name,
            escape(&chart.title)
        );
    }
    Ok(out + "</body>\n</html>\n")
}

fn csv(report: &Report) -> anyhow::Result<String> {
    let mut writer = ::csv::Writer::from_writer(Vec::new());
    writer.write_record([
        "operation",
        "grouping",
        "fleet",
        "key",
        "attempts",
        "successes",
        "success_rate",
        "p50_s",
        "p90_s",
        "p99_s",
        "duplicates_per_delivery",
        "one_hop_share",
        "clock_uncertainty_s",
    ])?;
    let number = |value: Option<f64>| value.map_or_else(String::new, |v| v.to_string());
    for operation in &report.operations {
        let tables: [(&str, Option<&Vec<GroupStats>>); 5] = [
            ("region", Some(&operation.by_region)),
            ("previous_region", operation.previous_by_region.as_ref()),
            ("day", Some(&operation.by_day)),
            (
                if operation.timeline_step == Grouping::Hour {
                    "hour"
                } else {
                    "timeline_day"
                },
                (operation.timeline_step == Grouping::Hour).then_some(&operation.timeline),
            ),
            ("implementation", Some(&operation.by_implementation)),
        ];
        for (grouping, groups) in tables {
            for group in groups.into_iter().flatten() {
                writer.write_record([
                    operation.operation.clone(),
                    grouping.to_owned(),
                    group.fleet.clone(),
                    group.key.clone(),
                    group.attempts.to_string(),
                    group.successes.to_string(),
                    group.success_rate().to_string(),
                    number(group.percentile(50)),
                    number(group.percentile(90)),
                    number(group.percentile(99)),
                    number(group.duplicates),
                    number(group.one_hop),
                    number(group.clock_uncertainty),
                ])?;
            }
        }
    }
    Ok(String::from_utf8(writer.into_inner()?)?)
}
