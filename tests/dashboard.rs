//! The live dashboard in a real browser: headless Chromium (Debian's
//! `chromium`, which `.ci/run` installs) keeps one page of a running
//! pipeline open, driven over the DevTools protocol (`--remote-debugging-
//! pipe`: JSON messages on file descriptors 3 and 4, no port, no extra
//! crate). The tiles and charts its script renders show the database's own
//! numbers, and when more files arrive the SAME page catches up by itself:
//! a marker set in it survives (no reload) while its own refresh count
//! grows and the new numbers appear.
//!
//! The page's layout is measured in the browser at a phone's width (400
//! px) and a wide screen's (1400 px): every chart fills its panel, no two
//! SVG text labels overlap (their `getBoundingClientRect()`s), none is cut
//! off, and nothing scrolls sideways. Screenshots of both widths go to the
//! test's temporary folder, and to `docs/img/` when
//! `SHOPSTREAM_UPDATE_SCREENSHOTS=1` (a test run never changes the tree
//! otherwise).

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

/// A pipe whose ends are not inherited by children (O_CLOEXEC): (read,
/// write).
fn pipe() -> (std::fs::File, std::fs::File) {
    use std::os::fd::FromRawFd;
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(rc, 0, "pipe2: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors are fresh and owned by nobody else.
    unsafe {
        (
            std::fs::File::from_raw_fd(fds[0]),
            std::fs::File::from_raw_fd(fds[1]),
        )
    }
}

/// Headless Chromium with one page open, spoken to over the DevTools
/// protocol on a pipe; killed when dropped.
struct Browser {
    child: std::process::Child,
    to: std::fs::File,
    from: std::sync::mpsc::Receiver<serde_json::Value>,
    next_id: u64,
    session: String,
}

impl Browser {
    /// Opens `url` in a fresh profile and attaches to its page.
    fn open(url: &str, profile: &Path) -> Browser {
        use std::io::BufRead;
        use std::os::fd::AsRawFd;
        use std::os::unix::process::CommandExt;
        // Chromium reads commands on fd 3 and writes replies on fd 4.
        let (cmd_read, cmd_write) = pipe();
        let (out_read, out_write) = pipe();
        let (r, w) = (cmd_read.as_raw_fd(), out_write.as_raw_fd());
        let mut cmd = Command::new(chromium());
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--remote-debugging-pipe",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
        // SAFETY: only async-signal-safe calls (fcntl, dup2) between fork
        // and exec. The ends are first moved above 10, so that placing one
        // on 3 or 4 never overwrites the other; dup2 clears O_CLOEXEC.
        unsafe {
            cmd.pre_exec(move || {
                let r = libc::fcntl(r, libc::F_DUPFD_CLOEXEC, 10);
                let w = libc::fcntl(w, libc::F_DUPFD_CLOEXEC, 10);
                if r < 0 || w < 0 || libc::dup2(r, 3) < 0 || libc::dup2(w, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("run chromium");
        drop((cmd_read, out_write));
        let (tx, from) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = std::io::BufReader::new(out_read);
            let mut buf = vec![];
            while reader.read_until(0, &mut buf).is_ok_and(|n| n > 0) {
                if buf.last() == Some(&0) {
                    buf.pop();
                }
                if let Ok(v) = serde_json::from_slice(&buf) {
                    if tx.send(v).is_err() {
                        return;
                    }
                }
                buf.clear();
            }
        });
        let mut b = Browser {
            child,
            to: cmd_write,
            from,
            next_id: 0,
            session: String::new(),
        };
        let start = std::time::Instant::now();
        let target = loop {
            let targets = b.call("Target.getTargets", serde_json::json!({}));
            let page = targets["targetInfos"].as_array().and_then(|ts| {
                ts.iter()
                    .find(|t| {
                        t["type"] == "page" && t["url"].as_str().is_some_and(|u| u.starts_with(url))
                    })
                    .map(|t| t["targetId"].clone())
            });
            if let Some(id) = page {
                break id;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "no page for {url}: {targets}"
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        let attached = b.call(
            "Target.attachToTarget",
            serde_json::json!({ "targetId": target, "flatten": true }),
        );
        b.session = attached["sessionId"]
            .as_str()
            .expect("a session")
            .to_string();
        b
    }

    /// Sends one command (to the page once attached) and waits for its
    /// result.
    fn call(&mut self, method: &str, params: serde_json::Value) -> serde_json::Value {
        use std::io::Write;
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = serde_json::json!({ "id": id, "method": method, "params": params });
        if !self.session.is_empty() {
            msg["sessionId"] = self.session.clone().into();
        }
        let mut bytes = serde_json::to_vec(&msg).expect("json");
        bytes.push(0);
        self.to.write_all(&bytes).expect("send to chromium");
        loop {
            let reply = self
                .from
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|e| panic!("no reply from chromium to {method}: {e}"));
            if reply["id"] == id {
                assert!(reply["error"].is_null(), "{method}: {reply}");
                return reply["result"].clone();
            }
        }
    }

    /// The value of a JavaScript expression in the page.
    fn eval(&mut self, expression: &str) -> serde_json::Value {
        let r = self.call(
            "Runtime.evaluate",
            serde_json::json!({ "expression": expression, "returnByValue": true }),
        );
        r["result"]["value"].clone()
    }

    /// Waits until `expression` is true in the page.
    async fn wait(&mut self, what: &str, expression: &str) {
        let start = std::time::Instant::now();
        while self.eval(expression) != serde_json::Value::Bool(true) {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "timed out waiting for {what} in the page"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The page's DOM as it is now.
    fn dom(&mut self) -> String {
        self.eval("document.documentElement.outerHTML")
            .as_str()
            .expect("the DOM")
            .to_string()
    }

    /// Lays the page out `width` × `height` CSS pixels (a window resize
    /// for the page's script).
    fn size(&mut self, width: u32, height: u32) {
        self.call(
            "Emulation.setDeviceMetricsOverride",
            serde_json::json!({
                "width": width, "height": height, "deviceScaleFactor": 1, "mobile": false
            }),
        );
    }

    /// A PNG of the whole page (not only the window) at `path`.
    fn screenshot(&mut self, path: &Path) {
        use base64::Engine;
        let width = self.eval("window.innerWidth");
        let height = self.eval("document.documentElement.scrollHeight");
        let shot = self.call(
            "Page.captureScreenshot",
            serde_json::json!({
                "format": "png",
                "captureBeyondViewport": true,
                "clip": { "x": 0, "y": 0, "width": width, "height": height, "scale": 1 }
            }),
        );
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("image data"))
            .expect("base64 PNG");
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        std::fs::write(path, png).expect("write the screenshot");
    }

    fn refreshes(&mut self) -> u64 {
        self.eval("Number(document.body.dataset.refreshes || 0)")
            .as_u64()
            .expect("a count")
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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

/// Measures the page as laid out now: per chart panel, whether its SVG
/// fills at least 90 % of the panel's width; every pair of SVG text labels
/// whose boxes overlap (by more than half a pixel); labels reaching out of
/// their SVG; and how far the page scrolls sideways.
const LAYOUT: &str = r#"(() => {
  const out = { charts: 0, narrow: [], overlaps: [], outside: [],
                sideways: document.documentElement.scrollWidth - document.documentElement.clientWidth };
  const e = 0.5;
  for (const panel of document.querySelectorAll(".chart")) {
    const svg = panel.querySelector("svg");
    if (!svg) { out.narrow.push(panel.id + ": no chart"); continue; }
    out.charts++;
    const box = svg.getBoundingClientRect();
    if (box.width < 0.9 * panel.clientWidth)
      out.narrow.push(`${panel.id}: ${box.width} of ${panel.clientWidth} px`);
    const texts = [...svg.querySelectorAll("text")]
      .map(t => ({ text: t.firstChild ? t.firstChild.textContent.trim() : "", r: t.getBoundingClientRect() }))
      .filter(t => t.text !== "" && t.r.width > 0);
    for (const t of texts) {
      if (t.r.left < box.left - e || t.r.right > box.right + e
          || t.r.top < box.top - e || t.r.bottom > box.bottom + e)
        out.outside.push(`${panel.id}: "${t.text}"`);
    }
    for (let i = 0; i < texts.length; i++) {
      for (let j = i + 1; j < texts.length; j++) {
        const a = texts[i].r, b = texts[j].r;
        if (a.left < b.right - e && b.left < a.right - e && a.top < b.bottom - e && b.top < a.bottom - e)
          out.overlaps.push(`${panel.id}: "${texts[i].text}" and "${texts[j].text}"`);
      }
    }
  }
  return out;
})()"#;

/// True once every chart is drawn for the width of its panel (the page
/// asks the server for it).
const DRAWN_FOR_PANELS: &str = r#"(() => {
  const svgs = [...document.querySelectorAll(".chart svg")];
  return svgs.length === 6
    && svgs.every(s => s.viewBox.baseVal.width === s.parentElement.clientWidth);
})()"#;

/// `1,234` / `12`: a whole number with thousands separators.
fn is_whole(s: &str) -> bool {
    let groups: Vec<&str> = s.split(',').collect();
    !s.is_empty()
        && groups.iter().all(|g| g.chars().all(|c| c.is_ascii_digit()))
        && (1..=3).contains(&groups[0].len())
        && groups[1..].iter().all(|g| g.len() == 3)
}

/// `HH:MM` or `HH:MM:SS` as minutes of the day.
fn clock_minutes(s: &str) -> Option<i64> {
    let parts: Vec<&str> = s.split(':').collect();
    if !(2..=3).contains(&parts.len()) || parts.iter().any(|p| p.len() != 2) {
        return None;
    }
    let h: i64 = parts[0].parse().ok()?;
    let m: i64 = parts[1].parse().ok()?;
    Some(h * 60 + m)
}

/// Rows for the layout: dead letters under eight codes (long names side by
/// side), revenue in the hundreds of thousands, a long category name.
fn varied_file(dir: &Path) {
    let t = "2026-01-01 10:00:00";
    let mut rows = vec![
        format!("00000000-0000-4000-8000-000000000101,u1,s1,purchase,p1,electronics,9999.99,50,{t}"),
        format!("00000000-0000-4000-8000-000000000102,u1,s1,purchase,p2,home_garden_and_outdoor_living,19.99,3,{t}"),
        format!("00000000-0000-4000-8000-000000000103,u2,s2,purchase,p3,sports,250.00,2,{t}"),
        format!(",u1,s1,view,p1,books,,1,{t}"),
        format!("00000000-0000-4000-8000-000000000104,u1,s1,teleport,p1,books,,1,{t}"),
        format!("00000000-0000-4000-8000-000000000105,u1,s1,purchase,p1,books,-5.00,1,{t}"),
        format!("00000000-0000-4000-8000-000000000106,u1,s1,purchase,p1,books,20000.00,1,{t}"),
        format!("00000000-0000-4000-8000-000000000107,u1,s1,purchase,p1,books,5.00,many,{t}"),
        "00000000-0000-4000-8000-000000000108,u1,s1,view,p1,books,,1,yesterday".to_string(),
        format!("00000000-0000-4000-8000-000000000109,u1,s1,view,,books,,1,{t}"),
    ];
    rows.extend(
        (110..140).map(|n| format!("00000000-0000-4000-8000-{n:012},u1,s1,view,p1,books,,1,{t}")),
    );
    std::fs::write(
        dir.join("c.csv"),
        format!("{HEADER}\n{}\n", rows.join("\n")),
    )
    .expect("write");
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

    let mut page = Browser::open(&format!("{url}/"), &tmp.path().join("profile"));
    // The page refreshes itself (every 2 s).
    page.wait(
        "two refreshes",
        "Number(document.body.dataset.refreshes || 0) >= 2",
    )
    .await;
    let dom = page.dom();
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

    // More events arrive. The same page, never reloaded (the marker set
    // in it survives), shows them after refreshes of its own.
    page.eval("window.shopstreamTestMarker = 'still the first load'; true");
    let before = page.refreshes();
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
    page.wait(
        "19 events on the tile",
        "document.getElementById('total-events').textContent.trim() === '19'",
    )
    .await;
    assert_eq!(
        page.eval("window.shopstreamTestMarker"),
        "still the first load",
        "the page was not reloaded"
    );
    let after = page.refreshes();
    assert!(after > before, "refreshes {before} -> {after}");
    let dom = page.dom();
    assert_eq!(tile(&dom, "total-events"), "19");
    let revenue = chart_texts(&dom, "revenue");
    assert!(
        revenue.iter().any(|x| x == "garden") && revenue.iter().any(|x| x == "50.00"),
        "{revenue:?}"
    );
    drop(page);
    loader.assert_alive();
    loader.stop();
}

/// Lays the page out `width` px wide, waits for charts drawn for it and
/// checks its layout.
async fn check_layout(page: &mut Browser, width: u32) {
    page.size(width, 900);
    page.wait(&format!("charts drawn for {width} px"), DRAWN_FOR_PANELS)
        .await;
    let layout = page.eval(LAYOUT);
    assert_eq!(layout["charts"], 6, "at {width} px: {layout}");
    for defect in ["narrow", "overlaps", "outside"] {
        assert_eq!(
            layout[defect],
            serde_json::json!([]),
            "{defect} at {width} px: {layout}"
        );
    }
    assert!(
        layout["sideways"].as_f64().is_some_and(|s| s <= 0.0),
        "the page scrolls sideways at {width} px: {layout}"
    );
}

/// A screenshot `name` in `dir`, copied to `docs/img/` for the docs when
/// `SHOPSTREAM_UPDATE_SCREENSHOTS=1`.
fn shoot(page: &mut Browser, dir: &Path, name: &str) {
    page.screenshot(&dir.join(name));
    if std::env::var_os("SHOPSTREAM_UPDATE_SCREENSHOTS").is_some_and(|v| v == "1") {
        let docs_img = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/img");
        std::fs::create_dir_all(&docs_img).expect("mkdir docs/img");
        std::fs::copy(dir.join(name), docs_img.join(name)).expect("copy to docs/img");
    }
}

/// The line charts' ticks: clock times of the last minutes in the
/// browser's zone (`local_now`, minutes of its day) and whole numbers with
/// separators and units.
fn check_ticks(dom: &str, local_now: i64) {
    for (chart, unit, window) in [
        ("events-per-second", "/s", 11),
        ("validity", "%", 11),
        ("ingest-lag", " s", 6),
    ] {
        let texts = chart_texts(dom, chart);
        let (mut values, mut times) = (vec![], vec![]);
        // The title and the note first, then the ticks.
        for t in &texts[2..] {
            if let Some(m) = clock_minutes(t) {
                let ago = (local_now - m).rem_euclid(24 * 60);
                assert!(
                    ago <= window,
                    "{chart}: {t} is not in the last {window} minutes here"
                );
                times.push(t);
            } else {
                let n = t
                    .strip_suffix(unit)
                    .unwrap_or_else(|| panic!("{chart}: {t:?} in {unit}"));
                assert!(is_whole(n), "{chart}: {t:?} is not a whole number");
                values.push(t.clone());
            }
        }
        assert!(times.len() >= 3, "{chart}: clock ticks in {texts:?}");
        assert!(values.len() >= 2, "{chart}: value ticks in {texts:?}");
        if chart == "ingest-lag" {
            // Nothing waits: 0 to 1 s, never negative.
            assert_eq!(values, ["0 s", "1 s"], "{texts:?}");
        }
    }
}

/// A dark system setting turns page and charts dark.
fn check_dark(page: &mut Browser) {
    let colours = |page: &mut Browser| {
        (
            page.eval("getComputedStyle(document.body).backgroundColor"),
            page.eval("getComputedStyle(document.querySelector('#chart-funnel svg text')).fill"),
        )
    };
    let light = colours(page);
    page.call(
        "Emulation.setEmulatedMedia",
        serde_json::json!({ "features": [{ "name": "prefers-color-scheme", "value": "dark" }] }),
    );
    let dark = colours(page);
    assert_eq!(light.0, "rgb(246, 247, 249)");
    assert_eq!(light.1, "rgb(29, 35, 48)");
    assert_eq!(dark.0, "rgb(17, 20, 24)");
    assert_eq!(dark.1, "rgb(228, 232, 239)");
}

#[tokio::test]
async fn the_page_fits_a_phone_and_a_wide_screen_and_no_labels_overlap() {
    let db = test_db().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("in");
    std::fs::create_dir_all(&input).expect("mkdir");
    first_file(&input);
    varied_file(&input);
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
    wait_files(&db, 2).await;
    let codes = count(
        &db,
        "SELECT count(DISTINCT key) FROM data_quality_metrics, jsonb_each_text(rejects_by_code)",
    )
    .await;
    assert!(codes >= 7, "dead letters under {codes} codes");
    let url = loader.http_url().expect("the endpoint's URL in the log");
    let mut page = Browser::open(&format!("{url}/"), &tmp.path().join("profile"));
    // Clock times follow the browser's time zone (+05:30 is no whole hour
    // off UTC, so a chart in UTC cannot pass for it).
    page.call(
        "Emulation.setTimezoneOverride",
        serde_json::json!({ "timezoneId": "Asia/Kolkata" }),
    );
    // The files' rows show once their 10 s bucket is complete (the one
    // still filling is left out): at least 2 rows/s, where before they
    // came the axis ran to 1/s.
    page.wait(
        "the events of the files on the events/s chart",
        r#"[...document.querySelectorAll('#chart-events-per-second text')]
             .some(t => /^[0-9,]+\/s$/.test(t.textContent.trim())
                        && Number(t.textContent.trim().replace(/[,/s]/g, '')) >= 2)"#,
    )
    .await;
    for width in [400, 1400] {
        check_layout(&mut page, width).await;
        shoot(&mut page, tmp.path(), &format!("dashboard-{width}.png"));
    }

    // At 1400 px: whole-number ticks with separators and units, money with
    // cents, and clock times of the browser's zone.
    page.wait(
        "the browser's zone named",
        "document.getElementById('note').textContent.includes('UTC+05:30')",
    )
    .await;
    let dom = page.dom();
    let revenue = chart_texts(&dom, "revenue");
    assert!(revenue.iter().any(|x| x == "499,999.50"), "{revenue:?}");
    assert!(
        revenue
            .iter()
            .any(|x| x == "home_garden_and_outdoor_living"),
        "{revenue:?}"
    );
    let local_now = page
        .eval("(d => d.getHours() * 60 + d.getMinutes())(new Date())")
        .as_i64()
        .expect("minutes");
    check_ticks(&dom, local_now);
    check_dark(&mut page);
    shoot(&mut page, tmp.path(), "dashboard-1400-dark.png");
    drop(page);
    loader.assert_alive();
    loader.stop();
}
