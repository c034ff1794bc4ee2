//! No secret leaks: a recognisable password (on a role of a password- and
//! TLS-protected server of the test's own), a bearer token and an ingest
//! password go through successful and failing runs, `--help`, both log
//! formats, the HTTP endpoint (metrics, health, dashboard), `migrate
//! --create-ingest-role` and a panic; no output holds any of them, in any
//! spelling. The server's own statement log never sees the ingest
//! password either. An alert webhook's URL is never printed, whether the
//! webhook answers or refuses.

mod common;

use std::process::Command;
use std::time::Duration;

use common::tls_server::{make_certs, TlsServer};
use common::{generate, http_request, shopstream, wait_for, Loader};

/// Every secret holds this fragment, so one search finds any of them, in
/// any encoding that keeps letters and digits.
const MARK: &str = "S3cret";
const PASSWORD: &str = "Sup3r-S3cret:Pa55/w'rd";
const WRONG: &str = "Wr0ng-S3cret-Pa55";
const TOKEN: &str = "T0ken-S3cret-0123456789";
const INGEST: &str = "Ingest-S3cret-Pa55";

/// What a command printed. (Not `{cmd:?}`: it shows the environment.)
fn output(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run shopstream");
    format!(
        "$ {:?}\n[exit {:?}]\n{}{}\n",
        cmd.get_args().collect::<Vec<_>>(),
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[track_caller]
fn assert_clean(what: &str, text: &str) {
    for needle in [MARK, "S3cr", "Pa55", "0123456789"] {
        assert!(
            !text.contains(needle),
            "{what}: found {needle:?} in:\n{text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn passwords_tokens_and_urls_never_reach_any_output() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let certs = make_certs(&tmp.path().join("certs"));
    let server = TlsServer::start(&certs);
    let admin = server.admin("postgres").await;
    admin
        .batch_execute(&format!(
            "CREATE ROLE loader LOGIN PASSWORD '{}'",
            PASSWORD.replace('\'', "''")
        ))
        .await
        .expect("role");
    admin
        .batch_execute("CREATE DATABASE shop OWNER loader")
        .await
        .expect("database");
    // From now on the server logs every statement it receives.
    for sql in [
        "ALTER SYSTEM SET log_statement = 'all'",
        "SELECT pg_reload_conf()",
    ] {
        admin.batch_execute(sql).await.expect("log_statement");
    }
    let good = server.url("loader", PASSWORD, "localhost", "shop", "sslmode=require");
    let wrong = server.url("loader", WRONG, "localhost", "shop", "sslmode=require");
    let input = tmp.path().join("in");
    generate(&input, 2, 50, 5, &[]);
    // Secrets only travel in the environment, never as arguments (which
    // other users of the machine can see).
    let mut all = String::new();

    // 1. A successful run, JSON logs at debug level, then text logs.
    all += &output(
        shopstream()
            .env("DATABASE_URL", &good)
            .args(["--log-level", "debug", "--log-format", "json"])
            .args(["run", "--once", "--input"])
            .arg(&input),
    );
    assert!(all.contains("\"files_loaded\":2"), "{all}");
    all += &output(
        shopstream()
            .env("DATABASE_URL", &good)
            .args(["--log-level", "debug", "run", "--once", "--input"])
            .arg(&input),
    );
    // The same URL as a key=value string, and the POSTGRES_* variables.
    let kv = format!(
        "host=localhost port={} user=loader dbname=shop sslmode=require password='{}'",
        server.port,
        PASSWORD.replace('\'', "\\'")
    );
    all += &output(
        shopstream()
            .env("DATABASE_URL", &kv)
            .args(["--log-level", "debug", "migrate"]),
    );
    assert!(all.contains("is at schema version"), "{all}");

    let refusing = common::HeldPort::new();
    // 2. Failures: wrong password, unreachable port, bad sslmode, invalid
    // URLs, POSTGRES_PASSWORD.
    for url in [
        wrong.clone(),
        server
            .url(
                "loader",
                PASSWORD,
                "127.0.0.1",
                "shop",
                "sslmode=require&connect_timeout=2",
            )
            .replace(
                &format!(":{}/", server.port),
                &format!(":{}/", refusing.port),
            ),
        server.url("loader", PASSWORD, "localhost", "shop", "sslmode=bogus"),
        format!("postgresql://loader:{PASSWORD}@localhost:notaport/shop"),
        format!("postgresql://loader:{PASSWORD}@localhost/shop?nosuchoption=1"),
        format!("host=localhost password={WRONG} nosuchkey=1"),
    ] {
        all += &output(
            shopstream()
                .env("DATABASE_URL", &url)
                .args(["--log-level", "debug", "--log-format", "json"])
                .args(["run", "--once", "--breaker-failures", "1", "--input"])
                .arg(&input),
        );
        all += &output(shopstream().env("DATABASE_URL", &url).arg("migrate"));
    }
    assert!(all.contains("password authentication failed"), "{all}");
    all += &output(
        shopstream()
            .env("POSTGRES_HOST", "localhost")
            .env("POSTGRES_PORT", server.port.to_string())
            .env("POSTGRES_USER", "loader")
            .env("POSTGRES_PASSWORD", WRONG)
            .env("POSTGRES_DB", "shop")
            .env("PGSSLMODE", "require")
            .arg("migrate"),
    );

    // 3. --help with every secret in the environment.
    for sub in ["run", "migrate", "demo", "report"] {
        let help = output(
            shopstream()
                .env("DATABASE_URL", &good)
                .env("POSTGRES_PASSWORD", PASSWORD)
                .env("SHOPSTREAM_HTTP_TOKEN", TOKEN)
                .env("SHOPSTREAM_INGEST_PASSWORD", INGEST)
                .args([sub, "--help"]),
        );
        assert!(help.contains("DATABASE_URL"), "{help}");
        all += &help;
    }

    // 4. The ingest role's password goes to the server as a verifier only.
    all += &output(
        shopstream()
            .env("DATABASE_URL", &good)
            .env("SHOPSTREAM_INGEST_PASSWORD", INGEST)
            .args(["migrate", "--create-ingest-role", "shop_ingest"]),
    );
    // ... (loader owns the database but may not create roles)
    admin
        .batch_execute("ALTER ROLE loader CREATEROLE")
        .await
        .expect("createrole");
    let created = output(
        shopstream()
            .env("DATABASE_URL", &good)
            .env("SHOPSTREAM_INGEST_PASSWORD", INGEST)
            .args(["migrate", "--create-ingest-role", "shop_ingest"]),
    );
    assert!(created.contains("created"), "{created}");
    all += &created;

    // 5. The HTTP endpoint of a working loader and of one that cannot log
    // in, with a token.
    for (url, ok) in [(&good, true), (&wrong, false)] {
        let loader = Loader::spawn(
            shopstream()
                .env("DATABASE_URL", url)
                .env("SHOPSTREAM_HTTP_TOKEN", TOKEN)
                .args(["--log-format", "json", "run", "--input"])
                .arg(&input)
                .args(["--retry-initial-secs", "0.1", "--breaker-failures", "2"])
                .args(["--breaker-open-secs", "0.5", "--relist-secs", "0.3"]),
        );
        wait_for(Duration::from_secs(60), "the endpoint", || async {
            loader.http_url().is_some()
        })
        .await;
        let base = loader.http_url().expect("url");
        let bearer = format!("Bearer {TOKEN}");
        let with = [("Authorization", bearer.as_str())];
        wait_for(
            Duration::from_secs(60),
            "a verdict on the database",
            || async {
                let (_, _, body) = http_request(&base, "GET", "/readyz", &with);
                if ok {
                    body.contains("\"ready\":true")
                } else {
                    body.contains("password authentication failed")
                }
            },
        )
        .await;
        for path in ["/metrics", "/readyz", "/api/dashboard", "/", "/healthz"] {
            let (status, head, body) = http_request(&base, "GET", path, &with);
            all += &format!("GET {path} -> {status}\n{head}\n{body}\n");
        }
        all += &loader.log();
        if ok {
            let summary = loader.stop();
            all += &summary.to_string();
        }
    }

    // 6. A panic whose message holds the URL.
    let panic = output(
        shopstream()
            .env("DATABASE_URL", &good)
            .env("SHOPSTREAM_DEBUG_PANIC", "1")
            .args(["run", "--once", "--input"])
            .arg(&input),
    );
    assert!(
        panic.contains("panicked") && panic.contains("***"),
        "{panic}"
    );
    all += &panic;

    assert_clean("shopstream's output", &all);
    let log = server.log();
    assert!(log.contains("ALTER ROLE"), "statements are logged: {log}");
    assert!(
        !log.contains(INGEST),
        "the ingest password reached the server in clear text"
    );
}

#[tokio::test]
async fn a_webhook_url_is_never_printed_whether_the_webhook_answers_or_not() {
    // The secret is the URL's path (Slack-style); only scheme://host may
    // show. One webhook answers, one refuses connections (its errors are
    // logged, retried once): both with every log line (debug), in both log
    // formats, the URL given as a flag and in the environment.
    let path = "/services/T000/B000/Hook-S3cret-0123456789";
    let (answering, bodies) = common::webhook_receiver();
    let refusing = common::HeldPort::new();
    let refusing_base = format!("http://{}", refusing.addr());
    for (base, answers, format, by_env) in [
        (answering.as_str(), true, "text", false),
        (answering.as_str(), true, "json", true),
        (refusing_base.as_str(), false, "text", true),
        (refusing_base.as_str(), false, "json", false),
    ] {
        let db = common::test_db().await;
        let tmp = tempfile::tempdir().expect("tmp");
        let input = tmp.path().join("in");
        std::fs::create_dir_all(&input).expect("mkdir");
        // A file that matches no layout: quarantined, and an alert fires.
        std::fs::write(input.join("bad.csv"), "who,what\n1,2\n").expect("write");
        let hook = format!("{base}{path}");
        let mut cmd = shopstream();
        cmd.args(["--log-level", "debug", "--log-format", format])
            .args(["run", "--once", "--database-url", &db.url, "--input"])
            .arg(&input);
        if by_env {
            cmd.env("SHOPSTREAM_ALERT_WEBHOOK", &hook);
        } else {
            cmd.args(["--alert-webhook", &hook]);
        }
        let before = bodies.lock().expect("bodies").len();
        let out = cmd.output().expect("run shopstream");
        let printed = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let what = format!("{base} {format} env={by_env}");
        assert!(out.status.success(), "{what}:\n{printed}");
        assert_clean(&what, &printed);
        assert!(!printed.contains("/services/"), "{what}:\n{printed}");
        let posted = bodies.lock().expect("bodies")[before..].to_vec();
        if answers {
            assert!(
                posted.iter().any(|b| b.contains("file_quarantined")),
                "{what}: the alert reached the webhook: {posted:?}"
            );
        } else {
            assert!(posted.is_empty(), "{what}: {posted:?}");
            // The failure is logged, naming the host only.
            assert!(
                printed.contains("cannot deliver the alert to the webhook"),
                "{what}:\n{printed}"
            );
            assert!(printed.contains(base), "{what}:\n{printed}");
        }
    }
}
