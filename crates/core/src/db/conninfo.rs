//! Connection strings read the way libpq reads them.
//!
//! A URL (`postgresql://[user[:password]@][host[:port][,...]][/dbname][?k=v&...]`)
//! or a `key=value` string becomes a list of libpq keywords first, exactly as
//! libpq's `PQconninfoParse` would produce it: percent-decoding everywhere,
//! `[...]` IPv6 hosts, host and port lists, and query parameters that
//! *replace* what the authority said (`?host=/var/run/postgresql` overrides
//! `@localhost`, `?port=5433` overrides `:5432`). Then the keywords become a
//! `tokio_postgres::Config`: a host starting with `/` is a Unix socket
//! directory, an empty host is the default socket directory, and the host,
//! hostaddr and port lists must match up (one port for all hosts, or one per
//! host), which is checked here, before any connection is tried.
//! tokio-postgres' own URL parser appends instead of replacing, which turned
//! `…@localhost/db?host=/sock` into two hosts.
//!
//! This module only parses. It must never connect, log, or put a password
//! (or any other value that could be one) into an error message.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::str::FromStr;

use tokio_postgres::Config;

use super::tls::key_value_pairs;

/// Why a connection string is not valid. Names keywords and positions, never
/// values that could be a password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnInfoError {
    #[error("a percent sign must be followed by two hexadecimal digits (in the {0})")]
    PercentEncoding(&'static str),
    #[error("%00 is not allowed (in the {0})")]
    PercentNul(&'static str),
    #[error("the {0} is not valid UTF-8 after percent-decoding")]
    Utf8(&'static str),
    #[error("an IPv6 host address in [...] has no closing ]")]
    UnclosedIpv6,
    #[error("an IPv6 host address in [...] is empty")]
    EmptyIpv6,
    #[error("unexpected character after an IPv6 host address in [...]")]
    AfterIpv6,
    #[error("query parameter number {0} has no \"=\"")]
    NoEquals(usize),
    #[error("query parameter number {0} has more than one \"=\"")]
    ExtraEquals(usize),
    #[error("the part after the host list must start with / or ?")]
    AfterHosts,
    #[error("a word in the key=value string is not of the form key=value")]
    NotKeyValue,
    /// The value is not shown: a password with a `/` in it makes libpq
    /// read the rest of the URL as host and port.
    #[error("port number {0} of the port list is not a number from 1 to 65535")]
    Port(usize),
    #[error("invalid hostaddr: expected numeric IP addresses")]
    Hostaddr,
    #[error("could not match {ports} port numbers to {hosts} hosts (give one port for all hosts, or one per host)")]
    PortCount { ports: usize, hosts: usize },
    #[error("could not match {hostaddrs} hostaddr values to {hosts} host names")]
    HostaddrCount { hostaddrs: usize, hosts: usize },
    #[error("{0}")]
    Option(String),
}

/// The keywords a connection string gives, decoded, later ones replacing
/// earlier ones (as in libpq).
pub type Keywords = BTreeMap<String, String>;

/// Whether `conn` is written as a URL rather than as `key=value` pairs.
pub fn is_url(conn: &str) -> bool {
    let t = conn.trim_start();
    t.starts_with("postgresql://") || t.starts_with("postgres://")
}

/// The libpq keywords of a connection string (URL or `key=value`).
pub fn keywords(conn: &str) -> Result<Keywords, ConnInfoError> {
    let t = conn.trim();
    if let Some(rest) = t
        .strip_prefix("postgresql://")
        .or_else(|| t.strip_prefix("postgres://"))
    {
        return url_keywords(rest);
    }
    let mut out = Keywords::new();
    for (key, value, _) in key_value_pairs(t) {
        let key = key.ok_or(ConnInfoError::NotKeyValue)?;
        out.insert(key, value);
    }
    Ok(out)
}

/// Parses a connection string into settings, as libpq would read it.
/// Defaults (user, socket directory when no host is given) are left to the
/// caller; an empty entry in a host list is `default_socket_dir`.
pub fn parse(conn: &str, default_socket_dir: &str) -> Result<Config, ConnInfoError> {
    to_config(&keywords(conn)?, default_socket_dir)
}

/// `conn` with `key` set to `value`, appended so that it replaces an earlier
/// value (in libpq and here) and leaves everything else as written.
pub fn with_keyword(conn: &str, key: &str, value: &str) -> String {
    let conn = conn.trim();
    if !is_url(conn) {
        let v = value.replace('\\', "\\\\").replace('\'', "\\'");
        return format!("{conn} {key}='{v}'");
    }
    // The query starts at the first ? after the credentials (which end at
    // the first @ before any /).
    let start = conn.find("://").map_or(0, |i| i + 3);
    let rest = &conn[start..];
    let creds_end = match rest.find(['@', '/']) {
        Some(i) if rest.as_bytes()[i] == b'@' => i + 1,
        _ => 0,
    };
    let sep = if rest[creds_end..].contains('?') {
        '&'
    } else {
        '?'
    };
    let enc = |s: &str| super::embedded::percent_encode(s.as_bytes());
    format!("{conn}{sep}{}={}", enc(key), enc(value))
}

/// libpq's `conninfo_uri_parse_options`, after the `postgresql://` prefix.
fn url_keywords(rest: &str) -> Result<Keywords, ConnInfoError> {
    let mut out = Keywords::new();
    let mut s = rest;
    // Credentials end at the first @ before any /.
    let cred_end = s.find(['@', '/']);
    if let Some(at) = cred_end.filter(|&i| s.as_bytes()[i] == b'@') {
        let creds = &s[..at];
        let (user, password) = match creds.split_once(':') {
            Some((u, p)) => (u, Some(p)),
            None => (creds, None),
        };
        store(&mut out, "user", user, "user name")?;
        if let Some(p) = password {
            store(&mut out, "password", p, "password")?;
        }
        s = &s[at + 1..];
    }
    let (hosts, ports, after) = host_list(s)?;
    s = after;
    if !hosts.is_empty() {
        store(&mut out, "host", &hosts, "host")?;
    }
    if !ports.is_empty() {
        store(&mut out, "port", &ports, "port")?;
    }
    if let Some(path) = s.strip_prefix('/') {
        let end = path.find('?').unwrap_or(path.len());
        store(&mut out, "dbname", &path[..end], "database name")?;
        s = &path[end..];
    }
    if let Some(query) = s.strip_prefix('?') {
        for (n, pair) in query.split('&').enumerate().filter(|(_, p)| !p.is_empty()) {
            let mut parts = pair.split('=');
            let key = parts.next().unwrap_or_default();
            let value = parts.next().ok_or(ConnInfoError::NoEquals(n + 1))?;
            if parts.next().is_some() {
                return Err(ConnInfoError::ExtraEquals(n + 1));
            }
            let key = decode(key, "query parameter name")?;
            let value = decode(value, "query parameter value")?;
            out.insert(key, value);
        }
    } else if !s.is_empty() {
        return Err(ConnInfoError::AfterHosts);
    }
    Ok(out)
}

/// The authority's host list: `(hosts, ports, rest)`, both lists
/// comma-separated and still percent-encoded, as libpq collects them.
fn host_list(mut s: &str) -> Result<(String, String, &str), ConnInfoError> {
    let mut hosts: Vec<&str> = vec![];
    let mut ports: Vec<&str> = vec![];
    let mut any_port = false;
    loop {
        let host;
        if let Some(inner) = s.strip_prefix('[') {
            let close = inner.find(']').ok_or(ConnInfoError::UnclosedIpv6)?;
            if close == 0 {
                return Err(ConnInfoError::EmptyIpv6);
            }
            host = &inner[..close];
            s = &inner[close + 1..];
            if !(s.is_empty() || s.starts_with([':', '/', '?', ','])) {
                return Err(ConnInfoError::AfterIpv6);
            }
        } else {
            let end = s.find([':', '/', '?', ',']).unwrap_or(s.len());
            host = &s[..end];
            s = &s[end..];
        }
        let mut port = "";
        if let Some(after) = s.strip_prefix(':') {
            let end = after.find(['/', '?', ',']).unwrap_or(after.len());
            port = &after[..end];
            any_port = true;
            s = &after[end..];
        }
        hosts.push(host);
        ports.push(port);
        match s.strip_prefix(',') {
            Some(next) => s = next,
            None => break,
        }
    }
    let ports = if any_port || ports.len() > 1 {
        ports.join(",")
    } else {
        String::new()
    };
    Ok((hosts.join(","), ports, s))
}

/// Stores a non-empty decoded value (libpq ignores empty ones here).
fn store(
    out: &mut Keywords,
    key: &str,
    raw: &str,
    what: &'static str,
) -> Result<(), ConnInfoError> {
    let value = decode(raw, what)?;
    if !value.is_empty() {
        out.insert(key.to_string(), value);
    }
    Ok(())
}

/// libpq's `conninfo_uri_decode`: strict percent-decoding (no `+` for space).
fn decode(s: &str, what: &'static str) -> Result<String, ConnInfoError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'%' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        let hex = |k: usize| {
            b.get(k)
                .and_then(|c| (*c as char).to_digit(16))
                .ok_or(ConnInfoError::PercentEncoding(what))
        };
        let v = hex(i + 1)? * 16 + hex(i + 2)?;
        if v == 0 {
            return Err(ConnInfoError::PercentNul(what));
        }
        out.push(v as u8);
        i += 3;
    }
    String::from_utf8(out).map_err(|_| ConnInfoError::Utf8(what))
}

/// The keywords shopstream sets itself; every other one goes to
/// tokio-postgres as it is.
const LOCATION: [&str; 6] = ["host", "hostaddr", "port", "user", "password", "dbname"];

/// Builds the settings from libpq keywords.
pub fn to_config(kw: &Keywords, default_socket_dir: &str) -> Result<Config, ConnInfoError> {
    let rest: Vec<String> = kw
        .iter()
        .filter(|(k, _)| !LOCATION.contains(&k.as_str()))
        .map(|(k, v)| format!("{k}='{}'", v.replace('\\', "\\\\").replace('\'', "\\'")))
        .collect();
    let mut config = Config::from_str(&rest.join(" "))
        .map_err(|e| ConnInfoError::Option(super::connect::error_chain(&e)))?;
    let get = |k: &str| kw.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let hostaddrs = match get("hostaddr") {
        Some(v) => v
            .split(',')
            .map(|a| IpAddr::from_str(a.trim()).map_err(|_| ConnInfoError::Hostaddr))
            .collect::<Result<Vec<_>, _>>()?,
        None => vec![],
    };
    let hosts: Vec<&str> = get("host").map_or(vec![], |v| v.split(',').collect());
    if !hosts.is_empty() && !hostaddrs.is_empty() && hosts.len() != hostaddrs.len() {
        return Err(ConnInfoError::HostaddrCount {
            hostaddrs: hostaddrs.len(),
            hosts: hosts.len(),
        });
    }
    for h in &hosts {
        match *h {
            "" => config.host_path(default_socket_dir),
            h if h.starts_with('/') => config.host_path(h),
            h => config.host(h),
        };
    }
    for a in &hostaddrs {
        config.hostaddr(*a);
    }
    if let Some(ports) = get("port") {
        let ports = ports
            .split(',')
            .enumerate()
            .map(|(i, p)| match p.trim() {
                "" => Ok(5432),
                p => p
                    .parse::<u16>()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or(ConnInfoError::Port(i + 1)),
            })
            .collect::<Result<Vec<u16>, _>>()?;
        let n_hosts = hosts.len().max(hostaddrs.len()).max(1);
        if ports.len() != 1 && ports.len() != n_hosts {
            return Err(ConnInfoError::PortCount {
                ports: ports.len(),
                hosts: n_hosts,
            });
        }
        for p in ports {
            config.port(p);
        }
    }
    if let Some(u) = get("user") {
        config.user(u);
    }
    if let Some(p) = get("password") {
        config.password(p);
    }
    if let Some(d) = get("dbname") {
        config.dbname(d);
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio_postgres::config::Host;

    const DEFAULT: &str = "/DEFAULT";

    /// Where a connection would go, host by host, with the port libpq (and
    /// tokio-postgres' connect) picks for it: `unix:/dir:port` or `host:port`.
    fn targets(c: &Config) -> Vec<String> {
        let ports = c.get_ports();
        c.get_hosts()
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
                match h {
                    Host::Tcp(h) if h.contains(':') => format!("[{h}]:{port}"),
                    Host::Tcp(h) => format!("{h}:{port}"),
                    Host::Unix(p) => format!("unix:{}:{port}", p.display()),
                }
            })
            .collect()
    }

    type Row = (
        &'static str,
        &'static [&'static str],
        Option<&'static str>,
        Option<&'static str>,
        Option<&'static str>,
    );

    /// libpq's documented URI examples (PostgreSQL docs, "Connection
    /// URIs") and more, each with what libpq's PQconninfoParse gives:
    /// (string, hosts with ports, dbname, user, password).
    const LIBPQ: &[Row] = &[
        ("postgresql://", &[], None, None, None),
        ("postgresql://localhost", &["localhost:5432"], None, None, None),
        ("postgresql://localhost:5433", &["localhost:5433"], None, None, None),
        ("postgresql://localhost/mydb", &["localhost:5432"], Some("mydb"), None, None),
        ("postgresql://user@localhost", &["localhost:5432"], None, Some("user"), None),
        (
            "postgresql://user:secret@localhost",
            &["localhost:5432"],
            None,
            Some("user"),
            Some("secret"),
        ),
        (
            "postgresql://other@localhost/otherdb?connect_timeout=10&application_name=myapp",
            &["localhost:5432"],
            Some("otherdb"),
            Some("other"),
            None,
        ),
        (
            "postgresql://host1:123,host2:456/somedb?target_session_attrs=any&application_name=myapp",
            &["host1:123", "host2:456"],
            Some("somedb"),
            None,
            None,
        ),
        (
            "postgresql:///mydb?host=localhost&port=5433",
            &["localhost:5433"],
            Some("mydb"),
            None,
            None,
        ),
        (
            "postgresql://[2001:db8::1234]/database",
            &["[2001:db8::1234]:5432"],
            Some("database"),
            None,
            None,
        ),
        (
            "postgresql:///dbname?host=/var/lib/postgresql",
            &["unix:/var/lib/postgresql:5432"],
            Some("dbname"),
            None,
            None,
        ),
        (
            "postgresql://%2Fvar%2Flib%2Fpostgresql/dbname",
            &["unix:/var/lib/postgresql:5432"],
            Some("dbname"),
            None,
            None,
        ),
        // A query parameter replaces what the authority said.
        (
            "postgresql://root@localhost/db?host=/var/run/postgresql",
            &["unix:/var/run/postgresql:5432"],
            Some("db"),
            Some("root"),
            None,
        ),
        (
            "postgresql://localhost/db?port=5433",
            &["localhost:5433"],
            Some("db"),
            None,
            None,
        ),
        (
            "postgresql://h1:1,h2:2/db?port=5",
            &["h1:5", "h2:5"],
            Some("db"),
            None,
            None,
        ),
        (
            "postgres://u:p@h/db?user=v&password=x&dbname=y",
            &["h:5432"],
            Some("y"),
            Some("v"),
            Some("x"),
        ),
        // Lists: a host without a port gets the default; an empty host is
        // the default socket directory.
        ("postgresql://h1:1,h2/db", &["h1:1", "h2:5432"], Some("db"), None, None),
        (
            "postgresql://h1,,h2/db",
            &["h1:5432", "unix:/DEFAULT:5432", "h2:5432"],
            Some("db"),
            None,
            None,
        ),
        (
            "postgresql://[::1]:5433,h2/db",
            &["[::1]:5433", "h2:5432"],
            Some("db"),
            None,
            None,
        ),
        // Percent-encoding in every part; an empty password is none.
        (
            "postgresql://a%40b:p%3Aw%2F@h/d%20b",
            &["h:5432"],
            Some("d b"),
            Some("a@b"),
            Some("p:w/"),
        ),
        ("postgresql://u:@h/db", &["h:5432"], Some("db"), Some("u"), None),
        ("postgresql://u:p?w@h/db", &["h:5432"], Some("db"), Some("u"), Some("p?w")),
        ("postgresql://h/db?host=", &[], Some("db"), None, None),
        // The key=value form.
        (
            "host=/tmp,db.example port=5433 dbname=shop user=app password='a b\\'c'",
            &["unix:/tmp:5433", "db.example:5433"],
            Some("shop"),
            Some("app"),
            Some("a b'c"),
        ),
    ];

    #[test]
    fn reads_urls_as_libpq_does() {
        for &(conn, hosts, db, user, password) in LIBPQ {
            let c = parse(conn, DEFAULT).unwrap_or_else(|e| panic!("{conn}: {e}"));
            assert_eq!(targets(&c), hosts, "{conn}");
            assert_eq!(c.get_dbname(), db, "{conn}");
            assert_eq!(c.get_user(), user, "{conn}");
            assert_eq!(c.get_password(), password.map(str::as_bytes), "{conn}");
        }
        let c = parse(
            "postgresql://other@localhost/otherdb?connect_timeout=10&application_name=myapp",
            DEFAULT,
        )
        .expect("parses");
        assert_eq!(c.get_connect_timeout(), Some(&Duration::from_secs(10)));
        assert_eq!(c.get_application_name(), Some("myapp"));
    }

    #[test]
    fn refuses_what_libpq_refuses() {
        for (conn, want) in [
            ("postgresql://u:pw@h:notaport/db", ConnInfoError::Port(1)),
            ("postgresql://h/db?port=1,0", ConnInfoError::Port(2)),
            (
                "postgresql://h1,h2/db?port=1,2,3",
                ConnInfoError::PortCount { ports: 3, hosts: 2 },
            ),
            (
                "host=a,b hostaddr=127.0.0.1",
                ConnInfoError::HostaddrCount {
                    hostaddrs: 1,
                    hosts: 2,
                },
            ),
            ("host=a hostaddr=not-an-ip", ConnInfoError::Hostaddr),
            ("postgresql://[::1/db", ConnInfoError::UnclosedIpv6),
            ("postgresql://[]/db", ConnInfoError::EmptyIpv6),
            ("postgresql://[::1]x/db", ConnInfoError::AfterIpv6),
            (
                "postgresql://h/d%zz",
                ConnInfoError::PercentEncoding("database name"),
            ),
            (
                "postgresql://h/d%00",
                ConnInfoError::PercentNul("database name"),
            ),
            ("postgresql://h/db?a", ConnInfoError::NoEquals(1)),
            ("postgresql://h/db?a=1=2", ConnInfoError::ExtraEquals(1)),
            ("host=h secret", ConnInfoError::NotKeyValue),
            ("host=h password='it''s'", ConnInfoError::NotKeyValue),
        ] {
            assert_eq!(parse(conn, DEFAULT).err(), Some(want), "{conn}");
        }
        let unknown = parse("postgresql://u:pw@h/db?nosuch=1", DEFAULT).expect_err("unknown");
        assert!(unknown.to_string().contains("nosuch"), "{unknown}");
        for conn in [
            "postgresql://u:s3cr3tpw@h:x/db",
            // No credentials for libpq (a / before the @): host u, port s3cr3tpw.
            "postgresql://u:s3cr3tpw/x@h/db",
            "host=h password=s3cr3tpw x",
        ] {
            let msg = parse(conn, DEFAULT).expect_err("invalid").to_string();
            assert!(!msg.contains("s3cr3tpw"), "{msg}");
        }
    }

    #[test]
    fn a_keyword_set_later_replaces_the_earlier_one() {
        for conn in [
            "postgresql://u:p?w@h1:1,h2:2/db?host=/sock,/sock2",
            "postgresql://u@/db",
            "postgresql://h",
            "host=h dbname=db",
        ] {
            let url = with_keyword(conn, "dbname", "bench x'1");
            let c = parse(&url, DEFAULT).expect("parses");
            let before = parse(conn, DEFAULT).expect("parses");
            assert_eq!(targets(&c), targets(&before), "{url}");
            assert_eq!(c.get_user(), before.get_user(), "{url}");
            assert_eq!(c.get_password(), before.get_password(), "{url}");
            assert_eq!(c.get_dbname(), Some("bench x'1"), "{url}");
        }
    }
}
