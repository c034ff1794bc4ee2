//! Loading declared layouts: what is accepted, and every refusal with its
//! file, line and key.

use super::*;
use crate::event::Field;
use crate::schema::{Dialect, Kind, Target};

const SHOP: &str = r#"name = "shopx"
description = "Shop X's nightly export"
delimiter = ";"
decimal = ","
time_format = "%d.%m.%Y %H:%M"
time_zone = "Europe/Berlin"
id_from = ["Kunde", "Aktion", "Artikel", "Zeit"]

[defaults]
user_segment = "b2b"

[[column]]
name = "Kunde"
to = "user_id"

[[column]]
name = "Aktion"
aliases = ["Ereignis"]
to = "event_type"

[[column]]
name = "Artikel"
to = "product_id"

[[column]]
name = "Preis"
to = "price"
optional = true

[[column]]
name = "Zeit"
to = "event_time"

[[column]]
name = "Filiale"
to = "extra"

[[column]]
name = "Export"
to = "drop"
"#;

fn write(dir: &std::path::Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    p
}

/// The error of loading `text` as one layout file.
fn refusal(text: &str) -> DeclaredError {
    let d = tempfile::tempdir().expect("tmp");
    let p = write(d.path(), "bad.toml", text);
    load(&[p]).expect_err("refused")
}

/// `(line, key)` of an `Invalid` error, and its text.
fn at(e: &DeclaredError) -> (usize, &str, String) {
    match e {
        DeclaredError::Invalid { line, key, .. } => (*line, key.as_str(), e.to_string()),
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn a_layout_file_becomes_a_registered_layout() {
    let d = tempfile::tempdir().expect("tmp");
    let p = write(d.path(), "shopx.toml", SHOP);
    let r = load(std::slice::from_ref(&p)).expect("loads");
    let l = r.find("SHOPX").expect("registered");
    let spec = l.spec();
    assert_eq!(spec.kind, Kind::Declared);
    assert_eq!(
        spec.read.dialect,
        Dialect {
            delimiter: b';',
            quote: b'"'
        }
    );
    assert!(spec.read.decimal_comma);
    assert_eq!(spec.read.time_formats.len(), 1);
    assert_eq!(spec.read.time_zone, Some(chrono_tz::Europe::Berlin));
    assert_eq!(spec.read.defaults, &[(Field::UserSegment, "b2b")]);
    assert_eq!(spec.read.id_from.map(<[_]>::len), Some(4));
    assert_eq!(spec.columns[1].aliases, &["Ereignis"]);
    assert!(spec.columns[3].optional);
    assert_eq!(spec.columns[5].target, Target::Extra);
    assert_eq!(spec.columns[6].target, Target::Drop);
    assert_eq!(spec.declared_in, Some(p.display().to_string().as_str()));
    assert_eq!(r.all().count(), 9);
    assert_eq!(r.other_dialects().len(), 1);
    // The same files again: the same registry, nothing leaked twice.
    assert_eq!(load(&[p]).expect("again"), r);
    // A folder gives its .toml files.
    write(d.path(), "notes.txt", "not a layout");
    assert_eq!(
        load(&[d.path().to_path_buf()])
            .expect("folder")
            .declared()
            .len(),
        1
    );
}

#[test]
fn an_unknown_canonical_column_is_refused_with_line_and_key() {
    let e = refusal(&SHOP.replace("to = \"price\"", "to = \"preis\""));
    let (line, key, text) = at(&e);
    assert_eq!((line, key), (27, "to"), "{text}");
    assert!(
        text.contains("bad.toml:27: to: \"preis\" is not a canonical column"),
        "{text}"
    );
}

#[test]
fn bad_formats_zones_delimiters_and_names_are_refused() {
    for (from, to, line, key, says) in [
        (
            "%d.%m.%Y %H:%M\"",
            "%d.%m.%Y\"",
            5,
            "time_format",
            "cannot be read back",
        ),
        (
            "%d.%m.%Y %H:%M\"",
            "%Q\"",
            5,
            "time_format",
            "not a strftime",
        ),
        (
            "Europe/Berlin",
            "Europe/Bonn",
            6,
            "time_zone",
            "unknown time zone",
        ),
        (
            "delimiter = \";\"",
            "delimiter = \";;\"",
            3,
            "delimiter",
            "not one character",
        ),
        (
            "decimal = \",\"",
            "decimal = \"'\"",
            4,
            "decimal",
            "no decimal separator",
        ),
        (
            "name = \"shopx\"",
            "name = \"v1\"",
            1,
            "name",
            "built-in layout",
        ),
        (
            "name = \"shopx\"",
            "name = \"shop x\"",
            1,
            "name",
            "no layout name",
        ),
        (
            "\"Zeit\"]",
            "\"Uhrzeit\"]",
            7,
            "id_from",
            "not a column name",
        ),
        (
            "user_segment = \"b2b\"",
            "event_id = \"x\"",
            10,
            "defaults.event_id",
            "cannot have",
        ),
        (
            "aliases = [\"Ereignis\"]",
            "aliases = [\"kunde\"]",
            18,
            "aliases",
            "given twice",
        ),
        (
            "to = \"product_id\"",
            "to = \"user_id\"",
            23,
            "to",
            "two columns map to user_id",
        ),
        (
            "optional = true",
            "colour = true",
            28,
            "colour",
            "unknown field `colour`",
        ),
        ("decimal = \",\"", "decimal = ,", 4, "decimal", ""),
    ] {
        assert!(SHOP.contains(from), "{from}");
        let e = refusal(&SHOP.replacen(from, to, 1));
        let (l, k, text) = at(&e);
        assert_eq!((l, k), (line, key), "{to}: {text}");
        assert!(text.contains(says), "{to}: {text}");
    }
    let e = refusal(&SHOP.replace("to = \"event_time\"", "to = \"extra\""));
    let (_, key, text) = at(&e);
    assert_eq!(key, "column");
    assert!(text.contains("no column maps to event_time"), "{text}");
}

#[test]
fn a_layout_with_the_column_set_of_another_is_ambiguous() {
    let v1 = r#"name = "mine"
[[column]]
name = "event_id"
to = "event_id"
[[column]]
name = "USER_ID"
to = "user_id"
[[column]]
name = "event_type"
to = "event_type"
[[column]]
name = "product_id"
to = "product_id"
[[column]]
name = "price"
to = "price"
[[column]]
name = "when"
aliases = ["event_time"]
to = "event_time"
"#;
    let e = refusal(v1);
    let (line, key, text) = at(&e);
    assert_eq!((line, key), (1, "name"));
    assert!(
        text.contains("layout mine is ambiguous with v1 (built in)"),
        "{text}"
    );
    // With another delimiter a header cannot match both: accepted.
    let d = tempfile::tempdir().expect("tmp");
    let p = write(d.path(), "semi.toml", &format!("delimiter = \";\"\n{v1}"));
    assert!(load(&[p]).is_ok());
    // Two files declaring the same column set, or the same name.
    let a = write(d.path(), "a.toml", SHOP);
    let b = write(d.path(), "b.toml", &SHOP.replace("\"shopx\"", "\"shopy\""));
    let e = load(&[a.clone(), b]).expect_err("ambiguous");
    assert!(
        e.to_string().contains("ambiguous with shopx (declared in"),
        "{e}"
    );
    let e = load(&[a.clone(), a]).expect_err("twice");
    assert!(e.to_string().contains("declared twice"), "{e}");
}

#[test]
fn missing_files_and_empty_folders_are_named() {
    let d = tempfile::tempdir().expect("tmp");
    let e = load(&[d.path().join("nope.toml")]).expect_err("missing");
    assert!(matches!(e, DeclaredError::Read { .. }), "{e}");
    let e = load(&[d.path().to_path_buf()]).expect_err("empty");
    assert!(matches!(e, DeclaredError::NoFiles { .. }), "{e}");
    assert_eq!(load(&[]).expect("none"), Registry::BUILT_IN);
}
