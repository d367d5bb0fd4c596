//! The SASL and SCRAM parsers, and a whole SASL session, fed what an unauthenticated client
//! may send (docs/security.md, KIP-43/KIP-152, RFC 5802): a SCRAM client-first or client-final
//! message, a PLAIN token, or a sequence of tokens after a SaslHandshake v1 (tokens in
//! SaslAuthenticate) or v0 (raw tokens, no request header). Nothing panics, and no token
//! sequence logs in without the password.
#![no_main]

#[global_allocator]
static ALLOC: gregor_fuzz::alloc::GuardedAlloc = gregor_fuzz::alloc::GuardedAlloc;
use bytes::Bytes;
use gregor_core::io::Request;
use gregor_core::kafka_protocol::messages::{
    ApiKey, RequestHeader, RequestKind, SaslAuthenticateRequest, SaslHandshakeRequest,
};
use gregor_core::kafka_protocol::protocol::StrBytes;
use gregor_core::sasl::scram::{self, ScramCredential, ScramMechanism};
use gregor_core::sasl::{parse_plain, Credentials, Mechanism, SaslSession};
use libfuzzer_sys::fuzz_target;

fn request(key: ApiKey, version: i16, body: RequestKind) -> Request {
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version);
    Request { header, body }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    // The parsers alone.
    let _ = scram::parse_client_first(rest);
    let _ = scram::parse_client_final(rest);
    if let Ok((user, password)) = parse_plain(rest) {
        assert!(!user.is_empty() && !password.is_empty());
    }
    // A session: one user with every credential, a mechanism and a handshake version from the
    // first byte, then the rest split at 0xFF bytes into tokens.
    let mut creds = Credentials::default();
    for m in ScramMechanism::ALL {
        creds.upsert("alice", ScramCredential::derive(m, b"pw-alice", b"salt", 4096));
    }
    creds.set_plain(
        "alice",
        ScramCredential::derive(ScramMechanism::Sha256, b"pw-alice", b"pepper", 4096),
    );
    let mechanism = Mechanism::ALL[(mode % 3) as usize];
    let version = i16::from(mode & 4 != 0);
    let mut s = SaslSession::new(Mechanism::ALL.to_vec(), &[mode; 16]);
    let hs = SaslHandshakeRequest::default()
        .with_mechanism(StrBytes::from_static_str(mechanism.name()));
    let _ = s.on_request(
        &request(ApiKey::SaslHandshake, version, RequestKind::SaslHandshake(hs)),
        &creds,
    );
    for token in rest.split(|b| *b == 0xFF).take(4) {
        if s.expects_raw_token() {
            let _ = s.on_raw_token(token, &creds);
        } else {
            let a = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::copy_from_slice(token));
            let _ = s.on_request(
                &request(ApiKey::SaslAuthenticate, 1, RequestKind::SaslAuthenticate(a)),
                &creds,
            );
        }
    }
    if s.is_authenticated() {
        // Only PLAIN with the right password can get here from bytes alone (a SCRAM proof
        // needs the password's keys): the fuzzer found the password.
        assert!(rest.windows(8).any(|w| w == b"pw-alice"), "logged in without the password");
    }
});
