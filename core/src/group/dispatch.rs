//! Routing group API requests; FindCoordinator.

use super::*;

/// Handle a group API request. Returns false if `body` is not a group API.
///
/// A request about one group is answered here with NOT_COORDINATOR or
/// COORDINATOR_LOAD_IN_PROGRESS if this broker does not serve that group now (see
/// [`Coordinator::serves`]); the APIs about several groups (DescribeGroups, DeleteGroups) answer
/// so per group, and ListGroups lists the groups of loaded partitions.
pub fn handle(c: &mut Coordinator, b: &mut Rt, to: ReplyTo, body: RequestKind) -> bool {
    if let Some(refusal) = refusal(c, &body) {
        b.respond(to, Some(refusal));
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

/// The answer to a request about one group this coordinator does not serve now, if it is one.
fn refusal(c: &Coordinator, body: &RequestKind) -> Option<ResponseKind> {
    let group = match body {
        RequestKind::JoinGroup(r) => &r.group_id.0,
        RequestKind::SyncGroup(r) => &r.group_id.0,
        RequestKind::Heartbeat(r) => &r.group_id.0,
        RequestKind::LeaveGroup(r) => &r.group_id.0,
        RequestKind::OffsetCommit(r) => &r.group_id.0,
        RequestKind::OffsetFetch(r) => &r.group_id.0,
        RequestKind::OffsetDelete(r) => &r.group_id.0,
        _ => return None,
    };
    let code = c.serves(group).err()?;
    let wire: i16 = code.into();
    Some(match body {
        RequestKind::JoinGroup(r) => join_error(code, r.member_id.as_str()),
        RequestKind::SyncGroup(_) => sync_error(code),
        RequestKind::Heartbeat(_) => {
            ResponseKind::Heartbeat(HeartbeatResponse::default().with_error_code(wire))
        }
        RequestKind::LeaveGroup(_) => {
            ResponseKind::LeaveGroup(LeaveGroupResponse::default().with_error_code(wire))
        }
        RequestKind::OffsetCommit(r) => ResponseKind::OffsetCommit(commit_errors(r, code)),
        RequestKind::OffsetFetch(_) => {
            ResponseKind::OffsetFetch(OffsetFetchResponse::default().with_error_code(wire))
        }
        RequestKind::OffsetDelete(_) => {
            ResponseKind::OffsetDelete(OffsetDeleteResponse::default().with_error_code(wire))
        }
        _ => unreachable!("a request about one group"),
    })
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
