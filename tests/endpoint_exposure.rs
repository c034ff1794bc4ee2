//! The HTTP endpoint's exposure: loopback by default; another address only
//! with --http-allow-remote and a bearer token; then every request but
//! /healthz and the dashboard's static page needs the token, and the
//! endpoint is read-only (GET and HEAD).

mod common;

use std::time::Duration;

use common::{http_request, shopstream, test_db, wait_for, Loader};

const TOKEN: &str = "bearer-T0ken-for-the-test-0123";

fn refused(args: &[&str], env: &[(&str, &str)], input: &std::path::Path, url: &str) -> String {
    let mut cmd = shopstream();
    cmd.args(["run", "--once", "--database-url", url, "--input"])
        .arg(input)
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run shopstream");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{args:?} must be refused:\n{stderr}");
    stderr
}

#[tokio::test(flavor = "multi_thread")]
async fn remote_endpoint_needs_the_flag_and_a_bearer_token() {
    let db = test_db().await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let input = tmp.path().join("in");
    std::fs::create_dir(&input).expect("mkdir");

    // Not loopback, no flag: refused before touching the database.
    let err = refused(&["--http-addr", "0.0.0.0:0"], &[], &input, &db.url);
    assert!(
        err.contains("not a loopback address") && err.contains("--http-allow-remote"),
        "{err}"
    );
    // The flag but no token.
    let err = refused(
        &["--http-addr", "0.0.0.0:0", "--http-allow-remote"],
        &[],
        &input,
        &db.url,
    );
    assert!(err.contains("needs a bearer token"), "{err}");
    // A token too short to be one.
    let err = refused(
        &["--http-addr", "0.0.0.0:0", "--http-allow-remote"],
        &[("SHOPSTREAM_HTTP_TOKEN", "short")],
        &input,
        &db.url,
    );
    assert!(err.contains("shorter than 16"), "{err}");
    assert!(
        !err.contains("short\n") && !err.contains("\"short\""),
        "{err}"
    );

    // With the flag and a token (from the environment).
    let loader = Loader::spawn(
        shopstream()
            .env("SHOPSTREAM_HTTP_TOKEN", TOKEN)
            .args(["run", "--database-url", &db.url, "--input"])
            .arg(&input)
            .args(["--http-addr", "0.0.0.0:0", "--http-allow-remote"]),
    );
    wait_for(Duration::from_secs(60), "the endpoint", || async {
        loader.http_url().is_some()
    })
    .await;
    let base = loader
        .http_url()
        .expect("url")
        .replace("0.0.0.0", "127.0.0.1");
    let bearer = format!("Bearer {TOKEN}");
    let with = [("Authorization", bearer.as_str())];
    for path in ["/metrics", "/readyz", "/api/dashboard"] {
        let (status, head, _) = http_request(&base, "GET", path, &[]);
        assert_eq!(status, 401, "{path} without a token");
        assert!(head.contains("www-authenticate: Bearer"), "{head}");
        let (status, _, _) = http_request(
            &base,
            "GET",
            path,
            &[("Authorization", "Bearer bearer-T0ken-for-the-test-0124")],
        );
        assert_eq!(status, 401, "{path} with a wrong token");
        let (status, _, _) = http_request(&base, "GET", path, &[("Authorization", TOKEN)]);
        assert_eq!(status, 401, "{path} without the Bearer scheme");
    }
    let (status, _, body) = http_request(&base, "GET", "/metrics", &with);
    assert_eq!(status, 200);
    assert!(body.contains("shopstream_"), "{body}");
    let lower = format!("bearer {TOKEN}");
    // (/metrics: /readyz may still say 503 while the loader connects.)
    let (status, _, _) = http_request(&base, "GET", "/metrics", &[("Authorization", &lower)]);
    assert_eq!(status, 200, "the scheme is case-insensitive");
    let (status, _, _) = http_request(&base, "HEAD", "/metrics", &with);
    assert_eq!(status, 200, "HEAD");
    wait_for(Duration::from_secs(30), "the dashboard data", || async {
        http_request(&base, "GET", "/api/dashboard", &with).0 == 200
    })
    .await;
    // Open without the token: liveness and the static page (no data).
    let (status, _, body) = http_request(&base, "GET", "/healthz", &[]);
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    let (status, head, body) = http_request(&base, "GET", "/", &[]);
    assert_eq!(status, 200);
    assert!(
        body.contains("#token=") || body.contains("location.hash"),
        "the page reads the token from the fragment"
    );
    assert!(head.contains("x-content-type-options: nosniff"), "{head}");
    // Read-only.
    for (method, path) in [
        ("POST", "/metrics"),
        ("PUT", "/"),
        ("DELETE", "/healthz"),
        ("POST", "/api/dashboard"),
    ] {
        let (status, head, _) = http_request(&base, method, path, &with);
        assert_eq!(status, 405, "{method} {path}");
        assert!(head.contains("allow: GET, HEAD"), "{head}");
    }
    let (status, _, _) = http_request(&base, "POST", "/metrics", &[]);
    assert_eq!(status, 401, "no token, no hint of what exists");
    assert!(!loader.log().contains(TOKEN), "the token is never logged");
    loader.stop();

    // A token file also protects a loopback endpoint.
    let token_file = tmp.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).expect("write token");
    let loader = Loader::spawn(
        shopstream()
            .args(["run", "--database-url", &db.url, "--input"])
            .arg(&input)
            .arg("--http-token-file")
            .arg(&token_file),
    );
    wait_for(Duration::from_secs(60), "the endpoint", || async {
        loader.http_url().is_some()
    })
    .await;
    let base = loader.http_url().expect("url");
    assert!(base.contains("127.0.0.1"), "loopback by default: {base}");
    assert_eq!(http_request(&base, "GET", "/metrics", &[]).0, 401);
    assert_eq!(http_request(&base, "GET", "/metrics", &with).0, 200);
    assert!(
        loader.logged("other users"),
        "a world-readable token file is warned about"
    );
    loader.stop();
}
