//! SASL authentication of one connection (KIP-43, KIP-152) as a sans-IO state machine.
//!
//! A connection on a `SASL_PLAINTEXT` or `SASL_SSL` listener must authenticate before it may use
//! the broker. The client first asks which versions the broker speaks (ApiVersions, answered as
//! always), then names a mechanism (SaslHandshake), then sends the mechanism's tokens
//! (SaslAuthenticate, KIP-152) until the broker says yes or no:
//!
//! ```text
//!   AwaitHandshake --SaslHandshake(mech)--> AwaitToken --PLAIN token ok--------------> Authenticated
//!                                                      --SCRAM client-first--> ScramFirstSent
//!   ScramFirstSent --client-final with a valid proof--> Authenticated
//!   any failure --> Failed (the answer is sent, then the connection is closed)
//! ```
//!
//! Before authentication only ApiVersions, SaslHandshake and SaslAuthenticate are allowed;
//! anything else closes the connection, as Kafka's `SaslServerAuthenticator` does. A
//! SaslHandshake v0 (pre-KIP-152 clients) switches the connection to raw tokens: each token is
//! a 4-byte length and the bytes, with no Kafka request header ([`SaslSession::on_raw_token`]).
//!
//! The core draws no randomness: the SCRAM server nonce arrives with the session
//! ([`SaslSession::new`]), drawn by the runtime from the operating system (or by the simulator
//! from its seed). Credentials are read from a [`Credentials`] store the caller passes in.
//!
//! The principal an authenticated connection gets is `User:<name>` (Kafka's `KafkaPrincipal`);
//! a connection on a listener without SASL keeps the principal its transport gave it
//! (`User:ANONYMOUS`, or `User:CN=...` for a TLS client certificate).
//!
//! ## Re-authentication (KIP-368)
//!
//! With `connections.max.reauth.ms` set ([`SaslSession::with_reauth`]; 0, Kafka's default, is
//! off) a login lasts that long: the SaslAuthenticate answer that completes it tells the client
//! (`session_lifetime_ms`, v1+), and the client logs in again on the same connection before
//! then, with a SaslHandshake (the same mechanism) and its tokens between other requests:
//!
//! ```text
//!   Authenticated --SaslHandshake(same mech)--> AwaitToken ... --> Authenticated (same principal)
//!   Authenticated, expired --any request but SaslHandshake--> closed
//! ```
//!
//! A session past its lifetime serves nothing but the re-authentication: any other request
//! closes the connection, as Kafka's `SaslServerAuthenticator` does, so a deleted user or a
//! changed password loses its connections within the lifetime. A re-authentication may not
//! change the principal (Kafka refuses that too). Time comes in with each request
//! ([`SaslSession::on_request_at`]), as everywhere in the core.

/// SCRAM itself lives in `crate::scram`, which imports nothing of the crate, so the metadata
/// image (`crate::cluster`) can hold credentials without importing this module.
pub use crate::scram;
pub use crate::scram::Credentials;

use crate::error::ErrorCode;
use crate::io::Request;
use crate::time::{Duration, Instant};
use bytes::Bytes;
use kafka_protocol::messages::{
    ApiKey, RequestKind, ResponseKind, SaslAuthenticateResponse, SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use scram::{ClientFirst, ScramCredential, ScramMechanism};

/// The largest SASL token accepted (Kafka's `sasl.server.max.receive.size`, 512 KiB); also the
/// largest request frame read from a connection that has not authenticated yet.
pub const TOKEN_BYTES_MAX: usize = 512 * 1024;

/// A SASL mechanism gregor offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mechanism {
    /// RFC 4616: user name and password in one token (use it only over TLS).
    Plain,
    Scram(ScramMechanism),
}

impl Mechanism {
    pub const ALL: [Mechanism; 3] = [
        Mechanism::Plain,
        Mechanism::Scram(ScramMechanism::Sha256),
        Mechanism::Scram(ScramMechanism::Sha512),
    ];

    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Scram(m) => m.name(),
        }
    }

    pub fn from_name(name: &str) -> Option<Mechanism> {
        Mechanism::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// What the caller does with a request, by the session's decision.
#[derive(Debug)]
pub enum Step {
    /// Pass the request to the broker (ApiVersions, or anything once authenticated).
    Forward,
    /// Send this response; the exchange goes on.
    Respond(ResponseKind),
    /// Send this response, then close the connection: the exchange failed. The reason is for
    /// the log line (it names the user, never a secret).
    RespondAndClose(ResponseKind, String),
    /// Close without an answer (a request other than the SASL ones before authentication).
    Close(String),
}

#[derive(Debug)]
enum State {
    AwaitHandshake,
    AwaitToken {
        mechanism: Mechanism,
    },
    ScramFirstSent {
        cred: ScramCredential,
        first: ClientFirst,
        server_first: String,
    },
    Authenticated,
    Failed,
}

/// One connection's authentication.
#[derive(Debug)]
pub struct SaslSession {
    enabled: Vec<Mechanism>,
    state: State,
    /// The SCRAM server nonce for this connection, printable (see [`SaslSession::new`]).
    server_nonce: String,
    /// SaslHandshake v0 was used: tokens come as raw frames.
    raw: bool,
    principal: String,
    /// `connections.max.reauth.ms` (KIP-368): how long a login lasts; `None`: for ever.
    reauth: Option<Duration>,
    /// When the current login's lifetime ends (with `reauth`).
    expires_at: Option<Instant>,
    /// The mechanism of the first login (a re-authentication must use it again).
    mechanism: Option<Mechanism>,
    /// A re-authentication is under way: the principal must come out the same.
    reauthenticating: bool,
    /// The time of the request being handled.
    now: Instant,
}

impl SaslSession {
    /// A session on a listener that requires SASL with the `enabled` mechanisms. `nonce` is at
    /// least 16 random bytes drawn by the caller; it becomes the SCRAM server nonce.
    pub fn new(enabled: Vec<Mechanism>, nonce: &[u8]) -> SaslSession {
        assert!(
            nonce.len() >= 16,
            "a SCRAM server nonce needs 16 random bytes"
        );
        assert!(!enabled.is_empty(), "a SASL listener enables a mechanism");
        SaslSession {
            enabled,
            state: State::AwaitHandshake,
            server_nonce: alphanumeric(nonce),
            raw: false,
            principal: String::new(),
            reauth: None,
            expires_at: None,
            mechanism: None,
            reauthenticating: false,
            now: Instant(0),
        }
    }

    /// Logins last `max_reauth_ms` (Kafka's `connections.max.reauth.ms`; 0: for ever), and the
    /// client may log in again on the same connection (KIP-368, the module docs).
    pub fn with_reauth(mut self, max_reauth_ms: u64) -> SaslSession {
        self.reauth = (max_reauth_ms > 0).then(|| Duration::from_ms(max_reauth_ms));
        assert!(self.reauth.is_none_or(|d| d.as_ms() == max_reauth_ms));
        self
    }

    /// Whether the current login's lifetime has ended at `now` (only with re-authentication
    /// on): the connection may then send nothing but a re-authentication.
    pub fn expired(&self, now: Instant) -> bool {
        self.expires_at.is_some_and(|at| now >= at)
    }

    /// A connection on a listener without SASL, already known as `principal` (`User:ANONYMOUS`,
    /// or the TLS client certificate's subject). A SaslHandshake on it gets ILLEGAL_SASL_STATE.
    pub fn not_required(principal: String) -> SaslSession {
        assert!(principal.starts_with("User:"));
        SaslSession {
            enabled: Vec::new(),
            state: State::Authenticated,
            server_nonce: String::new(),
            raw: false,
            principal,
            reauth: None,
            expires_at: None,
            mechanism: None,
            reauthenticating: false,
            now: Instant(0),
        }
    }

    pub fn is_authenticated(&self) -> bool {
        matches!(self.state, State::Authenticated)
    }

    /// The authenticated principal (`User:alice`), once there is one.
    pub fn principal(&self) -> Option<&str> {
        self.is_authenticated().then_some(self.principal.as_str())
    }

    /// Whether the next frame is a raw SASL token (after a SaslHandshake v0), not a request.
    pub fn expects_raw_token(&self) -> bool {
        self.raw
            && matches!(
                self.state,
                State::AwaitToken { .. } | State::ScramFirstSent { .. }
            )
    }

    /// Decide what to do with one request, at the time of the last request (enough when
    /// re-authentication is off: nothing then depends on time).
    pub fn on_request(&mut self, request: &Request, creds: &Credentials) -> Step {
        self.on_request_at(request, creds, self.now)
    }

    /// Decide what to do with one request read at `now`.
    pub fn on_request_at(&mut self, request: &Request, creds: &Credentials, now: Instant) -> Step {
        self.now = self.now.max(now);
        let version = request.header.request_api_version;
        match &request.body {
            RequestKind::SaslHandshake(h) => self.on_handshake(h.mechanism.as_str(), version),
            RequestKind::SaslAuthenticate(a) => {
                let token = a.auth_bytes.clone();
                match self.on_token(&token, creds) {
                    Ok(reply) => {
                        let mut r =
                            SaslAuthenticateResponse::default().with_auth_bytes(Bytes::from(reply));
                        // KIP-368: the login that just completed lasts this long (v1+).
                        if let (Some(life), true) = (self.reauth, version >= 1) {
                            if self.is_authenticated() {
                                r.session_lifetime_ms = life.as_ms() as i64;
                            }
                        }
                        Step::Respond(ResponseKind::SaslAuthenticate(r))
                    }
                    Err((code, why)) => Step::RespondAndClose(
                        ResponseKind::SaslAuthenticate(
                            SaslAuthenticateResponse::default()
                                .with_error_code(code.wire())
                                .with_error_message(Some(StrBytes::from_string(public(&why)))),
                        ),
                        why,
                    ),
                }
            }
            _ if self.is_authenticated() && self.expired(self.now) => {
                self.state = State::Failed;
                Step::Close(format!(
                    "the SASL session of {} expired without re-authentication (connections.max.reauth.ms, KIP-368)",
                    self.principal
                ))
            }
            _ if self.is_authenticated() => Step::Forward,
            RequestKind::ApiVersions(_) => Step::Forward,
            _ => {
                let api = ApiKey::try_from(request.header.request_api_key)
                    .map(|k| format!("{k:?}"))
                    .unwrap_or_else(|_| request.header.request_api_key.to_string());
                self.state = State::Failed;
                Step::Close(format!(
                    "a {api} request before SASL authentication (only ApiVersions, SaslHandshake and SaslAuthenticate are allowed)"
                ))
            }
        }
    }

    fn on_handshake(&mut self, name: &str, version: i16) -> Step {
        let mechanisms: Vec<StrBytes> = self
            .enabled
            .iter()
            .map(|m| StrBytes::from_static_str(m.name()))
            .collect();
        let answer = |code: ErrorCode| {
            ResponseKind::SaslHandshake(
                SaslHandshakeResponse::default()
                    .with_error_code(code.wire())
                    .with_mechanisms(mechanisms.clone()),
            )
        };
        // KIP-368: a logged-in client may log in again, with the same mechanism.
        let reauth = self.reauth.is_some()
            && matches!(self.state, State::Authenticated)
            && self.mechanism.is_some();
        if reauth && Mechanism::from_name(name) != self.mechanism {
            let why = format!(
                "re-authentication of {} with {name:?}, not the mechanism it logged in with",
                self.principal
            );
            self.state = State::Failed;
            return Step::RespondAndClose(answer(ErrorCode::UNSUPPORTED_SASL_MECHANISM), why);
        }
        if !matches!(self.state, State::AwaitHandshake) && !reauth {
            let why = format!("SaslHandshake in state {}", self.state_name());
            self.state = State::Failed;
            return Step::RespondAndClose(answer(ErrorCode::ILLEGAL_SASL_STATE), why);
        }
        match Mechanism::from_name(name).filter(|m| self.enabled.contains(m)) {
            Some(mechanism) => {
                self.state = State::AwaitToken { mechanism };
                self.mechanism = Some(mechanism);
                self.reauthenticating = reauth;
                self.raw = version == 0;
                Step::Respond(answer(ErrorCode::NONE))
            }
            None => {
                self.state = State::Failed;
                Step::RespondAndClose(
                    answer(ErrorCode::UNSUPPORTED_SASL_MECHANISM),
                    format!("unsupported SASL mechanism {name:?}"),
                )
            }
        }
    }

    /// A raw token (after SaslHandshake v0): the raw reply, or why the connection closes (a
    /// raw exchange has no error field; Kafka just closes).
    pub fn on_raw_token(&mut self, token: &[u8], creds: &Credentials) -> Result<Vec<u8>, String> {
        assert!(
            self.expects_raw_token(),
            "the caller checks expects_raw_token"
        );
        self.on_token(token, creds).map_err(|(_, why)| why)
    }

    /// One SASL token in the current state: the reply token, or an error code and why.
    fn on_token(
        &mut self,
        token: &[u8],
        creds: &Credentials,
    ) -> Result<Vec<u8>, (ErrorCode, String)> {
        let state = std::mem::replace(&mut self.state, State::Failed);
        if token.len() > TOKEN_BYTES_MAX {
            return Err((
                ErrorCode::SASL_AUTHENTICATION_FAILED,
                format!(
                    "a SASL token of {} bytes, over the {TOKEN_BYTES_MAX}-byte limit",
                    token.len()
                ),
            ));
        }
        let failed = |why: String| (ErrorCode::SASL_AUTHENTICATION_FAILED, why);
        match state {
            State::AwaitToken {
                mechanism: Mechanism::Plain,
            } => {
                let (user, password) = parse_plain(token).map_err(failed)?;
                if !creds.check_password(&user, password) {
                    return Err(failed(format!(
                        "user {user:?}: wrong password or no such user (PLAIN)"
                    )));
                }
                self.authenticated(user).map_err(failed)?;
                Ok(Vec::new())
            }
            State::AwaitToken {
                mechanism: Mechanism::Scram(m),
            } => {
                let first = scram::parse_client_first(token).map_err(failed)?;
                let Some(cred) = creds.get(&first.user, m) else {
                    return Err(failed(format!(
                        "user {:?}: no {} credential",
                        first.user,
                        m.name()
                    )));
                };
                let server_first = scram::server_first(&first, &self.server_nonce, cred);
                let reply = server_first.clone().into_bytes();
                self.state = State::ScramFirstSent {
                    cred: cred.clone(),
                    first,
                    server_first,
                };
                Ok(reply)
            }
            State::ScramFirstSent {
                cred,
                first,
                server_first,
            } => {
                let last = scram::parse_client_final(token).map_err(failed)?;
                let reply = scram::verify_client_final(&cred, &first, &server_first, &last)
                    .map_err(|why| failed(format!("user {:?}: {why}", first.user)))?;
                self.authenticated(first.user).map_err(failed)?;
                Ok(reply.into_bytes())
            }
            other => Err((
                ErrorCode::ILLEGAL_SASL_STATE,
                format!("SaslAuthenticate in state {}", State::name_of(&other)),
            )),
        }
    }

    /// A login completed as `user`; a re-authentication must come out as the same principal.
    fn authenticated(&mut self, user: String) -> Result<(), String> {
        assert!(!user.is_empty(), "a principal has a name");
        let principal = format!("User:{user}");
        if self.reauthenticating && principal != self.principal {
            return Err(format!(
                "re-authentication as {principal} of a connection logged in as {}",
                self.principal
            ));
        }
        self.principal = principal;
        self.state = State::Authenticated;
        self.reauthenticating = false;
        self.expires_at = self.reauth.map(|life| self.now + life);
        assert!(self.principal().is_some());
        Ok(())
    }

    fn state_name(&self) -> &'static str {
        State::name_of(&self.state)
    }
}

/// The random bytes as letters and digits, as Kafka's server nonces are (printable, and free of
/// the `,` and `=` that SCRAM's attribute syntax gives a meaning).
fn alphanumeric(bytes: &[u8]) -> String {
    const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let s: String = bytes
        .iter()
        .map(|b| ALNUM[*b as usize % ALNUM.len()] as char)
        .collect();
    assert_eq!(s.len(), bytes.len());
    s
}

impl State {
    fn name_of(s: &State) -> &'static str {
        match s {
            State::AwaitHandshake => "awaiting SaslHandshake",
            State::AwaitToken { .. } => "awaiting the first token",
            State::ScramFirstSent { .. } => "awaiting the SCRAM final message",
            State::Authenticated => "authenticated",
            State::Failed => "failed",
        }
    }
}

/// What a client is told about a failure: Kafka's generic message for bad credentials (so a
/// client cannot tell a wrong password from an unknown user), the reason itself otherwise.
fn public(why: &str) -> String {
    if why.contains("wrong password") || why.contains("no such user") || why.contains("credential")
    {
        "Authentication failed: Invalid username or password".to_string()
    } else {
        format!("Authentication failed: {why}")
    }
}

/// Parse a PLAIN token (RFC 4616): `[authzid] NUL authcid NUL passwd`. Kafka allows an authzid
/// only if it names the same user.
pub fn parse_plain(token: &[u8]) -> Result<(String, &[u8]), String> {
    let mut parts = token.splitn(3, |b| *b == 0);
    let (Some(authzid), Some(user), Some(password)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err("a PLAIN token has three NUL-separated parts".into());
    };
    let user = std::str::from_utf8(user).map_err(|_| "PLAIN user name is not UTF-8")?;
    if user.is_empty() || password.is_empty() {
        return Err("PLAIN user name or password is empty".into());
    }
    if !authzid.is_empty() && authzid != user.as_bytes() {
        return Err(format!(
            "PLAIN authorization id differs from the user {user:?}"
        ));
    }
    assert!(password.len() < token.len());
    Ok((user.to_string(), password))
}

#[cfg(test)]
mod tests;
