//! CreateAcls (API 30) and DeleteAcls (API 31) on the controller listener (KIP-11 in KRaft): a
//! broker forwards a client's ACL changes to the active controller in Kafka's own encoding, one
//! [`Request::CreateAcl`] per creation and one [`Request::DeleteAcls`] per filter, and the
//! answers are assembled back in the request's order. A creation or filter whose codes name
//! nothing is refused on its own with INVALID_REQUEST, as Kafka refuses it.

use super::*;
use crate::acl::wire as acl_wire;

fn item(request: Result<Request, Refusal>) -> Item {
    Item {
        topic: None,
        partitions: -1,
        replication_factor: -1,
        request,
    }
}

/// One item per creation, in the request's order.
pub(super) fn create_acls_items(r: &CreateAclsRequest) -> Vec<Item> {
    let items: Vec<Item> = (r.creations.iter())
        .map(|c| {
            item(
                acl_wire::binding_of_creation(c)
                    .map(Request::CreateAcl)
                    .map_err(refuse),
            )
        })
        .collect();
    assert_eq!(items.len(), r.creations.len(), "one item per creation");
    items
}

/// One item per filter, in the request's order.
pub(super) fn delete_acls_items(r: &DeleteAclsRequest) -> Vec<Item> {
    let items: Vec<Item> = (r.filters.iter())
        .map(|f| {
            item(
                acl_wire::filter_of_delete(f)
                    .map(Request::DeleteAcls)
                    .map_err(refuse),
            )
        })
        .collect();
    assert_eq!(items.len(), r.filters.len(), "one item per filter");
    items
}

/// CreateAcls' response: each creation's error code and message.
pub(super) fn encode_create_acls_response(
    answers: &[Answer],
    version: i16,
    correlation_id: i32,
) -> Result<Bytes, ControllerWireError> {
    let results: Vec<create_acls_response::AclCreationResult> = answers
        .iter()
        .map(|a| {
            if let Ok(r) = a {
                assert_eq!(*r, Reply::CreateAcl, "CreateAcls answered");
            }
            let (code, message) = code_of(a);
            create_acls_response::AclCreationResult::default()
                .with_error_code(code)
                .with_error_message(message)
        })
        .collect();
    assert_eq!(results.len(), answers.len());
    let body = CreateAclsResponse::default().with_results(results);
    frame(ApiKey::CreateAcls, version, correlation_id, &body)
}

/// DeleteAcls' response: each filter's error, or the ACLs it removed.
pub(super) fn encode_delete_acls_response(
    answers: &[Answer],
    version: i16,
    correlation_id: i32,
) -> Result<Bytes, ControllerWireError> {
    let results: Vec<delete_acls_response::DeleteAclsFilterResult> = answers
        .iter()
        .map(|a| {
            let gone = match a {
                Ok(Reply::DeleteAcls(gone)) => gone.as_slice(),
                Ok(other) => panic!("DeleteAcls answered with {other:?}"),
                Err(_) => &[],
            };
            let (code, message) = code_of(a);
            delete_acls_response::DeleteAclsFilterResult::default()
                .with_error_code(code)
                .with_error_message(message)
                .with_matching_acls(gone.iter().map(acl_wire::matching_acl_of).collect())
        })
        .collect();
    assert_eq!(results.len(), answers.len());
    let body = DeleteAclsResponse::default().with_filter_results(results);
    frame(ApiKey::DeleteAcls, version, correlation_id, &body)
}

/// The one answer of a CreateAcls response to a one-creation request.
pub(super) fn decode_create_acl_answer(
    r: CreateAclsResponse,
) -> Result<Answer, ControllerWireError> {
    let [res] = <[_; 1]>::try_from(r.results).map_err(|v| {
        malformed(
            ApiKey::CreateAcls,
            format!("{} results for one ACL", v.len()),
        )
    })?;
    Ok(if res.error_code == 0 {
        Ok(Reply::CreateAcl)
    } else {
        Err(Refusal {
            code: res.error_code,
            message: res.error_message.map(|m| m.to_string()).unwrap_or_default(),
        })
    })
}

/// The one answer of a DeleteAcls response to a one-filter request.
pub(super) fn decode_delete_acls_answer(
    r: DeleteAclsResponse,
) -> Result<Answer, ControllerWireError> {
    let key = ApiKey::DeleteAcls;
    let [res] = <[_; 1]>::try_from(r.filter_results)
        .map_err(|v| malformed(key, format!("{} results for one filter", v.len())))?;
    if res.error_code != 0 {
        return Ok(Err(Refusal {
            code: res.error_code,
            message: res.error_message.map(|m| m.to_string()).unwrap_or_default(),
        }));
    }
    let gone: Result<Vec<_>, String> = (res.matching_acls.iter())
        .map(acl_wire::binding_of_matching)
        .collect();
    Ok(Ok(Reply::DeleteAcls(gone.map_err(|e| malformed(key, e))?)))
}
