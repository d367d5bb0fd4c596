//! JoinGroup and the rebalance: preparing, completing, persisting membership.

use super::*;

pub(super) fn join_error(code: ErrorCode, member_id: &str) -> ResponseKind {
    assert!(!code.is_none(), "a join error is an error");
    ResponseKind::JoinGroup(
        JoinGroupResponse::default()
            .with_error_code(code.into())
            .with_generation_id(GenerationId::NONE.0)
            .with_member_id(sb(member_id))
            .with_protocol_name(None)
            .with_protocol_type(None),
    )
}

pub(super) fn join_group(
    c: &mut Coordinator,
    b: &mut Rt,
    to: ReplyTo,
    r: JoinGroupRequest,
) -> bool {
    let now = b.now();
    let group_id = GroupId(r.group_id.0.to_string());
    let member_id = MemberId(r.member_id.to_string());
    let instance_id = r.group_instance_id.as_ref().map(|s| s.to_string());
    if group_id.is_empty() {
        b.respond(
            to,
            Some(join_error(ErrorCode::INVALID_GROUP_ID, member_id.as_str())),
        );
        return true;
    }
    if r.session_timeout_ms < c.session_timeout_ms_min
        || r.session_timeout_ms > c.session_timeout_ms_max
    {
        b.log(
            LogLevel::Warn,
            format!(
                "JoinGroup {group_id}: session timeout {} ms outside {}..={}",
                r.session_timeout_ms, c.session_timeout_ms_min, c.session_timeout_ms_max
            ),
        );
        b.respond(
            to,
            Some(join_error(
                ErrorCode::INVALID_SESSION_TIMEOUT,
                member_id.as_str(),
            )),
        );
        return true;
    }
    let protocols: Vec<(String, Bytes)> = r
        .protocols
        .iter()
        .map(|p| (p.name.to_string(), p.metadata.clone()))
        .collect();
    let protocol_type = r.protocol_type.to_string();
    if protocol_type.is_empty() || protocols.is_empty() {
        b.respond(
            to,
            Some(join_error(
                ErrorCode::INCONSISTENT_GROUP_PROTOCOL,
                member_id.as_str(),
            )),
        );
        return true;
    }
    let now_ms = now.unix_ms();
    let group = c
        .groups
        .entry(group_id.clone())
        .or_insert_with(|| Group::new(now_ms));
    // A non-empty group only admits members speaking its protocol type and sharing an assignor.
    if !group.members.is_empty() {
        let shares = protocols.iter().any(|(n, _)| {
            group
                .members
                .values()
                .all(|m| m.protocols.iter().any(|(mn, _)| mn == n))
        });
        if group.protocol_type != protocol_type || !shares {
            b.respond(
                to,
                Some(join_error(
                    ErrorCode::INCONSISTENT_GROUP_PROTOCOL,
                    member_id.as_str(),
                )),
            );
            return true;
        }
    }
    let rebalance_ms = if r.rebalance_timeout_ms > 0 {
        r.rebalance_timeout_ms
    } else {
        r.session_timeout_ms
    };
    let session = Duration::from_ms(r.session_timeout_ms as u64);

    // Static membership (KIP-345): a known instance id takes over its old member.
    if let Some(iid) = &instance_id {
        let old = group
            .members
            .values()
            .find(|m| m.instance_id.as_deref() == Some(iid))
            .map(|m| m.member_id.clone());
        assert!(old.as_ref().is_none_or(|id| group.members.contains_key(id)));
        if let Some(old_id) = old {
            if !member_id.is_empty() && member_id != old_id {
                // The instance id was taken over by a newer member: this one is a zombie.
                b.respond(
                    to,
                    Some(join_error(
                        ErrorCode::FENCED_INSTANCE_ID,
                        member_id.as_str(),
                    )),
                );
                return true;
            }
            if member_id.is_empty() {
                let new_id = MemberId(format!("{iid}-{}", b.random_suffix()));
                let group = c.groups.get_mut(&group_id).unwrap();
                let mut m = group.members.remove(&old_id).unwrap();
                if let Some(parked) = m.awaiting_sync.take() {
                    b.respond(
                        parked,
                        Some(ResponseKind::SyncGroup(
                            SyncGroupResponse::default()
                                .with_error_code(ErrorCode::FENCED_INSTANCE_ID.into()),
                        )),
                    );
                }
                if let Some(parked) = m.awaiting_join.take() {
                    b.respond(
                        parked,
                        Some(join_error(ErrorCode::FENCED_INSTANCE_ID, old_id.as_str())),
                    );
                }
                let group = c.groups.get_mut(&group_id).unwrap();
                m.member_id = new_id.clone();
                m.session_deadline = now + session;
                m.protocols = protocols;
                if group.leader.as_ref() == Some(&old_id) {
                    group.leader = Some(new_id.clone());
                }
                let stable = group.state == GroupState::Stable;
                if stable {
                    // Same place, same assignment, no rebalance: answer with the current
                    // generation so the member can SyncGroup and carry on.
                    let resp = JoinGroupResponse::default()
                        .with_generation_id(group.generation.0)
                        .with_protocol_type(Some(sb(group.protocol_type.clone())))
                        .with_protocol_name(group.protocol.clone().map(sb))
                        .with_leader(sb(group.leader.clone().unwrap_or_default()))
                        .with_member_id(sb(new_id.clone()));
                    assert!(
                        group.members.insert(new_id, m).is_none(),
                        "a fresh member id"
                    );
                    // The static member took its old place: same instance, same leadership.
                    assert!(group
                        .leader
                        .as_ref()
                        .is_some_and(|l| group.members.contains_key(l)));
                    let err = join_error(ErrorCode::COORDINATOR_NOT_AVAILABLE, "");
                    match persist_group(c, b, &group_id, None) {
                        Some(mark) => {
                            respond_after(b, to, ResponseKind::JoinGroup(resp), err, Some(mark))
                        }
                        None => b.respond(to, Some(err)),
                    }
                    return true;
                }
                m.awaiting_join = Some(to);
                assert!(
                    group.members.insert(new_id, m).is_none(),
                    "a fresh member id"
                );
                maybe_prepare(c, b, &group_id);
                return true;
            }
        }
    }

    let group = c.groups.get_mut(&group_id).unwrap();
    let known = group.members.contains_key(&member_id);
    if member_id.is_empty() {
        // As Kafka names members: the instance id or else the client id, then a random
        // suffix. Client-side assignors order members by id, so members come out in the order
        // of their client ids (librdkafka's test 0132 expects client c0 to get roundrobin's
        // first share).
        let prefix = match &instance_id {
            Some(iid) => iid.clone(),
            None => b.client_id_of(to.conn),
        };
        let new_id = MemberId(format!("{prefix}-{}", b.random_suffix()));
        let group = c.groups.get_mut(&group_id).unwrap();
        if to.api_version >= 4 && instance_id.is_none() {
            // KIP-394: hand out the id first; the member joins again with it.
            group.pending.insert(new_id.clone(), now + session);
            b.respond(
                to,
                Some(join_error(ErrorCode::MEMBER_ID_REQUIRED, new_id.as_str())),
            );
            return true;
        }
        add_member(
            c,
            b,
            &group_id,
            new_id,
            instance_id,
            &r,
            protocols,
            rebalance_ms,
            to,
        );
        return true;
    }
    if !known {
        if group.pending.remove(&member_id).is_some() {
            add_member(
                c,
                b,
                &group_id,
                member_id,
                instance_id,
                &r,
                protocols,
                rebalance_ms,
                to,
            );
        } else {
            b.respond(
                to,
                Some(join_error(ErrorCode::UNKNOWN_MEMBER_ID, member_id.as_str())),
            );
        }
        return true;
    }
    // A known member rejoining.
    let m = group.members.get_mut(&member_id).unwrap();
    let same = m.protocols == protocols;
    m.protocols = protocols;
    m.session_timeout_ms = r.session_timeout_ms;
    m.rebalance_timeout_ms = rebalance_ms;
    m.session_deadline = now + session;
    if let Some(old) = m.awaiting_join.replace(to) {
        // A duplicate join: the older one is superseded.
        b.respond(
            old,
            Some(join_error(
                ErrorCode::REBALANCE_IN_PROGRESS,
                member_id.as_str(),
            )),
        );
    }
    let group = c.groups.get_mut(&group_id).unwrap();
    let is_leader = group.leader.as_ref() == Some(&member_id);
    if group.state == GroupState::Stable && same && !is_leader {
        // Nothing changed for a follower in a stable group: answer with the current generation.
        let m = group.members.get_mut(&member_id).unwrap();
        let parked = m.awaiting_join.take().unwrap();
        let resp = JoinGroupResponse::default()
            .with_generation_id(group.generation.0)
            .with_protocol_type(Some(sb(group.protocol_type.clone())))
            .with_protocol_name(group.protocol.clone().map(sb))
            .with_leader(sb(group.leader.clone().unwrap_or_default()))
            .with_member_id(sb(member_id));
        b.respond(parked, Some(ResponseKind::JoinGroup(resp)));
        return true;
    }
    maybe_prepare(c, b, &group_id);
    true
}

#[allow(clippy::too_many_arguments)]
pub(super) fn add_member(
    c: &mut Coordinator,
    b: &mut Rt,
    group_id: &GroupId,
    member_id: MemberId,
    instance_id: Option<String>,
    r: &JoinGroupRequest,
    protocols: Vec<(String, Bytes)>,
    rebalance_ms: i32,
    to: ReplyTo,
) {
    let now = b.now();
    let client_id = b.client_id_of(to.conn);
    let delay = c.initial_rebalance_delay;
    let group = c.groups.get_mut(group_id).unwrap();
    assert!(!member_id.is_empty(), "a member joins with its id");
    assert!(
        !group.members.contains_key(&member_id),
        "{group_id}: {member_id} added twice"
    );
    let members_before = group.members.len();
    if group.members.is_empty() {
        group.protocol_type = r.protocol_type.to_string();
        if group.state == GroupState::Empty && delay > Duration::ZERO {
            group.initial_delay_until = Some(now + delay);
        }
    } else if let Some(until) = group.initial_delay_until {
        // Another member during the initial delay extends it, up to the rebalance timeout.
        let cap = now + Duration::from_ms(rebalance_ms as u64);
        group.initial_delay_until = Some((until.max(now) + delay).min(cap));
    }
    group.members.insert(
        member_id.clone(),
        Member {
            member_id,
            instance_id,
            client_id,
            session_timeout_ms: r.session_timeout_ms,
            rebalance_timeout_ms: rebalance_ms,
            protocols,
            assignment: Bytes::new(),
            session_deadline: now + Duration::from_ms(r.session_timeout_ms as u64),
            awaiting_join: Some(to),
            awaiting_sync: None,
        },
    );
    assert_eq!(group.members.len(), members_before + 1);
    maybe_prepare(c, b, group_id);
}

/// A group's membership record (its generation, leader, assignment) failed to write. The
/// generation it describes was never made durable, so it cannot stand: start a new rebalance,
/// as Kafka's coordinator does when storing a group's assignment fails. Members learn it from
/// their next heartbeat (REBALANCE_IN_PROGRESS) and join the next generation, whose record is
/// written anew.
pub(crate) fn membership_write_failed(
    c: &mut Coordinator,
    b: &mut Rt,
    group_id: &GroupId,
    generation: GenerationId,
) {
    let Some(g) = c.groups.get(group_id) else {
        return;
    };
    if g.generation != generation
        || !matches!(
            g.state,
            GroupState::Stable | GroupState::CompletingRebalance
        )
    {
        return;
    }
    b.log(
        LogLevel::Warn,
        format!(
            "group {group_id}: the record of generation {generation} failed to write; rebalancing"
        ),
    );
    maybe_prepare(c, b, group_id);
}

/// Move a group into PreparingRebalance if it is not there yet, parking syncs.
pub(super) fn maybe_prepare(c: &mut Coordinator, b: &mut Rt, group_id: &GroupId) {
    let now = b.now();
    let group = c.groups.get_mut(group_id).unwrap();
    if group.state == GroupState::PreparingRebalance {
        return;
    }
    let generation = group.generation;
    group.transition(GroupState::PreparingRebalance);
    // Preparing a rebalance does not end the generation: members of it may still heartbeat
    // and are told to rejoin.
    assert_eq!(group.generation, generation);
    group.rebalance_deadline = Some(now + group.rebalance_timeout());
    let mut parked = Vec::new();
    for m in group.members.values_mut() {
        if let Some(s) = m.awaiting_sync.take() {
            parked.push(s);
        }
    }
    b.log(
        LogLevel::Info,
        format!("group {group_id}: preparing rebalance"),
    );
    // Postcondition: a rebalance answers every parked SyncGroup, and has a deadline.
    assert!(group.members.values().all(|m| m.awaiting_sync.is_none()));
    assert!(group.rebalance_deadline.is_some_and(|d| d >= now));
    for s in parked {
        b.respond(
            s,
            Some(ResponseKind::SyncGroup(
                SyncGroupResponse::default()
                    .with_error_code(ErrorCode::REBALANCE_IN_PROGRESS.into()),
            )),
        );
    }
}

/// Complete the join phase if every member has rejoined (or the deadline passed).
pub(super) fn try_complete_join(c: &mut Coordinator, b: &mut Rt, group_id: &GroupId) {
    let now = b.now();
    let group = c.groups.get_mut(group_id).unwrap();
    if group.state != GroupState::PreparingRebalance {
        return;
    }
    let deadline_passed = group.rebalance_deadline.is_some_and(|d| d <= now);
    let all_joined =
        group.members.values().all(|m| m.awaiting_join.is_some()) && group.pending.is_empty();
    let delayed = group.initial_delay_until.is_some_and(|d| d > now);
    if !delayed {
        // The initial delay (group.initial.rebalance.delay.ms) is over: forget it, so members
        // joining from now on do not extend it (as Kafka's InitialDelayedJoin, which fires once)
        // and no timer is left pending in the past while the join waits for pending members.
        group.initial_delay_until = None;
    }
    if !(deadline_passed || (all_joined && !delayed)) {
        return;
    }
    group.initial_delay_until = None;
    // Members that did not rejoin in time are out.
    let gone: Vec<MemberId> = group
        .members
        .values()
        .filter(|m| m.awaiting_join.is_none())
        .map(|m| m.member_id.clone())
        .collect();
    for id in &gone {
        group.members.remove(id);
    }
    group.pending.clear();
    group.rebalance_deadline = None;
    // Postcondition of the join phase: every member left has rejoined.
    assert!(group.members.values().all(|m| m.awaiting_join.is_some()));
    // A rebalance completes from PreparingRebalance and moves the generation up by exactly one.
    group.next_generation();
    if group.members.is_empty() {
        group.transition(GroupState::Empty);
        group.protocol = None;
        group.leader = None;
        group.state_ms = now.unix_ms();
        let generation = group.generation;
        b.log(
            LogLevel::Info,
            format!("group {group_id}: empty at generation {generation}"),
        );
        persist_group(c, b, group_id, None);
        return;
    }
    // Choose the assignor: among those every member supports, the one most members prefer.
    let mut votes: BTreeMap<String, usize> = BTreeMap::new();
    let candidates: Vec<String> = group
        .members
        .values()
        .next()
        .unwrap()
        .protocols
        .iter()
        .map(|(n, _)| n.clone())
        .filter(|n| {
            group
                .members
                .values()
                .all(|m| m.protocols.iter().any(|(mn, _)| mn == n))
        })
        .collect();
    for m in group.members.values() {
        if let Some((n, _)) = m.protocols.iter().find(|(n, _)| candidates.contains(n)) {
            *votes.entry(n.clone()).or_default() += 1;
        }
    }
    let protocol = candidates
        .iter()
        .max_by_key(|c| {
            (
                votes.get(*c).copied().unwrap_or(0),
                std::cmp::Reverse(candidates.iter().position(|x| x == *c)),
            )
        })
        .cloned();
    let Some(protocol) = protocol else {
        // Cannot happen: joins are refused unless they share a protocol with the group.
        panic!("group {group_id}: no common protocol among members");
    };
    // The chosen protocol has the most votes; ties go to the one listed first.
    let chosen_votes = votes.get(&protocol).copied().unwrap_or(0);
    assert!(votes.values().all(|v| *v <= chosen_votes));
    assert_eq!(
        votes.values().sum::<usize>(),
        group.members.len(),
        "every member votes once"
    );
    group.protocol = Some(protocol.clone());
    if !group
        .leader
        .as_ref()
        .is_some_and(|l| group.members.contains_key(l))
    {
        group.leader = group.members.keys().next().cloned();
    }
    group.transition(GroupState::CompletingRebalance);
    let leader = group.leader.clone().unwrap();
    // The new generation: a leader among the members, and an assignor every member speaks.
    assert!(
        group.members.contains_key(&leader),
        "{group_id}: leader is a member"
    );
    assert!(group
        .members
        .values()
        .all(|m| m.protocols.iter().any(|(n, _)| *n == protocol)));
    assert!(group.rebalance_deadline.is_none() && group.pending.is_empty());
    let generation = group.generation;
    let members_list: Vec<JoinGroupResponseMember> = group
        .members
        .values()
        .map(|m| {
            JoinGroupResponseMember::default()
                .with_member_id(sb(m.member_id.as_str()))
                .with_group_instance_id(m.instance_id.clone().map(sb))
                .with_metadata(m.metadata_for(&protocol))
        })
        .collect();
    let mut replies = Vec::new();
    for m in group.members.values_mut() {
        m.session_deadline = now + Duration::from_ms(m.session_timeout_ms as u64);
        let to = m.awaiting_join.take().unwrap();
        let resp = JoinGroupResponse::default()
            .with_generation_id(generation.0)
            .with_protocol_type(Some(sb(group.protocol_type.clone())))
            .with_protocol_name(Some(sb(protocol.clone())))
            .with_leader(sb(leader.as_str()))
            .with_member_id(sb(m.member_id.as_str()))
            .with_members(if m.member_id == leader {
                members_list.clone()
            } else {
                vec![]
            });
        replies.push((to, resp));
    }
    let n = group.members.len();
    assert_eq!(
        replies.len(),
        n,
        "every member of the new generation is answered"
    );
    b.log(LogLevel::Info, format!("group {group_id}: generation {generation} with {n} member(s), protocol {protocol}, leader {leader}"));
    for (to, resp) in replies {
        b.respond(to, Some(ResponseKind::JoinGroup(resp)));
    }
}

/// Write the group's current membership as a record (after a sync, or when it empties).
pub(super) fn persist_group(
    c: &mut Coordinator,
    b: &mut Rt,
    group_id: &GroupId,
    reply: Option<Reply>,
) -> Option<WriteMark> {
    let value = group_value(&c.groups[group_id]);
    commit_records(
        c,
        b,
        group_id,
        vec![GroupRecord::Group {
            group: group_id.0.clone(),
            value: Some(value),
        }],
        reply,
    )
}

/// The durable form of a group's membership.
pub(super) fn group_value(g: &Group) -> GroupValue {
    let protocol = g.protocol.clone();
    GroupValue {
        protocol_type: g.protocol_type.clone(),
        generation: g.generation.0,
        protocol: protocol.clone(),
        leader: g.leader.clone().map(String::from),
        members: g
            .members
            .values()
            .map(|m| MemberValue {
                member_id: m.member_id.0.clone(),
                instance_id: m.instance_id.clone(),
                client_id: m.client_id.clone(),
                session_timeout_ms: m.session_timeout_ms,
                rebalance_timeout_ms: m.rebalance_timeout_ms,
                subscription: protocol
                    .as_deref()
                    .map(|p| m.metadata_for(p).to_vec())
                    .unwrap_or_default(),
                assignment: m.assignment.to_vec(),
            })
            .collect(),
        state_ms: g.state_ms,
    }
}
