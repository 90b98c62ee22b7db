//! What a report holds, read from a store: per operation the fleet × region table (and the
//! previous window's, to compare), the days and the timeline, and the most frequent errors. The
//! DHT's provides and retrievals come first; pubsub deliveries and publishes follow when the
//! store holds some, their deliveries also split by the receiver's implementation.

use chrono::{DateTime, Utc};
use indicatif::ProgressBar;
use parsec_actors::Operation;
use serde::Serialize;

use anyhow::Context as _;

use crate::db::{
    aggregates::{ErrorCount, GroupStats, Grouping, ReportFilter, ReprovideStats},
    DatabaseTarget, DbError, Store,
};

/// The hour is the timeline's step when the rows span at most this many days.
const DAYS_FOR_HOURLY_TIMELINE: usize = 2;

/// What to report on.
#[derive(Clone, Debug, Default)]
pub struct ReportRequest {
    /// The rows to read.
    pub filter: ReportFilter,
    /// Also read the window of equal length before `filter`'s (which then needs both ends).
    pub compare_previous: bool,
    /// The report's heading.
    pub title: String,
}

/// A time window: from (inclusive), to (exclusive).
pub type Window = (DateTime<Utc>, DateTime<Utc>);

impl ReportRequest {
    /// The window of equal length before the filter's, when comparing.
    pub fn previous_window(&self) -> Result<Option<Window>, DbError> {
        if !self.compare_previous {
            return Ok(None);
        }
        let (Some(since), Some(until)) = (self.filter.since, self.filter.until) else {
            return Err(DbError::Config(
                "--compare-previous needs a window: give --last (e.g. 7d) or both --since and --until".into(),
            ));
        };
        let before = since.checked_sub_signed(until.signed_duration_since(since)).ok_or_else(|| {
            DbError::Config(
                "--compare-previous: the window before this one reaches back before the earliest time a report \
                 can name; give a later --since"
                    .into(),
            )
        })?;
        Ok(Some((before, since)))
    }
}

/// A report, ready to render in any format.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Heading.
    pub title: String,
    /// When it was made.
    pub generated_at: DateTime<Utc>,
    /// The database read, without its password.
    pub source: String,
    /// What was read, in words (`fleet default, since …`).
    pub selection: String,
    /// The window compared against, when `--compare-previous` was asked.
    pub previous_window: Option<Window>,
    /// Retrievals, provides, then pubsub deliveries and publishes (those only when selected
    /// rows exist; the DHT's only when they exist or no pubsub rows do).
    pub operations: Vec<OperationReport>,
    /// Hops and messages of simulated operations (only `parsec simulate` knows them).
    pub effort: Vec<EffortHistogram>,
    /// Reprovide rounds per strategy and CID count (empty without rounds).
    pub reprovide: Vec<ReprovideStats>,
}

/// One operation's figures.
#[derive(Clone, Debug, Serialize)]
pub struct OperationReport {
    /// `retrieval` or `provide`.
    pub operation: String,
    /// Per fleet × region of the measuring server.
    pub by_region: Vec<GroupStats>,
    /// The same groups in the previous window (when compared).
    pub previous_by_region: Option<Vec<GroupStats>>,
    /// Per fleet × UTC day.
    pub by_day: Vec<GroupStats>,
    /// Per fleet × hour, or × day when the rows span more than two days.
    pub timeline: Vec<GroupStats>,
    /// The timeline's step.
    pub timeline_step: Grouping,
    /// Pubsub deliveries: per fleet × the receiver's implementation (empty otherwise).
    pub by_implementation: Vec<GroupStats>,
    /// The most frequent error texts.
    pub errors: Vec<ErrorCount>,
}

impl OperationReport {
    /// The operation and what its duration is.
    pub fn title(&self) -> &'static str {
        match self.operation.as_str() {
            "provide" => "provide (publishing the provider record)",
            "delivery" => "pubsub delivery (publisher's send to each receiver's first copy)",
            "publish" => "pubsub publish (send to the last receiver's first copy)",
            _ => "retrieval (time to the first provider record)",
        }
    }

    /// What a success is, as a table's column.
    pub fn success_label(&self) -> &'static str {
        match self.operation.as_str() {
            "delivery" => "delivered",
            "publish" => "reached all",
            _ => "success",
        }
    }

    /// Whether the groups carry pubsub figures (duplicates, clock uncertainty).
    pub fn is_pubsub(&self) -> bool {
        matches!(self.operation.as_str(), "delivery" | "publish")
    }
}

/// How many simulated operations of one kind took each number of hops or messages.
#[derive(Clone, Debug, Serialize)]
pub struct EffortHistogram {
    /// `provide` or `retrieve`.
    pub operation: String,
    /// (hops, operations), ascending.
    pub hops: Vec<(u32, u64)>,
    /// (messages, operations), ascending.
    pub messages: Vec<(u32, u64)>,
}

/// Opens the store at `target` and reads the report `request` asks for, on a runtime of its own
/// (for the command line: `parsec report`, and the report a run writes when it ends).
pub fn read(
    target: &DatabaseTarget,
    request: &ReportRequest,
    progress: &ProgressBar,
) -> anyhow::Result<Report> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async {
        // Reading never writes: no migrations, and a SQLite file is opened read-only.
        let store = Store::open_with(target, crate::db::SchemaPolicy::ReadOnly).await?;
        Ok(build(&store, target.to_string(), request, progress).await?)
    })
}

/// Reads the report `request` asks for from `store`. `progress` shows what is being read.
pub async fn build(
    store: &Store,
    source: String,
    request: &ReportRequest,
    progress: &ProgressBar,
) -> Result<Report, DbError> {
    let filter = &request.filter;
    let previous_window = request.previous_window()?;
    let mut operations = Vec::new();
    let mut pubsub = Vec::new();
    for operation in [
        Operation::Retrieval,
        Operation::Provide,
        Operation::Delivery,
        Operation::Publish,
    ] {
        let is_pubsub = matches!(operation, Operation::Delivery | Operation::Publish);
        if is_pubsub && !filter.covers_pubsub() {
            continue;
        }
        let report = operation_report(store, operation, filter, previous_window, progress).await?;
        if is_pubsub {
            if !report.by_region.is_empty() {
                pubsub.push(report);
            }
        } else {
            operations.push(report);
        }
    }
    // A pubsub-only store reports pubsub alone; otherwise the DHT's sections stay, empty or not.
    if !pubsub.is_empty() && operations.iter().all(|o| o.by_region.is_empty()) {
        operations.clear();
    }
    operations.extend(pubsub);
    // Rounds have no step and no routing-table size: a filter on either selects none.
    let reprovide = if filter.covers_pubsub() {
        progress.set_message("reprovide rounds");
        store.reprovide_stats(filter).await?
    } else {
        Vec::new()
    };
    // A store of reprovide rounds alone reports them alone.
    if !reprovide.is_empty() && operations.iter().all(|o| o.by_region.is_empty()) {
        operations.clear();
    }
    Ok(Report {
        title: request.title.clone(),
        generated_at: Utc::now(),
        source,
        selection: describe(filter),
        previous_window,
        operations,
        effort: Vec::new(),
        reprovide,
    })
}

/// One operation's statistics: by region (and in the previous window, if the request compares),
/// by day, on a timeline (hourly for a few days), by implementation (deliveries), and its errors.
async fn operation_report(
    store: &Store,
    operation: Operation,
    filter: &ReportFilter,
    previous_window: Option<Window>,
    progress: &ProgressBar,
) -> Result<OperationReport, DbError> {
    let by_region = store
        .group_stats(operation, Grouping::Region, filter, progress)
        .await?;
    let previous_by_region = match previous_window {
        Some((since, until)) => {
            let previous = ReportFilter {
                since: Some(since),
                until: Some(until),
                ..filter.clone()
            };
            Some(
                store
                    .group_stats(operation, Grouping::Region, &previous, progress)
                    .await?,
            )
        }
        None => None,
    };
    let by_day = store
        .group_stats(operation, Grouping::Day, filter, progress)
        .await?;
    let mut days: Vec<&str> = by_day.iter().map(|g| g.key.as_str()).collect();
    days.sort_unstable();
    days.dedup();
    let (timeline, timeline_step) = if days.len() <= DAYS_FOR_HOURLY_TIMELINE {
        let hourly = store
            .group_stats(operation, Grouping::Hour, filter, progress)
            .await?;
        (hourly, Grouping::Hour)
    } else {
        (by_day.clone(), Grouping::Day)
    };
    let by_implementation = if operation == Operation::Delivery {
        store
            .group_stats(operation, Grouping::Implementation, filter, progress)
            .await?
    } else {
        Vec::new()
    };
    Ok(OperationReport {
        operation: operation.step().to_owned(),
        by_region,
        previous_by_region,
        by_day,
        timeline,
        timeline_step,
        by_implementation,
        errors: store.error_counts(operation, filter).await?,
    })
}

/// `filter` in words, for the report's header.
fn describe(filter: &ReportFilter) -> String {
    let mut parts = Vec::new();
    let list =
        |name: &str, values: &[String]| (!values.is_empty()).then(|| format!("{name} {}", values.join(", ")));
    parts.extend(list("fleet", &filter.fleets));
    parts.extend(list("region", &filter.regions));
    parts.extend(list("step", &filter.steps));
    if let Some(scheduler) = filter.scheduler {
        parts.push(format!("scheduler {scheduler}"));
    }
    if let Some(since) = filter.since {
        parts.push(format!("since {}", since.format("%Y-%m-%d %H:%M UTC")));
    }
    if let Some(until) = filter.until {
        parts.push(format!("until {}", until.format("%Y-%m-%d %H:%M UTC")));
    }
    if let Some(min) = filter.min_rt_size {
        parts.push(format!("routing table ≥ {min} peers"));
    }
    if parts.is_empty() {
        "all measurements".to_owned()
    } else {
        parts.join("; ")
    }
}
