//! Routing group API requests; FindCoordinator.

use super::*;

/// Handle a group API request. Returns false if `body` is not a group API.
pub fn handle(c: &mut Coordinator, b: &mut Rt, to: ReplyTo, body: RequestKind) -> bool {
    if c.is_loading() {
        let code: i16 = ErrorCode::COORDINATOR_LOAD_IN_PROGRESS.into();
        let resp = match body {
            RequestKind::FindCoordinator(r) => return find_coordinator(b, to, r),
            RequestKind::JoinGroup(_) => ResponseKind::JoinGroup(
                JoinGroupResponse::default()
                    .with_error_code(code)
                    .with_generation_id(GenerationId::NONE.0),
            ),
            RequestKind::SyncGroup(_) => {
                ResponseKind::SyncGroup(SyncGroupResponse::default().with_error_code(code))
            }
            RequestKind::Heartbeat(_) => {
                ResponseKind::Heartbeat(HeartbeatResponse::default().with_error_code(code))
            }
            RequestKind::LeaveGroup(_) => {
                ResponseKind::LeaveGroup(LeaveGroupResponse::default().with_error_code(code))
            }
            RequestKind::OffsetCommit(r) => ResponseKind::OffsetCommit(commit_errors(
                &r,
                ErrorCode::COORDINATOR_LOAD_IN_PROGRESS,
            )),
            RequestKind::OffsetFetch(_) => {
                ResponseKind::OffsetFetch(OffsetFetchResponse::default().with_error_code(code))
            }
            RequestKind::DescribeGroups(r) => ResponseKind::DescribeGroups(
                DescribeGroupsResponse::default().with_groups(
                    r.groups
                        .into_iter()
                        .map(|g| {
                            DescribedGroup::default()
                                .with_group_id(g)
                                .with_error_code(code)
                        })
                        .collect(),
                ),
            ),
            RequestKind::ListGroups(_) => {
                ResponseKind::ListGroups(ListGroupsResponse::default().with_error_code(code))
            }
            RequestKind::DeleteGroups(r) => ResponseKind::DeleteGroups(
                DeleteGroupsResponse::default().with_results(
                    r.groups_names
                        .into_iter()
                        .map(|g| {
                            delete_groups_response::DeletableGroupResult::default()
                                .with_group_id(g)
                                .with_error_code(code)
                        })
                        .collect(),
                ),
            ),
            RequestKind::OffsetDelete(_) => {
                ResponseKind::OffsetDelete(OffsetDeleteResponse::default().with_error_code(code))
            }
            _ => return false,
        };
        b.respond(to, Some(resp));
        return true;
    }
    match body {
        RequestKind::FindCoordinator(r) => find_coordinator(b, to, r),
        RequestKind::JoinGroup(r) => join_group(c, b, to, r),
        RequestKind::SyncGroup(r) => sync_group(c, b, to, r),
        RequestKind::Heartbeat(r) => heartbeat(c, b, to, r),
        RequestKind::LeaveGroup(r) => leave_group(c, b, to, r),
        RequestKind::OffsetCommit(r) => offset_commit(c, b, to, r),
        RequestKind::OffsetFetch(r) => offset_fetch(c, b, to, r),
        RequestKind::DescribeGroups(r) => describe_groups(c, b, to, r),
        RequestKind::ListGroups(r) => list_groups(c, b, to, r),
        RequestKind::DeleteGroups(r) => delete_groups(c, b, to, r),
        RequestKind::OffsetDelete(r) => offset_delete(c, b, to, r),
        _ => false,
    }
}

pub(super) fn find_coordinator(b: &mut Rt, to: ReplyTo, r: FindCoordinatorRequest) -> bool {
    let (id, host, port) = (
        b.config().broker_id,
        b.config().advertised_host.clone(),
        b.config().advertised_port,
    );
    // key_type 0 = group, 1 = transaction (not supported).
    let code = if r.key_type == 0 {
        ErrorCode::NONE
    } else {
        ErrorCode::COORDINATOR_NOT_AVAILABLE
    };
    let found = code.is_none();
    let mut resp = FindCoordinatorResponse::default()
        .with_error_code(code.into())
        .with_node_id(BrokerId(if found { id.0 } else { -1 }))
        .with_host(sb(if found { host.clone() } else { String::new() }))
        .with_port(if found { port } else { -1 });
    // v4+ batches keys; answer each the same way.
    let keys = r.coordinator_keys.len();
    for k in r.coordinator_keys {
        resp.coordinators.push(
            FoundCoordinator::default()
                .with_key(k)
                .with_node_id(id.into())
                .with_host(sb(host.clone()))
                .with_port(port),
        );
    }
    assert_eq!(resp.coordinators.len(), keys);
    b.respond(to, Some(ResponseKind::FindCoordinator(resp)));
    true
}
