//! The live dashboard in a real browser: headless Chromium (Debian's
//! `chromium`, which `.ci/run` installs) keeps one page of a running
//! pipeline open, driven over the DevTools protocol (`--remote-debugging-
//! pipe`: JSON messages on file descriptors 3 and 4, no port, no extra
//! crate). The tiles and charts its script renders show the database's own
//! numbers, and when more files arrive the SAME page catches up by itself:
//! a marker set in it survives (no reload) while its own refresh count
//! grows and the new numbers appear.

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
