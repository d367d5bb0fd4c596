//! TLS for the SSL and SASL_SSL listeners, with rustls (ring's cryptography): TLS 1.2 and 1.3,
//! the server's certificate chain and key from PEM files, and optionally client certificates
//! checked against a CA (Kafka's `ssl.client.auth`).
//!
//! gregor's keys and Kafka's:
//!
//! | gregor (TOML / flag) | Kafka | what |
//! |---|---|---|
//! | `tls_cert` / `--tls-cert` | `ssl.keystore.location` (PEM: `ssl.keystore.certificate.chain`) | the server's certificate chain, PEM |
//! | `tls_key` / `--tls-key` | `ssl.keystore.key` | its private key, PEM (PKCS#8, PKCS#1 or SEC1) |
//! | `tls_ca` / `--tls-ca` | `ssl.truststore.location` | CA certificates that sign client certificates, PEM |
//! | `tls_client_auth` / `--tls-client-auth` | `ssl.client.auth` | `none`, `requested` or `required` |
//!
//! A client that presents a certificate is known by its subject, as Kafka's default
//! `ssl.principal.mapping.rules` name it: `User:CN=alice,OU=apps,O=example` (RFC 2253 order, most
//! specific first). Without one, the principal is `User:ANONYMOUS`.
//!
//! **Certificates are reloaded without a restart** ([`Reloading`]): once a second the broker
//! looks at the files' modification times and sizes, and when one changed it builds a new
//! configuration from them and uses it for every new connection (connections already open keep
//! the certificate they were made with). Kafka does the same when `ssl.keystore.location` is
//! altered dynamically (KIP-226); gregor needs no command, a renewal tool replacing the files
//! is enough. Files that do not make a valid configuration (a key that is not the
//! certificate's, a half-written file) are logged and the old configuration stays; the next
//! change is tried again.

use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, ServerConnection};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;
use tokio_rustls::TlsAcceptor;

/// Kafka's `ssl.client.auth`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    /// No client certificate is asked for.
    #[default]
    None,
    /// Asked for; a client without one is still served (as `User:ANONYMOUS`).
    Requested,
    /// A client without a valid certificate is refused in the handshake.
    Required,
}

fn certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| anyhow::anyhow!("reading certificates from {}: {e}", path.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("parsing certificates in {}: {e}", path.display()))?;
    if certs.is_empty() {
        anyhow::bail!("no PEM certificate in {}", path.display());
    }
    Ok(certs)
}

/// The rustls configuration of the TLS listeners.
pub fn server_config(
    cert: &Path,
    key: &Path,
    ca: Option<&Path>,
    client_auth: ClientAuth,
) -> anyhow::Result<Arc<ServerConfig>> {
    // ring's provider is deprecated in favour of aws-lc-rs (post-quantum key exchange), whose
    // C build would double the build time on a two-core machine; ring's TLS 1.2 and 1.3 are
    // what every Kafka client negotiates today.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = certs(cert)?;
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| anyhow::anyhow!("reading the private key {}: {e}", key.display()))?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])?;
    let builder = match (client_auth, ca) {
        (ClientAuth::None, _) => builder.with_no_client_auth(),
        (_, None) => anyhow::bail!("tls_client_auth = requested or required needs tls_ca"),
        (auth, Some(ca)) => {
            let mut roots = RootCertStore::empty();
            for c in certs(ca)? {
                roots
                    .add(c)
                    .map_err(|e| anyhow::anyhow!("CA certificate in {}: {e}", ca.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = match auth {
                ClientAuth::Requested => verifier.allow_unauthenticated(),
                _ => verifier,
            };
            builder.with_client_cert_verifier(verifier.build()?)
        }
    };
    let config = builder
        .with_single_cert(chain, key)
        .map_err(|e| anyhow::anyhow!("the certificate and key do not make a TLS identity: {e}"))?;
    Ok(Arc::new(config))
}

/// The principal a TLS connection's client certificate names, or `User:ANONYMOUS`.
pub fn principal(conn: &ServerConnection) -> String {
    let subject = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(|der| x509_parser::parse_x509_certificate(der).ok())
        .map(|(_, cert)| rfc2253(cert.subject()));
    match subject {
        Some(s) if !s.is_empty() => format!("User:{s}"),
        _ => "User:ANONYMOUS".to_string(),
    }
}

/// A distinguished name as RFC 2253 writes it: relative names most specific first, joined by
/// commas (`CN=alice,O=example`), as Kafka's `X500Principal.getName()` does.
fn rfc2253(name: &x509_parser::x509::X509Name) -> String {
    let mut parts: Vec<String> = Vec::new();
    for rdn in name.iter() {
        let attrs: Vec<String> = rdn
            .iter()
            .map(|a| {
                let key = x509_parser::objects::oid2abbrev(
                    a.attr_type(),
                    x509_parser::objects::oid_registry(),
                )
                .map(|s| s.to_string())
                .unwrap_or_else(|_| a.attr_type().to_id_string());
                let value = a.as_str().unwrap_or("?");
                format!("{key}={value}")
            })
            .collect();
        parts.push(attrs.join("+"));
    }
    parts.reverse();
    parts.join(",")
}

/// The TLS configuration of the listeners, rebuilt when its files change (module docs).
pub struct Reloading {
    cert: PathBuf,
    key: PathBuf,
    ca: Option<PathBuf>,
    client_auth: ClientAuth,
    /// The files' stamp when last read, and the acceptor new connections get.
    current: RwLock<(Stamp, TlsAcceptor)>,
}

/// Each file's modification time and length (`None`: unreadable right now).
type Stamp = Vec<Option<(SystemTime, u64)>>;

impl Reloading {
    /// Read the files once: an error here stops the broker from starting, as before.
    pub fn new(
        cert: &Path,
        key: &Path,
        ca: Option<&Path>,
        client_auth: ClientAuth,
    ) -> anyhow::Result<Reloading> {
        let (cert, key, ca) = (
            cert.to_path_buf(),
            key.to_path_buf(),
            ca.map(Path::to_path_buf),
        );
        let stamp = stamp_of([&cert, &key].into_iter().chain(ca.as_ref()));
        let config = server_config(&cert, &key, ca.as_deref(), client_auth)?;
        Ok(Reloading {
            cert,
            key,
            ca,
            client_auth,
            current: RwLock::new((stamp, TlsAcceptor::from(config))),
        })
    }

    /// The acceptor for a new connection.
    pub fn acceptor(&self) -> TlsAcceptor {
        self.current.read().expect("tls lock").1.clone()
    }

    fn stamp(&self) -> Stamp {
        stamp_of([&self.cert, &self.key].into_iter().chain(self.ca.as_ref()))
    }

    fn build(&self) -> anyhow::Result<TlsAcceptor> {
        let config = server_config(&self.cert, &self.key, self.ca.as_deref(), self.client_auth)?;
        Ok(TlsAcceptor::from(config))
    }

    /// Look at the files: unchanged, `None`; changed, the new configuration is in use
    /// (`Some(Ok)`) or could not be built and the old one stays (`Some(Err)`).
    pub fn check(&self) -> Option<anyhow::Result<()>> {
        let stamp = self.stamp();
        if self.current.read().expect("tls lock").0 == stamp {
            return None;
        }
        let built = self.build();
        let mut current = self.current.write().expect("tls lock");
        // Remember the stamp either way: a failed set of files is tried again only when it
        // changes again, not once a second.
        current.0 = stamp;
        Some(built.map(|acceptor| current.1 = acceptor))
    }
}

fn stamp_of<'a>(files: impl Iterator<Item = &'a PathBuf>) -> Stamp {
    files
        .map(|f| {
            let m = std::fs::metadata(f).ok()?;
            Some((m.modified().ok()?, m.len()))
        })
        .collect()
}
