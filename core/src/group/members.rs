//! SyncGroup, Heartbeat and LeaveGroup.

use super::*;

pub(super) fn sync_error(code: ErrorCode) -> ResponseKind {
    assert!(!code.is_none(), "a sync error is an error");
    ResponseKind::SyncGroup(SyncGroupResponse::default().with_error_code(code.into()))
}

pub(super) fn sync_group(
    c: &mut Coordinator,
    b: &mut Rt,
    to: ReplyTo,
    r: SyncGroupRequest,
) -> bool {
    let now = b.now();
    let group_id = GroupId(r.group_id.0.to_string());
    let member_id = MemberId(r.member_id.to_string());
    let Some(group) = c.groups.get_mut(&group_id) else {
        b.respond(to, Some(sync_error(ErrorCode::UNKNOWN_MEMBER_ID)));
        return true;
    };
    if group.is_fenced(r.group_instance_id.as_deref(), member_id.as_str()) {
        b.respond(to, Some(sync_error(ErrorCode::FENCED_INSTANCE_ID)));
        return true;
    }
    let Some(m) = group.members.get_mut(&member_id) else {
        b.respond(to, Some(sync_error(ErrorCode::UNKNOWN_MEMBER_ID)));
        return true;
    };
    m.session_deadline = now + Duration::from_ms(m.session_timeout_ms as u64);
    if GenerationId(r.generation_id) != group.generation {
        b.respond(to, Some(sync_error(ErrorCode::ILLEGAL_GENERATION)));
        return true;
    }
    if r.protocol_type
        .as_ref()
        .is_some_and(|p| p.as_str() != group.protocol_type)
        || r.protocol_name
            .as_ref()
            .is_some_and(|p| Some(p.as_str()) != group.protocol.as_deref())
    {
        b.respond(to, Some(sync_error(ErrorCode::INCONSISTENT_GROUP_PROTOCOL)));
        return true;
    }
    match group.state {
        GroupState::PreparingRebalance => {
            b.respond(to, Some(sync_error(ErrorCode::REBALANCE_IN_PROGRESS)));
        }
        GroupState::Stable => {
            let resp = SyncGroupResponse::default()
                .with_protocol_type(Some(sb(group.protocol_type.clone())))
                .with_protocol_name(group.protocol.clone().map(sb))
                .with_assignment(m.assignment.clone());
            let mark = group.last_write.clone();
            let err = sync_error(ErrorCode::COORDINATOR_NOT_AVAILABLE);
            respond_after(b, to, ResponseKind::SyncGroup(resp), err, mark);
        }
        GroupState::CompletingRebalance => {
            if let Some(old) = m.awaiting_sync.replace(to) {
                b.respond(old, Some(sync_error(ErrorCode::REBALANCE_IN_PROGRESS)));
            }
            let group = c.groups.get_mut(&group_id).unwrap();
            if group.leader.as_ref() != Some(&member_id) {
                return true; // followers wait for the leader's assignment
            }
            let assignments: BTreeMap<String, Bytes> = r
                .assignments
                .iter()
                .map(|a| (a.member_id.to_string(), a.assignment.clone()))
                .collect();
            for (id, m) in group.members.iter_mut() {
                m.assignment = assignments.get(id.as_str()).cloned().unwrap_or_default();
            }
            assert_eq!(
                GenerationId(r.generation_id),
                group.generation,
                "the leader's assignment is for this generation"
            );
            group.transition(GroupState::Stable);
            group.state_ms = now.unix_ms();
            let waiting: Vec<(ReplyTo, Bytes)> = group
                .members
                .values_mut()
                .filter_map(|m| m.awaiting_sync.take().map(|t| (t, m.assignment.clone())))
                .collect();
            // The leader's own SyncGroup is among them: the assignment is answered at least once.
            assert!(waiting.iter().any(|(t, _)| *t == to));
            assert!(group.members.values().all(|m| m.awaiting_sync.is_none()));
            let (pt, pn) = (group.protocol_type.clone(), group.protocol.clone());
            b.log(
                LogLevel::Info,
                format!("group {group_id}: stable at generation {}", r.generation_id),
            );
            // The assignment is answered once it is durable; each member gets its own share.
            let mut first = true;
            let mut written = None;
            for (to, assignment) in waiting {
                let ok = ResponseKind::SyncGroup(
                    SyncGroupResponse::default()
                        .with_protocol_type(Some(sb(pt.clone())))
                        .with_protocol_name(pn.clone().map(sb))
                        .with_assignment(assignment),
                );
                let err = sync_error(ErrorCode::COORDINATOR_NOT_AVAILABLE);
                if first {
                    // If the write was refused (say the partition is offline), every member
                    // gets the error: an assignment that is not durable was never made.
                    written = persist_group(c, b, &group_id, Some((to, ok, err)));
                    first = false;
                } else if written.is_some() {
                    respond_after(b, to, ok, err, written.clone());
                } else {
                    b.respond(to, Some(err));
                }
            }
        }
        GroupState::Empty | GroupState::Dead => {
            b.respond(to, Some(sync_error(ErrorCode::UNKNOWN_MEMBER_ID)))
        }
    }
    true
}

pub(super) fn heartbeat(c: &mut Coordinator, b: &mut Rt, to: ReplyTo, r: HeartbeatRequest) -> bool {
    let now = b.now();
    let group_id = r.group_id.0.to_string();
    let code = match c.groups.get_mut(group_id.as_str()) {
        None => ErrorCode::UNKNOWN_MEMBER_ID,
        Some(g) if g.is_fenced(r.group_instance_id.as_deref(), r.member_id.as_str()) => {
            ErrorCode::FENCED_INSTANCE_ID
        }
        Some(g) => match g.members.get_mut(r.member_id.as_str()) {
            None => ErrorCode::UNKNOWN_MEMBER_ID,
            Some(m) => {
                m.session_deadline = now + Duration::from_ms(m.session_timeout_ms as u64);
                if GenerationId(r.generation_id) != g.generation {
                    ErrorCode::ILLEGAL_GENERATION
                } else if g.state == GroupState::PreparingRebalance {
                    ErrorCode::REBALANCE_IN_PROGRESS
                } else {
                    ErrorCode::NONE
                }
            }
        },
    };
    b.respond(
        to,
        Some(ResponseKind::Heartbeat(
            HeartbeatResponse::default().with_error_code(code.into()),
        )),
    );
    true
}

pub(super) fn leave_group(
    c: &mut Coordinator,
    b: &mut Rt,
    to: ReplyTo,
    r: LeaveGroupRequest,
) -> bool {
    let group_id = GroupId(r.group_id.0.to_string());
    let leaving: Vec<(String, Option<String>)> = if to.api_version >= 3 {
        r.members
            .iter()
            .map(|m| {
                (
                    m.member_id.to_string(),
                    m.group_instance_id.as_ref().map(|s| s.to_string()),
                )
            })
            .collect()
    } else {
        vec![(r.member_id.to_string(), None)]
    };
    let leaving_count = leaving.len();
    let mut resp = LeaveGroupResponse::default();
    let Some(group) = c.groups.get_mut(&group_id) else {
        resp.error_code = ErrorCode::UNKNOWN_MEMBER_ID.into();
        b.respond(to, Some(ResponseKind::LeaveGroup(resp)));
        return true;
    };
    let mut removed = 0;
    // A leaving member's parked requests are answered each in its own kind (a SyncGroup with a
    // SyncGroup response: simulator seed 2378 caught a JoinGroup body sent for a SyncGroup).
    let mut parked_joins = Vec::new();
    let mut parked_syncs = Vec::new();
    for (mid, iid) in leaving {
        // A static member may leave by instance id alone.
        let id = if mid.is_empty() {
            iid.as_ref().and_then(|i| {
                group
                    .members
                    .values()
                    .find(|m| m.instance_id.as_ref() == Some(i))
                    .map(|m| m.member_id.clone())
            })
        } else {
            Some(MemberId(mid.clone()))
        };
        let code = match id.and_then(|id| group.members.remove(&id)) {
            Some(m) => {
                removed += 1;
                parked_joins.extend(m.awaiting_join);
                parked_syncs.extend(m.awaiting_sync);
                ErrorCode::NONE
            }
            None => ErrorCode::UNKNOWN_MEMBER_ID,
        };
        resp.members.push(
            MemberResponse::default()
                .with_member_id(sb(mid))
                .with_group_instance_id(iid.map(sb))
                .with_error_code(code.into()),
        );
    }
    assert_eq!(
        resp.members.len(),
        leaving_count,
        "every leaving member is answered"
    );
    if to.api_version < 3 {
        resp.error_code = resp.members[0].error_code;
        resp.members.clear();
    }
    for p in parked_joins {
        b.respond(p, Some(join_error(ErrorCode::UNKNOWN_MEMBER_ID, "")));
    }
    for p in parked_syncs {
        b.respond(p, Some(sync_error(ErrorCode::UNKNOWN_MEMBER_ID)));
    }
    if removed > 0 {
        b.log(
            LogLevel::Info,
            format!("group {group_id}: {removed} member(s) left"),
        );
        member_gone(c, b, &group_id);
    }
    b.respond(to, Some(ResponseKind::LeaveGroup(resp)));
    true
}

/// After members left or expired: rebalance the rest, or empty the group.
pub(super) fn member_gone(c: &mut Coordinator, b: &mut Rt, group_id: &GroupId) {
    let now = b.now();
    let group = c.groups.get_mut(group_id).unwrap();
    if group.members.is_empty() {
        if group.state != GroupState::PreparingRebalance || group.pending.is_empty() {
            assert_ne!(
                group.state,
                GroupState::Dead,
                "{group_id}: a dead group loses no members"
            );
            // As in Kafka, the last member leaving starts a rebalance that completes at once,
            // with nobody to wait for: the group passes through PreparingRebalance into Empty,
            // and the generation moves up by one.
            if group.state != GroupState::PreparingRebalance {
                group.transition(GroupState::PreparingRebalance);
            }
            group.next_generation();
            group.transition(GroupState::Empty);
            group.protocol = None;
            group.leader = None;
            group.rebalance_deadline = None;
            group.initial_delay_until = None;
            group.state_ms = now.unix_ms();
            persist_group(c, b, group_id, None);
        }
        return;
    }
    if group
        .leader
        .as_ref()
        .is_some_and(|l| !group.members.contains_key(l))
    {
        group.leader = group.members.keys().next().cloned();
    }
    match group.state {
        GroupState::Stable | GroupState::CompletingRebalance => maybe_prepare(c, b, group_id),
        GroupState::PreparingRebalance => try_complete_join(c, b, group_id),
        GroupState::Empty | GroupState::Dead => {}
    }
}
