//! AlterUserScramCredentials (API 51, KIP-554) on the controller listener: a broker forwards a
//! client's request one user at a time in Kafka's own encoding; each user becomes one
//! [`Request::AlterScram`], checked by [`crate::cluster::scram::alterations`] (a refused user
//! never reaches the controller). Version 0, the only one.

use super::*;
use crate::cluster::scram::{alterations, ScramChange};
use alter_user_scram_credentials_request::{ScramCredentialDeletion, ScramCredentialUpsertion};
use alter_user_scram_credentials_response::AlterUserScramCredentialsResult;

/// One item per user, in the order [`alterations`] gives; the user rides in [`Item::topic`].
pub(super) fn alter_scram_items(r: &AlterUserScramCredentialsRequest) -> Vec<Item> {
    let items: Vec<Item> = alterations(r)
        .into_iter()
        .map(|(user, change)| Item {
            topic: Some(user.clone()),
            partitions: -1,
            replication_factor: -1,
            request: change
                .map(|change| Request::AlterScram { user, change })
                .map_err(Refusal::from),
        })
        .collect();
    assert!(items.len() <= r.deletions.len() + r.upsertions.len());
    items
}

/// The response: each user's error code and message, in request order.
pub(super) fn encode_alter_scram_response(
    items: &[Item],
    answers: &[Answer],
    version: i16,
    correlation_id: i32,
) -> Result<Bytes, ControllerWireError> {
    let results: Vec<AlterUserScramCredentialsResult> = items
        .iter()
        .zip(answers)
        .map(|(i, a)| {
            if let Ok(r) = a {
                assert_eq!(*r, Reply::AlterScram, "AlterUserScramCredentials answered");
            }
            let (code, message) = code_of(a);
            AlterUserScramCredentialsResult::default()
                .with_user(sb(i.topic.as_deref().unwrap_or("")))
                .with_error_code(code)
                .with_error_message(message)
        })
        .collect();
    assert_eq!(results.len(), items.len(), "one result per user");
    let body = AlterUserScramCredentialsResponse::default().with_results(results);
    frame(
        ApiKey::AlterUserScramCredentials,
        version,
        correlation_id,
        &body,
    )
}

/// The request a broker sends for one user's change.
pub(super) fn alter_scram_request(
    user: &str,
    change: &ScramChange,
) -> AlterUserScramCredentialsRequest {
    let r = AlterUserScramCredentialsRequest::default();
    match change {
        ScramChange::Delete { mechanism } => {
            r.with_deletions(vec![ScramCredentialDeletion::default()
                .with_name(sb(user))
                .with_mechanism(mechanism.wire())])
        }
        ScramChange::Upsert {
            mechanism,
            iterations,
            salt,
            salted_password,
        } => r.with_upsertions(vec![ScramCredentialUpsertion::default()
            .with_name(sb(user))
            .with_mechanism(mechanism.wire())
            .with_iterations(*iterations as i32)
            .with_salt(Bytes::from(salt.clone()))
            .with_salted_password(Bytes::from(salted_password.clone()))]),
    }
}

/// The answer in a response to [`alter_scram_request`] (one user).
pub(super) fn decode_alter_scram_answer(
    r: AlterUserScramCredentialsResponse,
) -> Result<Answer, ControllerWireError> {
    let mut results = r.results.into_iter();
    let (Some(u), None) = (results.next(), results.next()) else {
        return Err(malformed(
            ApiKey::AlterUserScramCredentials,
            "not one result for one user",
        ));
    };
    Ok(if u.error_code == 0 {
        Ok(Reply::AlterScram)
    } else {
        Err(Refusal {
            code: u.error_code,
            message: u.error_message.map(|m| m.to_string()).unwrap_or_default(),
        })
    })
}
