//! Progress bars for bounded work (`generate` with `--files`, `run --once`
//! backfills): a bar with rate and ETA when stderr is a terminal, nothing
//! otherwise (the log lines say the same thing for files and pipes).
//!
//! The bar on screen is registered here, so that a log line printed while
//! it is drawn hides it, prints, and redraws it ([`suspend`]) instead of
//! landing on the same line.
//!
//! [`LoadProgress`] draws the `run --once` bar as an observer of the
//! loader's events.
//!
//! It only draws; it never decides when work is done.

use std::io::IsTerminal;
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressStyle};

use crate::loader_event::{LoaderEvent, Observer};

/// The bar being drawn, if any (at most one at a time).
static ACTIVE: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// Runs `f` (a write to stderr) with the active bar, if any, hidden.
pub fn suspend<R>(f: impl FnOnce() -> R) -> R {
    let bar = ACTIVE.lock().ok().and_then(|a| a.clone());
    match bar {
        Some(bar) if !bar.is_finished() => bar.suspend(f),
        _ => f(),
    }
}

/// A bar, or nothing when stderr is not a terminal.
#[derive(Debug, Clone)]
pub struct Progress(Option<ProgressBar>);

impl Progress {
    /// A bar over `total` units; `unit` is "bytes" (shown as sizes) or a
    /// plural noun such as "files".
    pub fn new(total: u64, unit: &str, prefix: &str) -> Progress {
        if !std::io::stderr().is_terminal() {
            return Progress(None);
        }
        let template = if unit == "bytes" {
            "{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta} {msg}"
        } else {
            "{prefix} [{bar:30}] {pos}/{len} {unit} {rate} ETA {eta} {msg}"
        };
        let template = template.replace("{unit}", unit);
        let style = ProgressStyle::with_template(&template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .with_key(
                "rate",
                |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = write!(w, "{:.0}/s", s.per_sec());
                },
            )
            .progress_chars("=> ");
        let bar = ProgressBar::new(total)
            .with_style(style)
            .with_prefix(prefix.to_string());
        if let Ok(mut active) = ACTIVE.lock() {
            *active = Some(bar.clone());
        }
        Progress(Some(bar))
    }

    /// No bar at all.
    pub fn none() -> Progress {
        Progress(None)
    }

    pub fn inc(&self, n: u64) {
        if let Some(b) = &self.0 {
            b.inc(n);
        }
    }

    pub fn message(&self, msg: String) {
        if let Some(b) = &self.0 {
            b.set_message(msg);
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.0 {
            b.finish();
            // The finished bar stays on screen; the next line goes below
            // it, not onto it.
            if !b.is_hidden() {
                eprintln!();
            }
            if let Ok(mut active) = ACTIVE.lock() {
                active.take_if(|a| a.is_finished());
            }
        }
    }
}

/// The `run --once` bar over the input's bytes: made when the first pass
/// queues files (their bytes are the total), advanced by each committed
/// batch, finished when the loader stops.
#[derive(Debug, Default)]
pub struct LoadProgress {
    bar: Option<Progress>,
    rows_loaded: u64,
    rows_rejected: u64,
}

impl Observer for LoadProgress {
    fn on(&mut self, event: &LoaderEvent) {
        match event {
            LoaderEvent::Queued { bytes, .. } if self.bar.is_none() => {
                self.bar = Some(Progress::new(*bytes, "bytes", "load"));
            }
            LoaderEvent::Batch(b) if !b.files.is_empty() => {
                self.rows_loaded += b.rows_loaded;
                self.rows_rejected += b.rows_rejected;
                if let Some(bar) = &self.bar {
                    bar.inc(b.bytes_done);
                    bar.message(format!(
                        "{} rows loaded, {} rejected",
                        self.rows_loaded, self.rows_rejected
                    ));
                }
            }
            LoaderEvent::Stopped => {
                if let Some(bar) = &self.bar {
                    bar.finish();
                }
            }
            _ => {}
        }
    }
}
