use super::*;
use kafka_protocol::messages::{
    ApiVersionsRequest, MetadataRequest, RequestHeader, SaslAuthenticateRequest,
    SaslHandshakeRequest,
};
use proptest::prelude::*;

const NONCE: &[u8] = b"0123456789abcdef0123";

fn creds() -> Credentials {
    let mut c = Credentials::default();
    for m in ScramMechanism::ALL {
        c.upsert(
            "alice",
            ScramCredential::derive(m, b"alice-secret", b"salt-of-alice", 4096),
        );
    }
    let plain = ScramCredential::derive(ScramMechanism::Sha256, b"alice-secret", b"pepper", 4096);
    c.set_plain("alice", plain);
    c
}

fn request(key: ApiKey, version: i16, body: RequestKind) -> Request {
    Request {
        header: RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version),
        body,
    }
}

fn handshake(mech: &str, version: i16) -> Request {
    request(
        ApiKey::SaslHandshake,
        version,
        RequestKind::SaslHandshake(
            SaslHandshakeRequest::default().with_mechanism(StrBytes::from_string(mech.into())),
        ),
    )
}

fn token(bytes: &[u8]) -> Request {
    request(
        ApiKey::SaslAuthenticate,
        2,
        RequestKind::SaslAuthenticate(
            SaslAuthenticateRequest::default().with_auth_bytes(Bytes::copy_from_slice(bytes)),
        ),
    )
}

fn session() -> SaslSession {
    SaslSession::new(Mechanism::ALL.to_vec(), NONCE)
}

/// The reply token of a successful SaslAuthenticate.
fn ok_token(step: Step) -> Vec<u8> {
    match step {
        Step::Respond(ResponseKind::SaslAuthenticate(r)) => {
            assert_eq!(r.error_code, 0, "{:?}", r.error_message);
            r.auth_bytes.to_vec()
        }
        other => panic!("expected a successful SaslAuthenticate answer, got {other:?}"),
    }
}

fn failure_code(step: Step) -> i16 {
    match step {
        Step::RespondAndClose(ResponseKind::SaslAuthenticate(r), _) => r.error_code,
        Step::RespondAndClose(ResponseKind::SaslHandshake(r), _) => r.error_code,
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[test]
fn plain_logs_in_with_the_right_password_only() {
    let c = creds();
    let mut s = session();
    assert!(matches!(
        s.on_request(&handshake("PLAIN", 1), &c),
        Step::Respond(_)
    ));
    ok_token(s.on_request(&token(b"\0alice\0alice-secret"), &c));
    assert_eq!(s.principal(), Some("User:alice"));
    let meta = request(
        ApiKey::Metadata,
        9,
        RequestKind::Metadata(MetadataRequest::default()),
    );
    assert!(matches!(s.on_request(&meta, &c), Step::Forward));

    let mut s = session();
    s.on_request(&handshake("PLAIN", 1), &c);
    let step = s.on_request(&token(b"\0alice\0guess"), &c);
    assert_eq!(failure_code(step), crate::error::SASL_AUTHENTICATION_FAILED);
    assert_eq!(s.principal(), None);
}

#[test]
fn scram_logs_in_with_both_hashes() {
    let c = creds();
    for m in ScramMechanism::ALL {
        let mut s = session();
        s.on_request(&handshake(m.name(), 1), &c);
        let first_bare = "n=alice,r=clientnonce";
        let server_first = String::from_utf8(ok_token(
            s.on_request(&token(format!("n,,{first_bare}").as_bytes()), &c),
        ))
        .unwrap();
        assert!(server_first.starts_with("r=clientnonce"));
        let last = scram::client_final_for(m, b"alice-secret", first_bare, &server_first).unwrap();
        let server_final = ok_token(s.on_request(&token(last.as_bytes()), &c));
        assert!(server_final.starts_with(b"v="));
        assert_eq!(s.principal(), Some("User:alice"));
    }
}

#[test]
fn out_of_order_and_unknown_mechanisms_are_refused() {
    let c = creds();
    // A token before the handshake.
    let mut s = session();
    assert_eq!(
        failure_code(s.on_request(&token(b"\0alice\0alice-secret"), &c)),
        crate::error::ILLEGAL_SASL_STATE
    );
    // Two handshakes.
    let mut s = session();
    s.on_request(&handshake("PLAIN", 1), &c);
    assert_eq!(
        failure_code(s.on_request(&handshake("PLAIN", 1), &c)),
        crate::error::ILLEGAL_SASL_STATE
    );
    // A mechanism not offered.
    let mut s = SaslSession::new(vec![Mechanism::Plain], NONCE);
    assert_eq!(
        failure_code(s.on_request(&handshake("SCRAM-SHA-512", 1), &c)),
        crate::error::UNSUPPORTED_SASL_MECHANISM
    );
    assert_eq!(
        failure_code(session().on_request(&handshake("GSSAPI", 1), &c)),
        crate::error::UNSUPPORTED_SASL_MECHANISM
    );
    // An oversized token.
    let mut s = session();
    s.on_request(&handshake("PLAIN", 1), &c);
    let huge = vec![b'a'; TOKEN_BYTES_MAX + 1];
    assert_eq!(
        failure_code(s.on_request(&token(&huge), &c)),
        crate::error::SASL_AUTHENTICATION_FAILED
    );
}

#[test]
fn only_the_sasl_apis_and_api_versions_pass_before_authentication() {
    let c = creds();
    let mut s = session();
    let versions = request(
        ApiKey::ApiVersions,
        3,
        RequestKind::ApiVersions(ApiVersionsRequest::default()),
    );
    assert!(matches!(s.on_request(&versions, &c), Step::Forward));
    let meta = request(
        ApiKey::Metadata,
        9,
        RequestKind::Metadata(MetadataRequest::default()),
    );
    assert!(matches!(s.on_request(&meta, &c), Step::Close(why) if why.contains("Metadata")));
    // A listener without SASL: everything passes, a handshake is an illegal state.
    let mut plain = SaslSession::not_required("User:ANONYMOUS".into());
    assert!(matches!(plain.on_request(&meta, &c), Step::Forward));
    assert_eq!(
        failure_code(plain.on_request(&handshake("PLAIN", 1), &c)),
        crate::error::ILLEGAL_SASL_STATE
    );
}

#[test]
fn handshake_v0_switches_to_raw_tokens() {
    let c = creds();
    let mut s = session();
    assert!(!s.expects_raw_token());
    s.on_request(&handshake("PLAIN", 0), &c);
    assert!(s.expects_raw_token());
    assert_eq!(s.on_raw_token(b"\0alice\0alice-secret", &c), Ok(Vec::new()));
    assert!(!s.expects_raw_token());
    assert_eq!(s.principal(), Some("User:alice"));
}

#[test]
fn a_failure_message_never_tells_a_wrong_password_from_an_unknown_user() {
    let c = creds();
    let mut messages = Vec::new();
    for t in [&b"\0alice\0nope"[..], b"\0mallory\0nope"] {
        let mut s = session();
        s.on_request(&handshake("PLAIN", 1), &c);
        match s.on_request(&token(t), &c) {
            Step::RespondAndClose(ResponseKind::SaslAuthenticate(r), why) => {
                assert!(
                    !why.contains("nope"),
                    "the log line carries no secret: {why}"
                );
                messages.push(r.error_message.unwrap().to_string());
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(messages[0], messages[1]);
}

#[test]
fn credentials_store_adds_and_removes() {
    let mut c = creds();
    assert!(c.check_password("alice", b"alice-secret"));
    assert!(c.remove("alice", ScramMechanism::Sha256));
    assert!(!c.remove("alice", ScramMechanism::Sha256));
    assert!(c.get("alice", ScramMechanism::Sha512).is_some());
    assert!(c.remove("alice", ScramMechanism::Sha512));
    assert_eq!(c.users().count(), 0);
    // PLAIN users are the broker's own (TOML), not the metadata log's SCRAM users.
    assert!(c.check_password("alice", b"alice-secret"));
    assert!(!c.check_password("alice", b"alice-secret2"));
    // A newer image's SCRAM users replace the old ones; the PLAIN users stay.
    let mut image = Credentials::default();
    image.upsert(
        "bob",
        ScramCredential::derive(ScramMechanism::Sha512, b"b", b"s", 4096),
    );
    assert!(c.replace_scram(&image));
    assert!(!c.replace_scram(&image), "no change the second time");
    assert!(c.get("bob", ScramMechanism::Sha512).is_some());
    assert!(c.check_password("alice", b"alice-secret"));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The parsers take any bytes a client may send without panicking.
    #[test]
    fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = parse_plain(&bytes);
        let _ = scram::parse_client_first(&bytes);
        let _ = scram::parse_client_final(&bytes);
    }

    /// Any session fed any sequence of tokens ends authenticated only through a right password.
    #[test]
    fn random_tokens_never_authenticate(
        mech in 0usize..3,
        tokens in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..80), 1..4),
    ) {
        let c = creds();
        let mut s = session();
        s.on_request(&handshake(Mechanism::ALL[mech].name(), 1), &c);
        for t in &tokens {
            let _ = s.on_request(&token(t), &c);
        }
        prop_assert_eq!(s.principal(), None);
    }

    /// A user name with SCRAM's escaped characters round-trips through the exchange.
    #[test]
    fn scram_user_names_round_trip(name in "[a-z,=]{1,12}") {
        let mut c = Credentials::default();
        c.upsert(&name, ScramCredential::derive(ScramMechanism::Sha256, b"pw", b"salt", 4096));
        let mut s = session();
        s.on_request(&handshake("SCRAM-SHA-256", 1), &c);
        let escaped = name.replace('=', "=3D").replace(',', "=2C");
        let bare = format!("n={escaped},r=nonce");
        let sf = String::from_utf8(ok_token(s.on_request(&token(format!("n,,{bare}").as_bytes()), &c))).unwrap();
        let last = scram::client_final_for(ScramMechanism::Sha256, b"pw", &bare, &sf).unwrap();
        ok_token(s.on_request(&token(last.as_bytes()), &c));
        let principal = format!("User:{name}");
        prop_assert_eq!(s.principal(), Some(principal.as_str()));
    }
}

fn plain_token(user: &str, password: &str) -> Request {
    token(format!("\0{user}\0{password}").as_bytes())
}

fn metadata() -> Request {
    request(
        ApiKey::Metadata,
        9,
        RequestKind::Metadata(MetadataRequest::default()),
    )
}

fn at_ms(ms: u64) -> Instant {
    Instant(1_000_000_000_000 + ms * 1_000_000)
}

/// The session lifetime a successful SaslAuthenticate answer carries (KIP-368).
fn lifetime_ms(step: Step) -> i64 {
    match step {
        Step::Respond(ResponseKind::SaslAuthenticate(r)) => {
            assert_eq!(r.error_code, 0, "{:?}", r.error_message);
            r.session_lifetime_ms
        }
        other => panic!("expected a successful SaslAuthenticate answer, got {other:?}"),
    }
}

#[test]
fn a_login_lasts_connections_max_reauth_ms_and_then_serves_nothing_but_a_new_login() {
    let c = creds();
    let mut s = session().with_reauth(2_000);
    assert!(matches!(
        s.on_request_at(&handshake("PLAIN", 1), &c, at_ms(0)),
        Step::Respond(_)
    ));
    let answer = s.on_request_at(&plain_token("alice", "alice-secret"), &c, at_ms(10));
    assert_eq!(
        lifetime_ms(answer),
        2_000,
        "the client is told the lifetime"
    );
    assert!(matches!(
        s.on_request_at(&metadata(), &c, at_ms(1_000)),
        Step::Forward
    ));
    assert!(!s.expired(at_ms(2_009)) && s.expired(at_ms(2_010)));
    match s.on_request_at(&metadata(), &c, at_ms(2_500)) {
        Step::Close(why) => assert!(why.contains("expired"), "{why}"),
        other => panic!("an expired login serves nothing: {other:?}"),
    }
}

#[test]
fn a_client_logs_in_again_on_its_connection_and_its_lifetime_starts_over() {
    let c = creds();
    for mech in ["PLAIN", "SCRAM-SHA-512"] {
        let mut s = session().with_reauth(2_000);
        let login = |s: &mut SaslSession, t: u64| -> i64 {
            assert!(matches!(
                s.on_request_at(&handshake(mech, 1), &c, at_ms(t)),
                Step::Respond(_)
            ));
            if mech == "PLAIN" {
                return lifetime_ms(s.on_request_at(
                    &plain_token("alice", "alice-secret"),
                    &c,
                    at_ms(t),
                ));
            }
            let bare = "n=alice,r=clientnonce";
            let sf =
                ok_token(s.on_request_at(&token(format!("n,,{bare}").as_bytes()), &c, at_ms(t)));
            let sf = String::from_utf8(sf).unwrap();
            let m = ScramMechanism::Sha512;
            let last = scram::client_final_for(m, b"alice-secret", bare, &sf).unwrap();
            lifetime_ms(s.on_request_at(&token(last.as_bytes()), &c, at_ms(t)))
        };
        assert_eq!(login(&mut s, 0), 2_000);
        // Re-authentication at 1.5 s, on the same connection, between other requests.
        assert!(matches!(
            s.on_request_at(&metadata(), &c, at_ms(1_400)),
            Step::Forward
        ));
        assert_eq!(login(&mut s, 1_500), 2_000, "{mech}");
        assert_eq!(s.principal(), Some("User:alice"));
        assert!(matches!(
            s.on_request_at(&metadata(), &c, at_ms(3_000)),
            Step::Forward
        ));
        assert!(matches!(
            s.on_request_at(&metadata(), &c, at_ms(3_600)),
            Step::Close(_)
        ));
    }
}

#[test]
fn a_reauthentication_keeps_its_mechanism_and_principal_and_needs_the_setting() {
    let mut c = creds();
    let bob = ScramCredential::derive(ScramMechanism::Sha256, b"bob-secret", b"pepper", 4096);
    c.set_plain("bob", bob);
    let logged_in = |reauth_ms: u64| {
        let mut s = session().with_reauth(reauth_ms);
        assert!(matches!(
            s.on_request(&handshake("PLAIN", 1), &c),
            Step::Respond(_)
        ));
        ok_token(s.on_request(&plain_token("alice", "alice-secret"), &c));
        s
    };
    // Another mechanism: refused, closed.
    let mut s = logged_in(2_000);
    let step = s.on_request(&handshake("SCRAM-SHA-256", 1), &c);
    assert_eq!(
        failure_code(step),
        ErrorCode::UNSUPPORTED_SASL_MECHANISM.wire()
    );
    // Another user: refused, closed; the connection stays alice's until it closes.
    let mut s = logged_in(2_000);
    assert!(matches!(
        s.on_request(&handshake("PLAIN", 1), &c),
        Step::Respond(_)
    ));
    let step = s.on_request(&plain_token("bob", "bob-secret"), &c);
    assert_eq!(
        failure_code(step),
        ErrorCode::SASL_AUTHENTICATION_FAILED.wire()
    );
    assert_eq!(s.principal(), None);
    // Without connections.max.reauth.ms a second handshake is out of order, as before.
    let mut s = logged_in(0);
    let step = s.on_request(&handshake("PLAIN", 1), &c);
    assert_eq!(failure_code(step), ErrorCode::ILLEGAL_SASL_STATE.wire());
}
