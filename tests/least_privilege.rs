//! Least privilege: `shopstream migrate --create-ingest-role` makes a role
//! that `run` works under (files load, are archived and quarantined) but
//! that cannot drop, alter, truncate or delete; when the schema is behind,
//! `run` under it says to migrate as the owner instead of trying.

mod common;

use std::str::FromStr;

use common::{generate, load_once, run_ok, shopstream, test_db};
use shopstream::db::connect::config_to_url;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Config, NoTls};

#[tokio::test(flavor = "multi_thread")]
async fn ingest_role_loads_but_cannot_change_or_empty_tables() {
    let db = test_db().await;
    let role = format!("{}_ingest", db.name);
    let password = "ingest-Pa55-word";

    // The SQL for an administrator: the grants, never the password.
    let sql = run_ok(
        shopstream()
            .env("SHOPSTREAM_INGEST_PASSWORD", password)
            .args(["migrate", "--database-url", &db.url])
            .args(["--create-ingest-role", &role, "--print-ingest-role-sql"]),
    );
    assert!(
        sql.contains("GRANT CONNECT, TEMPORARY ON DATABASE"),
        "{sql}"
    );
    assert!(sql.contains("UPDATE (disposition, moved_to)"), "{sql}");
    assert!(!sql.contains(password), "{sql}");
    assert!(
        sql.lines()
            .filter(|l| !l.trim().is_empty())
            .all(|l| !l.contains(" is at schema version") || l.starts_with("-- ")),
        "stdout stays a valid SQL script: {sql}"
    );

    let out = run_ok(
        shopstream()
            .env("SHOPSTREAM_INGEST_PASSWORD", password)
            .args(["migrate", "--database-url", &db.url])
            .args(["--create-ingest-role", &role]),
    );
    assert!(
        out.contains(&format!("ingest role {role} created")),
        "{out}"
    );
    assert!(out.contains("password set"), "{out}");
    // Idempotent: a second run resets the grants.
    let out = run_ok(
        shopstream()
            .args(["migrate", "--database-url", &db.url])
            .args(["--create-ingest-role", &role]),
    );
    assert!(out.contains("reset") && out.contains("unchanged"), "{out}");

    // The password was stored as a SCRAM verifier.
    let owner = db.client().await;
    let stored: Option<String> = owner
        .query_one(
            "SELECT rolpassword FROM pg_authid WHERE rolname = $1",
            &[&role],
        )
        .await
        .expect("pg_authid")
        .get(0);
    assert!(
        stored
            .as_deref()
            .is_some_and(|s| s.starts_with("SCRAM-SHA-256$")),
        "{stored:?}"
    );

    // `run` under the role: valid, invalid, duplicate rows, a rejected
    // file, archive after the load.
    let mut config = db.config();
    config.user(&role).password(password);
    let role_url = config_to_url(&config);
    let tmp = tempfile::tempdir().expect("tempdir");
    let input = tmp.path().join("in");
    let report = generate(
        &input,
        4,
        200,
        11,
        &["--invalid-share", "0.05", "--duplicate-share", "0.05"],
    );
    std::fs::write(input.join("garbage.csv"), "what,is,this\n1,2,3\n").expect("write");
    let summary = load_once(
        &common::TestDb {
            name: db.name.clone(),
            url: role_url.clone(),
        },
        &input,
        &["--after-load", "archive"],
    );
    let summary: serde_json::Value = serde_json::from_str(summary.trim()).expect("summary");
    assert_eq!(summary["files_loaded"], 4, "{summary}");
    assert_eq!(summary["files_quarantined"], 1, "{summary}");
    assert_eq!(
        summary["rows_loaded"], report["loaded"],
        "{summary} {report}"
    );
    assert_eq!(
        common::count(
            &db,
            "SELECT count(*) FROM ingested_files WHERE disposition IS NOT NULL"
        )
        .await,
        5
    );

    // What the role must not do.
    let (client, connection) = config.connect(NoTls).await.expect("connect as the role");
    tokio::spawn(connection);
    let version: i32 = client
        .query_one("SELECT current_setting('server_version_num')::int", &[])
        .await
        .expect("version")
        .get(0);
    let mut forbidden = vec![
        "DROP TABLE ecommerce_events",
        "DROP TABLE ingested_files",
        "ALTER TABLE ecommerce_events ADD COLUMN x int",
        "ALTER TABLE ingested_files DROP CONSTRAINT rows_accounted",
        "TRUNCATE ecommerce_events",
        "TRUNCATE ingested_files",
        "DELETE FROM ingested_files",
        "DELETE FROM ecommerce_events",
        "UPDATE ingested_files SET status = 'loaded'",
        "UPDATE ecommerce_events SET price = 0",
        "INSERT INTO schema_migrations VALUES (99, 'x', 'y')",
        "DROP VIEW v_top_products",
        "CREATE INDEX ON ecommerce_events (product_name)",
    ];
    if version >= 150000 {
        // Before PostgreSQL 15 every role may create in schema public.
        forbidden.push("CREATE TABLE sneaky (x int)");
    }
    for sql in forbidden {
        let err = client
            .batch_execute(sql)
            .await
            .expect_err(&format!("the ingest role may not: {sql}"));
        assert_eq!(
            err.code(),
            Some(&SqlState::INSUFFICIENT_PRIVILEGE),
            "{sql}: {err:?}"
        );
    }
    drop(client);

    // The schema falls behind: `run` under the role asks for the owner.
    owner
        .batch_execute("DELETE FROM schema_migrations WHERE version = (SELECT max(version) FROM schema_migrations)")
        .await
        .expect("pretend a migration is pending");
    let out = shopstream()
        .args(["run", "--once", "--database-url", &role_url, "--input"])
        .arg(&input)
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("run `shopstream migrate` once as the schema's owner")
            && stderr.contains(&role),
        "{stderr}"
    );

    // Tidy up: roles are shared by every database of the server.
    owner
        .batch_execute(&format!("DROP OWNED BY \"{role}\"; DROP ROLE \"{role}\""))
        .await
        .expect("drop the role");
    let _ = Config::from_str(&role_url);
}
