//! The process's limit on open file descriptors (`RLIMIT_NOFILE`).
//!
//! At start the soft limit is raised to the hard limit: the loader holds
//! database connections, input files and the HTTP endpoint's connections at
//! once, and a soft limit of a few hundred (a common default) is easily
//! reached. This module owns only that one setting: it never lowers a limit
//! and never fails a start (a limit it cannot raise is reported and left as
//! it is).

/// Why the limit could not be raised.
#[derive(Debug, thiserror::Error)]
pub enum RlimitError {
    #[error("cannot read the open files limit (RLIMIT_NOFILE): {0}")]
    Get(#[source] std::io::Error),
    #[error("cannot raise the open files limit (RLIMIT_NOFILE) from {from} to {to}: {source}")]
    Set {
        from: libc::rlim_t,
        to: libc::rlim_t,
        #[source]
        source: std::io::Error,
    },
}

/// The open files limit as it is.
fn get() -> Result<libc::rlimit, RlimitError> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the valid struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(RlimitError::Get(std::io::Error::last_os_error()));
    }
    Ok(lim)
}

/// Raises the soft open files limit to the hard one. Returns (before,
/// after) when it changed, `None` when it already was the hard limit.
pub fn raise_open_files() -> Result<Option<(libc::rlim_t, libc::rlim_t)>, RlimitError> {
    let lim = get()?;
    if lim.rlim_cur >= lim.rlim_max {
        return Ok(None);
    }
    let (from, to) = (lim.rlim_cur, lim.rlim_max);
    let raised = libc::rlimit {
        rlim_cur: lim.rlim_max,
        rlim_max: lim.rlim_max,
    };
    // SAFETY: setrlimit only reads the valid struct it is given.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
        return Err(RlimitError::Set {
            from,
            to,
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(Some((from, to)))
}
