//! The security settings every admin subcommand that talks to a broker on a connection of its
//! own takes (`gregor acls`, `gregor users`), with Kafka's client vocabulary, and that
//! connection: it logs in with SASL PLAIN or SCRAM-SHA-256/512 (SaslHandshake v1, then
//! SaslAuthenticate, KIP-152) before its requests.
//!
//! ```text
//! --security-protocol SASL_PLAINTEXT --sasl-mechanism SCRAM-SHA-512 \
//!     --sasl-username admin --sasl-password admin-secret
//! --command-config admin.properties      (Kafka's tools' --command-config)
//! ```
//!
//! The properties file holds `security.protocol`, `sasl.mechanism`, `sasl.username`,
//! `sasl.password` (librdkafka's names), or a Java client's `sasl.jaas.config` with `username=`
//! and `password=`; a flag given on the command line wins over the file. The SCRAM client side
//! is `gregor_core::scram`'s math (RFC 5802), the one the broker checks against.

use anyhow::{bail, Context};
use base64::Engine;
use bytes::{BufMut, Bytes, BytesMut};
use gregor_client::sasl::{self, Login};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::Duration;

const HANDSHAKE_VERSION: i16 = 1;
const AUTHENTICATE_VERSION: i16 = 2;
/// The largest response the tools read.
const RESPONSE_BYTES_MAX: usize = 16 * 1024 * 1024;

#[derive(clap::Args, Debug, Clone, Default)]
pub struct SecurityArgs {
    /// PLAINTEXT or SASL_PLAINTEXT (Kafka's security.protocol) [default: SASL_PLAINTEXT when
    /// --sasl-username is given, else PLAINTEXT].
    #[arg(long)]
    pub security_protocol: Option<String>,
    /// PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (Kafka's sasl.mechanism) [default: PLAIN].
    #[arg(long)]
    pub sasl_mechanism: Option<String>,
    /// Log in with SASL as this user.
    #[arg(long)]
    pub sasl_username: Option<String>,
    #[arg(long)]
    pub sasl_password: Option<String>,
    /// A Kafka client properties file with the settings above (Kafka's tools' --command-config).
    #[arg(long)]
    pub command_config: Option<PathBuf>,
}

impl SecurityArgs {
    /// How to log in, resolved from the flags and the properties file: gregor-client's
    /// [`Login`], or `None` for PLAINTEXT.
    pub fn login(&self) -> anyhow::Result<Option<Login>> {
        let file = match &self.command_config {
            Some(path) => properties(
                &std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?,
            ),
            None => BTreeMap::new(),
        };
        let pick =
            |flag: &Option<String>, key: &str| flag.clone().or_else(|| file.get(key).cloned());
        let user = pick(&self.sasl_username, "sasl.username");
        let password = pick(&self.sasl_password, "sasl.password");
        let protocol = pick(&self.security_protocol, "security.protocol").unwrap_or_else(|| {
            if user.is_some() {
                "SASL_PLAINTEXT"
            } else {
                "PLAINTEXT"
            }
            .to_string()
        });
        match protocol.to_ascii_uppercase().as_str() {
            "PLAINTEXT" => return Ok(None),
            "SASL_PLAINTEXT" => {}
            "SSL" | "SASL_SSL" => bail!(
                "security.protocol {protocol}: gregor's admin tools speak no TLS yet; use a PLAINTEXT or SASL_PLAINTEXT listener"
            ),
            other => bail!("security.protocol {other}: PLAINTEXT or SASL_PLAINTEXT"),
        }
        let (Some(user), Some(password)) = (user, password) else {
            bail!("SASL_PLAINTEXT needs --sasl-username and --sasl-password (or sasl.username and sasl.password)");
        };
        let mechanism = pick(&self.sasl_mechanism, "sasl.mechanism").unwrap_or("PLAIN".into());
        let login = Login::new(&mechanism.to_ascii_uppercase(), &user, &password)
            .map_err(anyhow::Error::msg)?;
        login.validate().map_err(anyhow::Error::msg)?;
        Ok(Some(login))
    }
}

/// A Java properties file's `key=value` lines (`#` and `!` start comments). A
/// `sasl.jaas.config` naming `username="..."` and `password="..."` gives `sasl.username` and
/// `sasl.password` unless they are set.
fn properties(text: &str) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        if let Some((k, v)) = line.split_once(['=', ':']) {
            map.insert(k.trim().to_string(), v.trim().to_string());
        }
    }
    if let Some(jaas) = map.get("sasl.jaas.config").cloned() {
        for (key, prop) in [("username", "sasl.username"), ("password", "sasl.password")] {
            let quoted = format!("{key}=\"");
            if let Some(rest) = jaas.split(&quoted).nth(1) {
                let value = rest.split('"').next().unwrap_or_default().to_string();
                map.entry(prop.to_string()).or_insert(value);
            }
        }
    }
    map
}

/// One connection to a broker, logged in as [`SecurityArgs`] say; requests are sent one at a
/// time and their responses read back.
pub struct Conn {
    stream: TcpStream,
    corr: i32,
    client_id: &'static str,
}

impl Conn {
    pub fn open(
        server: &str,
        security: &SecurityArgs,
        client_id: &'static str,
    ) -> anyhow::Result<Conn> {
        let login = security.login()?;
        let stream =
            TcpStream::connect(server).with_context(|| format!("connecting to {server}"))?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut c = Conn {
            stream,
            corr: 0,
            client_id,
        };
        // The tokens are gregor-client's (`gregor_client::sasl`), the same the client sends.
        match login {
            None => {}
            Some(Login::Plain { user, password }) => {
                c.handshake("PLAIN")?;
                c.authenticate(Bytes::from(sasl::plain_token(&user, &password)))?;
            }
            Some(Login::Scram {
                mechanism,
                user,
                password,
            }) => {
                c.handshake(mechanism.name())?;
                let nonce: [u8; 24] = rand::random();
                let nonce = base64::engine::general_purpose::STANDARD_NO_PAD.encode(nonce);
                let (first, bare) = sasl::scram_client_first(&user, &nonce);
                let server_first = c.authenticate(Bytes::from(first))?;
                let last =
                    sasl::scram_client_final(mechanism, &password, &bare, &nonce, &server_first)
                        .map_err(anyhow::Error::msg)?;
                c.authenticate(Bytes::from(last))?;
            }
        }
        Ok(c)
    }

    fn handshake(&mut self, mechanism: &'static str) -> anyhow::Result<()> {
        let h =
            SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mechanism));
        let mut r = self.call(ApiKey::SaslHandshake, HANDSHAKE_VERSION, &h)?;
        let resp = SaslHandshakeResponse::decode(&mut r, HANDSHAKE_VERSION)?;
        if resp.error_code != 0 {
            let offered: Vec<&str> = resp.mechanisms.iter().map(|m| m.as_str()).collect();
            bail!(
                "the broker refused SASL {mechanism} (error code {}; it offers {offered:?})",
                resp.error_code
            );
        }
        Ok(())
    }

    /// One SaslAuthenticate round: the broker's token.
    fn authenticate(&mut self, token: Bytes) -> anyhow::Result<Bytes> {
        let a = SaslAuthenticateRequest::default().with_auth_bytes(token);
        let mut r = self.call(ApiKey::SaslAuthenticate, AUTHENTICATE_VERSION, &a)?;
        let resp = SaslAuthenticateResponse::decode(&mut r, AUTHENTICATE_VERSION)?;
        if resp.error_code != 0 {
            let why = resp.error_message.as_ref().map_or("", |m| m.as_str());
            bail!(
                "SASL authentication failed (error code {}): {why}",
                resp.error_code
            );
        }
        Ok(resp.auth_bytes)
    }

    /// Send one request and read its response body (after the response header).
    pub fn call(
        &mut self,
        key: ApiKey,
        version: i16,
        body: &impl Encodable,
    ) -> anyhow::Result<Bytes> {
        self.corr += 1;
        let mut frame = BytesMut::new();
        frame.put_u32(0);
        RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.corr)
            .with_client_id(Some(StrBytes::from_static_str(self.client_id)))
            .encode(&mut frame, key.request_header_version(version))?;
        body.encode(&mut frame, version)?;
        let len = (frame.len() - 4) as u32;
        frame[..4].copy_from_slice(&len.to_be_bytes());
        self.stream.write_all(&frame)?;
        let mut len = [0u8; 4];
        self.stream
            .read_exact(&mut len)
            .context("reading the response (did the broker close the connection?)")?;
        let len = u32::from_be_bytes(len) as usize;
        if len > RESPONSE_BYTES_MAX {
            bail!("a response of {len} bytes");
        }
        let mut buf = vec![0u8; len];
        self.stream.read_exact(&mut buf)?;
        let mut buf = Bytes::from(buf);
        let header = ResponseHeader::decode(&mut buf, key.response_header_version(version))?;
        if header.correlation_id != self.corr {
            bail!("response correlation id {}", header.correlation_id);
        }
        Ok(buf)
    }

    /// Send one request and decode its response.
    pub fn ask<T: Decodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        body: &impl Encodable,
    ) -> anyhow::Result<T> {
        let mut r = self.call(key, version, body)?;
        T::decode(&mut r, version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(file: &str) -> SecurityArgs {
        let path = std::env::temp_dir().join(format!("gregor-props-{}", std::process::id()));
        std::fs::write(&path, file).unwrap();
        SecurityArgs {
            command_config: Some(path),
            ..SecurityArgs::default()
        }
    }

    #[test]
    fn a_properties_file_and_flags_resolve_to_a_login() {
        assert_eq!(SecurityArgs::default().login().unwrap(), None);
        let a = args("# admin\nsecurity.protocol=SASL_PLAINTEXT\nsasl.mechanism=SCRAM-SHA-512\nsasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username=\"admin\" password=\"s3cret\";\n");
        assert_eq!(
            a.login().unwrap(),
            Some(Login::Scram {
                mechanism: gregor_core::scram::ScramMechanism::Sha512,
                user: "admin".into(),
                password: "s3cret".into()
            })
        );
        let flags = SecurityArgs {
            sasl_mechanism: Some("PLAIN".into()),
            sasl_password: Some("other".into()),
            ..a
        };
        assert_eq!(
            flags.login().unwrap(),
            Some(Login::Plain {
                user: "admin".into(),
                password: "other".into()
            })
        );
        let tls = SecurityArgs {
            security_protocol: Some("SASL_SSL".into()),
            ..flags
        };
        assert!(tls.login().is_err(), "TLS is refused, not silently dropped");
        let missing = args("security.protocol=SASL_PLAINTEXT\n");
        assert!(missing.login().is_err(), "SASL without a user is an error");
    }
}
