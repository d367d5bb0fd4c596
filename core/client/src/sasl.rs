//! Logging in on a connection with SASL (KIP-43, KIP-152), the client's side, sans-IO.
//!
//! On a `SASL_PLAINTEXT` or `SASL_SSL` listener a broker serves nothing but ApiVersions,
//! SaslHandshake and SaslAuthenticate until the connection has authenticated. So after the
//! ApiVersions handshake a client configured with a [`Login`] (Kafka's `sasl.mechanism`,
//! `sasl.username`, `sasl.password`) names its mechanism with SaslHandshake (v1: the tokens then
//! travel inside SaslAuthenticate requests, KIP-152) and sends the mechanism's tokens:
//!
//! ```text
//!   PLAIN:  SaslAuthenticate("\0user\0password")                       -> ok
//!   SCRAM:  SaslAuthenticate(client-first)  -> server-first (salt, iterations, nonce)
//!           SaslAuthenticate(client-final with the proof) -> server-final
//! ```
//!
//! Only then is the connection ready for other requests. A refusal (an unknown mechanism, a
//! wrong password: SASL_AUTHENTICATION_FAILED) closes the connection; the broker closes it too.
//!
//! The SCRAM client nonce comes from the client's seeded PRNG, like every other random choice
//! of this crate; the proof is computed by the core's SCRAM code (`gregor_core::scram`, RFC
//! 5802 and RFC 7677), the same code the broker checks it with.

use gregor_core::prng::Prng;
use gregor_core::scram::{self, ScramMechanism};

/// How the client logs in (Kafka's `sasl.mechanism` with `sasl.username` / `sasl.password`).
#[derive(Clone, PartialEq, Eq)]
pub enum Login {
    /// SASL/PLAIN (RFC 4616): the password travels as it is; use it only over TLS or on a
    /// trusted network.
    Plain { user: String, password: String },
    /// SASL/SCRAM-SHA-256 or SCRAM-SHA-512 (RFC 5802, RFC 7677): the password never travels.
    Scram {
        mechanism: ScramMechanism,
        user: String,
        password: String,
    },
}

impl std::fmt::Debug for Login {
    /// Never print a password (configurations end up in logs).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Login({} as {:?})", self.mechanism(), self.user())
    }
}

impl Login {
    /// A login from Kafka's settings: `sasl.mechanism` (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512),
    /// `sasl.username`, `sasl.password`.
    pub fn new(mechanism: &str, user: &str, password: &str) -> Result<Login, String> {
        let (user, password) = (user.to_string(), password.to_string());
        match mechanism {
            "PLAIN" => Ok(Login::Plain { user, password }),
            m => match ScramMechanism::from_name(m) {
                Some(mechanism) => Ok(Login::Scram {
                    mechanism,
                    user,
                    password,
                }),
                None => Err(format!(
                    "sasl.mechanism {m:?}: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"
                )),
            },
        }
    }

    /// The mechanism's name, as SaslHandshake carries it.
    pub fn mechanism(&self) -> &'static str {
        match self {
            Login::Plain { .. } => "PLAIN",
            Login::Scram { mechanism, .. } => mechanism.name(),
        }
    }

    pub fn user(&self) -> &str {
        match self {
            Login::Plain { user, .. } | Login::Scram { user, .. } => user,
        }
    }

    fn password(&self) -> &str {
        match self {
            Login::Plain { password, .. } | Login::Scram { password, .. } => password,
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.user().is_empty() || self.password().is_empty() {
            return Err("sasl.username and sasl.password must not be empty".into());
        }
        if self.user().contains('\0') || self.password().contains('\0') {
            return Err("sasl.username and sasl.password cannot contain NUL".into());
        }
        Ok(())
    }
}

/// The PLAIN token (RFC 4616): no authorization id, the user, the password, NUL-separated.
pub fn plain_token(user: &str, password: &str) -> Vec<u8> {
    let token = format!("\0{user}\0{password}").into_bytes();
    assert_eq!(token.len(), user.len() + password.len() + 2);
    token
}

/// SCRAM's `client-first-message` and its bare part (without the GS2 header `n,,`), which the
/// proof covers. RFC 5802 escapes `=` and `,` in the user name.
pub fn scram_client_first(user: &str, nonce: &str) -> (String, String) {
    let name = user.replace('=', "=3D").replace(',', "=2C");
    let bare = format!("n={name},r={nonce}");
    (format!("n,,{bare}"), bare)
}

/// SCRAM's `client-final-message` for `server_first`, after checking that the server's nonce
/// extends ours (a server that does not is not answering this exchange).
pub fn scram_client_final(
    mechanism: ScramMechanism,
    password: &str,
    bare: &str,
    nonce: &str,
    server_first: &[u8],
) -> Result<String, String> {
    let server_first = std::str::from_utf8(server_first)
        .map_err(|_| "a SCRAM server-first message that is not UTF-8".to_string())?;
    let extends = server_first
        .split(',')
        .any(|f| f.strip_prefix("r=").is_some_and(|r| r.starts_with(nonce)));
    if !extends {
        return Err("the broker's SCRAM nonce does not extend ours".into());
    }
    scram::client_final_for(mechanism, password.as_bytes(), bare, server_first)
}

/// Where one connection's exchange stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Exchange {
    /// SaslHandshake sent.
    Handshake,
    /// The first (PLAIN: the only) SaslAuthenticate sent. For SCRAM: the nonce and
    /// `client-first-message-bare`, which the final message needs.
    First { nonce: String, bare: String },
    /// SCRAM's final message sent.
    Final,
}

/// What to do after a SASL answer.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// Send this token in a SaslAuthenticate.
    Token(Vec<u8>),
    /// Authenticated: the connection is ready.
    Done,
    /// Close the connection: why.
    Fail(String),
}

impl Exchange {
    /// The broker accepted the mechanism: the first token.
    pub fn handshake_done(&mut self, login: &Login, prng: &mut Prng) -> Vec<u8> {
        assert_eq!(*self, Exchange::Handshake, "the handshake is answered once");
        match login {
            Login::Plain { user, password } => {
                *self = Exchange::First {
                    nonce: String::new(),
                    bare: String::new(),
                };
                plain_token(user, password)
            }
            Login::Scram { user, .. } => {
                let nonce = nonce(prng);
                let (first, bare) = scram_client_first(user, &nonce);
                *self = Exchange::First { nonce, bare };
                first.into_bytes()
            }
        }
    }

    /// A SaslAuthenticate answered without error, carrying the broker's token.
    pub fn authenticated(&mut self, login: &Login, token: &[u8]) -> Next {
        match (std::mem::replace(self, Exchange::Final), login) {
            (Exchange::First { .. }, Login::Plain { .. })
            | (Exchange::Final, Login::Scram { .. }) => Next::Done,
            (
                Exchange::First { nonce, bare },
                Login::Scram {
                    mechanism,
                    password,
                    ..
                },
            ) => match scram_client_final(*mechanism, password, &bare, &nonce, token) {
                Ok(last) => Next::Token(last.into_bytes()),
                Err(why) => Next::Fail(why),
            },
            (state, _) => Next::Fail(format!("a SaslAuthenticate answer in state {state:?}")),
        }
    }
}

/// A SCRAM client nonce: 24 letters and digits from the PRNG (printable, and free of the `,`
/// that separates SCRAM's attributes).
fn nonce(prng: &mut Prng) -> String {
    const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let s: String = (0..24)
        .map(|_| ALNUM[prng.below(ALNUM.len() as u64) as usize] as char)
        .collect();
    assert_eq!(s.len(), 24);
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use gregor_core::io::Request;
    use gregor_core::sasl::{Credentials, Mechanism, SaslSession, Step};
    use gregor_core::scram::ScramCredential;
    use kafka_protocol::messages::{
        RequestHeader, RequestKind, ResponseKind, SaslAuthenticateRequest, SaslHandshakeRequest,
    };
    use kafka_protocol::protocol::StrBytes;

    fn request(body: RequestKind, key: i16, version: i16) -> Request {
        Request {
            header: RequestHeader::default()
                .with_request_api_key(key)
                .with_request_api_version(version),
            body,
        }
    }

    /// Run the client's exchange against the core's broker-side session: the broker decides.
    fn login_against_broker(login: &Login, creds: &Credentials) -> Result<String, String> {
        let mut session = SaslSession::new(Mechanism::ALL.to_vec(), &[7u8; 24]);
        let mut prng = Prng::new(1);
        let h = SaslHandshakeRequest::default()
            .with_mechanism(StrBytes::from_static_str(login.mechanism()));
        match session.on_request(&request(RequestKind::SaslHandshake(h), 17, 1), creds) {
            Step::Respond(_) => {}
            other => return Err(format!("handshake: {other:?}")),
        }
        let mut ex = Exchange::Handshake;
        let mut token = ex.handshake_done(login, &mut prng);
        loop {
            let a = SaslAuthenticateRequest::default().with_auth_bytes(token.into());
            let reply = match session
                .on_request(&request(RequestKind::SaslAuthenticate(a), 36, 1), creds)
            {
                Step::Respond(ResponseKind::SaslAuthenticate(r)) => r.auth_bytes,
                Step::RespondAndClose(_, why) => return Err(why),
                other => return Err(format!("authenticate: {other:?}")),
            };
            match ex.authenticated(login, &reply) {
                Next::Token(t) => token = t,
                Next::Done => return Ok(session.principal().expect("authenticated").into()),
                Next::Fail(why) => return Err(why),
            }
        }
    }

    fn creds() -> Credentials {
        let mut c = Credentials::default();
        for m in ScramMechanism::ALL {
            c.upsert(
                "alice",
                ScramCredential::derive(m, b"alice-secret", b"salt-of-alice", 4096),
            );
        }
        c.set_plain(
            "bob",
            ScramCredential::derive(ScramMechanism::Sha256, b"bob-secret", b"salt-of-bob", 4096),
        );
        c
    }

    #[test]
    fn plain_and_scram_logins_are_accepted_by_the_brokers_session() {
        let creds = creds();
        let plain = Login::new("PLAIN", "bob", "bob-secret").unwrap();
        assert_eq!(login_against_broker(&plain, &creds), Ok("User:bob".into()));
        for m in ["SCRAM-SHA-256", "SCRAM-SHA-512"] {
            let scram = Login::new(m, "alice", "alice-secret").unwrap();
            assert_eq!(
                login_against_broker(&scram, &creds),
                Ok("User:alice".into()),
                "{m}"
            );
        }
    }

    #[test]
    fn a_wrong_password_is_refused_and_a_foreign_nonce_is_not_answered() {
        let creds = creds();
        for (m, user) in [("PLAIN", "bob"), ("SCRAM-SHA-512", "alice")] {
            let wrong = Login::new(m, user, "guess").unwrap();
            let why = login_against_broker(&wrong, &creds).unwrap_err();
            assert!(!why.contains("guess"), "no secret in {why:?}");
        }
        let (_, bare) = scram_client_first("alice", "ours");
        let theirs = b"r=someone-elses-nonce,s=c2FsdA==,i=4096";
        let e = scram_client_final(ScramMechanism::Sha256, "pw", &bare, "ours", theirs);
        assert!(e.unwrap_err().contains("does not extend ours"));
    }

    #[test]
    fn logins_are_checked_and_never_print_a_password() {
        assert!(Login::new("GSSAPI", "a", "b").is_err());
        assert!(Login::new("PLAIN", "", "b").unwrap().validate().is_err());
        let l = Login::new("SCRAM-SHA-256", "a=b,c", "hunter2").unwrap();
        assert!(!format!("{l:?}").contains("hunter2"));
        assert_eq!(scram_client_first("a=b,c", "N").1, "n=a=3Db=2Cc,r=N");
    }
}
