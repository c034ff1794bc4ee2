//! The bytes of a file as stored, and as its records are written: hashing
//! what is stored, decompressing gzip and zstd, and bounding what
//! decompression may produce.
//!
//! [`Stored`] sits right on the opened file and hashes (BLAKE3) and counts
//! every stored byte, so the ledger's content hash and size are those of
//! the file as it lies in the folder or bucket, compressed or not.
//! [`Decoded`] sits on it and hands out the content: the stored bytes
//! themselves, or what `flate2` (every member of a multi-member gzip file)
//! or `zstd` (every frame) decompress from them, streaming through fixed
//! buffers. Decompressed bytes are counted against `--max-file-bytes`:
//! past it, reading stops with [`DecodeError::TooLarge`], so a
//! decompression bomb costs at most the limit in reading time and never
//! more memory than a plain file. A stream that is corrupt or cut short
//! fails with [`DecodeError::Broken`], naming the file, the stored byte and
//! the content line where it broke. A failure of the stored bytes' own
//! reads (a stalled mount, a dropped connection) passes through unchanged,
//! so the caller can tell the file's fault from the transport's.
//!
//! This module never parses records and never decides a file's fate.

use std::io::{self, BufReader, Read};

use flate2::read::MultiGzDecoder;

use super::format::Compression;
use super::size::human;

/// zstd frames may ask for a window of at most 2^27 bytes (128 MiB, what
/// `zstd --long` writes); a frame asking for more is refused as broken.
const ZSTD_WINDOW_LOG_MAX: u32 = 27;

/// Why a compressed file's content cannot be read to its end.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error(
        "{name} decompresses to more than {} (--max-file-bytes) from {} stored: reading \
         stopped there (a decompression bomb, or a file to split or to load with a higher \
         --max-file-bytes)",
        human(*.limit),
        human(*.stored)
    )]
    TooLarge {
        name: String,
        limit: u64,
        stored: u64,
    },
    #[error(
        "{name}: the {format} stream is corrupt or cut short at stored byte {at} of \
         {stored} (in line {line} of its content): {message}; none of its rows are loaded"
    )]
    Broken {
        name: String,
        format: &'static str,
        at: u64,
        stored: u64,
        line: u64,
        message: String,
    },
}

/// Whether `e` is a [`DecodeError`] (its message is then a whole reason).
pub fn is_decode_error(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|i| i.is::<DecodeError>())
}

/// A file's stored bytes: hashed and counted as they are read.
pub struct Stored<R> {
    inner: R,
    hasher: blake3::Hasher,
    bytes: u64,
    /// A read of the stored bytes themselves failed.
    failed: bool,
}

impl<R: Read> Stored<R> {
    pub fn new(inner: R) -> Stored<R> {
        Stored {
            inner,
            hasher: blake3::Hasher::new(),
            bytes: 0,
            failed: false,
        }
    }

    /// Stored bytes read so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes
    }

    /// The BLAKE3 hash of the stored bytes read so far (after
    /// [`drain`](Self::drain): of the whole file).
    pub fn content_hash(&self) -> String {
        self.hasher.finalize().to_hex().to_string()
    }

    /// Reads what is left of the stored bytes, without decompressing them,
    /// so the hash covers the file.
    pub fn drain(&mut self) -> io::Result<()> {
        let mut buf = vec![0; 64 * 1024];
        while self.read(&mut buf)? > 0 {}
        Ok(())
    }
}

impl<R: Read> Read for Stored<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf).inspect_err(|_| self.failed = true)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

/// What the decompressed content of one file may be.
#[derive(Debug, Clone)]
pub struct Bounds {
    /// The file's name, for messages.
    pub name: String,
    /// Its stored size as listed, for messages.
    pub stored_size: u64,
    /// Most decompressed bytes (`--max-file-bytes`).
    pub max_bytes: u64,
}

enum Inner<R: Read> {
    Plain(Stored<R>),
    Gz(MultiGzDecoder<Stored<R>>),
    Zst(zstd::Decoder<'static, BufReader<Stored<R>>>),
}

/// A file's content: its stored bytes decompressed (see the module docs).
pub struct Decoded<R: Read> {
    inner: Inner<R>,
    bounds: Bounds,
    /// Decompressed bytes handed out so far.
    out: u64,
    /// Line breaks among them.
    lines: u64,
    /// Set once reading failed: every later read fails the same way.
    failed: Option<(io::ErrorKind, String)>,
}

impl<R: Read> Decoded<R> {
    /// The content of `stored`, compressed as `compression` says.
    pub fn new(stored: Stored<R>, compression: Compression, bounds: Bounds) -> io::Result<Self> {
        let inner = match compression {
            Compression::None => Inner::Plain(stored),
            Compression::Gz => Inner::Gz(MultiGzDecoder::new(stored)),
            Compression::Zst => {
                let mut d = zstd::Decoder::new(stored)?;
                d.window_log_max(ZSTD_WINDOW_LOG_MAX)?;
                Inner::Zst(d)
            }
        };
        Ok(Decoded {
            inner,
            bounds,
            out: 0,
            lines: 0,
            failed: None,
        })
    }

    /// The stored bytes underneath (their hash, size, or the rest of them).
    pub fn stored(&mut self) -> &mut Stored<R> {
        match &mut self.inner {
            Inner::Plain(s) => s,
            Inner::Gz(d) => d.get_mut(),
            Inner::Zst(d) => d.get_mut().get_mut(),
        }
    }

    fn format(&self) -> &'static str {
        match self.inner {
            Inner::Plain(_) => Compression::None.name(),
            Inner::Gz(_) => Compression::Gz.name(),
            Inner::Zst(_) => Compression::Zst.name(),
        }
    }

    /// Remembers a failure of the content and returns it as an error.
    fn fail(&mut self, e: DecodeError) -> io::Error {
        let kind = io::ErrorKind::InvalidData;
        self.failed = Some((kind, e.to_string()));
        io::Error::new(kind, e)
    }
}

impl<R: Read> Read for Decoded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some((kind, message)) = &self.failed {
            return Err(io::Error::new(*kind, message.clone()));
        }
        let result = match &mut self.inner {
            Inner::Plain(s) => return s.read(buf),
            Inner::Gz(d) => d.read(buf),
            Inner::Zst(d) => d.read(buf),
        };
        let stored = self.stored();
        let (failed, at) = (stored.failed, stored.bytes);
        match result {
            Ok(n) if self.out.saturating_add(n as u64) > self.bounds.max_bytes => {
                let e = DecodeError::TooLarge {
                    name: self.bounds.name.clone(),
                    limit: self.bounds.max_bytes,
                    stored: self.bounds.stored_size,
                };
                Err(self.fail(e))
            }
            Ok(n) => {
                self.out += n as u64;
                self.lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
                Ok(n)
            }
            // The stored bytes could not be read: not the stream's fault.
            Err(e) if failed => Err(e),
            Err(e) => {
                let e = DecodeError::Broken {
                    name: self.bounds.name.clone(),
                    format: self.format(),
                    at,
                    stored: self.bounds.stored_size,
                    line: self.lines + 1,
                    message: e.to_string(),
                };
                Err(self.fail(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).expect("compress");
        e.finish().expect("finish")
    }

    fn zst(data: &[u8]) -> Vec<u8> {
        zstd::encode_all(data, 3).expect("compress")
    }

    fn bounds(max_bytes: u64) -> Bounds {
        Bounds {
            name: "f".into(),
            stored_size: 0,
            max_bytes,
        }
    }

    fn decode(stored: &[u8], c: Compression, max: u64) -> (io::Result<Vec<u8>>, u64) {
        let mut d = Decoded::new(Stored::new(stored), c, bounds(max)).expect("decoder");
        let mut out = vec![];
        let r = d.read_to_end(&mut out).map(|_| out);
        (r, d.stored().bytes_read())
    }

    #[test]
    fn gzip_members_and_zstd_frames_are_all_read_and_the_stored_bytes_hashed() {
        let mut two = gz(b"a,b\n1,2\n");
        two.extend(gz(b"3,4\n"));
        let mut frames = zst(b"a,b\n1,2\n");
        frames.extend(zst(b"3,4\n"));
        for (stored, c) in [(two, Compression::Gz), (frames, Compression::Zst)] {
            let mut d = Decoded::new(Stored::new(&stored[..]), c, bounds(1 << 20)).expect("d");
            let mut out = String::new();
            d.read_to_string(&mut out).expect("reads");
            assert_eq!(out, "a,b\n1,2\n3,4\n");
            d.stored().drain().expect("drain");
            assert_eq!(d.stored().bytes_read(), stored.len() as u64);
            assert_eq!(
                d.stored().content_hash(),
                blake3::hash(&stored).to_hex().to_string()
            );
        }
    }

    #[test]
    fn a_bomb_stops_at_the_limit_without_reading_the_rest() {
        // 200 members (frames) of 1 MiB of zeros each: 200 MiB of content.
        let mib = vec![b'0'; 1 << 20];
        for (one, c) in [(gz(&mib), Compression::Gz), (zst(&mib), Compression::Zst)] {
            let stored = one.repeat(200);
            let mut d = Decoded::new(Stored::new(&stored[..]), c, bounds(3 << 20)).expect("d");
            let mut out = vec![];
            let e = d.read_to_end(&mut out).expect_err("over the limit");
            assert!(is_decode_error(&e), "{e}");
            assert!(
                e.to_string()
                    .starts_with("f decompresses to more than 3 MiB (--max-file-bytes)"),
                "{e}"
            );
            assert!(out.len() <= 3 << 20, "{c:?}: handed out {}", out.len());
            // Decompression stopped at the limit: most stored bytes unread
            // (zstd's 200 frames are small enough for one buffer).
            let read = d.stored().bytes_read();
            assert!(
                c == Compression::Zst || read < stored.len() as u64 / 4,
                "{c:?}: read {read} of {}",
                stored.len()
            );
            // And it stays stopped.
            assert!(d.read(&mut [0; 16]).is_err());
        }
        // At the limit exactly is fine.
        let (r, _) = decode(&gz(&[b'x'; 1000]), Compression::Gz, 1000);
        assert_eq!(r.expect("at the limit").len(), 1000);
    }

    #[test]
    fn truncated_or_corrupt_streams_are_broken_with_byte_and_line() {
        let content: Vec<u8> = (0..20_000)
            .flat_map(|i| format!("{i},{}\n", i * 7919 % 10007).into_bytes())
            .collect();
        for (stored, c, name) in [
            (gz(&content), Compression::Gz, "gzip"),
            (zst(&content), Compression::Zst, "zstd"),
        ] {
            let cut = &stored[..stored.len() / 2];
            let (r, _) = decode(cut, c, 1 << 30);
            let e = r.expect_err("truncated");
            assert!(is_decode_error(&e), "{e}");
            let text = e.to_string();
            assert!(
                text.starts_with(&format!("f: the {name} stream is corrupt or cut short")),
                "{text}"
            );
            assert!(text.contains("(in line "), "{text}");
            let mut bad = stored.clone();
            let mid = bad.len() / 2;
            bad[mid..mid + 16].fill(0xA5);
            assert!(decode(&bad, c, 1 << 30).0.is_err(), "{name} corrupt");
        }
        // Bytes after the last member that are no member: broken too.
        let mut trailing = gz(b"a\n");
        trailing.extend_from_slice(b"junk");
        assert!(decode(&trailing, Compression::Gz, 1 << 20).0.is_err());
        // Not compressed at all.
        assert!(decode(b"a,b\n1,2\n", Compression::Gz, 1 << 20).0.is_err());
        assert!(decode(b"a,b\n1,2\n", Compression::Zst, 1 << 20).0.is_err());
    }

    #[test]
    fn a_failing_stored_read_passes_through_unchanged() {
        struct Fails;
        impl Read for Fails {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::new(io::ErrorKind::TimedOut, "stalled"))
            }
        }
        for c in [Compression::Gz, Compression::Zst] {
            let mut d = Decoded::new(Stored::new(Fails), c, bounds(1 << 20)).expect("d");
            let e = d.read(&mut [0; 64]).expect_err("fails");
            assert!(!is_decode_error(&e), "{e}");
            assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        }
    }
}
