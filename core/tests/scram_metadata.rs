//! SCRAM users as cluster metadata (KIP-554): the records replay into the image and survive a
//! snapshot, a malformed or dangling record is refused, and the SASL authenticator logs a user
//! in with the credentials of the image it applied (and no longer once a removal is applied).

use bytes::Bytes;
use gregor_core::cluster::records::{decode_snapshot, encode_snapshot};
use gregor_core::cluster::scram::{decide, record_of, ScramChange};
use gregor_core::cluster::{MetadataImage, MetadataRecord, ReplayError};
use gregor_core::io::Request;
use gregor_core::kafka_protocol::messages::{
    ApiKey, RequestHeader, RequestKind, ResponseKind, SaslAuthenticateRequest, SaslHandshakeRequest,
};
use gregor_core::kafka_protocol::protocol::StrBytes;
use gregor_core::sasl::scram::{client_final_for, ScramCredential, ScramMechanism};
use gregor_core::sasl::{Credentials, SaslSession, Step};

fn request(key: ApiKey, body: RequestKind) -> Request {
    Request {
        header: RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(1),
        body,
    }
}

/// A SCRAM-SHA-512 login of `user` with `password` against `creds`: the principal, if any.
fn scram_login(creds: &Credentials, user: &str, password: &[u8]) -> Option<String> {
    let mut s = SaslSession::new(
        vec![gregor_core::sasl::Mechanism::Scram(ScramMechanism::Sha512)],
        &[7u8; 24],
    );
    let hs =
        SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("SCRAM-SHA-512"));
    let step = s.on_request(
        &request(ApiKey::SaslHandshake, RequestKind::SaslHandshake(hs)),
        creds,
    );
    assert!(matches!(step, Step::Respond(_)), "{step:?}");
    let token = |t: &[u8]| {
        let a = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::copy_from_slice(t));
        request(ApiKey::SaslAuthenticate, RequestKind::SaslAuthenticate(a))
    };
    let bare = format!("n={user},r=clientnonce");
    let server_first = match s.on_request(&token(format!("n,,{bare}").as_bytes()), creds) {
        Step::Respond(ResponseKind::SaslAuthenticate(r)) => r.auth_bytes,
        _ => return None,
    };
    let sf = String::from_utf8(server_first.to_vec()).unwrap();
    let last = client_final_for(ScramMechanism::Sha512, password, &bare, &sf).unwrap();
    let _ = s.on_request(&token(last.as_bytes()), creds);
    s.principal().map(String::from)
}

fn upsert(user: &str, password: &[u8]) -> MetadataRecord {
    let m = ScramMechanism::Sha512;
    let change = ScramChange::Upsert {
        mechanism: m,
        iterations: 4096,
        salt: b"NaCl".to_vec(),
        salted_password: m.salted_password(password, b"NaCl", 4096),
    };
    decide(&Credentials::default(), user, &change).unwrap()
}

#[test]
fn the_authenticator_logs_in_with_the_applied_images_users() {
    let mut image = MetadataImage::new();
    image.replay(0, &upsert("carol", b"carol-pw")).unwrap();
    // The broker's store: its PLAIN users, and the SCRAM users of the image it applied.
    let mut store = Credentials::default();
    assert_eq!(
        scram_login(&store, "carol", b"carol-pw"),
        None,
        "not applied yet"
    );
    assert!(store.replace_scram(image.scram()));
    assert_eq!(
        scram_login(&store, "carol", b"carol-pw").as_deref(),
        Some("User:carol")
    );
    assert_eq!(scram_login(&store, "carol", b"wrong"), None);
    // Deleting the credential: the next login fails once the removal is applied.
    let del = ScramChange::Delete {
        mechanism: ScramMechanism::Sha512,
    };
    let removal = decide(image.scram(), "carol", &del).unwrap();
    image.replay(1, &removal).unwrap();
    assert!(store.replace_scram(image.scram()));
    assert_eq!(scram_login(&store, "carol", b"carol-pw"), None);
}

#[test]
fn scram_records_survive_a_snapshot_and_bad_ones_are_refused() {
    let mut image = MetadataImage::new();
    image.replay(0, &upsert("dave", b"pw")).unwrap();
    let cred = ScramCredential::derive(ScramMechanism::Sha256, b"pw2", b"salt", 8192);
    image.replay(1, &record_of("dave", &cred)).unwrap();
    let records = image.to_records();
    let bytes = encode_snapshot(&records);
    let loaded = MetadataImage::load_snapshot(2, &decode_snapshot(&bytes).unwrap()).unwrap();
    assert_eq!(loaded.scram(), image.scram());
    let got = loaded.scram().get("dave", ScramMechanism::Sha256).unwrap();
    assert_eq!(got.iterations, 8192);
    assert!(got.matches_password(b"pw2"));
    // A credential with a key of the wrong length, or a removal of nothing: the image is
    // unchanged and says why.
    let mut bad = record_of("erin", &cred);
    if let MetadataRecord::UserScramCredential { stored_key, .. } = &mut bad {
        stored_key.pop();
    }
    let before = image.clone();
    assert!(matches!(
        image.replay(2, &bad),
        Err(ReplayError::BadScramCredential(_))
    ));
    let dangling = MetadataRecord::RemoveUserScramCredential {
        name: "erin".into(),
        mechanism: 2,
    };
    assert!(image.replay(2, &dangling).is_err());
    assert_eq!(image, before);
}
