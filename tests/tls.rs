//! TLS to PostgreSQL: every sslmode against a server of the test's own that
//! accepts TCP only over TLS, with a CA the test generates; and a real load
//! whose connections the server reports as encrypted.

mod common;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use common::tls_server::{make_certs, make_expired_leaf, make_v1_self_signed, TlsServer};
use common::{generate, shopstream, wait_for, Loader};

const PASSWORD: &str = "tls-test-pw";

async fn server_with_database(tmp: &Path) -> (TlsServer, common::tls_server::Certs) {
    let certs = make_certs(&tmp.join("certs"));
    let server = TlsServer::start(&certs);
    add_roles_and_database(&server).await;
    (server, certs)
}

async fn add_roles_and_database(server: &TlsServer) {
    let admin = server.admin("postgres").await;
    admin
        .batch_execute(&format!(
            "CREATE ROLE loader LOGIN PASSWORD '{PASSWORD}'; CREATE ROLE certuser LOGIN"
        ))
        .await
        .expect("roles");
    admin
        .batch_execute("CREATE DATABASE shop OWNER loader")
        .await
        .expect("database");
}

/// `shopstream migrate` as a probe: connects, migrates, says where.
fn migrate(url: &str, flags: &[&str], home: &Path) -> Output {
    shopstream()
        .env("HOME", home)
        .args(["migrate", "--database-url", url])
        .args(flags)
        .output()
        .expect("run shopstream migrate")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[track_caller]
fn assert_ok(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what}: expected success:\n{}",
        text(out)
    );
    assert!(text(out).contains("is at schema version"), "{what}");
}

#[track_caller]
fn assert_fails(what: &str, out: &Output, needles: &[&str]) {
    let t = text(out);
    eprintln!("--- {what}:\n{t}");
    assert!(!out.status.success(), "{what}: expected failure:\n{t}");
    for n in needles {
        assert!(t.contains(n), "{what}: expected {n:?} in:\n{t}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sslmodes_against_a_server_with_a_generated_ca() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("home"); // no ~/.postgresql/root.crt
    std::fs::create_dir(&home).expect("home");
    let (server, certs) = server_with_database(tmp.path()).await;
    let ca = certs.ca.display().to_string();
    let other_ca = certs.other_ca.display().to_string();
    let url = |host: &str, query: &str| server.url("loader", PASSWORD, host, "shop", query);

    // verify-full: the right CA and the name on the certificate.
    assert_ok(
        "verify-full, right CA, in the URL",
        &migrate(
            &url(
                "localhost",
                &format!("sslmode=verify-full&sslrootcert={ca}"),
            ),
            &[],
            &home,
        ),
    );
    assert_ok(
        "verify-full, right CA, as flags",
        &migrate(
            &url("localhost", ""),
            &["--sslmode", "verify-full", "--sslrootcert", &ca],
            &home,
        ),
    );
    let out = shopstream()
        .env("HOME", &home)
        .env("PGSSLMODE", "verify-full")
        .env("PGSSLROOTCERT", &ca)
        .args(["migrate", "--database-url", &url("localhost", "")])
        .output()
        .expect("run");
    assert_ok("verify-full from PGSSLMODE / PGSSLROOTCERT", &out);

    // verify-full: a CA that did not sign the server's certificate.
    assert_fails(
        "verify-full, wrong CA",
        &migrate(
            &url("localhost", ""),
            &["--sslmode", "verify-full", "--sslrootcert", &other_ca],
            &home,
        ),
        &[
            "error performing TLS handshake: server localhost (sslmode verify-full)",
            "UnknownIssuer",
            "not signed by a CA in",
        ],
    );
    // verify-full: the certificate names localhost, not 127.0.0.1.
    assert_fails(
        "verify-full, host name mismatch",
        &migrate(
            &url("127.0.0.1", ""),
            &["--sslmode", "verify-full", "--sslrootcert", &ca],
            &home,
        ),
        &["certificate not valid for name \"127.0.0.1\"", "verify-ca"],
    );
    // verify-ca checks the chain only: the mismatch passes, a wrong CA not.
    assert_ok(
        "verify-ca, host name mismatch",
        &migrate(
            &url("127.0.0.1", ""),
            &["--sslmode", "verify-ca", "--sslrootcert", &ca],
            &home,
        ),
    );
    assert_fails(
        "verify-ca, wrong CA",
        &migrate(
            &url("127.0.0.1", ""),
            &["--sslmode", "verify-ca", "--sslrootcert", &other_ca],
            &home,
        ),
        &["UnknownIssuer"],
    );
    // verify modes need a root certificate.
    assert_fails(
        "verify-full without a root certificate",
        &migrate(&url("localhost", "sslmode=verify-full"), &[], &home),
        &["no root certificate is given", "--sslrootcert"],
    );
    // require encrypts without checking; with a root certificate it checks
    // the chain, as libpq does.
    assert_ok(
        "require, no CA",
        &migrate(&url("127.0.0.1", "sslmode=require"), &[], &home),
    );
    assert_fails(
        "require with a wrong CA",
        &migrate(
            &url(
                "127.0.0.1",
                &format!("sslmode=require&sslrootcert={other_ca}"),
            ),
            &[],
            &home,
        ),
        &["UnknownIssuer"],
    );
    // prefer (the default) uses TLS when offered: this server has nothing else.
    assert_ok(
        "default sslmode",
        &migrate(&url("127.0.0.1", ""), &[], &home),
    );
    // disable against a hostssl-only server: a readable refusal.
    assert_fails(
        "disable",
        &migrate(&url("127.0.0.1", "sslmode=disable"), &[], &home),
        &["no encryption", "only accepts TLS connections"],
    );
    // An unknown mode names the valid ones.
    assert_fails(
        "bogus sslmode",
        &migrate(&url("127.0.0.1", "sslmode=verfy-full"), &[], &home),
        &["unknown sslmode", "verify-full"],
    );
    // SCRAM channel binding (tls-server-end-point) works over our TLS.
    assert_ok(
        "channel_binding=require",
        &migrate(
            &url(
                "localhost",
                &format!("sslmode=verify-full&sslrootcert={ca}&channel_binding=require"),
            ),
            &[],
            &home,
        ),
    );
    // A client certificate authenticates `certuser` (pg_hba: cert).
    let admin = server.admin("shop").await;
    admin
        .batch_execute("GRANT SELECT ON schema_migrations TO certuser")
        .await
        .expect("grant");
    let cert_url = format!("postgresql://certuser@localhost:{}/shop", server.port);
    assert_ok(
        "client certificate",
        &migrate(
            &cert_url,
            &[
                "--sslmode",
                "verify-full",
                "--sslrootcert",
                &ca,
                "--sslcert",
                &certs.client_cert.display().to_string(),
                "--sslkey",
                &certs.client_key.display().to_string(),
            ],
            &home,
        ),
    );
    assert_fails(
        "no client certificate",
        &migrate(
            &cert_url,
            &["--sslmode", "verify-full", "--sslrootcert", &ca],
            &home,
        ),
        &[
            "requires a valid client certificate",
            "--sslcert and --sslkey",
        ],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn loading_happens_over_tls() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (server, certs) = server_with_database(tmp.path()).await;
    let input = tmp.path().join("in");
    generate(&input, 3, 100, 7, &[]);
    let url = server.url("loader", PASSWORD, "localhost", "shop", "");
    let mut loader = Loader::spawn(
        shopstream()
            .env("DATABASE_URL", &url)
            .args(["run", "--sslmode", "verify-full", "--sslrootcert"])
            .arg(&certs.ca)
            .args(["--relist-secs", "0.3", "--input"])
            .arg(&input),
    );
    let admin = server.admin("shop").await;
    wait_for(Duration::from_secs(60), "three files loaded", || async {
        admin
            .query_one("SELECT count(*) FROM ingested_files", &[])
            .await
            .is_ok_and(|r| r.get::<_, i64>(0) == 3)
    })
    .await;
    loader.assert_alive();
    // The loader's connections, as the server sees them.
    let rows = admin
        .query(
            "SELECT s.ssl, s.version FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
             WHERE a.usename = 'loader'",
            &[],
        )
        .await
        .expect("pg_stat_ssl");
    assert!(!rows.is_empty(), "the loader holds a connection");
    for r in &rows {
        assert!(r.get::<_, bool>(0), "every loader connection is encrypted");
        let version: Option<String> = r.get(1);
        assert!(
            version.as_deref().is_some_and(|v| v.starts_with("TLSv1.")),
            "{version:?}"
        );
    }
    let summary = loader.stop();
    assert_eq!(summary["files_loaded"], 3, "{summary}");
    let log = server.log();
    let authorized: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("connection authorized: user=loader"))
        .collect();
    assert!(!authorized.is_empty(), "{log}");
    for l in authorized {
        assert!(l.contains("SSL enabled"), "{l}");
    }
}

/// libpq's `prefer` and `require` encrypt without judging the certificate,
/// so a self-signed X.509 version 1 certificate (what `CREATE EXTENSION
/// citus` makes) and an expired one are accepted there, over TLS 1.3 and
/// TLS 1.2 alike; the verify modes still refuse them, with a reason.
#[tokio::test(flavor = "multi_thread")]
async fn unverified_modes_take_any_certificate_as_libpq_does() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("home");
    std::fs::create_dir(&home).expect("home");
    let dir = tmp.path().join("certs");
    let mut v1 = make_certs(&dir);
    (v1.server_cert, v1.server_key) = make_v1_self_signed(&dir);
    let mut expired = make_certs(&tmp.path().join("certs2"));
    (expired.server_cert, expired.server_key) = make_expired_leaf(&tmp.path().join("certs2"));
    let cases = [
        ("X.509 v1, TLS 1.3", &v1, "", "version 3 certificate"),
        (
            "X.509 v1, TLS 1.2",
            &v1,
            "ssl_max_protocol_version = 'TLSv1.2'\n",
            "version 3 certificate",
        ),
        ("expired", &expired, "", "has expired"),
    ];
    for (what, certs, conf, refusal) in cases {
        let server = TlsServer::start_with(certs, conf);
        add_roles_and_database(&server).await;
        let url = |query: &str| server.url("loader", PASSWORD, "localhost", "shop", query);
        // The server accepts TCP only over TLS (hostssl): success is TLS.
        assert_ok(&format!("{what}: prefer"), &migrate(&url(""), &[], &home));
        assert_ok(
            &format!("{what}: require"),
            &migrate(&url("sslmode=require"), &[], &home),
        );
        // The certificate as its own root (v1) or the CA that signed it.
        let root = if certs.server_cert.ends_with("v1.crt") {
            &certs.server_cert
        } else {
            &certs.ca
        };
        let root = root.display().to_string();
        assert_fails(
            &format!("{what}: verify-ca"),
            &migrate(
                &url(&format!("sslmode=verify-ca&sslrootcert={root}")),
                &[],
                &home,
            ),
            &[
                "error performing TLS handshake",
                refusal,
                "sslmode verify-ca",
            ],
        );
    }
    // require with libpq's default root certificate present checks the
    // chain against it, as libpq does.
    let server = TlsServer::start(&expired);
    add_roles_and_database(&server).await;
    std::fs::create_dir(home.join(".postgresql")).expect("mkdir");
    std::fs::copy(&expired.other_ca, home.join(".postgresql/root.crt")).expect("copy");
    assert_fails(
        "require with ~/.postgresql/root.crt of another CA",
        &migrate(
            &server.url("loader", PASSWORD, "localhost", "shop", "sslmode=require"),
            &[],
            &home,
        ),
        &["sslmode verify-ca", "root.crt", "invalid peer certificate"],
    );
}
