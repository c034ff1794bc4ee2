//! Measuring tools for `shopstream bench`: child processes with their peak
//! resident memory (the child's own `VmHWM` high-water mark) and CPU time
//! (`wait4`), percentiles and a description of the machine.
//!
//! Nothing here decides what is measured; [`super`] does.

use std::io;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How a measured child process ended.
#[derive(Debug, Clone, Copy)]
pub struct Exit {
    /// Exit code, or `128 + signal` when a signal ended it.
    pub code: i32,
    /// Wall time from spawn to exit.
    pub wall: Duration,
    /// Peak resident set size of the process, in KiB (its own `VmHWM`).
    pub max_rss_kib: u64,
    /// CPU time it used (user + system).
    pub cpu: Duration,
}

/// A child process started for a measurement.
pub struct Measured {
    child: Child,
    started: Instant,
}

impl Measured {
    /// Starts `cmd` with stdout and stderr appended to `log`.
    pub fn spawn(mut cmd: Command, log: &Path) -> io::Result<Measured> {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)?;
        let err = out.try_clone()?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        let started = Instant::now();
        let child = cmd.spawn()?;
        Ok(Measured { child, started })
    }

    /// When it was started.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Asks it to stop (SIGTERM), as an operator would.
    pub fn terminate(&self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: kill has no memory effects; the pid is our own child,
            // not yet reaped (wait consumes self).
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
    }

    /// Waits for it to exit and returns its exit code, wall time and peak
    /// memory. Blocks: call from a blocking thread.
    pub fn wait(self) -> io::Result<Exit> {
        let pid = i32::try_from(self.child.id())
            .map_err(|_| io::Error::other("child pid out of range"))?;
        let mut status: libc::c_int = 0;
        // SAFETY: rusage is plain data; zeroed is a valid value.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // The kernel's ru_maxrss of a child starts from the memory of the
        // process that exec'd it (this bench, which may be large), so the
        // peak is read from the child's own high-water mark instead: VmHWM
        // only grows, and is sampled until the child is gone.
        let mut peak_kib = 0;
        loop {
            peak_kib = peak_kib.max(high_water_kib(pid).unwrap_or(0));
            // SAFETY: pointers are to live locals; pid is our own child.
            let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
            if r == pid {
                break;
            }
            if r == 0 {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        let wall = self.started.elapsed();
        let code = if libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status)
        } else if libc::WIFSIGNALED(status) {
            128 + libc::WTERMSIG(status)
        } else {
            -1
        };
        Ok(Exit {
            code,
            wall,
            max_rss_kib: peak_kib,
            cpu: timeval(usage.ru_utime) + timeval(usage.ru_stime),
        })
    }
}

/// A live process's peak resident set (`VmHWM` in `/proc/PID/status`), KiB.
fn high_water_kib(pid: i32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn timeval(t: libc::timeval) -> Duration {
    Duration::from_secs(u64::try_from(t.tv_sec).unwrap_or(0))
        + Duration::from_micros(u64::try_from(t.tv_usec).unwrap_or(0))
}

/// The value below which `q` (0..=1) of the sorted samples lie (nearest
/// rank). `None` for no samples.
pub fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

/// The median of some samples (not necessarily sorted).
pub fn median(samples: &[f64]) -> Option<f64> {
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    percentile(&s, 0.5)
}

/// What the benchmark ran on.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub memory_gib: f64,
    pub kernel: String,
    pub postgres: String,
    pub shopstream: String,
}

impl Machine {
    /// Reads the machine's description from `/proc` (blank where absent).
    pub fn read(postgres: String) -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split(':').nth(1))
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let mem_kib: f64 = meminfo
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        Machine {
            cpu,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_gib: (mem_kib / 1024.0 / 1024.0 * 10.0).round() / 10.0,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_string(),
            postgres,
            shopstream: env!("CARGO_PKG_VERSION").to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let s: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&s, 0.5), Some(50.0));
        assert_eq!(percentile(&s, 0.99), Some(99.0));
        assert_eq!(percentile(&s, 1.0), Some(100.0));
        assert_eq!(percentile(&s, 0.0), Some(1.0));
        assert_eq!(percentile(&[], 0.5), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
    }

    #[test]
    fn a_child_reports_its_exit_code_and_memory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            "head -c 20000000 /dev/zero | tail -c 1 >/dev/null; exit 3",
        ]);
        let m = Measured::spawn(cmd, &dir.path().join("log")).expect("spawn");
        let exit = m.wait().expect("wait");
        assert_eq!(exit.code, 3);
        assert!(exit.max_rss_kib > 0, "{exit:?}");
    }
}
