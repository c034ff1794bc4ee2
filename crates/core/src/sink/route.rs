//! Which route a batch's valid rows take, from the shape of the event
//! table: the copy route ([`super::dedup`]) when the table checks nothing
//! the validator does not already guarantee, else the staged route
//! ([`super::staged`]), where a row the server refuses becomes a dead
//! letter instead of failing its batch.
//!
//! It owns the catalogue query that tells the two apart. It never changes
//! the table.

use tokio_postgres::Client;

/// The constraints shopstream's migrations create on `ecommerce_events`;
/// the validator refuses every row they would refuse. The primary key is
/// `(event_id, event_time)` from schema v9 on (the event table is
/// partitioned by event_time); event_id alone is kept unique by the
/// loaders under the writer lock.
const OWN_CONSTRAINTS: &[&str] = &[
    "ecommerce_events_pkey",
    "ecommerce_events_event_type_check",
    "ecommerce_events_price_check",
    "ecommerce_events_quantity_check",
    "user_required_for_login_only_events",
];

/// The NOT NULL columns of the migrated table: the COPY always fills them
/// (or they have a default).
const OWN_NOT_NULL: &[&str] = &[
    "event_id",
    "event_type",
    "product_id",
    "quantity",
    "event_time",
    "total_amount",
    "is_late_arrival",
    "source_file",
    "source_line",
    "batch_id",
    "ingested_at",
    "source_layout",
];

/// What on the event table only the server checks, one line each; empty
/// when the copy route can take every valid row.
pub async fn server_only_checks(client: &Client) -> Result<Vec<String>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT 'constraint ' || conname::text, conname::text FROM pg_constraint
             WHERE conrelid = 'ecommerce_events'::regclass
             UNION ALL
             SELECT 'unique index ' || c.relname::text, c.relname::text
             FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
             WHERE i.indrelid = 'ecommerce_events'::regclass AND i.indisunique
               AND NOT i.indisprimary
             UNION ALL
             SELECT 'trigger ' || tgname::text, '' FROM pg_trigger
             WHERE tgrelid = 'ecommerce_events'::regclass AND NOT tgisinternal
               AND tgtype & 4 = 4
             UNION ALL
             SELECT 'NOT NULL on ' || attname::text, attname::text FROM pg_attribute
             WHERE attrelid = 'ecommerce_events'::regclass AND attnum > 0
               AND NOT attisdropped AND attnotnull",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            let (what, name): (String, String) = (r.get(0), r.get(1));
            let own = if what.starts_with("NOT NULL") {
                OWN_NOT_NULL.contains(&name.as_str())
            } else {
                OWN_CONSTRAINTS.contains(&name.as_str())
            };
            (!own).then_some(what)
        })
        .collect())
}
