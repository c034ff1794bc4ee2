//! What a failure means, and how long to wait before trying again.
//!
//! Database errors are classified by SQLSTATE: *transient* ones (the
//! connection dropped or was refused, a timeout, a serialization failure or
//! deadlock, too many connections, an administrator shutdown, a read-only
//! standby) are worth retrying as they are; *row data* errors (a constraint
//! or a value the server refuses) will fail the same way every time; the
//! rest (a missing table, a privilege, a refused login, an unknown
//! database) need a person. Retries wait with
//! exponential backoff and jitter.
//!
//! This module decides nothing about batches or files; the loader does.

use std::time::Duration;

use rand::Rng;
use tokio_postgres::error::SqlState;

/// The kind of a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Retrying the same work later can succeed.
    Transient,
    /// The server refused a row's value: retrying the same rows fails again.
    RowData,
    /// Configuration or schema: needs a person (retried slowly while
    /// running continuously).
    Fatal,
}

/// Classifies a database error by its SQLSTATE; errors without one (I/O,
/// closed connection, TLS) are transient.
pub fn classify(e: &tokio_postgres::Error) -> Class {
    match e.code() {
        None => Class::Transient,
        Some(code) => classify_state(code),
    }
}

/// Classifies one SQLSTATE.
pub fn classify_state(code: &SqlState) -> Class {
    let c = code.code();
    let transient = [
        &SqlState::T_R_SERIALIZATION_FAILURE,
        &SqlState::T_R_DEADLOCK_DETECTED,
        &SqlState::TOO_MANY_CONNECTIONS,
        &SqlState::ADMIN_SHUTDOWN,
        &SqlState::CRASH_SHUTDOWN,
        &SqlState::CANNOT_CONNECT_NOW,
        &SqlState::QUERY_CANCELED,
        &SqlState::READ_ONLY_SQL_TRANSACTION,
        &SqlState::LOCK_NOT_AVAILABLE,
        &SqlState::IDLE_IN_TRANSACTION_SESSION_TIMEOUT,
    ];
    // 08: connection exception; 53: insufficient resources; 58: system error.
    if transient.contains(&code)
        || c.starts_with("08")
        || c.starts_with("53")
        || c.starts_with("58")
    {
        return Class::Transient;
    }
    // 22: data exception; 23: integrity constraint violation.
    if c.starts_with("22") || c.starts_with("23") {
        return Class::RowData;
    }
    Class::Fatal
}

/// Exponential backoff with jitter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    pub initial: Duration,
    pub factor: f64,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_secs(1),
            factor: 2.0,
            max: Duration::from_secs(60),
        }
    }
}

impl Backoff {
    /// The wait before retry number `attempt` (1-based): `initial ×
    /// factor^(attempt-1)`, capped at `max`, then spread by ±20% so that
    /// many workers do not retry in lockstep (never above `max`).
    pub fn delay<R: Rng + ?Sized>(&self, attempt: u32, rng: &mut R) -> Duration {
        let exp = self.factor.powi(attempt.saturating_sub(1).min(64) as i32);
        let base = (self.initial.as_secs_f64() * exp).min(self.max.as_secs_f64());
        let jittered = base * rng.random_range(0.8..=1.2);
        Duration::from_secs_f64(jittered.min(self.max.as_secs_f64()).max(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn sqlstates_are_classified() {
        for t in [
            SqlState::CONNECTION_FAILURE,
            SqlState::CONNECTION_EXCEPTION,
            SqlState::T_R_SERIALIZATION_FAILURE,
            SqlState::T_R_DEADLOCK_DETECTED,
            SqlState::TOO_MANY_CONNECTIONS,
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
            SqlState::QUERY_CANCELED,
            SqlState::READ_ONLY_SQL_TRANSACTION,
            SqlState::DISK_FULL,
        ] {
            assert_eq!(classify_state(&t), Class::Transient, "{}", t.code());
        }
        for r in [
            SqlState::CHECK_VIOLATION,
            SqlState::NOT_NULL_VIOLATION,
            SqlState::NUMERIC_VALUE_OUT_OF_RANGE,
            SqlState::CHARACTER_NOT_IN_REPERTOIRE,
            SqlState::UNTRANSLATABLE_CHARACTER,
        ] {
            assert_eq!(classify_state(&r), Class::RowData, "{}", r.code());
        }
        for f in [
            SqlState::UNDEFINED_TABLE,
            SqlState::INSUFFICIENT_PRIVILEGE,
            SqlState::SYNTAX_ERROR,
            // A refused login and an unknown database need a person too.
            SqlState::INVALID_PASSWORD,
            SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
            SqlState::INVALID_CATALOG_NAME,
        ] {
            assert_eq!(classify_state(&f), Class::Fatal, "{}", f.code());
        }
    }

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        let b = Backoff::default();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        for (attempt, base) in [(1, 1.0), (2, 2.0), (3, 4.0), (6, 32.0)] {
            for _ in 0..50 {
                let d = b.delay(attempt, &mut rng).as_secs_f64();
                assert!((base * 0.8..=base * 1.2).contains(&d), "{attempt}: {d}");
            }
        }
        let spread: std::collections::HashSet<u128> =
            (0..20).map(|_| b.delay(3, &mut rng).as_millis()).collect();
        assert!(spread.len() > 5, "jitter spreads retries");
        for attempt in [7, 8, 30, u32::MAX] {
            let d = b.delay(attempt, &mut rng);
            assert!(
                d <= Duration::from_secs(60) && d >= Duration::from_secs(48),
                "{d:?}"
            );
        }
    }
}
