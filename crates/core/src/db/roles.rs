//! The ingest role: a login role holding only what `shopstream run` needs,
//! made by `shopstream migrate --create-ingest-role NAME` (or printed as
//! SQL with `--print-ingest-role-sql` for an administrator to run).
//!
//! What `run` does and so what the role gets: CONNECT and TEMPORARY on the
//! database (the loader's staging table is a temporary table), USAGE on
//! the schema, SELECT and INSERT on the tables it fills, UPDATE of only the
//! `disposition` and `moved_to` columns of the ledger, SELECT on the
//! migration history (to see the schema is current) and on the analytics
//! views (the dashboard and `report`), USAGE on the sequences behind its
//! inserts. No ownership, no CREATE, no DELETE, no TRUNCATE: it cannot drop,
//! alter or empty a table. Re-running the command resets the role to
//! exactly these grants.
//!
//! It never sends a password in clear text: the password (from
//! `SHOPSTREAM_INGEST_PASSWORD`, never a command-line value) is turned into
//! a SCRAM-SHA-256 verifier on this side, and the printed SQL leaves it
//! out.

use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

use super::connect::error_chain;

/// The environment variable holding the ingest role's password.
pub const PASSWORD_ENV: &str = "SHOPSTREAM_INGEST_PASSWORD";

/// `shopstream migrate` options for the ingest role.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct RoleArgs {
    /// After migrating, create (or reset) the login role NAME with only the
    /// privileges `shopstream run` needs: it can load files but cannot
    /// drop, alter, truncate or delete. Its password is read from the
    /// SHOPSTREAM_INGEST_PASSWORD environment variable (never from the
    /// command line); without it a new role has no password (fine for
    /// peer, cert or trust authentication) and an existing one keeps its
    /// own. Needs CREATEROLE (or a superuser). Run it again after an
    /// upgrade that adds migrations.
    #[arg(long, env = "SHOPSTREAM_INGEST_ROLE", value_name = "NAME")]
    pub create_ingest_role: Option<String>,

    /// With --create-ingest-role: print the SQL instead of running it, for
    /// an administrator to review and run with psql (the password is left
    /// out: set it with psql's \password NAME).
    #[arg(
        long,
        env = "SHOPSTREAM_PRINT_INGEST_ROLE_SQL",
        requires = "create_ingest_role"
    )]
    pub print_ingest_role_sql: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum RoleError {
    #[error("{0:?} is not a usable role name (1 to 63 bytes, no NUL, not starting with pg_)")]
    Name(String),
    #[error(
        "creating the ingest role {role} needs CREATEROLE or a superuser ({detail}); ask an \
         administrator to run the SQL that --print-ingest-role-sql prints"
    )]
    NotAllowed { role: String, detail: String },
    #[error("setting up the ingest role {role} failed: {detail}")]
    Db { role: String, detail: String },
}

/// Quotes an SQL identifier.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes an SQL string literal.
fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

fn check_name(role: &str) -> Result<(), RoleError> {
    if role.is_empty() || role.len() > 63 || role.contains('\0') || role.starts_with("pg_") {
        return Err(RoleError::Name(role.to_string()));
    }
    Ok(())
}

/// Tables `run` writes or reads, with exactly the privileges it needs.
const TABLE_GRANTS: &[(&str, &str)] = &[
    ("ecommerce_events", "SELECT, INSERT"),
    ("dead_letter_events", "SELECT, INSERT"),
    ("data_quality_metrics", "SELECT, INSERT"),
    (
        "ingested_files",
        "SELECT, INSERT, UPDATE (disposition, moved_to)",
    ),
    ("schema_migrations", "SELECT"),
];

/// Sequences behind `run`'s inserts (`nextval` needs USAGE).
const SEQUENCES: &[&str] = &[
    "shopstream_batch_id_seq",
    "dead_letter_events_id_seq",
    "ingested_files_id_seq",
];

/// Where the grants go: the database, the schema holding the tables and
/// its analytics views.
struct Place {
    database: String,
    schema: String,
    views: Vec<String>,
}

async fn place(client: &Client, role: &str) -> Result<Place, RoleError> {
    let fail = |e: tokio_postgres::Error| RoleError::Db {
        role: role.to_string(),
        detail: error_chain(&e),
    };
    let row = client
        .query_one(
            "SELECT current_database()::text, n.nspname::text
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.oid = to_regclass('ingested_files')",
            &[],
        )
        .await
        .map_err(fail)?;
    let schema: String = row.get(1);
    let views = client
        .query(
            "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = $1 AND c.relkind = 'v' AND c.relname LIKE 'v\\_%'
             ORDER BY 1",
            &[&schema],
        )
        .await
        .map_err(fail)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    Ok(Place {
        database: row.get(0),
        schema,
        views,
    })
}

/// The statements that create the role if missing and set its grants to
/// exactly what `run` needs. Idempotent; holds no password.
fn statements(role: &str, p: &Place) -> Vec<String> {
    let r = ident(role);
    let s = ident(&p.schema);
    let in_schema = |name: &str| format!("{s}.{}", ident(name));
    let mut v = vec![
        format!(
            "DO $$ BEGIN\n  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {}) THEN\n    \
             CREATE ROLE {r} LOGIN;\n  END IF;\nEND $$",
            literal(role)
        ),
        format!("ALTER ROLE {r} LOGIN NOCREATEDB NOCREATEROLE"),
        // Only a superuser may touch these, so only when one is set.
        format!(
            "DO $$ BEGIN\n  IF EXISTS (SELECT FROM pg_roles WHERE rolname = {} \
             AND (rolsuper OR rolreplication OR rolbypassrls)) THEN\n    \
             ALTER ROLE {r} NOSUPERUSER NOREPLICATION NOBYPASSRLS;\n  END IF;\nEND $$",
            literal(role)
        ),
        format!("REVOKE ALL ON DATABASE {} FROM {r}", ident(&p.database)),
        format!(
            "GRANT CONNECT, TEMPORARY ON DATABASE {} TO {r}",
            ident(&p.database)
        ),
        format!("REVOKE ALL ON SCHEMA {s} FROM {r}"),
        format!("GRANT USAGE ON SCHEMA {s} TO {r}"),
        format!("REVOKE ALL ON ALL TABLES IN SCHEMA {s} FROM {r}"),
        format!("REVOKE ALL ON ALL SEQUENCES IN SCHEMA {s} FROM {r}"),
    ];
    for (table, privileges) in TABLE_GRANTS {
        v.push(format!("GRANT {privileges} ON {} TO {r}", in_schema(table)));
    }
    let seqs: Vec<String> = SEQUENCES.iter().map(|q| in_schema(q)).collect();
    v.push(format!(
        "GRANT USAGE ON SEQUENCE {} TO {r}",
        seqs.join(", ")
    ));
    if !p.views.is_empty() {
        let views: Vec<String> = p.views.iter().map(|q| in_schema(q)).collect();
        v.push(format!("GRANT SELECT ON {} TO {r}", views.join(", ")));
    }
    v
}

/// The SQL `--print-ingest-role-sql` prints (run it with psql as the
/// schema's owner or a superuser).
pub async fn ingest_role_script(client: &Client, role: &str) -> Result<String, RoleError> {
    check_name(role)?;
    let p = place(client, role).await?;
    let mut out = format!(
        "-- The shopstream ingest role {role}: only what `shopstream run` needs.\n\
         -- Run as the owner of the shopstream tables (or a superuser), e.g. psql -f FILE.\n\
         BEGIN;\n"
    );
    for st in statements(role, &p) {
        out.push_str(&st);
        out.push_str(";\n");
    }
    out.push_str(&format!(
        "COMMIT;\n-- Then set its password (never put it in a file): \\password {}\n",
        ident(role)
    ));
    Ok(out)
}

/// What [`create_ingest_role`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleReport {
    pub role: String,
    pub created: bool,
    pub password_set: bool,
    pub database: String,
    pub schema: String,
}

/// Creates (or resets) the ingest role in one transaction. `password`, when
/// given, is sent only as a SCRAM-SHA-256 verifier.
pub async fn create_ingest_role(
    client: &mut Client,
    role: &str,
    password: Option<&str>,
) -> Result<RoleReport, RoleError> {
    check_name(role)?;
    let p = place(client, role).await?;
    let fail = |e: tokio_postgres::Error| {
        let detail = e
            .as_db_error()
            .map_or_else(|| error_chain(&e), |d| d.message().to_string());
        if e.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) {
            RoleError::NotAllowed {
                role: role.to_string(),
                detail,
            }
        } else {
            RoleError::Db {
                role: role.to_string(),
                detail,
            }
        }
    };
    let tx = client.transaction().await.map_err(fail)?;
    let existed = tx
        .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&role])
        .await
        .map_err(fail)?
        .is_some();
    for st in statements(role, &p) {
        tx.batch_execute(&st).await.map_err(fail)?;
    }
    let password = password.filter(|p| !p.is_empty());
    if let Some(pw) = password {
        let verifier = postgres_protocol::password::scram_sha_256(pw.as_bytes());
        tx.batch_execute(&format!(
            "ALTER ROLE {} PASSWORD {}",
            ident(role),
            literal(&verifier)
        ))
        .await
        .map_err(fail)?;
    }
    tx.commit().await.map_err(fail)?;
    Ok(RoleReport {
        role: role.to_string(),
        created: !existed,
        password_set: password.is_some(),
        database: p.database,
        schema: p.schema,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_quoting() {
        assert!(check_name("shop_ingest").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("pg_x").is_err());
        assert!(check_name(&"x".repeat(64)).is_err());
        assert_eq!(ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(literal("it's"), "'it''s'");
    }

    #[test]
    fn grants_are_exactly_what_run_needs() {
        let p = Place {
            database: "shop".into(),
            schema: "public".into(),
            views: vec!["v_top_products".into()],
        };
        let sql = statements("ingest", &p).join(";\n");
        assert!(sql.contains("GRANT CONNECT, TEMPORARY ON DATABASE \"shop\" TO \"ingest\""));
        assert!(sql.contains(
            "GRANT SELECT, INSERT, UPDATE (disposition, moved_to) ON \"public\".\"ingested_files\""
        ));
        assert!(sql.contains("GRANT SELECT ON \"public\".\"v_top_products\""));
        for never in ["DELETE", "TRUNCATE", "CREATE ON", "ALL PRIVILEGES", "OWNER"] {
            assert!(!sql.contains(never), "{never} in {sql}");
        }
    }
}
