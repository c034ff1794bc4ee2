//! TLS to PostgreSQL with rustls (and its `ring` crypto provider), with
//! libpq's `sslmode` meanings:
//!
//! | mode | encrypted | chain checked against the root certificates | host name checked |
//! |---|---|---|---|
//! | `disable` | no | – | – |
//! | `prefer` (default) | when the server offers it | no | no |
//! | `require` | yes, or the connection fails | only when a root certificate is given (as libpq) | no |
//! | `verify-ca` | yes | yes | no |
//! | `verify-full` | yes | yes | yes |
//!
//! tokio-postgres itself only knows disable / prefer / require; the checks of
//! the verify modes live in this module's certificate verifier. It also owns
//! reading the root certificates (`--sslrootcert`, `system` for the bundled
//! Mozilla roots), the optional client certificate and key, the `ssl*`
//! parameters inside a connection string, `tls-server-end-point` channel
//! binding for SCRAM, and readable handshake errors.
//!
//! It must never accept a certificate that a verify mode rejects, never fall
//! back to plain text unless the mode is `prefer`, and never put key
//! material into an error or a log.

use std::fmt;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{
    CertificateDer, PrivateKeyDer, ServerName, SubjectPublicKeyInfoDer, UnixTime,
};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};

/// libpq's `sslmode`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslMode {
    /// Plain text only.
    Disable,
    /// TLS when the server offers it, without checking its certificate.
    #[default]
    Prefer,
    /// TLS or no connection; the certificate is not checked (unless a root
    /// certificate is given: then as verify-ca).
    Require,
    /// TLS with the server's chain checked against the root certificates.
    #[value(name = "verify-ca")]
    VerifyCa,
    /// verify-ca, and the certificate must name the host connected to.
    #[value(name = "verify-full")]
    VerifyFull,
}

impl SslMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// What tokio-postgres is told: whether to ask for TLS and whether it
    /// is mandatory. The verify modes are "require" plus our verifier.
    pub fn postgres_mode(self) -> tokio_postgres::config::SslMode {
        match self {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                tokio_postgres::config::SslMode::Require
            }
        }
    }

    fn parse(value: &str) -> Result<SslMode, TlsError> {
        match value.trim() {
            "disable" => Ok(SslMode::Disable),
            "prefer" => Ok(SslMode::Prefer),
            "require" => Ok(SslMode::Require),
            "verify-ca" => Ok(SslMode::VerifyCa),
            "verify-full" => Ok(SslMode::VerifyFull),
            "allow" => Err(TlsError::Mode(
                "sslmode allow (plain text first) is not supported; use prefer or a stronger mode"
                    .into(),
            )),
            other => Err(TlsError::Mode(format!(
                "unknown sslmode {other:?}; expected disable, prefer, require, verify-ca or verify-full"
            ))),
        }
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where trusted root certificates come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCert {
    /// A PEM file with one or more CA certificates.
    File(PathBuf),
    /// `system`: the Mozilla root bundle compiled into shopstream.
    System,
}

impl RootCert {
    pub fn parse(value: &str) -> RootCert {
        if value == "system" {
            RootCert::System
        } else {
            RootCert::File(PathBuf::from(value))
        }
    }
}

impl fmt::Display for RootCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RootCert::File(p) => write!(f, "{}", p.display()),
            RootCert::System => f.write_str("system (the bundled Mozilla roots)"),
        }
    }
}

/// Everything TLS needs to know.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSettings {
    pub mode: SslMode,
    pub root_cert: Option<RootCert>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
}

impl TlsSettings {
    /// The settings with the `ssl*` parameters of a connection string laid
    /// over them (the string wins, as in libpq).
    pub fn overridden_by(mut self, params: &ConnParams) -> Result<TlsSettings, TlsError> {
        if let Some(mode) = &params.sslmode {
            self.mode = SslMode::parse(mode)?;
        }
        if let Some(root) = &params.sslrootcert {
            self.root_cert = Some(RootCert::parse(root));
        }
        if let Some(cert) = &params.sslcert {
            self.client_cert = Some(PathBuf::from(cert));
        }
        if let Some(key) = &params.sslkey {
            self.client_key = Some(PathBuf::from(key));
        }
        Ok(self)
    }

    /// The mode actually used: `require` with a root certificate (given, or
    /// libpq's default `~/.postgresql/root.crt` when it exists) checks the
    /// chain, as libpq does.
    pub fn effective_mode(&self) -> SslMode {
        match (self.mode, &self.root_cert) {
            (SslMode::Require, Some(_)) => SslMode::VerifyCa,
            (SslMode::Require, None) if default_root_cert().is_some_and(|p| p.is_file()) => {
                SslMode::VerifyCa
            }
            (mode, _) => mode,
        }
    }

    /// One line for logs: the mode and, for the verify modes, the roots.
    pub fn describe(&self) -> String {
        let mode = self.effective_mode();
        let default = || default_root_cert().map(RootCert::File);
        match (self.root_cert.clone().or_else(default), mode) {
            (Some(root), SslMode::VerifyCa | SslMode::VerifyFull) => {
                format!("sslmode {mode}, roots {root}")
            }
            _ => format!("sslmode {mode}"),
        }
    }
}

/// Why TLS could not be set up. Never holds key material.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{0}")]
    Mode(String),
    #[error("cannot read {what} {path}: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{what} {path} holds no usable PEM {kind}: {detail}")]
    Pem {
        what: &'static str,
        path: PathBuf,
        kind: &'static str,
        detail: String,
    },
    #[error(
        "sslmode {mode} checks the server's certificate but no root certificate is given and \
         {default} does not exist: pass --sslrootcert FILE (PGSSLROOTCERT, or sslrootcert= in \
         the URL) with the CA that signed the server's certificate, or sslrootcert=system for \
         public CAs"
    )]
    NoRootCert { mode: SslMode, default: String },
    #[error("--sslcert and --sslkey must be given together (a client certificate needs its key)")]
    ClientPair,
    #[error("cannot set up TLS: {0}")]
    Config(String),
}

/// The `ssl*` parameters found in (and removed from) a connection string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnParams {
    pub sslmode: Option<String>,
    pub sslrootcert: Option<String>,
    pub sslcert: Option<String>,
    pub sslkey: Option<String>,
}

impl ConnParams {
    fn take(&mut self, key: &str, value: String) -> bool {
        let slot = match key {
            "sslmode" => &mut self.sslmode,
            "sslrootcert" => &mut self.sslrootcert,
            "sslcert" => &mut self.sslcert,
            "sslkey" => &mut self.sslkey,
            _ => return false,
        };
        *slot = Some(value);
        true
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Splits the `sslmode`, `sslrootcert`, `sslcert` and `sslkey` parameters
/// out of a connection string (URL query or `key=value` form), which
/// tokio-postgres would refuse or only half understand. Returns the rest of
/// the string unchanged otherwise.
pub fn split_conn_params(conn: &str) -> (String, ConnParams) {
    let mut params = ConnParams::default();
    let trimmed = conn.trim();
    if trimmed.starts_with("postgres://") || trimmed.starts_with("postgresql://") {
        let Some((base, query)) = trimmed.split_once('?') else {
            return (trimmed.to_string(), params);
        };
        let kept: Vec<&str> = query
            .split('&')
            .filter(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                !params.take(&percent_decode(k), percent_decode(v))
            })
            .collect();
        let rest = if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        return (rest, params);
    }
    let mut kept: Vec<String> = vec![];
    for (key, value, raw) in key_value_pairs(trimmed) {
        match key {
            Some(key) if params.take(&key, value) => {}
            _ => kept.push(raw),
        }
    }
    (kept.join(" "), params)
}

/// The `key = value` pairs of a libpq key/value string: (key, unquoted
/// value, the pair as written). Values may be 'quoted' with \-escapes. A
/// word that is not a pair comes back with no key.
pub(super) fn key_value_pairs(conn: &str) -> Vec<(Option<String>, String, String)> {
    let chars: Vec<char> = conn.chars().collect();
    let mut out = vec![];
    let mut i = 0;
    while i < chars.len() {
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        if i >= chars.len() {
            break;
        }
        let start = i;
        while i < chars.len() && chars[i] != '=' && !chars[i].is_whitespace() {
            i += 1;
        }
        let key: String = chars[start..i].iter().collect();
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        if i >= chars.len() || chars[i] != '=' {
            // Not a key=value pair: leave it for tokio-postgres to report.
            out.push((None, String::new(), chars[start..i].iter().collect()));
            continue;
        }
        i += 1;
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        let mut value = String::new();
        if i < chars.len() && chars[i] == '\'' {
            i += 1;
            while i < chars.len() && chars[i] != '\'' {
                if chars[i] == '\\' && i + 1 < chars.len() {
                    i += 1;
                }
                value.push(chars[i]);
                i += 1;
            }
            i += 1;
        } else {
            while i < chars.len() && !chars[i].is_whitespace() {
                if chars[i] == '\\' && i + 1 < chars.len() {
                    i += 1;
                }
                value.push(chars[i]);
                i += 1;
            }
        }
        let end = i.min(chars.len());
        out.push((Some(key), value, chars[start..end].iter().collect()));
    }
    out
}

/// The password written in a connection string (URL or key/value), as
/// written and decoded, even when the string is otherwise invalid: for the
/// output scrubber.
pub fn written_passwords(conn: &str) -> Vec<String> {
    let t = conn.trim();
    let mut out = vec![];
    if let Some(rest) = t
        .strip_prefix("postgresql://")
        .or_else(|| t.strip_prefix("postgres://"))
    {
        let authority = rest.split(['/', '?']).next().unwrap_or("");
        if let Some((userinfo, _)) = authority.rsplit_once('@') {
            if let Some((_, pw)) = userinfo.split_once(':') {
                out.push(pw.to_string());
                out.push(percent_decode(pw));
            }
        }
        if let Some((_, query)) = rest.split_once('?') {
            for pair in query.split('&') {
                if let Some(("password", v)) = pair.split_once('=') {
                    out.push(v.to_string());
                    out.push(percent_decode(v));
                }
            }
        }
    } else {
        for (key, value, _) in key_value_pairs(t) {
            if key.as_deref() == Some("password") {
                out.push(value);
            }
        }
    }
    out.retain(|p| !p.is_empty());
    out
}

fn read_file(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })
}

/// libpq's default root certificate file, `~/.postgresql/root.crt`.
fn default_root_cert() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".postgresql/root.crt"))
}

fn root_store(root: &RootCert) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    match root {
        RootCert::System => store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        RootCert::File(path) => {
            let pem = read_file("the root certificate file", path)?;
            let bad = |detail: String| TlsError::Pem {
                what: "the root certificate file",
                path: path.clone(),
                kind: "certificate",
                detail,
            };
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| bad(e.to_string()))?;
                store.add(cert).map_err(|e| bad(e.to_string()))?;
            }
            if store.is_empty() {
                return Err(bad("no CERTIFICATE block".into()));
            }
        }
    }
    Ok(store)
}

fn client_auth(
    settings: &TlsSettings,
) -> Result<Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>, TlsError> {
    let (cert, key) = match (&settings.client_cert, &settings.client_key) {
        (None, None) => return Ok(None),
        (Some(c), Some(k)) => (c, k),
        _ => return Err(TlsError::ClientPair),
    };
    let pem = read_file("the client certificate", cert)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            what: "the client certificate",
            path: cert.clone(),
            kind: "certificate",
            detail: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            what: "the client certificate",
            path: cert.clone(),
            kind: "certificate",
            detail: "no CERTIFICATE block".into(),
        });
    }
    let pem = read_file("the client key", key)?;
    // The key's own parse error could quote it: say only what kind failed.
    let key_der = PrivateKeyDer::from_pem_slice(&pem).map_err(|_| TlsError::Pem {
        what: "the client key",
        path: key.clone(),
        kind: "private key",
        detail: "expected an unencrypted PKCS#8, PKCS#1 or SEC1 PEM key".into(),
    })?;
    Ok(Some((certs, key_der)))
}

/// Checks the server's certificate the way the mode asks.
///
/// The handshake's signature is always checked against the public key the
/// certificate carries. In the modes that do not judge the certificate
/// (`prefer`, `require` without a root certificate) that key is read without
/// judging anything else, as libpq with OpenSSL does: an X.509 version 1
/// certificate (what `CREATE EXTENSION citus` makes), an expired or a
/// self-signed one are all accepted there. The verify modes judge the
/// certificate with webpki, which takes version 3 certificates only.
#[derive(Debug)]
struct Verifier {
    /// `None`: accept any certificate (prefer, require without roots).
    chain: Option<Arc<WebPkiServerVerifier>>,
    check_name: bool,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            // The chain is checked before the name: for verify-ca a name
            // mismatch is the only failure to forgive.
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = &self.provider.signature_verification_algorithms;
        if self.chain.is_some() {
            return rustls::crypto::verify_tls12_signature(message, cert, dss, algs);
        }
        // TLS 1.2 names no single algorithm: try each one the scheme maps to.
        let spki = subject_public_key_info(cert.as_ref()).ok_or_else(unreadable_certificate)?;
        let spki = SubjectPublicKeyInfoDer::from(spki);
        let key =
            webpki::RawPublicKeyEntity::try_from(&spki).map_err(|_| unreadable_certificate())?;
        let candidates = algs
            .mapping
            .iter()
            .find(|(scheme, _)| *scheme == dss.scheme)
            .map(|(_, a)| *a)
            .unwrap_or_default();
        let mut last = None;
        for alg in candidates {
            match key.verify_signature(*alg, message, dss.signature()) {
                Ok(()) => return Ok(HandshakeSignatureValid::assertion()),
                Err(e @ webpki::Error::UnsupportedSignatureAlgorithmForPublicKeyContext(_)) => {
                    last = Some(e);
                }
                Err(e) => return Err(bad_signature(e)),
            }
        }
        Err(last.map_or(
            rustls::Error::PeerMisbehaved(
                rustls::PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme,
            ),
            bad_signature,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = &self.provider.signature_verification_algorithms;
        if self.chain.is_some() {
            return rustls::crypto::verify_tls13_signature(message, cert, dss, algs);
        }
        let spki = subject_public_key_info(cert.as_ref()).ok_or_else(unreadable_certificate)?;
        rustls::crypto::verify_tls13_signature_with_raw_key(
            message,
            &SubjectPublicKeyInfoDer::from(spki),
            dss,
            algs,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Makes TLS connections for tokio-postgres. Cheap to clone.
#[derive(Clone)]
pub struct MakeRustls {
    config: Arc<ClientConfig>,
    mode: SslMode,
    roots: Option<String>,
}

impl fmt::Debug for MakeRustls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MakeRustls")
            .field("mode", &self.mode)
            .field("roots", &self.roots)
            .finish()
    }
}

impl MakeRustls {
    /// Reads the certificates the settings name and builds the client
    /// configuration. Fails early, with the file named, when one is missing
    /// or unreadable.
    pub fn new(settings: &TlsSettings) -> Result<MakeRustls, TlsError> {
        let mode = settings.effective_mode();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let root = match (&settings.root_cert, mode) {
            (Some(root), _) => Some(root.clone()),
            (None, SslMode::VerifyCa | SslMode::VerifyFull) => {
                let default = default_root_cert();
                match default {
                    Some(p) if p.is_file() => Some(RootCert::File(p)),
                    other => {
                        return Err(TlsError::NoRootCert {
                            mode,
                            default: other.map_or_else(
                                || "~/.postgresql/root.crt".to_string(),
                                |p| p.display().to_string(),
                            ),
                        })
                    }
                }
            }
            (None, _) => None,
        };
        let chain = match (&root, mode) {
            (Some(root), SslMode::VerifyCa | SslMode::VerifyFull) => Some(
                WebPkiServerVerifier::builder_with_provider(
                    Arc::new(root_store(root)?),
                    provider.clone(),
                )
                .build()
                .map_err(|e| TlsError::Config(e.to_string()))?,
            ),
            _ => None,
        };
        let verifier = Verifier {
            chain,
            check_name: mode == SslMode::VerifyFull,
            provider: provider.clone(),
        };
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier));
        let config = match client_auth(settings)? {
            Some((certs, key)) => builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| TlsError::Config(format!("the client certificate and key: {e}")))?,
            None => builder.with_no_client_auth(),
        };
        Ok(MakeRustls {
            config: Arc::new(config),
            mode,
            roots: root.map(|r| r.to_string()),
        })
    }

    pub fn mode(&self) -> SslMode {
        self.mode
    }
}

impl<S> MakeTlsConnect<S> for MakeRustls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsConnect;
    type Error = TlsHandshakeError;

    fn make_tls_connect(&mut self, domain: &str) -> Result<RustlsConnect, TlsHandshakeError> {
        // Called for every connection, Unix sockets too (with ""): the name
        // is only parsed when a handshake really happens.
        Ok(RustlsConnect {
            config: self.config.clone(),
            host: domain.to_string(),
            mode: self.mode,
            roots: self.roots.clone(),
        })
    }
}

/// One handshake.
pub struct RustlsConnect {
    config: Arc<ClientConfig>,
    host: String,
    mode: SslMode,
    roots: Option<String>,
}

/// A failed handshake, said so that a person knows what to change.
#[derive(Debug, thiserror::Error)]
#[error("server {host} (sslmode {mode}): {detail}{hint}")]
pub struct TlsHandshakeError {
    host: String,
    mode: SslMode,
    detail: String,
    hint: String,
}

impl RustlsConnect {
    fn error(&self, detail: String, cause: Option<&rustls::Error>) -> TlsHandshakeError {
        let roots = self.roots.as_deref().unwrap_or("the root certificates");
        let hint = match cause {
            Some(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)) => format!(
                "; the server's certificate is not signed by a CA in {roots} (--sslrootcert)"
            ),
            Some(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => format!(
                "; connect by a name the certificate lists, or use sslmode verify-ca to check \
                 the chain but not the name {:?}",
                self.host
            ),
            Some(rustls::Error::InvalidCertificate(
                CertificateError::Expired | CertificateError::ExpiredContext { .. },
            )) => "; the server's certificate has expired".to_string(),
            Some(rustls::Error::InvalidCertificate(CertificateError::Other(e)))
                if e.to_string().contains("UnsupportedCertVersion") =>
            {
                "; the server's certificate is X.509 version 1, which the verify modes cannot \
                 check: give the server a version 3 certificate, or use sslmode require \
                 (encrypted, certificate not checked, as libpq)"
                    .to_string()
            }
            _ => String::new(),
        };
        TlsHandshakeError {
            host: self.host.clone(),
            mode: self.mode,
            detail,
            hint,
        }
    }
}

impl<S> TlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = TlsHandshakeError;
    type Future = Pin<Box<dyn Future<Output = Result<RustlsStream<S>, TlsHandshakeError>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let name = ServerName::try_from(self.host.clone()).map_err(|_| {
                self.error(
                    "not a valid host name or IP address for TLS".to_string(),
                    None,
                )
            })?;
            let connector = tokio_rustls::TlsConnector::from(self.config.clone());
            match connector.connect(name, stream).await {
                Ok(s) => Ok(RustlsStream(s)),
                Err(e) => {
                    let cause = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>());
                    let detail = match cause {
                        Some(c) => c.to_string(),
                        None => e.to_string(),
                    };
                    Err(self.error(detail, cause))
                }
            }
        })
    }
}

/// A TLS connection to the server.
pub struct RustlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for RustlsStream<S> {
    /// `tls-server-end-point` (RFC 5929): a hash of the server's certificate
    /// with the hash of its signature algorithm (SHA-256 for MD5 and SHA-1),
    /// so SCRAM can use SCRAM-SHA-256-PLUS and a man in the middle cannot
    /// relay the authentication. None for algorithms without a defined
    /// hash (Ed25519, RSA-PSS).
    fn channel_binding(&self) -> ChannelBinding {
        let (_, session) = self.0.get_ref();
        let Some(cert) = session.peer_certificates().and_then(|c| c.first()) else {
            return ChannelBinding::none();
        };
        match signature_hash(cert.as_ref()) {
            Some(alg) => ChannelBinding::tls_server_end_point(
                ring::digest::digest(alg, cert.as_ref()).as_ref().to_vec(),
            ),
            None => ChannelBinding::none(),
        }
    }
}

/// (tag, header length, content length) of the DER element at the start of
/// `b`.
fn der_header(b: &[u8]) -> Option<(u8, usize, usize)> {
    let tag = *b.first()?;
    let first = *b.get(1)? as usize;
    if first < 0x80 {
        return Some((tag, 2, first));
    }
    let n = first & 0x7f;
    if n == 0 || n > 4 {
        return None;
    }
    let mut len = 0usize;
    for i in 0..n {
        len = (len << 8) | *b.get(2 + i)? as usize;
    }
    Some((tag, 2 + n, len))
}

/// The `subjectPublicKeyInfo` element (header included) of a certificate of
/// any X.509 version, read without judging the certificate.
fn subject_public_key_info(cert: &[u8]) -> Option<&[u8]> {
    const SEQUENCE: u8 = 0x30;
    const VERSION: u8 = 0xa0; // [0] EXPLICIT; absent in version 1
    /// (tag, the first element with its header, what follows it).
    fn split(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let (tag, h, len) = der_header(b)?;
        let end = h.checked_add(len)?;
        Some((tag, b.get(..end)?, b.get(end..)?))
    }
    fn content(element: &[u8]) -> Option<&[u8]> {
        let (_, h, len) = der_header(element)?;
        element.get(h..h.checked_add(len)?)
    }
    let (tag, whole, _) = split(cert)?;
    let (tag_tbs, tbs, _) = split(content((tag == SEQUENCE).then_some(whole)?)?)?;
    let mut rest = content((tag_tbs == SEQUENCE).then_some(tbs)?)?;
    let (tag, _, after) = split(rest)?;
    if tag == VERSION {
        rest = after;
    }
    // serialNumber, signature, issuer, validity, subject
    for _ in 0..5 {
        rest = split(rest)?.2;
    }
    let (tag, spki, _) = split(rest)?;
    (tag == SEQUENCE).then_some(spki)
}

fn unreadable_certificate() -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::BadEncoding)
}

fn bad_signature(e: webpki::Error) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(Arc::new(e))))
}

/// The OID of a certificate's `signatureAlgorithm`.
fn signature_oid(cert: &[u8]) -> Option<&[u8]> {
    const SEQUENCE: u8 = 0x30;
    const OID: u8 = 0x06;
    let (tag, h, _) = der_header(cert)?;
    let inner = (tag == SEQUENCE).then(|| cert.get(h..))??;
    let (tag, h, len) = der_header(inner)?; // tbsCertificate: skipped
    let rest = (tag == SEQUENCE).then(|| inner.get(h + len..))??;
    let (tag, h, _) = der_header(rest)?;
    let alg = (tag == SEQUENCE).then(|| rest.get(h..))??;
    let (tag, h, len) = der_header(alg)?;
    (tag == OID).then(|| alg.get(h..h + len))?
}

fn signature_hash(cert: &[u8]) -> Option<&'static ring::digest::Algorithm> {
    const RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01];
    const ECDSA: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04];
    let oid = signature_oid(cert)?;
    if let Some(last) = oid.strip_prefix(RSA) {
        return match last {
            // md5, sha1, sha256WithRSAEncryption
            [0x04] | [0x05] | [0x0b] => Some(&ring::digest::SHA256),
            [0x0c] => Some(&ring::digest::SHA384),
            [0x0d] => Some(&ring::digest::SHA512),
            _ => None,
        };
    }
    match oid.strip_prefix(ECDSA)? {
        // ecdsa-with-SHA1, -SHA256, -SHA384, -SHA512
        [0x01] | [0x03, 0x02] => Some(&ring::digest::SHA256),
        [0x03, 0x03] => Some(&ring::digest::SHA384),
        [0x03, 0x04] => Some(&ring::digest::SHA512),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One key, certified as X.509 version 1 and version 3 (`openssl x509
    /// -req -signkey` and `openssl req -x509`); its `subjectPublicKeyInfo` as
    /// `openssl pkey -pubin -outform DER` prints it.
    const V1_CERT: &str = "-----BEGIN CERTIFICATE-----
MIIBIzCBywIUcqmfbK+pexDcHox365noIN21fZEwCgYIKoZIzj0EAwIwFDESMBAG
A1UEAwwJbG9jYWxob3N0MCAXDTI2MTIwNzA3MTAwM1oYDzIxMjYxMTEzMDcxMDAz
WjAUMRIwEAYDVQQDDAlsb2NhbGhvc3QwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNC
AAS15bqwu50ffV6wow8+obYrplYfj7J2ggT96VYmPRZdWXF0JkIHMhBpR3yWes6a
XQf9T0g6psRLil5w0xTy5gamMAoGCCqGSM49BAMCA0cAMEQCIHQrPUMMYCZKNsNa
O8pQhOaGtxNe0s5AaBihgfdHx7f9AiBYIImQpMRqP4s6We3u6Dw73WjqrO4t2kID
f+fYZ/s4NA==
-----END CERTIFICATE-----
";
    const V3_CERT: &str = "-----BEGIN CERTIFICATE-----
MIIBgDCCASWgAwIBAgIUePatagEcjfYIGDNfnXgSESxt3icwCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJbG9jYWxob3N0MCAXDTI2MTIwNzA3MTAwNVoYDzIxMjYxMTEz
MDcxMDA1WjAUMRIwEAYDVQQDDAlsb2NhbGhvc3QwWTATBgcqhkjOPQIBBggqhkjO
PQMBBwNCAAS15bqwu50ffV6wow8+obYrplYfj7J2ggT96VYmPRZdWXF0JkIHMhBp
R3yWes6aXQf9T0g6psRLil5w0xTy5gamo1MwUTAdBgNVHQ4EFgQUsiJ0hOfcQGRp
ehnXXwp+ZJ0upZYwHwYDVR0jBBgwFoAUsiJ0hOfcQGRpehnXXwp+ZJ0upZYwDwYD
VR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNJADBGAiEAi21GiMbERo6SIzZUGNC4
Ljc6qCwCY2/JqxkYDyYthHACIQD+zLbFtxh6XZees2JU+5C1GQvlpgSOvPc2wXWT
JPkmlA==
-----END CERTIFICATE-----
";
    const SPKI_HEX: &str = "3059301306072a8648ce3d020106082a8648ce3d03010703420004b5e5bab0bb9d1f7d5eb0a30f3ea1b62ba6561f8fb2768204fde956263d165d597174264207321069477c967ace9a5d07fd4f483aa6c44b8a5e70d314f2e606a6";

    #[test]
    fn the_public_key_is_read_from_version_1_and_version_3_certificates() {
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        for pem in [V1_CERT, V3_CERT] {
            let der = CertificateDer::from_pem_slice(pem.as_bytes()).expect("pem");
            let spki = subject_public_key_info(der.as_ref()).expect("spki");
            assert_eq!(hex(spki), SPKI_HEX);
            // Every strict prefix is refused, never read past its end.
            for cut in 0..der.as_ref().len() {
                let _ = subject_public_key_info(&der.as_ref()[..cut]);
            }
        }
        assert!(subject_public_key_info(b"not a certificate").is_none());
    }

    #[test]
    fn modes_parse_like_libpq() {
        assert_eq!(
            SslMode::parse("verify-full").ok(),
            Some(SslMode::VerifyFull)
        );
        assert_eq!(SslMode::parse("verify-ca").ok(), Some(SslMode::VerifyCa));
        assert!(SslMode::parse("allow")
            .expect_err("allow")
            .to_string()
            .contains("not supported"));
        assert!(SslMode::parse("verfy-full")
            .expect_err("typo")
            .to_string()
            .contains("verify-full"));
    }

    #[test]
    fn require_with_roots_checks_the_chain() {
        let mut s = TlsSettings {
            mode: SslMode::Require,
            ..TlsSettings::default()
        };
        assert_eq!(s.effective_mode(), SslMode::Require);
        s.root_cert = Some(RootCert::File("/x.pem".into()));
        assert_eq!(s.effective_mode(), SslMode::VerifyCa);
    }

    #[test]
    fn ssl_params_leave_urls() {
        let (rest, p) = split_conn_params(
            "postgresql://u:p%40ss@h:5432/db?sslmode=verify-full&application_name=x&sslrootcert=%2Ftmp%2Fca.pem",
        );
        assert_eq!(rest, "postgresql://u:p%40ss@h:5432/db?application_name=x");
        assert_eq!(p.sslmode.as_deref(), Some("verify-full"));
        assert_eq!(p.sslrootcert.as_deref(), Some("/tmp/ca.pem"));
        let (rest, p) = split_conn_params("postgres://h/db?sslmode=require");
        assert_eq!(rest, "postgres://h/db");
        assert_eq!(p.sslmode.as_deref(), Some("require"));
        let (rest, p) = split_conn_params("postgres://h/db");
        assert_eq!(rest, "postgres://h/db");
        assert_eq!(p, ConnParams::default());
    }

    #[test]
    fn ssl_params_leave_key_value_strings() {
        let (rest, p) = split_conn_params(
            "host=h  password='it\\'s a\\\\b' sslmode = verify-ca sslrootcert='/a b/ca.pem' dbname=d",
        );
        assert_eq!(rest, "host=h password='it\\'s a\\\\b' dbname=d");
        assert_eq!(p.sslmode.as_deref(), Some("verify-ca"));
        assert_eq!(p.sslrootcert.as_deref(), Some("/a b/ca.pem"));
    }

    #[test]
    fn passwords_are_found_in_any_string() {
        assert_eq!(
            written_passwords("postgresql://u:p%3Aw@h:notaport/d?x=1"),
            ["p%3Aw", "p:w"]
        );
        assert_eq!(
            written_passwords("host=h password='a b\\'c' user=u"),
            ["a b'c"]
        );
        assert!(written_passwords("postgresql://u@h/d").is_empty());
    }

    #[test]
    fn decoding() {
        assert_eq!(percent_decode("a%2Fb%zz%4"), "a/b%zz%4");
    }

    #[test]
    fn signature_algorithms_of_certificates() {
        // A minimal certificate shape: SEQUENCE { SEQUENCE {}, SEQUENCE { OID } }.
        let cert = |oid: &[u8]| {
            let mut alg = vec![0x06, oid.len() as u8];
            alg.extend_from_slice(oid);
            let mut body = vec![0x30, 0x00, 0x30, alg.len() as u8];
            body.extend(alg);
            let mut c = vec![0x30, body.len() as u8];
            c.extend(body);
            c
        };
        let sha256_rsa = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b];
        let ecdsa_384 = [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03];
        let ed25519 = [0x2b, 0x65, 0x70];
        assert!(std::ptr::eq(
            signature_hash(&cert(&sha256_rsa)).expect("rsa"),
            &ring::digest::SHA256
        ));
        assert!(std::ptr::eq(
            signature_hash(&cert(&ecdsa_384)).expect("ecdsa"),
            &ring::digest::SHA384
        ));
        assert!(signature_hash(&cert(&ed25519)).is_none());
        assert!(signature_hash(&[0x30, 0x81]).is_none());
    }
}
