//! The bootstrap-load experiment (the mesh seed's question): what the first peer, the one every
//! other dials in a star and the first bootstrap peer otherwise, carries against the median and
//! the 90th percentile of the other background peers, at each network size.

use std::{fmt::Write as _, path::Path};

use anyhow::Context as _;
use parsec_actors::{
    dht::load::{LoadSnapshot, RequestKind},
    DhtHandle,
};
use serde::Serialize;

use crate::report::{
    charts::{format_count, Chart, ComparisonPanel},
    percentile,
};

/// One figure of the bootstrap peer against the others.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LoadFigure {
    /// What is counted (`connections`, `FIND_NODE requests`, `KiB in`, `CPU ms`, …).
    pub metric: String,
    /// The bootstrap peer's figure.
    pub bootstrap: f64,
    /// The other background peers' median.
    pub others_p50: f64,
    /// Their 90th percentile (nearest rank).
    pub others_p90: f64,
}

/// The bootstrap peer against the others in one network.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BootstrapLoad {
    /// Background peers, the bootstrap peer included.
    pub peers: usize,
    /// The figures, connections first.
    pub figures: Vec<LoadFigure>,
}

/// The figures of one peer, in table order: (metric, value).
fn figures(load: &LoadSnapshot) -> Vec<(String, f64)> {
    let mut out = vec![
        ("connections".to_owned(), load.connections as f64),
        ("inbound requests".to_owned(), load.total_requests() as f64),
    ];
    for (kind, count) in RequestKind::ALL.iter().zip(load.requests) {
        // Parsec's rounds send no records: GET_VALUE and PUT_VALUE stay at zero.
        if matches!(
            kind,
            RequestKind::FindNode | RequestKind::GetProviders | RequestKind::AddProvider
        ) {
            out.push((kind.name().to_owned(), count as f64));
        }
    }
    out.push(("KiB in".to_owned(), load.bytes_in as f64 / 1024.0));
    out.push(("KiB out".to_owned(), load.bytes_out as f64 / 1024.0));
    out.push(("CPU ms".to_owned(), load.cpu.as_secs_f64() * 1000.0));
    out
}

impl BootstrapLoad {
    /// Reads the load of `peers` (the background peers; the first is the bootstrap peer), or
    /// `None` with fewer than two.
    pub fn measure(peers: &[DhtHandle]) -> Option<Self> {
        let (bootstrap, others) = peers.split_first()?;
        if others.is_empty() {
            return None;
        }
        let of_others: Vec<Vec<(String, f64)>> = others.iter().map(|p| figures(&p.load())).collect();
        let figures = figures(&bootstrap.load())
            .into_iter()
            .enumerate()
            .map(|(index, (metric, value))| {
                let mut values: Vec<f64> = of_others.iter().map(|f| f[index].1).collect();
                values.sort_by(f64::total_cmp);
                LoadFigure {
                    metric,
                    bootstrap: value,
                    others_p50: percentile(&values, 50.0).unwrap_or_default(),
                    others_p90: percentile(&values, 90.0).unwrap_or_default(),
                }
            })
            .collect();
        Some(Self {
            peers: peers.len(),
            figures,
        })
    }
}

/// The table of `loads`: per size and metric, the bootstrap peer, the others' p50 and p90, and
/// the bootstrap peer's multiple of the median.
pub fn table(loads: &[BootstrapLoad]) -> String {
    let mut out = format!(
        "{:>6}  {:<18} {:>11} {:>11} {:>11} {:>10}\n",
        "peers", "per peer", "bootstrap", "others p50", "others p90", "× p50"
    );
    for load in loads {
        for figure in &load.figures {
            let ratio = if figure.others_p50 > 0.0 {
                format!("{:.1}×", figure.bootstrap / figure.others_p50)
            } else {
                "-".to_owned()
            };
            let _ = writeln!(
                out,
                "{:>6}  {:<18} {:>11} {:>11} {:>11} {:>10}",
                load.peers,
                figure.metric,
                format_count(figure.bootstrap),
                format_count(figure.others_p50),
                format_count(figure.others_p90),
                ratio
            );
        }
    }
    out
}

/// The comparison chart: connections, inbound requests, bytes and CPU time of the bootstrap peer
/// against the others' p50 and p90, over the network sizes of `loads`.
pub fn chart(loads: &[BootstrapLoad], start: &str) -> Chart {
    let categories = loads.iter().map(|l| l.peers.to_string()).collect();
    let series = |metric: &str| -> Vec<(String, Vec<f64>)> {
        let of = |pick: fn(&LoadFigure) -> f64| {
            loads
                .iter()
                .map(|l| l.figures.iter().find(|f| f.metric == metric).map_or(0.0, pick))
                .collect()
        };
        vec![
            ("bootstrap peer".to_owned(), of(|f| f.bootstrap)),
            ("others p50".to_owned(), of(|f| f.others_p50)),
            ("others p90".to_owned(), of(|f| f.others_p90)),
        ]
    };
    let panel = |title: &str, metric: &str| ComparisonPanel {
        title: title.to_owned(),
        y_desc: metric.to_owned(),
        lines: series(metric),
    };
    Chart::comparison(
        "bootstrap-load",
        &format!("Bootstrap peer against the other peers ({start} start)"),
        "background peers",
        categories,
        vec![
            panel("Connections", "connections"),
            panel("Inbound DHT requests", "inbound requests"),
            panel("Bytes received", "KiB in"),
            panel("CPU time of its tasks", "CPU ms"),
        ],
    )
}

/// Writes `bootstrap-load.svg` and `bootstrap-load.csv` into `dir`.
pub fn write(loads: &[BootstrapLoad], start: &str, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let svg = dir.join("bootstrap-load.svg");
    std::fs::write(&svg, chart(loads, start).svg()?).with_context(|| format!("writing {}", svg.display()))?;
    let mut csv = ::csv::Writer::from_path(dir.join("bootstrap-load.csv"))?;
    csv.write_record(["peers", "metric", "bootstrap", "others_p50", "others_p90"])?;
    for load in loads {
        for figure in &load.figures {
            csv.write_record([
                load.peers.to_string(),
                figure.metric.clone(),
                figure.bootstrap.to_string(),
                figure.others_p50.to_string(),
                figure.others_p90.to_string(),
            ])?;
        }
    }
    csv.flush()?;
    Ok(())
}
