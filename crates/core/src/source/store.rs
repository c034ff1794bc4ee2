//! Object storage as the input: `--input s3://bucket/prefix` through the
//! `object_store` crate, with credentials, region and endpoint from the usual
//! `AWS_*` environment variables.
//!
//! It owns three things for a store: **listing** (which objects under the
//! prefix are candidates, resuming after the last settled key so that a
//! bucket holding a million processed objects is not listed from scratch
//! every pass, with a full relisting every `--full-relist-secs` as the safety
//! net for keys that arrive out of order), **reading** (one object as a
//! blocking [`std::io::Read`] over the HTTP body stream, one chunk at a time,
//! so memory stays bounded whatever the object's size), and **disposal**
//! after the commit (keep; archive = copy below the archive prefix then
//! delete; delete; quarantine = copy below the quarantine prefix plus a
//! `KEY.reason.txt` object, then delete).
//!
//! A candidate's ledger identity is the object's full URL
//! (`s3://bucket/key`), its size and its last-modified time, so the ledger,
//! validation and exactly-once rules of folders apply unchanged.
//!
//! It must never read or dispose of a version of an object other than the
//! listed one (size and last-modified are checked on every GET and before
//! every disposal), never delete an object before its copy exists, never run
//! before the commit (the loader calls it afterwards), and never log or
//! print a credential: only the bucket and key are ever shown.
//!
//! Blocking methods ([`Store::open`], [`Store::finish`]) run on the loader's
//! blocking threads and drive the async client through a runtime handle;
//! [`Lister::list`] is async.

use std::collections::BTreeSet;
use std::io::{self, Read};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path as Key;
use object_store::{ClientConfigKey, ObjectMeta, ObjectStore};
use tokio::runtime::Handle;

use super::discover::{is_ignored, Candidate};
use super::dispose::{AfterLoad, Disposition, Fate};
use super::scope::Include;
use crate::observe::metrics;

/// The HTTP request timeout, which covers a whole GET body: long enough to
/// stream a large object into the database, short enough that a stalled
/// connection is noticed.
const REQUEST_TIMEOUT: &str = "10m";

/// Why an object store cannot be used or an operation on it failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "{url:?} is not an object store URL shopstream can use: {reason} \
         (expected s3://BUCKET/PREFIX)"
    )]
    Url { url: String, reason: &'static str },

    #[error(
        "cannot set up the object store for {url}: {source}; check AWS_REGION, \
         AWS_ENDPOINT_URL and the credentials in the environment"
    )]
    Build {
        url: String,
        #[source]
        source: object_store::Error,
    },

    #[error("{option} {url} must be in the input's bucket ({bucket}): objects are moved by server-side copy")]
    OtherBucket {
        option: &'static str,
        url: String,
        bucket: String,
    },

    #[error("the object store client needs the async runtime (internal error)")]
    NoRuntime,

    #[error("cannot list {url}: {source}")]
    List {
        url: String,
        #[source]
        source: object_store::Error,
    },

    #[error("cannot {action} {url}: {source}; it stays where it is until this works")]
    Op {
        action: &'static str,
        url: String,
        #[source]
        source: object_store::Error,
    },

    #[error("{path} is not an object below {base}")]
    NotInStore { path: String, base: String },
}

/// Why a listed object could not be opened for reading.
#[derive(Debug)]
pub enum OpenError {
    /// It is gone (deleted or moved by someone else).
    Vanished,
    /// Another version than the listed one is there now: retried later.
    Changed,
    /// It cannot be read and never will be as it is (e.g. access denied):
    /// the file is rejected with this reason.
    Unreadable(String),
    /// The store did not answer properly (network, throttling, 5xx): the
    /// batch is retried.
    Transient(String),
}

/// An `s3://bucket/prefix` location.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Location {
    /// `s3://bucket`
    base: String,
    bucket: String,
    prefix: Key,
}

impl Location {
    fn parse(url: &str) -> Result<Location, StoreError> {
        let bad = |reason| StoreError::Url {
            url: url.to_string(),
            reason,
        };
        let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("no scheme"))?;
        if !matches!(scheme, "s3" | "s3a") {
            return Err(bad(
                "only s3:// (and S3-compatible stores through AWS_ENDPOINT_URL) is built in",
            ));
        }
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(bad("no bucket"));
        }
        let prefix = Key::parse(prefix.trim_matches('/')).map_err(|_| bad("invalid prefix"))?;
        Ok(Location {
            base: format!("{scheme}://{bucket}"),
            bucket: bucket.to_string(),
            prefix,
        })
    }

    fn url(&self, key: &Key) -> String {
        format!("{}/{}", self.base, key)
    }

    /// The URL of the prefix, with a final `/` (for display and as the
    /// ledger prefix of its objects).
    fn prefix_url(&self) -> String {
        if self.prefix.as_ref().is_empty() {
            format!("{}/", self.base)
        } else {
            format!("{}/{}/", self.base, self.prefix)
        }
    }
}

/// True when `url` names an object store rather than a folder.
pub fn is_url(input: &str) -> bool {
    input.split_once("://").is_some_and(|(scheme, _)| {
        !scheme.is_empty() && scheme.chars().all(|c| c.is_ascii_alphanumeric())
    })
}

/// One input store: the client and where things go. Shared (behind an
/// `Arc`) by the lister, the parse threads and the disposal threads.
pub struct Store {
    client: Arc<dyn ObjectStore>,
    handle: Handle,
    input: Location,
    archive: Location,
    quarantine: Location,
    after_load: AfterLoad,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the client: its configuration holds the credentials.
        f.debug_struct("Store")
            .field("input", &self.input.prefix_url())
            .field("archive", &self.archive.prefix_url())
            .field("quarantine", &self.quarantine.prefix_url())
            .finish()
    }
}

impl Store {
    /// Builds the client for `url` from the environment (`AWS_*`). The
    /// archive and quarantine default to `_archive/` and `_quarantine/` below
    /// the prefix (skipped by listing as every `_` name is); given URLs must be
    /// in the same bucket. Must be called inside the tokio runtime.
    pub fn new(
        url: &str,
        after_load: AfterLoad,
        archive: Option<&str>,
        quarantine: Option<&str>,
    ) -> Result<Store, StoreError> {
        let input = Location::parse(url)?;
        let other = |option: &'static str, given: Option<&str>, default: &str| match given {
            None => Ok(Location {
                prefix: input.prefix.child(default),
                ..input.clone()
            }),
            Some(u) => {
                let loc = Location::parse(u)?;
                if loc.bucket != input.bucket {
                    return Err(StoreError::OtherBucket {
                        option,
                        url: u.to_string(),
                        bucket: input.bucket.clone(),
                    });
                }
                Ok(Location {
                    base: input.base.clone(),
                    ..loc
                })
            }
        };
        let archive = other("--archive-dir", archive, "_archive")?;
        let quarantine = other("--quarantine-dir", quarantine, "_quarantine")?;
        let handle = Handle::try_current().map_err(|_| StoreError::NoRuntime)?;
        // Our default timeout first, so that the environment may override it.
        let mut builder = AmazonS3Builder::new().with_config(
            AmazonS3ConfigKey::Client(ClientConfigKey::Timeout),
            REQUEST_TIMEOUT,
        );
        for (key, value) in std::env::vars_os() {
            let (Some(key), Some(value)) = (key.to_str(), value.to_str()) else {
                continue;
            };
            if key.starts_with("AWS_") {
                if let Ok(k) = key.to_ascii_lowercase().parse::<AmazonS3ConfigKey>() {
                    builder = builder.with_config(k, value);
                }
            }
        }
        let client = builder
            .with_url(url)
            .build()
            .map_err(|source| StoreError::Build {
                url: input.prefix_url(),
                source,
            })?;
        Ok(Store {
            client: Arc::new(client),
            handle,
            input,
            archive,
            quarantine,
            after_load,
        })
    }

    /// `s3://bucket/prefix/`, for logs and the ledger.
    pub fn prefix_url(&self) -> String {
        self.input.prefix_url()
    }

    /// The key of a listed candidate (its path is the object's URL).
    fn key_of(&self, c: &Candidate) -> Result<Key, StoreError> {
        let path = c.path.to_string_lossy();
        path.strip_prefix(&self.input.base)
            .and_then(|k| k.strip_prefix('/'))
            .and_then(|k| Key::parse(k).ok())
            .ok_or_else(|| StoreError::NotInStore {
                path: path.into_owned(),
                base: self.input.base.clone(),
            })
    }

    /// Opens a listed object for reading, checking that the version served
    /// is the listed one. Blocking: call it on a blocking thread.
    pub fn open(&self, c: &Candidate) -> Result<ObjectReader, OpenError> {
        let key = self
            .key_of(c)
            .map_err(|e| OpenError::Unreadable(e.to_string()))?;
        let got = self.handle.block_on(self.client.get(&key));
        let got = match got {
            Ok(g) => g,
            Err(object_store::Error::NotFound { .. }) => return Err(OpenError::Vanished),
            Err(
                e @ (object_store::Error::PermissionDenied { .. }
                | object_store::Error::Unauthenticated { .. }),
            ) => {
                return Err(OpenError::Unreadable(format!(
                    "cannot read the object: {e}"
                )))
            }
            Err(e) => {
                return Err(OpenError::Transient(format!(
                    "cannot read {}: {e}",
                    self.input.url(&key)
                )))
            }
        };
        metrics::object_read();
        if !same_version(&got.meta, c) {
            return Err(OpenError::Changed);
        }
        Ok(ObjectReader {
            url: self.input.url(&key),
            stream: got.into_stream(),
            chunk: Bytes::new(),
            handle: self.handle.clone(),
            fault: Arc::new(Mutex::new(None)),
        })
    }

    /// Carries out a committed fate on the store. Blocking: call it on a
    /// blocking thread. Safe to repeat after a crash: a copy an interrupted
    /// call already made is recognised and reused.
    pub fn finish(&self, c: &Candidate, fate: Fate<'_>) -> Result<Disposition, StoreError> {
        self.handle.block_on(self.finish_async(c, fate))
    }

    async fn finish_async(&self, c: &Candidate, fate: Fate<'_>) -> Result<Disposition, StoreError> {
        let key = self.key_of(c)?;
        let url = self.input.url(&key);
        let op = |action: &'static str, url: &str| {
            let url = url.to_string();
            move |source| StoreError::Op {
                action,
                url,
                source,
            }
        };
        let meta = match self.client.head(&key).await {
            Ok(m) => m,
            Err(object_store::Error::NotFound { .. }) => return Ok(Disposition::Gone),
            Err(e) => return Err(op("inspect", &url)(e)),
        };
        if !same_version(&meta, c) {
            return Ok(Disposition::Changed);
        }
        let (dest, reason, action) = match (fate, self.after_load) {
            (Fate::Processed, AfterLoad::Keep) => return Ok(Disposition::Kept),
            (Fate::Processed, AfterLoad::Delete) => {
                return match self.client.delete(&key).await {
                    Ok(()) => Ok(Disposition::Deleted),
                    Err(object_store::Error::NotFound { .. }) => Ok(Disposition::Gone),
                    Err(e) => Err(op("delete", &url)(e)),
                };
            }
            (Fate::Processed, AfterLoad::Archive) => (&self.archive, None, "archive"),
            (Fate::Rejected { reason }, _) => (&self.quarantine, Some(reason), "quarantine"),
        };
        let rel = match key.prefix_match(&self.input.prefix) {
            Some(parts) => parts.fold(dest.prefix.clone(), |k, p| k.child(p)),
            None => dest.prefix.child(key.filename().unwrap_or("unnamed")),
        };
        let to = self
            .place(&key, &meta, &rel)
            .await
            .map_err(op(action, &url))?;
        if let Some(reason) = reason {
            // Before the source goes, so a retry after a crash rewrites it.
            let sidecar = to_key(format!("{to}.reason.txt"));
            let text = format!(
                "file: {url}\nquarantined: {}\nreason: {reason}\n",
                chrono::Utc::now().to_rfc3339()
            );
            self.client
                .put(&sidecar, text.into())
                .await
                .map_err(op("write the quarantine reason for", &url))?;
        }
        match self.client.delete(&key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(op(action, &url)(e)),
        }
        let to = dest.url(&to);
        Ok(match reason {
            Some(_) => Disposition::Quarantined(to.into()),
            None => Disposition::Archived(to.into()),
        })
    }

    /// Copies `src` to `dest` or the first free `stem.N.ext`, never over
    /// another object. A name already holding this object (same size and
    /// ETag, left by an interrupted call) is reused.
    async fn place(&self, src: &Key, meta: &ObjectMeta, dest: &Key) -> object_store::Result<Key> {
        for n in 0..u32::MAX {
            let to = numbered(dest, n);
            match self.client.head(&to).await {
                Err(object_store::Error::NotFound { .. }) => {
                    self.client.copy(src, &to).await?;
                    return Ok(to);
                }
                Err(e) => return Err(e),
                Ok(there)
                    if there.size == meta.size
                        && there.e_tag.is_some()
                        && there.e_tag == meta.e_tag =>
                {
                    return Ok(to)
                }
                Ok(_) => {}
            }
        }
        Err(object_store::Error::AlreadyExists {
            path: dest.to_string(),
            source: "no free name".into(),
        })
    }
}

/// `a.csv` → `a.N.csv`, `a` → `a.N`; `n == 0` is `dest` itself.
fn numbered(dest: &Key, n: u32) -> Key {
    if n == 0 {
        return dest.clone();
    }
    let s = dest.as_ref();
    let name_at = s.rfind('/').map_or(0, |i| i + 1);
    match s[name_at..].rfind('.') {
        Some(dot) if dot > 0 => {
            let dot = name_at + dot;
            to_key(format!("{}.{n}{}", &s[..dot], &s[dot..]))
        }
        _ => to_key(format!("{s}.{n}")),
    }
}

/// A key built from parts of valid keys, kept as it is (`Key::from` would
/// percent-encode characters a key may already hold encoded).
fn to_key(s: String) -> Key {
    Key::parse(&s).unwrap_or_else(|_| Key::from(s))
}

/// The listed version and the one the store describes now are the same:
/// same size and last-modified time. Listings give milliseconds, HTTP
/// headers whole seconds, so the times are compared to the second.
fn same_version(meta: &ObjectMeta, c: &Candidate) -> bool {
    meta.size == c.size
        && micros(meta).div_euclid(1_000_000) == c.mtime_micros.div_euclid(1_000_000)
}

fn micros(meta: &ObjectMeta) -> i64 {
    meta.last_modified.timestamp_micros()
}

/// One object as a blocking byte stream: it holds at most one chunk of the
/// HTTP body at a time.
pub struct ObjectReader {
    url: String,
    stream: BoxStream<'static, object_store::Result<Bytes>>,
    chunk: Bytes,
    handle: Handle,
    fault: Arc<Mutex<Option<String>>>,
}

impl ObjectReader {
    /// Where a transport failure is recorded: a failed read of the body is
    /// the network's fault, not the file's, so the batch is retried rather
    /// than the file rejected.
    pub fn fault(&self) -> Arc<Mutex<Option<String>>> {
        self.fault.clone()
    }
}

impl Read for ObjectReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.chunk.is_empty() {
            match self.handle.block_on(self.stream.next()) {
                None => return Ok(0),
                Some(Ok(b)) => self.chunk = b,
                Some(Err(e)) => {
                    let message = format!("reading {} failed: {e}", self.url);
                    if let Ok(mut f) = self.fault.lock() {
                        f.get_or_insert_with(|| message.clone());
                    }
                    return Err(io::Error::other(message));
                }
            }
        }
        let n = out.len().min(self.chunk.len());
        out[..n].copy_from_slice(&self.chunk[..n]);
        self.chunk.advance(n);
        Ok(n)
    }
}

/// What the ledger says at start: where the listing resumes and which
/// ledgered objects still wait for their fate to be carried out.
#[derive(Debug, Default)]
pub struct Resume {
    /// The greatest ledgered URL below the prefix.
    pub after: Option<String>,
    /// Ledgered objects whose disposal is not recorded as done.
    pub pending: Vec<Candidate>,
}

/// The listing state of a store between passes.
pub struct Lister {
    store: Arc<Store>,
    /// Every key up to here is settled; listings start after it.
    mark: Option<Key>,
    /// Listed keys after the mark that are not settled yet.
    unsettled: BTreeSet<String>,
    /// Settled keys after the mark (they wait for the ones before them).
    settled: BTreeSet<String>,
    full_relist: Duration,
    last_full: Instant,
    /// Seeded from the ledger yet?
    seeded: bool,
    /// Ledgered objects to finish, handed out with every listing until a
    /// pass has taken them over.
    pending: Vec<Candidate>,
    /// Keys (below the prefix) that are input: `--include`.
    include: Include,
}

impl Lister {
    pub fn new(store: Arc<Store>, full_relist: Duration) -> Lister {
        Lister {
            store,
            mark: None,
            unsettled: BTreeSet::new(),
            settled: BTreeSet::new(),
            full_relist,
            last_full: Instant::now(),
            seeded: false,
            pending: vec![],
            include: Include::everything(),
        }
    }

    /// Lists only the keys `include` matches (by last segment, or by the
    /// key below the prefix); other objects are never read or moved.
    pub fn including(mut self, include: Include) -> Lister {
        self.include = include;
        self
    }

    /// The ledger prefix to seed from, until [`seed`](Self::seed) was called.
    pub fn needs_seed(&self) -> Option<String> {
        (!self.seeded).then(|| self.store.prefix_url())
    }

    /// Resumes after what the ledger already holds.
    pub fn seed(&mut self, resume: Resume) {
        self.seeded = true;
        self.mark = resume.after.and_then(|u| {
            let c = Candidate {
                path: u.into(),
                size: 0,
                mtime_micros: 0,
                file_id: None,
            };
            self.store.key_of(&c).ok()
        });
        if let Some(m) = &self.mark {
            tracing::info!(
                "listing {} resumes after {m} (the greatest key in the ledger)",
                self.store.prefix_url()
            );
        }
        self.pending = resume.pending;
    }

    /// The candidates after the mark (or all of them at a full relisting),
    /// in key order.
    pub async fn list(&mut self) -> Result<Vec<Candidate>, StoreError> {
        let full = self.mark.is_none() || self.last_full.elapsed() >= self.full_relist;
        if full {
            self.last_full = Instant::now();
        }
        let offset = if full { None } else { self.mark.clone() };
        let store = &self.store;
        let prefix = &store.input.prefix;
        let list_err = |source| StoreError::List {
            url: store.prefix_url(),
            source,
        };
        let skip: Vec<&Key> = [&store.archive.prefix, &store.quarantine.prefix]
            .into_iter()
            .filter(|p| p.prefix_matches(prefix) && *p != prefix)
            .collect();
        let mut out = self.pending.clone();
        let mut listed = 0u64;
        let mut from = offset;
        'restart: loop {
            let mut stream = match &from {
                Some(after) => store.client.list_with_offset(Some(prefix), after),
                None => store.client.list(Some(prefix)),
            };
            while let Some(meta) = stream.next().await {
                let meta = meta.map_err(list_err)?;
                listed += 1;
                let Some(rel) = meta.location.prefix_match(prefix) else {
                    continue;
                };
                let parts: Vec<_> = rel.collect();
                // A skipped "folder": list on from just past all its keys
                // ('0' follows '/'), so an archive of a million objects
                // costs one request, not a million entries.
                let skipped_dir = parts
                    .iter()
                    .take(parts.len().saturating_sub(1))
                    .position(|p| is_ignored(p.as_ref()))
                    .map(|i| {
                        parts[..=i]
                            .iter()
                            .fold(prefix.clone(), |k, p| k.child(p.clone()))
                    })
                    .or_else(|| {
                        skip.iter()
                            .find(|s| meta.location.prefix_matches(s))
                            .map(|s| (*s).clone())
                    });
                if let Some(dir) = skipped_dir {
                    from = Some(to_key(format!("{dir}0")));
                    continue 'restart;
                }
                if parts.last().is_none_or(|p| is_ignored(p.as_ref())) {
                    continue;
                }
                let rel: std::path::PathBuf = parts.iter().map(|p| p.as_ref()).collect();
                if !self.include.matches(&rel) {
                    continue;
                }
                out.push(Candidate {
                    path: store.input.url(&meta.location).into(),
                    size: meta.size,
                    mtime_micros: micros(&meta),
                    file_id: None,
                });
            }
            break;
        }
        metrics::objects_listed(listed);
        let mark = self.mark.as_ref().map(|m| m.as_ref().to_string());
        for c in &out {
            let Ok(key) = store.key_of(c) else { continue };
            let key = key.as_ref().to_string();
            if mark.as_ref().is_none_or(|m| key > *m) && !self.settled.contains(&key) {
                self.unsettled.insert(key);
            }
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        out.dedup();
        let how = if full { "full listing" } else { "listing" };
        if out.is_empty() {
            tracing::debug!(
                "{how} of {}: {listed} object(s), none new",
                store.prefix_url()
            );
        } else {
            tracing::info!(
                "{how} of {}: {listed} object(s) listed, {} candidate(s)",
                store.prefix_url(),
                out.len()
            );
        }
        Ok(out)
    }

    /// Every listed object but those in `to_load` is settled (already in
    /// the ledger).
    pub fn settled_except(&mut self, to_load: &[Candidate]) {
        self.pending.retain(|c| to_load.contains(c));
        let keep: BTreeSet<String> = to_load
            .iter()
            .filter_map(|c| self.store.key_of(c).ok())
            .map(|k| k.as_ref().to_string())
            .collect();
        let done: Vec<String> = self.unsettled.difference(&keep).cloned().collect();
        for key in done {
            self.settle(key);
        }
    }

    /// Records that a listed object's fate is committed: the mark moves on
    /// past every key before the first one still unsettled.
    pub fn settled(&mut self, c: &Candidate) {
        if let Ok(key) = self.store.key_of(c) {
            self.settle(key.as_ref().to_string());
        }
    }

    fn settle(&mut self, key: String) {
        if !self.unsettled.remove(&key) {
            return;
        }
        self.settled.insert(key);
        while let Some(first) = self.settled.first() {
            if self.unsettled.first().is_some_and(|u| u < first) {
                break;
            }
            if let Some(k) = self.settled.pop_first() {
                self.mark = Some(to_key(k));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_into_bucket_and_prefix() {
        let l = Location::parse("s3://b/in/sub/").expect("parses");
        assert_eq!((l.base.as_str(), l.bucket.as_str()), ("s3://b", "b"));
        assert_eq!(l.prefix.as_ref(), "in/sub");
        assert_eq!(l.prefix_url(), "s3://b/in/sub/");
        assert_eq!(
            Location::parse("s3://b").expect("bucket").prefix_url(),
            "s3://b/"
        );
        for bad in ["s3://", "/tmp/x", "gs://b/x", "s3:///x"] {
            assert!(Location::parse(bad).is_err(), "{bad}");
        }
        assert!(is_url("s3://b/x") && !is_url("./in") && !is_url("/a/b://c"));
    }

    #[tokio::test]
    async fn the_mark_moves_only_past_keys_settled_in_order() {
        let store = Store::new("s3://b/in", AfterLoad::Keep, None, None).expect("store");
        let mut l = Lister::new(Arc::new(store), Duration::from_secs(300));
        let c = |k: &str| Candidate {
            path: format!("s3://b/in/{k}").into(),
            size: 1,
            mtime_micros: 0,
            file_id: None,
        };
        l.unsettled = ["a", "b", "c", "d"].map(|k| format!("in/{k}")).into();
        l.settled(&c("b"));
        assert_eq!(l.mark, None, "a is not settled yet");
        l.settled(&c("a"));
        assert_eq!(l.mark, Some(Key::from("in/b")));
        // c stays to be loaded (it changed while read, say); d is done.
        l.settled_except(&[c("c")]);
        assert_eq!(l.mark, Some(Key::from("in/b")));
        l.settled(&c("c"));
        assert_eq!(l.mark, Some(Key::from("in/d")));
        assert!(l.unsettled.is_empty() && l.settled.is_empty());
    }

    #[tokio::test]
    async fn only_included_keys_are_listed() {
        let mut store = Store::new("s3://b/in", AfterLoad::Keep, None, None).expect("store");
        let memory = object_store::memory::InMemory::new();
        for k in [
            "in/a.csv",
            "in/sub/b.CSV",
            "in/notes.txt",
            "in/sub/secrets.env",
        ] {
            memory
                .put(&Key::from(k), Bytes::from_static(b"x").into())
                .await
                .expect("put");
        }
        store.client = Arc::new(memory);
        let mut l =
            Lister::new(Arc::new(store), Duration::from_secs(300)).including(Include::default());
        let listed: Vec<String> = l
            .list()
            .await
            .expect("list")
            .into_iter()
            .map(|c| c.path.display().to_string())
            .collect();
        assert_eq!(listed, ["s3://b/in/a.csv", "s3://b/in/sub/b.CSV"]);
    }

    #[test]
    fn numbered_names_keep_the_extension() {
        let k = |s: &str| Key::from(s);
        assert_eq!(numbered(&k("q/a.csv"), 0), k("q/a.csv"));
        assert_eq!(numbered(&k("q/a.csv"), 2), k("q/a.2.csv"));
        assert_eq!(numbered(&k("q.d/a"), 1), k("q.d/a.1"));
    }
}
