//! The versioned, forward-only schema.
//!
//! Migrations are SQL files in `migrations/`, compiled into the binary and
//! applied in order, each in its own transaction together with its row in
//! `schema_migrations` (version, name, checksum, time). A session-level
//! advisory lock makes concurrent starts safe. An applied migration whose
//! text has changed is an error: migrations are never edited, only added.
//!
//! A schema that is already current is only read (no lock, no DDL), so a
//! role without schema rights (the ingest role, see [`super::roles`]) can
//! start `run`; when migrations are pending and the role may not apply them,
//! the error says to run `shopstream migrate` as the owner.
//!
//! Rolling upgrades: each binary knows the schema version it was built for
//! (N, its last migration). A database at N is used as is; one below N is
//! migrated. One above N was migrated by a newer binary: each applied
//! migration records whether it is *additive* (older binaries still write
//! correctly after it: it only adds nullable or defaulted columns, tables,
//! views or indexes). When every migration above N is additive, the older
//! binary keeps loading (one INFO line says so); otherwise it stops with
//! [`MigrateError::TooNew`], naming the version to upgrade to.
//!
//! This module only changes the schema; it never touches event data.

use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

/// One schema step.
pub struct Migration {
    pub version: i32,
    pub name: &'static str,
    pub sql: &'static str,
    /// Older binaries still write correctly after this migration (recorded
    /// in `schema_migrations.additive`; see the module documentation).
    pub additive: bool,
}

/// The schema version this build expects: the last migration's number
/// (shown by `shopstream --version`).
pub const LATEST: i32 = MIGRATIONS[MIGRATIONS.len() - 1].version;
/// This binary's version, for [`MigrateError::TooNew`].
const BINARY_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Every migration, in order. Append only.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "core_tables",
        sql: include_str!("../../migrations/0001_core_tables.sql"),
        additive: false,
    },
    Migration {
        version: 2,
        name: "layouts",
        sql: include_str!("../../migrations/0002_layouts.sql"),
        additive: false,
    },
    Migration {
        version: 3,
        name: "dispositions",
        sql: include_str!("../../migrations/0003_dispositions.sql"),
        additive: true,
    },
    Migration {
        version: 4,
        name: "analytics_views",
        sql: include_str!("../../migrations/0004_analytics_views.sql"),
        additive: true,
    },
    Migration {
        version: 5,
        name: "lean_event_indexes",
        sql: include_str!("../../migrations/0005_lean_event_indexes.sql"),
        additive: false,
    },
    Migration {
        version: 6,
        name: "file_identity",
        sql: include_str!("../../migrations/0006_file_identity.sql"),
        additive: false,
    },
    Migration {
        version: 7,
        name: "category_avg_price",
        sql: include_str!("../../migrations/0007_category_avg_price.sql"),
        additive: true,
    },
    Migration {
        version: 8,
        name: "replay_requeue",
        sql: include_str!("../../migrations/0008_replay_requeue.sql"),
        additive: true,
    },
    Migration {
        version: 9,
        name: "event_partitions",
        sql: include_str!("../../migrations/0009_event_partitions.sql"),
        // Older binaries' staged route names ON CONFLICT (event_id), which
        // no unique index of the partitioned table matches.
        additive: false,
    },
    Migration {
        version: 10,
        name: "lean_dead_letter_indexes",
        sql: include_str!("../../migrations/0010_lean_dead_letter_indexes.sql"),
        additive: true,
    },
];

/// Key of the advisory lock held while migrating ("shopstrm").
const LOCK_KEY: i64 = 0x73686f7073747231;

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("migration {version} ({name}) failed: {source}")]
    Apply {
        version: i32,
        name: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("could not read or lock the migration history: {0}")]
    History(#[source] tokio_postgres::Error),
    #[error("migration {version} was applied with different SQL (checksum {applied}, this binary has {ours}); migrations must never be edited, add a new one instead")]
    Changed {
        version: i32,
        applied: String,
        ours: String,
    },
    #[error(
        "the database is at schema v{db}; this shopstream ({binary}) knows up to v{ours}: upgrade \
         to a version that knows v{db} (migration v{blocking} changes what older versions write)"
    )]
    TooNew {
        db: i32,
        ours: i32,
        /// The first newer migration that is not additive.
        blocking: i32,
        binary: &'static str,
    },
    #[error(
        "the database schema is at version {db} but this shopstream needs version {ours}, and \
         the role {role} may not change the schema ({why}); run `shopstream migrate` once as \
         the schema's owner, then start again"
    )]
    NeedsOwner {
        db: i32,
        ours: i32,
        role: String,
        why: String,
    },
}

fn checksum(sql: &str) -> String {
    blake3::hash(sql.as_bytes()).to_hex()[..16].to_string()
}

/// What [`migrate`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrateReport {
    pub applied: Vec<(i32, &'static str)>,
    pub current: i32,
}

/// One row of `schema_migrations`.
#[derive(Debug, Clone)]
struct Applied {
    version: i32,
    checksum: String,
    /// False for rows written before the column existed.
    additive: bool,
}

/// The applied migrations, or `None` when the history table does not exist
/// yet. Read-only.
async fn applied(client: &Client) -> Result<Option<Vec<Applied>>, MigrateError> {
    let exists: bool = client
        .query_one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[])
        .await
        .map_err(MigrateError::History)?
        .get(0);
    if !exists {
        return Ok(None);
    }
    let rows = client
        .query(
            // Through jsonb: the `additive` column may not exist yet.
            "SELECT version, checksum,
                    coalesce((to_jsonb(m) ->> 'additive')::boolean, false)
             FROM schema_migrations m ORDER BY version",
            &[],
        )
        .await
        .map_err(MigrateError::History)?;
    Ok(Some(
        rows.iter()
            .map(|r| Applied {
                version: r.get(0),
                checksum: r.get(1),
                additive: r.get(2),
            })
            .collect(),
    ))
}

/// The database's schema version: the last applied migration, 0 when
/// shopstream never migrated it. Read-only.
pub async fn current_version(client: &Client) -> Result<i32, MigrateError> {
    Ok(applied(client)
        .await?
        .and_then(|a| a.last().map(|m| m.version))
        .unwrap_or(0))
}

/// The version of the newest migration this binary has (N).
pub fn known_version() -> i32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// For a database migrated beyond this binary: the newest version, when
/// every migration above ours is additive (this binary keeps working), or
/// [`MigrateError::TooNew`]. `None` when the database is not ahead.
fn ahead(applied: &[Applied]) -> Result<Option<i32>, MigrateError> {
    let ours = known_version();
    let Some(db) = applied.last().map(|m| m.version).filter(|v| *v > ours) else {
        return Ok(None);
    };
    match applied.iter().find(|m| m.version > ours && !m.additive) {
        Some(m) => Err(MigrateError::TooNew {
            db,
            ours,
            blocking: m.version,
            binary: BINARY_VERSION,
        }),
        None => Ok(Some(db)),
    }
}

/// Checks the applied migrations against ours; returns the pending ones.
fn pending(applied: &[Applied]) -> Result<Vec<&'static Migration>, MigrateError> {
    ahead(applied)?;
    let mut todo = vec![];
    for m in MIGRATIONS {
        let sum = checksum(m.sql);
        match applied.iter().find(|a| a.version == m.version) {
            Some(a) if a.checksum != sum => {
                return Err(MigrateError::Changed {
                    version: m.version,
                    applied: a.checksum.clone(),
                    ours: sum,
                })
            }
            Some(_) => {}
            None => todo.push(m),
        }
    }
    Ok(todo)
}

/// Fails with [`MigrateError::NeedsOwner`] when the connected role cannot
/// create objects in its schema (so cannot apply migrations).
async fn check_may_migrate(client: &Client, db_version: i32) -> Result<(), MigrateError> {
    let row = client
        .query_one(
            "SELECT current_user::text, current_schema()::text,
                    coalesce(has_schema_privilege(current_schema(), 'CREATE'), false)",
            &[],
        )
        .await
        .map_err(MigrateError::History)?;
    let role: String = row.get(0);
    let schema: Option<String> = row.get(1);
    let may: bool = row.get(2);
    if may {
        return Ok(());
    }
    Err(MigrateError::NeedsOwner {
        db: db_version,
        ours: MIGRATIONS.last().map_or(0, |m| m.version),
        role,
        why: match schema {
            Some(s) => format!("it lacks CREATE on schema {s}"),
            None => "no schema on its search_path exists".to_string(),
        },
    })
}

/// Brings the schema up to date. A current schema is only read.
pub async fn migrate(client: &mut Client) -> Result<MigrateReport, MigrateError> {
    let ours = MIGRATIONS.last().map_or(0, |m| m.version);
    let before = applied(client).await?;
    if let Some(done) = &before {
        if pending(done)?.is_empty() {
            let current = match ahead(done)? {
                Some(db) => {
                    tracing::info!(
                        "the database is at schema v{db}, newer than this shopstream \
                         ({BINARY_VERSION}, schema v{ours}); every newer migration is additive, \
                         so this version keeps loading (upgrade it when convenient)"
                    );
                    db
                }
                None => ours,
            };
            return Ok(MigrateReport {
                applied: vec![],
                current,
            });
        }
    }
    let db_version = before
        .as_ref()
        .and_then(|a| a.last().map(|m| m.version))
        .unwrap_or(0);
    check_may_migrate(client, db_version).await?;
    client
        .batch_execute(&format!("SELECT pg_advisory_lock({LOCK_KEY})"))
        .await
        .map_err(MigrateError::History)?;
    let result = async {
        if before.is_none() {
            client
                .batch_execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations (
                         version    integer PRIMARY KEY,
                         name       text NOT NULL,
                         checksum   text NOT NULL,
                         applied_at timestamptz NOT NULL DEFAULT now())",
                )
                .await
                .map_err(MigrateError::History)?;
        }
        // Idempotent; older binaries' rows read as not additive.
        client
            .batch_execute(
                "ALTER TABLE schema_migrations \
                 ADD COLUMN IF NOT EXISTS additive boolean NOT NULL DEFAULT false",
            )
            .await
            .map_err(MigrateError::History)?;
        apply_pending(client, db_version).await
    }
    .await;
    let unlock = client
        .batch_execute(&format!("SELECT pg_advisory_unlock({LOCK_KEY})"))
        .await;
    let report = result?;
    unlock.map_err(MigrateError::History)?;
    Ok(report)
}

async fn apply_pending(
    client: &mut Client,
    db_version: i32,
) -> Result<MigrateReport, MigrateError> {
    // Read again under the lock: another process may have migrated.
    let done = applied(client).await?.unwrap_or_default();
    let todo = pending(&done)?;
    let mut report = MigrateReport {
        applied: vec![],
        current: MIGRATIONS.last().map_or(0, |m| m.version),
    };
    for m in todo {
        let sum = checksum(m.sql);
        let err = |source: tokio_postgres::Error| {
            if source.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) {
                let why = source
                    .as_db_error()
                    .map_or_else(|| source.to_string(), |d| d.message().to_string());
                MigrateError::NeedsOwner {
                    db: db_version,
                    ours: report.current,
                    role: "connected".to_string(),
                    why,
                }
            } else {
                MigrateError::Apply {
                    version: m.version,
                    name: m.name,
                    source,
                }
            }
        };
        let tx = client.transaction().await.map_err(err)?;
        tx.batch_execute(m.sql).await.map_err(err)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, checksum, additive) \
             VALUES ($1, $2, $3, $4)",
            &[&m.version, &m.name, &sum, &m.additive],
        )
        .await
        .map_err(err)?;
        tx.commit().await.map_err(err)?;
        // The caller reports what was applied (`run` logs it, `migrate`
        // prints it): logging here as well would say it twice.
        tracing::debug!(version = m.version, name = m.name, "applied migration");
        report.applied.push((m.version, m.name));
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_strictly_increasing_from_one() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as i32 + 1, "{}", m.name);
        }
    }
}
