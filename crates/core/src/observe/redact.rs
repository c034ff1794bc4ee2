//! The last line of defence for secrets: every password, token and secret
//! URL the process was given is registered here, and everything it writes
//! to stderr (logs, error messages, panic messages) and serves over HTTP
//! passes through [`scrub`], which replaces each registered secret (as is,
//! percent-encoded, JSON- and Debug-escaped) with `***`.
//!
//! The rest of the code already avoids printing secrets (redacted URLs,
//! `hide_env_values`, custom `Debug`); this catches what slips through, such
//! as a library error that echoes its input. It never stores a secret
//! anywhere but in memory and never logs what it registers.

use std::borrow::Cow;
use std::io::{self, Write};
use std::sync::RwLock;

/// Secrets shorter than this are not scrubbed (replacing every "ab" would
/// garble the output and hide nothing).
pub const MIN_SECRET_LEN: usize = 4;

static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Registers a secret: from now on [`scrub`] hides it.
pub fn register(secret: &str) {
    if secret.chars().count() < MIN_SECRET_LEN {
        return;
    }
    let json = serde_json::to_string(secret).unwrap_or_default();
    let debug = format!("{secret:?}");
    let forms = [
        secret.to_string(),
        percent_encode(secret),
        json.trim_matches('"').to_string(),
        debug.trim_matches('"').to_string(),
    ];
    let mut list = match SECRETS.write() {
        Ok(l) => l,
        Err(p) => p.into_inner(),
    };
    for form in forms {
        if !list.contains(&form) {
            list.push(form);
        }
    }
    // Longest first, so a secret is never half-replaced by a shorter one.
    list.sort_by_key(|s| std::cmp::Reverse(s.len()));
}

/// `text` with every registered secret replaced by `***`.
pub fn scrub(text: &str) -> Cow<'_, str> {
    let list = match SECRETS.read() {
        Ok(l) => l,
        Err(p) => p.into_inner(),
    };
    if !list.iter().any(|s| text.contains(s.as_str())) {
        return Cow::Borrowed(text);
    }
    let mut out = text.to_string();
    for s in list.iter() {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), "***");
        }
    }
    Cow::Owned(out)
}

/// Standard error through [`scrub`]; for the log subscriber
/// (`with_writer(redact::stderr)`). Each log event arrives in one write.
pub struct ScrubbedStderr;

/// A [`ScrubbedStderr`] (a `MakeWriter` for tracing-subscriber).
pub fn stderr() -> ScrubbedStderr {
    ScrubbedStderr
}

/// `result` with a reader that went away (`2>&1 | head`, EPIPE) counted as
/// written: output ends quietly instead of failing (or panicking) later.
fn quiet_on_broken_pipe(result: io::Result<()>) -> io::Result<()> {
    match result {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

impl Write for ScrubbedStderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        let scrubbed = match scrub(&text) {
            Cow::Borrowed(_) => None,
            Cow::Owned(clean) => Some(clean),
        };
        let clean = scrubbed.as_ref().map_or(buf, |c| c.as_bytes());
        // A progress bar on screen is hidden while the line prints; a
        // reader that went away (`| head`) ends the output quietly.
        quiet_on_broken_pipe(super::progress::suspend(|| io::stderr().write_all(clean)))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        quiet_on_broken_pipe(io::stderr().flush())
    }
}

/// Writes `text` to stderr through [`scrub`], ignoring a failed write (a
/// closed or broken stderr must not turn into a panic, as `eprintln!` would).
pub fn eprint(text: &str) {
    let _ = io::stderr().write_all(scrub(text).as_bytes());
}

/// Replaces the panic message printer with one that scrubs: a panic's
/// message may hold any value.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".to_string());
        let location = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let thread = std::thread::current();
        let name = thread.name().unwrap_or("<unnamed>");
        let _ = writeln!(
            io::stderr(),
            "thread '{name}' panicked{location}:\n{}",
            scrub(&message)
        );
    }));
}

/// The environment variable that makes the binary panic on purpose with a
/// message holding the database URL, so a test can prove panic messages are
/// scrubbed. Not an option.
pub const DEBUG_PANIC_ENV: &str = "SHOPSTREAM_DEBUG_PANIC";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_secrets_are_scrubbed_in_every_spelling() {
        register("Pa55:wo\"rd/x");
        let text = "url postgresql://u:Pa55%3Awo%22rd%2Fx@h/d, json \"Pa55:wo\\\"rd/x\", raw Pa55:wo\"rd/x";
        let clean = scrub(text);
        assert!(!clean.contains("Pa55"), "{clean}");
        assert_eq!(clean.matches("***").count(), 3, "{clean}");
        register("ab");
        assert_eq!(scrub("abc"), "abc", "short secrets are not registered");
    }
}
