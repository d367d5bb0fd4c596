//! SCRAM users as cluster metadata (KIP-554): the checks on an AlterUserScramCredentials
//! request, the active controller's decision, and how the records replay into the store every
//! broker's authenticator reads.
//!
//! A SCRAM credential is cluster metadata in KRaft: the active controller writes a
//! `UserScramCredentialRecord` (salt, iterations, StoredKey, ServerKey; never the password) and
//! every broker replays it into its [`MetadataImage`](super::MetadataImage), so a user added
//! through one broker can log into any other as soon as that broker has applied the record.
//!
//! A client never sends the password either: an upsertion carries the salt it drew and
//! `SaltedPassword = PBKDF2(password, salt, iterations)` (RFC 5802's `Hi`), and the controller
//! derives the two keys from it (Kafka's `ScramControlManager`). The checks, each with Kafka's
//! error code (`ControllerApis`/`ScramControlManager`):
//! * a user named more than once in one request (in upsertions or deletions or both):
//!   DUPLICATE_RESOURCE for that user;
//! * an empty user name, fewer than 4096 or more than 16384 iterations, an empty salt or a
//!   salted password that is not one hash long: UNACCEPTABLE_CREDENTIAL;
//! * a mechanism number other than 1 (SCRAM-SHA-256) or 2 (SCRAM-SHA-512):
//!   UNSUPPORTED_SASL_MECHANISM;
//! * deleting a credential the user does not have: RESOURCE_NOT_FOUND (decided on the image).

use super::error::ControllerError;
use super::records::MetadataRecord;
use crate::scram::Credentials;
use crate::scram::{ScramCredential, ScramMechanism, ITERATIONS_MAX, ITERATIONS_MIN};
use kafka_protocol::messages::AlterUserScramCredentialsRequest;
use std::collections::BTreeMap;

/// One user's change in an AlterUserScramCredentials request, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScramChange {
    /// Add or replace the user's credential for `mechanism`.
    Upsert {
        mechanism: ScramMechanism,
        iterations: u32,
        salt: Vec<u8>,
        salted_password: Vec<u8>,
    },
    /// Remove the user's credential for `mechanism`.
    Delete { mechanism: ScramMechanism },
}

impl ScramChange {
    pub fn mechanism(&self) -> ScramMechanism {
        match self {
            ScramChange::Upsert { mechanism, .. } | ScramChange::Delete { mechanism } => *mechanism,
        }
    }
}

/// A user name and its checked change, or why it is refused.
pub type Alteration = (String, Result<ScramChange, ControllerError>);

/// The request's users, each once, in the order first named (deletions, then upsertions), with
/// the change or why it is refused. A user named twice gets DUPLICATE_RESOURCE, once.
pub fn alterations(r: &AlterUserScramCredentialsRequest) -> Vec<Alteration> {
    let mut named: BTreeMap<String, usize> = BTreeMap::new();
    let all_names = (r.deletions.iter().map(|d| d.name.as_str()))
        .chain(r.upsertions.iter().map(|u| u.name.as_str()));
    for n in all_names {
        *named.entry(n.to_string()).or_default() += 1;
    }
    let mut out: Vec<Alteration> = Vec::new();
    let mut push = |name: &str, change: Result<ScramChange, ControllerError>| {
        if out.iter().any(|(n, _)| n == name) {
            return;
        }
        let change = if named[name] > 1 {
            Err(ControllerError::DuplicateResource(format!(
                "user {name:?} is altered more than once in one request"
            )))
        } else {
            change
        };
        out.push((name.to_string(), change));
    };
    for d in &r.deletions {
        let change = checked_name(&d.name).and_then(|()| {
            let mechanism = mechanism_of(d.mechanism)?;
            Ok(ScramChange::Delete { mechanism })
        });
        push(d.name.as_str(), change);
    }
    for u in &r.upsertions {
        let change = checked_name(&u.name).and_then(|()| {
            let mechanism = mechanism_of(u.mechanism)?;
            check_upsertion(mechanism, u.iterations, &u.salt, &u.salted_password)?;
            Ok(ScramChange::Upsert {
                mechanism,
                iterations: u.iterations as u32,
                salt: u.salt.to_vec(),
                salted_password: u.salted_password.to_vec(),
            })
        });
        push(u.name.as_str(), change);
    }
    assert_eq!(out.len(), named.len(), "one alteration per user named");
    out
}

fn checked_name(name: &str) -> Result<(), ControllerError> {
    if name.is_empty() {
        return Err(ControllerError::UnacceptableCredential(
            "a user name must not be empty".into(),
        ));
    }
    Ok(())
}

fn mechanism_of(wire: i8) -> Result<ScramMechanism, ControllerError> {
    ScramMechanism::from_wire(wire).ok_or_else(|| {
        ControllerError::UnsupportedSaslMechanism(format!(
            "mechanism {wire} is neither SCRAM-SHA-256 (1) nor SCRAM-SHA-512 (2)"
        ))
    })
}

/// An upsertion's shape: iterations in Kafka's range, a salt, a salted password of one hash.
fn check_upsertion(
    mechanism: ScramMechanism,
    iterations: i32,
    salt: &[u8],
    salted_password: &[u8],
) -> Result<(), ControllerError> {
    let bad = |why: String| Err(ControllerError::UnacceptableCredential(why));
    if iterations < ITERATIONS_MIN as i32 || iterations > ITERATIONS_MAX as i32 {
        return bad(format!(
            "{iterations} iterations; {} needs {ITERATIONS_MIN} to {ITERATIONS_MAX}",
            mechanism.name()
        ));
    }
    if salt.is_empty() {
        return bad("the salt is empty".into());
    }
    if salted_password.len() != mechanism.hash_len() {
        return bad(format!(
            "a salted password of {} bytes; {} makes {}",
            salted_password.len(),
            mechanism.name(),
            mechanism.hash_len()
        ));
    }
    Ok(())
}

/// The active controller's decision on one user's checked change, against the credentials of
/// its working image: the record to write.
pub fn decide(
    creds: &Credentials,
    user: &str,
    change: &ScramChange,
) -> Result<MetadataRecord, ControllerError> {
    assert!(!user.is_empty(), "names are checked before deciding");
    let record = match change {
        ScramChange::Delete { mechanism } => {
            if creds.get(user, *mechanism).is_none() {
                return Err(ControllerError::ResourceNotFound(format!(
                    "user {user:?} has no {} credential to delete",
                    mechanism.name()
                )));
            }
            MetadataRecord::RemoveUserScramCredential {
                name: user.to_string(),
                mechanism: mechanism.wire(),
            }
        }
        ScramChange::Upsert {
            mechanism,
            iterations,
            salt,
            salted_password,
        } => {
            check_upsertion(*mechanism, *iterations as i32, salt, salted_password)?;
            let cred = ScramCredential::from_salted_password(
                *mechanism,
                salt,
                salted_password,
                *iterations,
            );
            assert_eq!(
                cred.stored_key.len(),
                mechanism.hash_len(),
                "one hash per key"
            );
            assert_eq!(
                cred.server_key.len(),
                mechanism.hash_len(),
                "one hash per key"
            );
            record_of(user, &cred)
        }
    };
    assert_eq!(
        record.api_key() == 22,
        matches!(change, ScramChange::Delete { .. })
    );
    Ok(record)
}

/// The record that stores `cred` for `user`.
pub fn record_of(user: &str, cred: &ScramCredential) -> MetadataRecord {
    assert!(cred.is_valid() && !user.is_empty());
    assert!(
        cred.iterations <= i32::MAX as u32,
        "iterations fit the record's INT32"
    );
    MetadataRecord::UserScramCredential {
        name: user.to_string(),
        mechanism: cred.mechanism.wire(),
        salt: cred.salt.clone(),
        stored_key: cred.stored_key.clone(),
        server_key: cred.server_key.clone(),
        iterations: cred.iterations as i32,
    }
}

/// Every credential as its record: the SCRAM part of a metadata snapshot.
pub fn records_of(creds: &Credentials) -> Vec<MetadataRecord> {
    let out: Vec<MetadataRecord> = creds
        .users()
        .flat_map(|(user, list)| list.into_iter().map(move |c| record_of(user, c)))
        .collect();
    assert!(
        creds.users().count() <= out.len(),
        "a user has a credential"
    );
    out
}

/// Replay a SCRAM record into `creds`; `Ok(false)` for a record of another kind. A record that
/// does not make a well-formed credential, or removes one that does not exist, is an error
/// (the log is input: never a panic).
pub fn replay(creds: &mut Credentials, record: &MetadataRecord) -> Result<bool, String> {
    match record {
        MetadataRecord::UserScramCredential {
            name,
            mechanism,
            salt,
            stored_key,
            server_key,
            iterations,
        } => {
            let mechanism = ScramMechanism::from_wire(*mechanism)
                .ok_or_else(|| format!("user {name:?}: mechanism {mechanism} unknown"))?;
            let cred = ScramCredential {
                mechanism,
                salt: salt.clone(),
                iterations: u32::try_from(*iterations).unwrap_or(0),
                stored_key: stored_key.clone(),
                server_key: server_key.clone(),
            };
            if name.is_empty() || !cred.is_valid() {
                return Err(format!(
                    "user {name:?}: a malformed {} credential",
                    mechanism.name()
                ));
            }
            creds.upsert(name, cred);
            assert!(creds.get(name, mechanism).is_some());
            Ok(true)
        }
        MetadataRecord::RemoveUserScramCredential { name, mechanism } => {
            let removed =
                ScramMechanism::from_wire(*mechanism).is_some_and(|m| creds.remove(name, m));
            if !removed {
                return Err(format!(
                    "user {name:?} has no credential {mechanism} to remove"
                ));
            }
            let gone = ScramMechanism::from_wire(*mechanism).expect("known: it was removed");
            assert!(creds.get(name, gone).is_none(), "removed means absent");
            Ok(true)
        }
        _ => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::alter_user_scram_credentials_request::{
        ScramCredentialDeletion, ScramCredentialUpsertion,
    };
    use kafka_protocol::protocol::StrBytes;

    fn upsertion(name: &str, mechanism: i8, iterations: i32) -> ScramCredentialUpsertion {
        let m = ScramMechanism::from_wire(mechanism).unwrap_or(ScramMechanism::Sha256);
        ScramCredentialUpsertion::default()
            .with_name(StrBytes::from_string(name.into()))
            .with_mechanism(mechanism)
            .with_iterations(iterations)
            .with_salt(b"salt".to_vec().into())
            .with_salted_password(vec![7; m.hash_len()].into())
    }

    #[test]
    fn each_bad_alteration_gets_kafkas_code() {
        let r = AlterUserScramCredentialsRequest::default()
            .with_deletions(vec![
                ScramCredentialDeletion::default()
                    .with_name(StrBytes::from_static_str("twice"))
                    .with_mechanism(1),
                ScramCredentialDeletion::default()
                    .with_name(StrBytes::from_static_str("bob"))
                    .with_mechanism(2),
            ])
            .with_upsertions(vec![
                upsertion("alice", 2, 8192),
                upsertion("twice", 2, 8192),
                upsertion("few", 2, 4095),
                upsertion("", 1, 4096),
                upsertion("md5", 9, 4096),
            ]);
        let out = alterations(&r);
        let codes: Vec<(&str, i16)> = out
            .iter()
            .map(|(n, c)| (n.as_str(), c.as_ref().map_or_else(|e| e.code(), |_| 0)))
            .collect();
        assert_eq!(
            codes,
            [
                ("twice", 92),
                ("bob", 0),
                ("alice", 0),
                ("few", 93),
                ("", 93),
                ("md5", 33)
            ]
        );
    }

    #[test]
    fn decisions_replay_into_the_store_and_a_missing_deletion_is_not_found() {
        let mut creds = Credentials::default();
        let salted = ScramMechanism::Sha512.salted_password(b"pw", b"salt", 4096);
        let up = ScramChange::Upsert {
            mechanism: ScramMechanism::Sha512,
            iterations: 4096,
            salt: b"salt".to_vec(),
            salted_password: salted,
        };
        let record = decide(&creds, "alice", &up).unwrap();
        assert_eq!(replay(&mut creds, &record), Ok(true));
        let cred = creds.get("alice", ScramMechanism::Sha512).unwrap();
        assert!(cred.matches_password(b"pw"), "the keys are the password's");
        assert_eq!(records_of(&creds), [record]);
        let del256 = ScramChange::Delete {
            mechanism: ScramMechanism::Sha256,
        };
        assert_eq!(decide(&creds, "alice", &del256).unwrap_err().code(), 91);
        let del = ScramChange::Delete {
            mechanism: ScramMechanism::Sha512,
        };
        let record = decide(&creds, "alice", &del).unwrap();
        assert_eq!(replay(&mut creds, &record), Ok(true));
        assert_eq!(creds.users().count(), 0);
        assert!(
            replay(&mut creds, &record).is_err(),
            "removing twice is corrupt"
        );
    }
}
