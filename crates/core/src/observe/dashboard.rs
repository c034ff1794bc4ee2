//! The live dashboard at `/`: tiles (events loaded, dead letters, files,
//! validity, ingest lag, circuit breaker) and charts of events per second,
//! validity rate, dead letters by code, revenue by category, the
//! view → add_to_cart → purchase funnel, and ingest lag.
//!
//! The page is one static HTML file with a few lines of our own script that
//! fetch `/api/dashboard` every two seconds and swap the numbers and charts
//! in. The charts are SVG drawn on the server with `plotters` from the
//! database's tables (and the loader's health for the lag), so the page
//! needs no JavaScript library. It only reads: it never writes to the
//! database and never blocks the loader (its own connection, short
//! queries).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use plotters::prelude::*;
use tokio_postgres::Client;

use super::health::HealthState;
use super::http::HttpState;
use crate::db::connect::{Connector, DbError};

const PAGE: &str = include_str!("dashboard.html");
/// Lag samples kept for the lag chart (one per refresh).
const LAG_HISTORY: usize = 300;

/// Where the dashboard reads its numbers.
#[derive(Clone)]
pub struct Dashboard {
    connector: Connector,
    client: Arc<tokio::sync::Mutex<Option<Client>>>,
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
}

impl Dashboard {
    pub fn new(db: &crate::db::connect::Database) -> Dashboard {
        Dashboard {
            connector: db.connector(),
            client: Arc::new(tokio::sync::Mutex::new(None)),
            lag: Arc::new(Mutex::new(VecDeque::new())),
        }
    }

    /// Reads the numbers and draws the charts.
    pub async fn snapshot(&self, health: &HealthState) -> Result<Snapshot, SnapshotError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let lag: Vec<(f64, f64)> = {
            let mut h = match self.lag.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            h.push_back((now, health.oldest_waiting_secs));
            while h.len() > LAG_HISTORY {
                h.pop_front();
            }
            h.iter().map(|&(t, v)| (t - now, v)).collect()
        };
        let mut guard = self.client.lock().await;
        let client = match guard.take() {
            Some(c) if !c.is_closed() => c,
            _ => self.connector.connect().await?,
        };
        let data = read(&client).await?;
        // Kept only after a successful read.
        *guard = Some(client);
        Ok(draw(&data, health, &lag, now))
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
    events: i64,
    dead_letters: i64,
    files_loaded: i64,
    files_rejected: i64,
    /// Per batch, oldest first: (seconds ago, validity).
    batches: Vec<(f64, f64)>,
    /// Rows read per second in 10 s buckets over the last 10 minutes:
    /// (seconds ago, rate).
    rate: Vec<(f64, f64)>,
    /// Rows read per second over the last minute.
    rate_last_minute: f64,
    dead_by_code: Vec<(String, f64)>,
    revenue: Vec<(String, f64)>,
    funnel: Vec<(String, f64)>,
}

async fn read(c: &Client) -> Result<Data, tokio_postgres::Error> {
    let t = c
        .query_one(
            "SELECT (SELECT count(*) FROM ecommerce_events),
                    (SELECT count(*) FROM dead_letter_events),
                    (SELECT count(*) FROM ingested_files WHERE status = 'loaded'),
                    (SELECT count(*) FROM ingested_files WHERE status = 'rejected')",
            &[],
        )
        .await?;
    let mut batches: Vec<(f64, f64)> = c
        .query(
            "SELECT extract(epoch FROM committed_at - now())::float8,
                    coalesce(validity_rate, 1)::float8
             FROM data_quality_metrics ORDER BY batch_id DESC LIMIT 120",
            &[],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    batches.reverse();
    let rate: Vec<(f64, f64)> = c
        .query(
            "SELECT extract(epoch FROM to_timestamp(floor(extract(epoch FROM committed_at) / 10) * 10)
                                       - now())::float8 AS ago,
                    sum(rows_read)::float8 / 10
             FROM data_quality_metrics WHERE committed_at > now() - interval '10 minutes'
             GROUP BY 1 ORDER BY 1",
            &[],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let rate_last_minute: f64 = c
        .query_one(
            "SELECT coalesce(sum(rows_read), 0)::float8 / 60 FROM data_quality_metrics
             WHERE committed_at > now() - interval '1 minute'",
            &[],
        )
        .await?
        .get(0);
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
        events: t.get(0),
        dead_letters: t.get(1),
        files_loaded: t.get(2),
        files_rejected: t.get(3),
        batches,
        rate,
        rate_last_minute,
        dead_by_code,
        revenue,
        funnel,
    })
}

fn draw(d: &Data, h: &HealthState, lag: &[(f64, f64)], now: f64) -> Snapshot {
    let mut tiles = BTreeMap::new();
    tiles.insert("total-events", d.events.to_string());
    tiles.insert("dead-letters", d.dead_letters.to_string());
    tiles.insert("files-loaded", d.files_loaded.to_string());
    tiles.insert("files-quarantined", d.files_rejected.to_string());
    tiles.insert(
        "validity",
        d.batches
            .last()
            .map_or("–".into(), |b| format!("{:.2}%", b.1 * 100.0)),
    );
    tiles.insert("events-per-second", format!("{:.0}", d.rate_last_minute));
    tiles.insert(
        "ingest-lag",
        format!(
            "{} file(s), {:.0} s",
            h.waiting_files, h.oldest_waiting_secs
        ),
    );
    tiles.insert("breaker", h.breaker.as_str().replace('_', " "));

    let mut charts = BTreeMap::new();
    let validity: Vec<(f64, f64)> = d.batches.iter().map(|b| (b.0, b.1 * 100.0)).collect();
    charts.insert(
        "events-per-second",
        line_chart("Events read per second (10 s buckets)", &d.rate, "s ago"),
    );
    charts.insert(
        "validity",
        line_chart("Validity rate, % (per batch)", &validity, "s ago"),
    );
    charts.insert(
        "dead-letters",
        bar_chart("Dead letters by code", &d.dead_by_code, 0),
    );
    charts.insert("revenue", bar_chart("Revenue by category", &d.revenue, 2));
    charts.insert(
        "funnel",
        bar_chart("Funnel: view → add_to_cart → purchase", &d.funnel, 0),
    );
    charts.insert(
        "ingest-lag",
        line_chart("Ingest lag: oldest waiting file, s", lag, "s ago"),
    );
    Snapshot {
        tiles,
        charts,
        updated_unix: now,
    }
}

const W: u32 = 520;
const H: u32 = 260;

/// A line chart of (x, y) points; the caption says what it is. Drawing
/// into a String cannot fail for lack of resources; a failure leaves the
/// chart empty rather than failing the page.
fn line_chart(title: &str, points: &[(f64, f64)], x_desc: &str) -> String {
    let mut svg = String::new();
    let _ = draw_line(&mut svg, title, points, x_desc);
    svg
}

fn draw_line(
    svg: &mut String,
    title: &str,
    points: &[(f64, f64)],
    x_desc: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::with_string(svg, (W, H)).into_drawing_area();
    root.fill(&WHITE)?;
    let x0 = points.iter().map(|p| p.0).fold(f64::INFINITY, f64::min);
    let x0 = if x0.is_finite() { x0.min(-1.0) } else { -60.0 };
    let y1 = points.iter().map(|p| p.1).fold(0.0, f64::max).max(1.0) * 1.1;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 15))
        .margin(8)
        .x_label_area_size(28)
        .y_label_area_size(56)
        .build_cartesian_2d(x0..0.0, 0.0..y1)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .max_light_lines(0)
        .draw()?;
    chart.draw_series(LineSeries::new(
        points.iter().copied(),
        BLUE.stroke_width(2),
    ))?;
    chart.draw_series(points.iter().map(|&p| Circle::new(p, 2, BLUE.filled())))?;
    if let Some(&(x, y)) = points.last() {
        chart.draw_series(std::iter::once(Text::new(
            format!("{y:.1}"),
            (x, y),
            ("sans-serif", 13).into_font().color(&BLACK),
        )))?;
    }
    root.present()?;
    Ok(())
}

/// A bar chart with each bar's value written above it.
fn bar_chart(title: &str, bars: &[(String, f64)], decimals: usize) -> String {
    let mut svg = String::new();
    let _ = draw_bars(&mut svg, title, bars, decimals);
    svg
}

fn draw_bars(
    svg: &mut String,
    title: &str,
    bars: &[(String, f64)],
    decimals: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::with_string(svg, (W, H)).into_drawing_area();
    root.fill(&WHITE)?;
    let n = bars.len().max(1) as f64;
    let y1 = bars.iter().map(|b| b.1).fold(0.0, f64::max).max(1.0) * 1.2;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 15))
        .margin(8)
        .x_label_area_size(10)
        .y_label_area_size(56)
        .build_cartesian_2d(0.0..n, 0.0..y1)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .disable_x_axis()
        .max_light_lines(0)
        .draw()?;
    chart.draw_series(bars.iter().enumerate().map(|(i, (_, v))| {
        let x = i as f64;
        Rectangle::new([(x + 0.15, 0.0), (x + 0.85, *v)], BLUE.mix(0.6).filled())
    }))?;
    let font = ("sans-serif", 12).into_font().color(&BLACK);
    for (i, (label, v)) in bars.iter().enumerate() {
        let x = i as f64 + 0.15;
        chart.draw_series(std::iter::once(Text::new(
            format!("{v:.decimals$}"),
            (x, v + y1 * 0.03),
            font.clone(),
        )))?;
        chart.draw_series(std::iter::once(Text::new(
            label.clone(),
            (x, y1 * 0.97),
            font.clone(),
        )))?;
    }
    if bars.is_empty() {
        chart.draw_series(std::iter::once(Text::new(
            "no data yet".to_string(),
            (0.4, y1 / 2.0),
            font,
        )))?;
    }
    root.present()?;
    Ok(())
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

async fn api(State(s): State<Arc<HttpState>>) -> Response {
    let Some(d) = &s.dashboard else {
        return (StatusCode::NOT_FOUND, "no dashboard\n").into_response();
    };
    match d.snapshot(&s.health.snapshot()).await {
        Ok(snap) => ([(header::CACHE_CONTROL, "no-store")], axum::Json(snap)).into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the database is not reachable: {e}\n"),
        )
            .into_response(),
    }
}
