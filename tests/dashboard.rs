//! The live dashboard in a real browser: headless Chromium (Debian's
//! `chromium`, which `.ci/run` installs) loads the page of a running
//! pipeline, runs its script, and the tiles and charts it renders show the
//! database's own numbers; when more files arrive, the page catches up by
//! itself.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{count, shopstream, test_db, try_count, wait_for, Loader, TestDb};

const HEADER: &str =
    "event_id,user_id,session_id,event_type,product_id,category,price,quantity,event_time";

fn row(n: u32, kind: &str, category: &str, price: &str, qty: u32) -> String {
    format!(
        "00000000-0000-4000-8000-{n:012},u{},s1,{kind},p{n},{category},{price},{qty},2026-01-01 10:00:00",
        n % 3
    )
}

/// Four views, two carts, three purchases: books 2 × 10.00 + 1 × 10.00,
/// toys 1 × 12.50.
fn first_file(dir: &Path) {
    let rows = [
        row(1, "view", "books", "", 1),
        row(2, "view", "books", "", 1),
        row(3, "view", "toys", "", 1),
        row(4, "view", "toys", "", 1),
        row(5, "add_to_cart", "books", "10.00", 1),
        row(6, "add_to_cart", "toys", "12.50", 1),
        row(7, "purchase", "books", "10.00", 2),
        row(8, "purchase", "books", "10.00", 1),
        row(9, "purchase", "toys", "12.50", 1),
        "not-a-uuid,u1,s1,view,p9,books,,1,2026-01-01 10:00:00".to_string(),
    ];
    std::fs::write(
        dir.join("a.csv"),
        format!("{HEADER}\n{}\n", rows.join("\n")),
    )
    .expect("write");
}

fn chromium() -> String {
    if let Ok(p) = std::env::var("CHROMIUM") {
        return p;
    }
    for p in [
        "/usr/bin/chromium",
        "/usr/bin/chromium-browser",
        "/usr/bin/google-chrome",
    ] {
        if Path::new(p).exists() {
            return p.to_string();
        }
    }
    panic!("headless Chromium is needed for this test: apt-get install chromium (.ci/run does), or set CHROMIUM");
}

/// The page's DOM after its script has run.
fn dump_dom(url: &str, profile: &Path) -> String {
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(["--dump-dom", url])
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The text of the element with `id` (up to its first tag).
fn tile(dom: &str, id: &str) -> String {
    let start = dom
        .find(&format!("id=\"{id}\">"))
        .unwrap_or_else(|| panic!("#{id} in the page"));
    let rest = &dom[start..];
    let from = rest.find('>').map_or(0, |i| i + 1);
    rest[from..rest.find('<').unwrap_or(rest.len())]
        .trim()
        .to_string()
}

/// The texts drawn in the chart `name` (its SVG `<text>` elements).
fn chart_texts(dom: &str, name: &str) -> Vec<String> {
    let start = dom
        .find(&format!("id=\"chart-{name}\""))
        .unwrap_or_else(|| panic!("chart {name} in the page"));
    let end = dom[start..].find("</svg>").map_or(dom.len(), |i| start + i);
    dom[start..end]
        .split("<text")
        .skip(1)
        .filter_map(|t| {
            let body = &t[t.find('>')? + 1..];
            Some(body[..body.find("</text>")?].trim().to_string())
        })
        .collect()
}

async fn wait_files(db: &TestDb, n: i64) {
    wait_for(Duration::from_secs(60), "files in the ledger", || async {
        try_count(db, "SELECT count(*) FROM ingested_files").await == Some(n)
    })
    .await;
}

#[tokio::test]
async fn headless_chromium_sees_the_databases_numbers_and_the_page_updates_itself() {
    let db = test_db().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("in");
    std::fs::create_dir_all(&input).expect("mkdir");
    first_file(&input);
    let mut loader = Loader::spawn(
        shopstream()
            .args([
                "run",
                "--database-url",
                &db.url,
                "--relist-secs",
                "0.3",
                "--input",
            ])
            .arg(&input),
    );
    wait_files(&db, 1).await;
    let url = loader.http_url().expect("the endpoint's URL in the log");

    let dom = dump_dom(&format!("{url}/"), &tmp.path().join("profile"));
    // The page refreshes itself (every 2 s; the browser ran it for 5 s).
    let refreshes: u32 = dom
        .split("data-refreshes=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(refreshes >= 2, "the page refreshed {refreshes} time(s)");
    let events = count(&db, "SELECT count(*) FROM ecommerce_events").await;
    assert_eq!(events, 9);
    assert_eq!(tile(&dom, "total-events"), "9", "{dom}");
    assert_eq!(tile(&dom, "dead-letters"), "1");
    assert_eq!(tile(&dom, "files-loaded"), "1");
    assert_eq!(tile(&dom, "validity"), "90.00%");
    assert_eq!(tile(&dom, "breaker"), "closed");

    let revenue = chart_texts(&dom, "revenue");
    for t in ["Revenue by category", "books", "30.00", "toys", "12.50"] {
        assert!(revenue.iter().any(|x| x == t), "{t} in {revenue:?}");
    }
    let funnel = chart_texts(&dom, "funnel");
    for t in ["view", "4", "add_to_cart", "2", "purchase", "3"] {
        assert!(funnel.iter().any(|x| x == t), "{t} in {funnel:?}");
    }
    let dead = chart_texts(&dom, "dead-letters");
    assert!(dead.iter().any(|x| x == "invalid_event_id"), "{dead:?}");
    for name in ["events-per-second", "validity", "ingest-lag"] {
        assert!(!chart_texts(&dom, name).is_empty(), "chart {name} is drawn");
    }

    // More events arrive; a fresh look shows them.
    let more: Vec<String> = (10..20)
        .map(|n| row(n, "purchase", "garden", "5.00", 1))
        .collect();
    std::fs::write(
        input.join(".b.csv.tmp"),
        format!("{HEADER}\n{}\n", more.join("\n")),
    )
    .expect("write");
    std::fs::rename(input.join(".b.csv.tmp"), input.join("b.csv")).expect("publish");
    wait_files(&db, 2).await;
    let dom = dump_dom(&format!("{url}/"), &tmp.path().join("profile"));
    assert_eq!(tile(&dom, "total-events"), "19");
    let revenue = chart_texts(&dom, "revenue");
    assert!(
        revenue.iter().any(|x| x == "garden") && revenue.iter().any(|x| x == "50.00"),
        "{revenue:?}"
    );
    loader.assert_alive();
    loader.stop();
}
