//! SCRAM users through a KRaft broker (KIP-554): DescribeUserScramCredentials (key 50) is
//! answered from the broker's image, as Kafka's brokers answer it from their metadata cache;
//! AlterUserScramCredentials (key 51) is checked here ([`crate::cluster::scram::alterations`])
//! and forwarded to the active controller one user at a time. The response waits for every
//! user's answer, or the default admin timeout.
//!
//! Who may alter: Kafka requires `Alter` on the cluster resource. Until gregor has ACLs, any
//! connection that got this far (authenticated on a SASL listener, or on a listener without
//! SASL) may; docs/security.md says so.

use super::*;
use crate::cluster::scram::alterations;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};

impl Broker {
    /// DescribeUserScramCredentials v0: the named users (every user with a credential when
    /// none is named), each with its mechanisms and iteration counts; never a key or salt.
    pub(in crate::broker) fn kraft_describe_scram(
        &mut self,
        to: ReplyTo,
        r: DescribeUserScramCredentialsRequest,
    ) {
        let empty = crate::scram::Credentials::default();
        let creds = self.kraft_image().map_or(&empty, |i| i.scram());
        let named: Vec<String> = (r.users.iter().flatten())
            .map(|u| u.name.to_string())
            .collect();
        let users: Vec<String> = if named.is_empty() {
            creds.users().map(|(u, _)| u.to_string()).collect()
        } else {
            named.clone()
        };
        let mut results = Vec::new();
        for user in &users {
            let mut res = DescribeUserScramCredentialsResult::default().with_user(sb(user.clone()));
            let list: Vec<_> = creds
                .users()
                .filter(|(u, _)| u == user)
                .flat_map(|(_, list)| list)
                .collect();
            if named.iter().filter(|n| *n == user).count() > 1 {
                res.error_code = ErrorCode::DUPLICATE_RESOURCE.into();
                res.error_message = Some(sb(format!("user {user:?} is named twice")));
            } else if list.is_empty() {
                res.error_code = ErrorCode::RESOURCE_NOT_FOUND.into();
                res.error_message = Some(sb(format!("user {user:?} has no SCRAM credential")));
            }
            res.credential_infos = list
                .iter()
                .map(|c| {
                    CredentialInfo::default()
                        .with_mechanism(c.mechanism.wire())
                        .with_iterations(c.iterations as i32)
                })
                .collect();
            assert!(
                res.error_code != 0 || !res.credential_infos.is_empty(),
                "found users have one"
            );
            results.push(res);
        }
        assert_eq!(results.len(), users.len(), "every user answered");
        let resp = DescribeUserScramCredentialsResponse::default().with_results(results);
        self.respond(to, Some(ResponseKind::DescribeUserScramCredentials(resp)));
    }

    /// AlterUserScramCredentials v0: refusals answered here, the rest forwarded.
    pub(in crate::broker) fn kraft_alter_scram(
        &mut self,
        to: ReplyTo,
        r: AlterUserScramCredentialsRequest,
    ) {
        let mut response = AlterUserScramCredentialsResponse::default();
        let mut asks = Vec::new();
        for (user, change) in alterations(&r) {
            let mut res = AlterUserScramCredentialsResult::default().with_user(sb(user.clone()));
            match change {
                Ok(change) => {
                    let request = ControllerRequest::AlterScram {
                        user: user.clone(),
                        change,
                    };
                    asks.push((response.results.len(), request));
                }
                Err(e) => {
                    self.log(
                        LogLevel::Info,
                        format!(
                            "AlterUserScramCredentials for {user:?} refused: {}",
                            e.message()
                        ),
                    );
                    res.error_code = e.code();
                    res.error_message = Some(sb(e.message()));
                }
            }
            response.results.push(res);
        }
        assert!(asks.len() <= response.results.len());
        assert!(
            asks.iter()
                .all(|(slot, _)| response.results[*slot].error_code == 0),
            "only users that passed the checks are forwarded"
        );
        assert!(
            asks.windows(2).all(|w| w[0].0 < w[1].0),
            "one slot per user, in order"
        );
        let response = ResponseKind::AlterUserScramCredentials(response);
        self.forward_admin(to, response, asks, 0);
    }
}

use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;

/// Set user `slot`'s answer in an AlterUserScramCredentials response.
pub(super) fn set_scram_error(
    r: &mut AlterUserScramCredentialsResponse,
    slot: usize,
    code: i16,
    message: Option<StrBytes>,
) {
    assert!(slot < r.results.len(), "a slot of this response");
    let u = &mut r.results[slot];
    u.error_code = code;
    u.error_message = message;
}
