//! The status as text (a few lines: the verdict and its problems first) or
//! as one JSON object. Pure functions, no I/O.

use super::{DbStatus, Format, InputStatus, LoaderStatus, Status};

/// The status in `format`, ending in a newline.
pub fn render(s: &Status, format: Format) -> Result<String, serde_json::Error> {
    match format {
        Format::Json => {
            let mut out = serde_json::to_string_pretty(s)?;
            out.push('\n');
            Ok(out)
        }
        Format::Text => Ok(text(s)),
    }
}

/// `1 file`, `3 files`.
pub fn files(n: u64) -> String {
    match n {
        1 => "1 file".to_string(),
        n => format!("{n} files"),
    }
}

/// Seconds as a short age: `42s`, `5m 1s`, `3h 20m`, `2d 4h`.
pub fn age(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        3600..86_400 => format!("{}h {}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d {}h", s / 86_400, (s % 86_400) / 3600),
    }
}

fn percent(rate: Option<f64>) -> String {
    rate.map_or("-".into(), |r| format!("{:.2}%", r * 100.0))
}

fn text(s: &Status) -> String {
    let mut out = format!("status: {} (exit {})\n", s.state.as_str(), s.exit_code);
    for p in &s.problems {
        out.push_str(&format!("problem: {p}\n"));
    }
    database(&mut out, &s.database);
    if let Some(i) = &s.input {
        input(&mut out, i);
    }
    for l in &s.loaders {
        loader(&mut out, l);
    }
    out
}

fn database(out: &mut String, d: &DbStatus) {
    if d.error.is_some() {
        // The problem line says why.
        let target = if d.target.is_empty() { "?" } else { &d.target };
        out.push_str(&format!("database: {target}: down\n"));
        return;
    }
    let version = d
        .schema_version
        .map_or("schema unknown".into(), |v| format!("schema v{v}"));
    let commit = match (&d.last_commit, d.last_commit_age_secs) {
        (Some(at), Some(a)) => format!("last commit {at} ({} ago)", age(a)),
        _ => "no commit yet".to_string(),
    };
    out.push_str(&format!("database: {}: {version}; {commit}\n", d.target));
    out.push_str(&format!(
        "events loaded: {} last minute, {} last hour, {} last day; validity {} last hour, {} last day\n",
        d.events_last_minute,
        d.events_last_hour,
        d.events_last_day,
        percent(d.validity_last_hour),
        percent(d.validity_last_day)
    ));
    let codes: Vec<String> = d
        .dead_letters_today
        .iter()
        .map(|(code, n)| format!("{code} {n}"))
        .collect();
    out.push_str(&format!(
        "dead letters today (UTC): {}\n",
        if codes.is_empty() {
            "none".to_string()
        } else {
            codes.join(", ")
        }
    ));
}

fn input(out: &mut String, i: &InputStatus) {
    match &i.error {
        Some(e) => out.push_str(&format!("input {}: {e}\n", i.folder)),
        None if i.waiting_files == 0 => {
            out.push_str(&format!("input {}: no file waiting\n", i.folder))
        }
        None => out.push_str(&format!(
            "input {}: {} waiting, the oldest for {}\n",
            i.folder,
            files(i.waiting_files),
            age(i.oldest_waiting_secs)
        )),
    }
}

fn loader(out: &mut String, l: &LoaderStatus) {
    if !l.up {
        let why = l.error.as_deref().unwrap_or("no answer");
        out.push_str(&format!("loader {}: down: {why}\n", l.endpoint));
        return;
    }
    let mut parts = vec![match l.ready {
        Some(true) => "ready".to_string(),
        Some(false) => "not ready".to_string(),
        None => "up".to_string(),
    }];
    if let Some(b) = &l.breaker {
        parts.push(format!("breaker {b}"));
    }
    if let (Some(n), Some(a)) = (l.waiting_files, l.oldest_waiting_secs) {
        parts.push(match n {
            0 => "no file waiting".to_string(),
            n => format!("{} waiting, the oldest for {}", files(n), age(a)),
        });
    }
    parts.push(format!(
        "last error: {}",
        l.last_error.as_deref().unwrap_or("none")
    ));
    if let Some(e) = &l.error {
        parts.push(e.clone());
    }
    out.push_str(&format!("loader {}: {}\n", l.endpoint, parts.join(", ")));
}

/// Dead letters by code as a JSON object, `{"missing_user": 3, …}`, in
/// their order (most first).
pub(super) fn codes_as_map<S: serde::Serializer>(
    codes: &[(String, i64)],
    ser: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut m = ser.serialize_map(Some(codes.len()))?;
    for (code, n) in codes {
        m.serialize_entry(code, n)?;
    }
    m.end()
}

#[cfg(test)]
mod tests {
    use super::super::{assess, State};
    use super::*;

    #[test]
    fn ages_read_like_a_person_says_them() {
        assert_eq!(age(0.4), "0s");
        assert_eq!(age(59.0), "59s");
        assert_eq!(age(301.0), "5m 1s");
        assert_eq!(age(12_000.0), "3h 20m");
        assert_eq!(age(187_200.0), "2d 4h");
    }

    #[test]
    fn text_leads_with_the_verdict_and_json_keys_codes() {
        let db = DbStatus {
            target: "postgresql://u@h/db".into(),
            reachable: true,
            schema_version: Some(7),
            last_commit: Some("2026-01-10T11:00:00Z".into()),
            last_commit_age_secs: Some(5.0),
            events_last_hour: 600,
            validity_last_hour: Some(0.991),
            dead_letters_today: vec![("missing_user".into(), 3), ("negative_price".into(), 1)],
            ..DbStatus::default()
        };
        let input = InputStatus {
            folder: "in".into(),
            error: None,
            waiting_files: 3,
            oldest_waiting_secs: 725.0,
        };
        let s = assess(db, Some(input), vec![], 300);
        assert_eq!(s.state, State::Degraded);
        let t = render(&s, Format::Text).expect("text");
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "status: degraded (exit 1)");
        assert!(
            lines[1].starts_with("problem: backlog: 3 files waiting in in, the oldest for 12m 5s")
        );
        assert_eq!(
            lines[2],
            "database: postgresql://u@h/db: schema v7; last commit 2026-01-10T11:00:00Z (5s ago)"
        );
        assert!(lines[3].contains("600 last hour") && lines[3].contains("99.10% last hour"));
        assert_eq!(
            lines[4],
            "dead letters today (UTC): missing_user 3, negative_price 1"
        );
        assert_eq!(lines[5], "input in: 3 files waiting, the oldest for 12m 5s");
        let j: serde_json::Value =
            serde_json::from_str(&render(&s, Format::Json).expect("json")).expect("parses");
        assert_eq!(j["state"], "degraded");
        assert_eq!(j["exit_code"], 1);
        assert_eq!(j["database"]["dead_letters_today"]["missing_user"], 3);
        assert_eq!(j["input"]["waiting_files"], 3);
    }
}
