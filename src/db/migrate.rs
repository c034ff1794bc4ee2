//! The versioned, forward-only schema.
//!
//! Migrations are SQL files in `migrations/`, compiled into the binary and
//! applied in order, each in its own transaction together with its row in
//! `schema_migrations` (version, name, checksum, time). A session-level
//! advisory lock makes concurrent starts safe. An applied migration whose
//! text has changed is an error: migrations are never edited, only added.
//!
//! This module only changes the schema; it never touches event data.

use tokio_postgres::Client;

/// One schema step.
pub struct Migration {
    pub version: i32,
    pub name: &'static str,
    pub sql: &'static str,
}

/// Every migration, in order. Append only.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "core_tables",
        sql: include_str!("../../migrations/0001_core_tables.sql"),
    },
    Migration {
        version: 2,
        name: "layouts",
        sql: include_str!("../../migrations/0002_layouts.sql"),
    },
    Migration {
        version: 3,
        name: "dispositions",
        sql: include_str!("../../migrations/0003_dispositions.sql"),
    },
    Migration {
        version: 4,
        name: "analytics_views",
        sql: include_str!("../../migrations/0004_analytics_views.sql"),
    },
    Migration {
        version: 5,
        name: "lean_event_indexes",
        sql: include_str!("../../migrations/0005_lean_event_indexes.sql"),
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
    #[error("the database is at schema version {db}, newer than this binary knows ({ours}); upgrade shopstream")]
    TooNew { db: i32, ours: i32 },
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

/// Brings the schema up to date.
pub async fn migrate(client: &mut Client) -> Result<MigrateReport, MigrateError> {
    client
        .batch_execute(&format!(
            "SELECT pg_advisory_lock({LOCK_KEY});
             CREATE TABLE IF NOT EXISTS schema_migrations (
                 version    integer PRIMARY KEY,
                 name       text NOT NULL,
                 checksum   text NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now())"
        ))
        .await
        .map_err(MigrateError::History)?;
    let result = apply_pending(client).await;
    let unlock = client
        .batch_execute(&format!("SELECT pg_advisory_unlock({LOCK_KEY})"))
        .await;
    let report = result?;
    unlock.map_err(MigrateError::History)?;
    Ok(report)
}

async fn apply_pending(client: &mut Client) -> Result<MigrateReport, MigrateError> {
    let rows = client
        .query(
            "SELECT version, checksum FROM schema_migrations ORDER BY version",
            &[],
        )
        .await
        .map_err(MigrateError::History)?;
    let applied: Vec<(i32, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let ours = MIGRATIONS.last().map_or(0, |m| m.version);
    if let Some((db, _)) = applied.last() {
        if *db > ours {
            return Err(MigrateError::TooNew { db: *db, ours });
        }
    }
    let mut report = MigrateReport {
        applied: vec![],
        current: ours,
    };
    for m in MIGRATIONS {
        let sum = checksum(m.sql);
        if let Some((_, old)) = applied.iter().find(|(v, _)| *v == m.version) {
            if *old != sum {
                return Err(MigrateError::Changed {
                    version: m.version,
                    applied: old.clone(),
                    ours: sum,
                });
            }
            continue;
        }
        let err = |source| MigrateError::Apply {
            version: m.version,
            name: m.name,
            source,
        };
        let tx = client.transaction().await.map_err(err)?;
        tx.batch_execute(m.sql).await.map_err(err)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
            &[&m.version, &m.name, &sum],
        )
        .await
        .map_err(err)?;
        tx.commit().await.map_err(err)?;
        tracing::info!(version = m.version, name = m.name, "applied migration");
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
