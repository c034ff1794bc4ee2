//! The live dashboard at `/`: tiles (events loaded, dead letters, files,
//! validity, ingest lag, circuit breaker) and charts of events per second,
//! validity rate, dead letters by code, revenue by category, the
//! view → add_to_cart → purchase funnel, and ingest lag.
//!
//! The page is one static HTML file with a few lines of our own script that
//! fetch `/api/dashboard?width=PX&tz=MIN` every two seconds (and at once
//! when the window is resized) and swap the numbers and charts in. The
//! charts are SVG drawn on the server with `plotters` ([`charts`]) at the
//! width of the page's panels, with clock times in the browser's time zone
//! ([`scale`]), from the database's tables (and the loader's health for
//! the lag), so the page needs no JavaScript library. It only reads: it
//! never writes to the database and never blocks the loader (its own
//! connection, short queries).

pub mod charts;
pub mod scale;

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::{FixedOffset, Offset};
use tokio_postgres::Client;

use self::charts::{Bar, Frame, Line};
use self::scale::{Unit, ValueAxis};
use super::health::HealthState;
use super::http::HttpState;
use crate::db::connect::{Connector, DbError};

const PAGE: &str = include_str!("dashboard.html");
/// Lag samples kept at most (one per refresh of any page; those older
/// than the lag chart's window are dropped too).
const LAG_HISTORY: usize = 600;

/// Where the dashboard reads its numbers.
#[derive(Clone)]
pub struct Dashboard {
    connector: Connector,
    client: Arc<tokio::sync::Mutex<Option<Client>>>,
    /// (Unix time, age of the oldest waiting file), oldest first.
    lag: Arc<Mutex<VecDeque<(f64, f64)>>>,
}

impl std::fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Dashboard")
    }
}

/// Everything the page shows at one moment.
#[derive(Debug, serde::Serialize)]
pub struct Snapshot {
    /// Element id → text.
    pub tiles: BTreeMap<&'static str, String>,
    /// Chart name → SVG.
    pub charts: BTreeMap<&'static str, String>,
    pub updated_unix: f64,
    /// The time zone of the charts' clock times, `UTC+02:00`.
    pub zone: String,
}

/// What the page asks for: its panels' width in pixels and its time zone
/// in minutes east of UTC. Anything missing or unreadable falls back to
/// [`charts::DEFAULT_WIDTH`] and UTC.
#[derive(Debug, Default, serde::Deserialize)]
pub struct View {
    width: Option<String>,
    tz: Option<String>,
}

impl View {
    /// The frame the charts are drawn in.
    pub fn frame(&self) -> Frame {
        let width = self
            .width
            .as_deref()
            .and_then(|w| w.trim().parse::<f64>().ok())
            .filter(|w| w.is_finite())
            .map_or(charts::DEFAULT_WIDTH, |w| {
                w.round()
                    .clamp(f64::from(charts::MIN_WIDTH), f64::from(charts::MAX_WIDTH))
                    as u32
            });
        let offset = self
            .tz
            .as_deref()
            .and_then(|m| m.trim().parse::<i32>().ok())
            .filter(|m| m.abs() <= 18 * 60)
            .and_then(|m| FixedOffset::east_opt(m * 60))
            .unwrap_or_else(|| chrono::Utc.fix());
        Frame { width, offset }
    }
}

impl Dashboard {
    pub fn new(db: &crate::db::connect::Database) -> Dashboard {
        Dashboard {
            connector: db.connector(),
            client: Arc::new(tokio::sync::Mutex::new(None)),
            lag: Arc::new(Mutex::new(VecDeque::new())),
        }
    }

    /// Reads the numbers and draws the charts in `frame`.
    pub async fn snapshot(
        &self,
        health: &HealthState,
        frame: Frame,
    ) -> Result<Snapshot, SnapshotError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let lag: Vec<(f64, f64)> = {
            let mut h = match self.lag.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            h.push_back((now, health.oldest_waiting_secs));
            while h.len() > LAG_HISTORY
                || h.front()
                    .is_some_and(|s| s.0 < now - scale::LAG_WINDOW_SECS)
            {
                h.pop_front();
            }
            h.iter().copied().collect()
        };
        let mut guard = self.client.lock().await;
        let client = match guard.take() {
            Some(c) if !c.is_closed() => c,
            _ => self.connector.connect().await?,
        };
        let data = read(&client).await?;
        // Kept only after a successful read.
        *guard = Some(client);
        Ok(draw(&data, health, &lag, now, frame))
    }
}

/// Why the numbers could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error(transparent)]
    Connect(#[from] DbError),
    #[error("{}", crate::db::connect::error_chain(.0))]
    Query(#[from] tokio_postgres::Error),
}

/// What the charts are drawn from.
struct Data {
    /// The database's clock, Unix seconds (the times below are on it).
    now: f64,
    events: i64,
    dead_letters: i64,
    files_loaded: i64,
    files_rejected: i64,
    /// Per batch, oldest first: (Unix commit time, validity 0–1).
    batches: Vec<(f64, f64)>,
    /// Rows read per 10-second bucket over the last ~10 minutes: (bucket
    /// index = start / 10, rows).
    buckets: Vec<(i64, i64)>,
    /// Rows read per second over the last minute.
    rate_last_minute: f64,
    dead_by_code: Vec<(String, f64)>,
    revenue: Vec<(String, f64)>,
    funnel: Vec<(String, f64)>,
}

async fn read(c: &Client) -> Result<Data, tokio_postgres::Error> {
    let t = c
        .query_one(
            "SELECT extract(epoch FROM now())::float8,
                    (SELECT count(*) FROM ecommerce_events),
                    (SELECT count(*) FROM dead_letter_events),
                    (SELECT count(*) FROM ingested_files WHERE status = 'loaded'),
                    (SELECT count(*) FROM ingested_files WHERE status = 'rejected'),
                    (SELECT coalesce(sum(rows_read), 0)::float8 / 60 FROM data_quality_metrics
                     WHERE committed_at > now() - interval '1 minute')",
            &[],
        )
        .await?;
    let mut batches: Vec<(f64, f64)> = c
        .query(
            "SELECT extract(epoch FROM committed_at)::float8,
                    coalesce(validity_rate, 1)::float8
             FROM data_quality_metrics ORDER BY batch_id DESC LIMIT 120",
            &[],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    batches.reverse();
    let buckets: Vec<(i64, i64)> = c
        .query(
            "SELECT floor(extract(epoch FROM committed_at) / 10)::int8, sum(rows_read)::int8
             FROM data_quality_metrics WHERE committed_at > now() - interval '11 minutes'
             GROUP BY 1",
            &[],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let pairs = |rows: Vec<tokio_postgres::Row>| -> Vec<(String, f64)> {
        rows.iter().map(|r| (r.get(0), r.get(1))).collect()
    };
    let dead_by_code = pairs(
        c.query(
            "SELECT key, sum(value::int8)::float8 FROM data_quality_metrics,
                    jsonb_each_text(rejects_by_code)
             GROUP BY key ORDER BY 2 DESC, 1 LIMIT 10",
            &[],
        )
        .await?,
    );
    let revenue = pairs(
        c.query(
            "SELECT coalesce(category, 'unknown'), sum(total_amount)::float8
             FROM ecommerce_events WHERE event_type = 'purchase'
             GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 10",
            &[],
        )
        .await?,
    );
    let counts: BTreeMap<String, f64> = pairs(
        c.query(
            "SELECT event_type, count(*)::float8 FROM ecommerce_events
             WHERE event_type IN ('view', 'add_to_cart', 'purchase') GROUP BY 1",
            &[],
        )
        .await?,
    )
    .into_iter()
    .collect();
    let funnel = ["view", "add_to_cart", "purchase"]
        .iter()
        .map(|s| (s.to_string(), counts.get(*s).copied().unwrap_or(0.0)))
        .collect();
    Ok(Data {
        now: t.get(0),
        events: t.get(1),
        dead_letters: t.get(2),
        files_loaded: t.get(3),
        files_rejected: t.get(4),
        batches,
        buckets,
        rate_last_minute: t.get(5),
        dead_by_code,
        revenue,
        funnel,
    })
}

/// The tiles' texts.
fn tiles(d: &Data, h: &HealthState) -> BTreeMap<&'static str, String> {
    let count = |n: i64| scale::whole(n as f64);
    let mut tiles = BTreeMap::new();
    tiles.insert("total-events", count(d.events));
    tiles.insert("dead-letters", count(d.dead_letters));
    tiles.insert("files-loaded", count(d.files_loaded));
    tiles.insert("files-quarantined", count(d.files_rejected));
    tiles.insert(
        "validity",
        d.batches
            .last()
            .map_or("–".into(), |b| format!("{:.2}%", b.1 * 100.0)),
    );
    tiles.insert("events-per-second", scale::whole(d.rate_last_minute));
    tiles.insert(
        "ingest-lag",
        format!(
            "{} file(s), {} s",
            scale::whole(h.waiting_files as f64),
            scale::whole(h.oldest_waiting_secs.max(0.0))
        ),
    );
    tiles.insert("breaker", h.breaker.as_str().replace('_', " "));
    tiles
}

/// Value ticks that fit a chart's plot height.
const VALUE_TICKS: usize = 5;

fn draw(d: &Data, h: &HealthState, lag: &[(f64, f64)], now: f64, f: Frame) -> Snapshot {
    let mut charts = BTreeMap::new();
    let rate = scale::complete_buckets(&d.buckets, d.now);
    let rate_max = rate.iter().map(|p| p.1).fold(0.0, f64::max);
    charts.insert(
        "events-per-second",
        charts::line(
            f,
            &Line {
                title: "Events read per second",
                note: "10 s buckets; the one still filling is left out",
                points: &rate,
                from: d.now - scale::RATE_WINDOW_SECS as f64,
                to: d.now,
                y: ValueAxis::for_max(rate_max, 1.0, VALUE_TICKS),
                unit: Unit::PerSecond,
            },
        ),
    );
    let validity: Vec<(f64, f64)> = d.batches.iter().map(|b| (b.0, b.1 * 100.0)).collect();
    let first = validity.first().map_or(d.now, |b| b.0);
    charts.insert(
        "validity",
        charts::line(
            f,
            &Line {
                title: "Validity rate per batch",
                note: "valid share of each batch, last 120 batches",
                points: &validity,
                from: first.min(d.now - scale::RATE_WINDOW_SECS as f64),
                to: d.now,
                y: ValueAxis::fixed(100.0, 25.0),
                unit: Unit::Percent,
            },
        ),
    );
    let lag = scale::lag_series(lag, now);
    charts.insert(
        "ingest-lag",
        charts::line(
            f,
            &Line {
                title: "Ingest lag: oldest waiting file",
                note: "seconds it has waited, last 5 minutes",
                points: &lag,
                from: now - scale::LAG_WINDOW_SECS,
                to: now,
                y: scale::lag_axis(&lag, VALUE_TICKS),
                unit: Unit::Seconds,
            },
        ),
    );
    let bars = |rows: &[(String, f64)], text: fn(f64) -> String| -> Vec<Bar> {
        rows.iter()
            .map(|(label, v)| Bar {
                label: label.clone(),
                value: *v,
                text: text(*v),
            })
            .collect()
    };
    charts.insert(
        "dead-letters",
        charts::bars(
            f,
            "Dead letters by code",
            "rows rejected, all time, top 10",
            &bars(&d.dead_by_code, scale::whole),
        ),
    );
    charts.insert(
        "revenue",
        charts::bars(
            f,
            "Revenue by category",
            "sum of purchases in the data's currency, top 10",
            &bars(&d.revenue, scale::money),
        ),
    );
    charts.insert(
        "funnel",
        charts::bars(
            f,
            "Funnel: view → add_to_cart → purchase",
            "events of each type",
            &bars(&d.funnel, scale::whole),
        ),
    );
    Snapshot {
        tiles: tiles(d, h),
        charts,
        updated_unix: now,
        zone: scale::zone(f.offset),
    }
}

/// The dashboard's routes.
pub fn routes() -> Router<Arc<HttpState>> {
    Router::new()
        .route("/", get(page))
        .route("/api/dashboard", get(api))
}

async fn page() -> Html<&'static str> {
    Html(PAGE)
}

async fn api(
    State(s): State<Arc<HttpState>>,
    view: Result<Query<View>, QueryRejection>,
) -> Response {
    let Some(d) = &s.dashboard else {
        return (StatusCode::NOT_FOUND, "no dashboard\n").into_response();
    };
    let frame = view.map(|Query(v)| v).unwrap_or_default().frame();
    match d.snapshot(&s.health.snapshot(), frame).await {
        Ok(snap) => ([(header::CACHE_CONTROL, "no-store")], axum::Json(snap)).into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the database is not reachable: {e}\n"),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(width: &str, tz: &str) -> Frame {
        View {
            width: Some(width.into()),
            tz: Some(tz.into()),
        }
        .frame()
    }

    #[test]
    fn the_page_chooses_the_width_and_time_zone_within_bounds() {
        let f = view("731.6", "120");
        assert_eq!(f.width, 732);
        assert_eq!(f.offset.local_minus_utc(), 7200);
        assert_eq!(view("10", "-330").width, charts::MIN_WIDTH);
        assert_eq!(view("-330", "-330").offset.local_minus_utc(), -330 * 60);
        assert_eq!(view("99999", "0").width, charts::MAX_WIDTH);
        let junk = view("wide", "east");
        assert_eq!(junk.width, charts::DEFAULT_WIDTH);
        assert_eq!(junk.offset.local_minus_utc(), 0);
        assert_eq!(view("NaN", "100000").offset.local_minus_utc(), 0);
        assert_eq!(View::default().frame().width, charts::DEFAULT_WIDTH);
    }
}
