//! The ACL APIs (KIP-11): DescribeAcls (29) answered from the ACLs of the applied metadata
//! image; CreateAcls (30) and DeleteAcls (31) forwarded to the active controller, one
//! controller request per creation or filter, which writes the AccessControlEntry and
//! RemoveAccessControlEntry records. Kafka's errors: SECURITY_DISABLED when the broker has no
//! authorizer, INVALID_REQUEST for a creation or filter whose codes name nothing (an UNKNOWN
//! resource type, operation ANY in a creation, a principal that is not `Type:name`).

use super::*;
use crate::acl::wire as acl_wire;
use crate::cluster::{ControllerError, Reply, Request as ControllerRequest};

const SECURITY_DISABLED: i16 = 54;
const INVALID_REQUEST: i16 = 42;

impl Broker {
    /// Why the ACL APIs are off here, if they are.
    fn acls_disabled(&self) -> Option<&'static str> {
        if self.config.authorizer.is_none() {
            Some("no authorizer is configured (authorizer = \"standard\")")
        } else if !self.config.kraft {
            Some("ACLs live in the metadata log: this broker has none (not in KRaft mode)")
        } else {
            None
        }
    }

    pub(in crate::broker) fn describe_acls(&mut self, to: ReplyTo, r: DescribeAclsRequest) {
        let mut resp = DescribeAclsResponse::default();
        if let Some(why) = self.acls_disabled() {
            resp.error_code = SECURITY_DISABLED;
            resp.error_message = Some(sb(why));
        } else {
            match acl_wire::filter_of_describe(&r) {
                Err(why) => {
                    resp.error_code = INVALID_REQUEST;
                    resp.error_message = Some(sb(why));
                }
                Ok(filter) => {
                    let acls = self.acls();
                    let found: Vec<&crate::acl::AclBinding> =
                        acls.matching(&filter).map(|(_, b)| b).collect();
                    resp.resources = acl_wire::describe_resources(found.iter().copied());
                    assert!(found.iter().all(|b| filter.matches(b)));
                }
            }
        }
        self.respond(to, Some(ResponseKind::DescribeAcls(resp)));
    }

    pub(in crate::broker) fn create_acls(&mut self, to: ReplyTo, r: CreateAclsRequest) {
        let disabled = self.acls_disabled();
        let mut asks = Vec::new();
        let mut results = Vec::with_capacity(r.creations.len());
        for (slot, c) in r.creations.iter().enumerate() {
            let mut res = create_acls_response::AclCreationResult::default();
            match (disabled, acl_wire::binding_of_creation(c)) {
                (Some(why), _) => {
                    res.error_code = SECURITY_DISABLED;
                    res.error_message = Some(sb(why));
                }
                (None, Err(why)) => {
                    res.error_code = INVALID_REQUEST;
                    res.error_message = Some(sb(why));
                }
                (None, Ok(binding)) => {
                    self.log(LogLevel::Info, format!("CreateAcls: {binding}"));
                    asks.push((slot, ControllerRequest::CreateAcl(binding)));
                }
            }
            results.push(res);
        }
        assert_eq!(results.len(), r.creations.len(), "one result per creation");
        let response = CreateAclsResponse::default().with_results(results);
        self.forward_admin(to, ResponseKind::CreateAcls(response), asks, 0);
    }

    pub(in crate::broker) fn delete_acls(&mut self, to: ReplyTo, r: DeleteAclsRequest) {
        let disabled = self.acls_disabled();
        let mut asks = Vec::new();
        let mut results = Vec::with_capacity(r.filters.len());
        for (slot, f) in r.filters.iter().enumerate() {
            let mut res = delete_acls_response::DeleteAclsFilterResult::default();
            match (disabled, acl_wire::filter_of_delete(f)) {
                (Some(why), _) => {
                    res.error_code = SECURITY_DISABLED;
                    res.error_message = Some(sb(why));
                }
                (None, Err(why)) => {
                    res.error_code = INVALID_REQUEST;
                    res.error_message = Some(sb(why));
                }
                (None, Ok(filter)) => asks.push((slot, ControllerRequest::DeleteAcls(filter))),
            }
            results.push(res);
        }
        assert_eq!(results.len(), r.filters.len(), "one result per filter");
        let response = DeleteAclsResponse::default().with_filter_results(results);
        self.forward_admin(to, ResponseKind::DeleteAcls(response), asks, 0);
    }
}

/// Put the controller's answer to slot `slot` of a forwarded CreateAcls or DeleteAcls into
/// its response.
pub(in crate::broker) fn set_acl_answer(
    response: &mut ResponseKind,
    slot: usize,
    result: Result<Reply, ControllerError>,
) {
    let (code, message) = match &result {
        Ok(_) => (0, None),
        Err(e) => (e.code(), Some(sb(e.message()))),
    };
    match (response, result) {
        (ResponseKind::CreateAcls(r), _) => {
            let res = &mut r.results[slot];
            res.error_code = code;
            res.error_message = message;
        }
        (ResponseKind::DeleteAcls(r), result) => {
            let res = &mut r.filter_results[slot];
            res.error_code = code;
            res.error_message = message;
            if let Ok(Reply::DeleteAcls(gone)) = result {
                res.matching_acls = gone.iter().map(acl_wire::matching_acl_of).collect();
            }
        }
        (other, _) => unreachable!("{other:?} is not an ACL response"),
    }
}
