//! The staging table and the encoders for its rows, of a row of
//! `ecommerce_events` itself, and of a dead letter.
//!
//! On the copy route rows skip the staging table: [`encode_event`] lays a
//! valid event out for a COPY straight into `ecommerce_events`, and
//! [`encode_dead_letter`] a rejected row for one straight into
//! `dead_letter_events` (each written once). On the staged route (an event
//! table that checks what the validator does not) every row goes into one
//! temporary table (column `ok` tells valid rows from rejected ones); SQL
//! then moves them to `dead_letter_events` and `ecommerce_events` (the
//! first copy of each id the table does not hold, for dedup). The table is
//! `ON COMMIT DELETE ROWS`: nothing survives a transaction.
//!
//! This module only lays out bytes; [`super::transaction`] runs the SQL.

use bytes::{Bytes, BytesMut};

use super::copy;
use crate::validate::{Failure, ValidEvent};

pub const STAGE_TABLE: &str = "shopstream_stage";

pub const CREATE_STAGE: &str = "CREATE TEMP TABLE IF NOT EXISTS shopstream_stage (
    file_no int4 NOT NULL, source_line int8 NOT NULL, ok bool NOT NULL,
    event_id uuid, user_id text, session_id text, event_type text, product_id text,
    product_name text, category text, price numeric(12,2), quantity int4,
    user_segment text, search_query text, event_time timestamptz, device_type text,
    browser text, geo_country text, geo_city text, referrer text, campaign_id text,
    total_amount numeric(18,2), is_late_arrival bool, extra jsonb,
    raw_line text, raw_event_id text, error_codes text[], errors jsonb
) ON COMMIT DELETE ROWS";

pub const COPY_STAGE: &str = "COPY shopstream_stage FROM STDIN (FORMAT binary)";

const STAGE_FIELDS: i16 = 28;

/// The event columns shared by the staging and the final table, in order.
pub const EVENT_COLUMNS: &str = "event_id, user_id, session_id, event_type, product_id, \
    product_name, category, price, quantity, user_segment, search_query, event_time, \
    device_type, browser, geo_country, geo_city, referrer, campaign_id, total_amount, \
    is_late_arrival, extra";

/// The staged columns joined into a stand-in raw line when a refused row's
/// file can no longer be re-read.
pub const RAW_FALLBACK_COLUMNS: &str = "event_id, user_id, session_id, event_type, product_id, \
    product_name, category, price, quantity, user_segment, search_query, event_time, \
    device_type, browser, geo_country, geo_city, referrer, campaign_id";

/// Appends one valid event.
/// `extra` is the JSON of the columns kept outside the canonical schema.
pub fn encode_valid(
    buf: &mut BytesMut,
    file_no: i32,
    line: u64,
    e: &ValidEvent<'_>,
    extra: Option<&[u8]>,
) {
    copy::row(buf, STAGE_FIELDS);
    copy::int4(buf, file_no);
    copy::int8(buf, line as i64);
    copy::bool(buf, true);
    event_fields(buf, e, extra);
    for _ in 0..4 {
        copy::null(buf);
    }
}

/// The COPY into the final table: where the row came from (the same for
/// every row of a file), then [`EVENT_COLUMNS`] and the line.
pub fn copy_events() -> String {
    format!(
        "COPY ecommerce_events (batch_id, source_file, source_layout, {EVENT_COLUMNS}, \
         source_line) FROM STDIN (FORMAT binary)"
    )
}

const EVENT_FIELDS: i16 = 25;

/// Where a directly loaded row came from.
pub struct Origin<'a> {
    pub source_file: &'a str,
    pub layout: &'a str,
}

/// The start of every row of one file in the final table (see
/// [`copy_events`]): the field count, the batch id (0 until [`stamped`])
/// and where the row came from. Held once per file; [`encode_event`]
/// writes the rest of each row.
pub fn encode_origin(buf: &mut BytesMut, origin: &Origin<'_>) {
    copy::row(buf, EVENT_FIELDS);
    copy::int8(buf, 0);
    copy::text(buf, origin.source_file);
    copy::text(buf, origin.layout);
}

/// Encoded rows of the copy route (dead letters, or a file's
/// [`encode_origin`]) with the batch id in their first field: the reader
/// encodes them while the batch is claimed, before its id is known.
pub fn stamped(rows: &[u8], batch_id: i64) -> Bytes {
    let mut buf = BytesMut::from(rows);
    copy::stamp_first_int8(&mut buf, batch_id);
    buf.freeze()
}

/// Appends the rest of one valid event's row of the final table, after
/// its file's [`encode_origin`].
pub fn encode_event(buf: &mut BytesMut, line: u64, e: &ValidEvent<'_>, extra: Option<&[u8]>) {
    event_fields(buf, e, extra);
    copy::int8(buf, line as i64);
}

/// The values of [`EVENT_COLUMNS`].
fn event_fields(buf: &mut BytesMut, e: &ValidEvent<'_>, extra: Option<&[u8]>) {
    copy::uuid(buf, &e.event_id);
    copy::opt_text(buf, e.user_id);
    copy::opt_text(buf, e.session_id);
    copy::text(buf, e.event_type.as_str());
    copy::text(buf, e.product_id);
    copy::opt_text(buf, e.product_name);
    copy::opt_text(buf, e.category.as_deref());
    match e.price_cents {
        Some(c) => copy::numeric_cents(buf, c),
        None => copy::null(buf),
    }
    copy::int4(buf, e.quantity);
    copy::opt_text(buf, e.user_segment.as_deref());
    copy::opt_text(buf, e.search_query);
    copy::timestamptz(buf, e.event_time);
    copy::opt_text(buf, e.device_type.as_deref());
    copy::opt_text(buf, e.browser);
    copy::opt_text(buf, e.geo_country);
    copy::opt_text(buf, e.geo_city);
    copy::opt_text(buf, e.referrer);
    copy::opt_text(buf, e.campaign_id);
    copy::numeric_cents(buf, e.total_cents);
    copy::bool(buf, e.is_late_arrival);
    match extra {
        Some(j) => copy::jsonb(buf, j),
        None => copy::null(buf),
    }
}

/// Appends one rejected row of the staging table with every rule it
/// failed. `json` is scratch space reused between calls.
pub fn encode_rejected(
    buf: &mut BytesMut,
    json: &mut Vec<u8>,
    file_no: i32,
    line: u64,
    raw_line: &str,
    raw_event_id: Option<&str>,
    failures: &[Failure],
) {
    copy::row(buf, STAGE_FIELDS);
    copy::int4(buf, file_no);
    copy::int8(buf, line as i64);
    copy::bool(buf, false);
    for _ in 0..21 {
        copy::null(buf);
    }
    rejection(buf, json, raw_line, raw_event_id, failures);
}

/// The COPY of dead letters straight into their table (copy route): where
/// the row came from (the same for every row of a file), then its line and
/// what was wrong with it.
pub const COPY_DEAD_LETTERS: &str = "COPY dead_letter_events (batch_id, source_file, \
    source_layout, source_line, raw_line, event_id, error_codes, errors) FROM STDIN (FORMAT binary)";

const DEAD_LETTER_FIELDS: i16 = 8;

/// The start of every dead letter of one file (see [`COPY_DEAD_LETTERS`]):
/// the field count, the batch id (0 until [`stamped`]) and where the row
/// came from. `layout` is `None` for a line read before the file's layout
/// is known (a JSON Lines file's lines before its first object).
pub fn encode_dead_letter_origin(buf: &mut BytesMut, source_file: &str, layout: Option<&str>) {
    copy::row(buf, DEAD_LETTER_FIELDS);
    copy::int8(buf, 0);
    copy::text(buf, source_file);
    copy::opt_text(buf, layout);
}

/// Appends one dead letter after its file's
/// [`encode_dead_letter_origin`] (`origin`). `json` is scratch space.
pub fn encode_dead_letter(
    buf: &mut BytesMut,
    json: &mut Vec<u8>,
    origin: &[u8],
    line: u64,
    raw_line: &str,
    raw_event_id: Option<&str>,
    failures: &[Failure],
) {
    buf.extend_from_slice(origin);
    copy::int8(buf, line as i64);
    rejection(buf, json, raw_line, raw_event_id, failures);
}

/// A rejected row's text, event id, codes and failures (the same columns
/// in the staging table and in `dead_letter_events`).
fn rejection(
    buf: &mut BytesMut,
    json: &mut Vec<u8>,
    raw_line: &str,
    raw_event_id: Option<&str>,
    failures: &[Failure],
) {
    copy::text(buf, raw_line);
    copy::opt_text(buf, raw_event_id);
    copy::text_array(buf, failures.iter().map(|f| f.code.as_str()));
    json.clear();
    // Serialising plain strings into a Vec cannot fail.
    if serde_json::to_writer(&mut *json, failures).is_err() {
        json.clear();
        json.extend_from_slice(b"[]");
    }
    copy::jsonb(buf, json);
}
