//! DescribeGroups, ListGroups and DeleteGroups.

use super::*;

pub(super) fn describe_groups(
    c: &mut Coordinator,
    b: &mut Rt,
    to: ReplyTo,
    r: DescribeGroupsRequest,
) -> bool {
    let mut resp = DescribeGroupsResponse::default();
    for gid in r.groups {
        let d = match (c.serves(&gid.0), c.groups.get(gid.0.as_str())) {
            (Err(code), _) => DescribedGroup::default()
                .with_group_id(gid)
                .with_error_code(code.into()),
            (Ok(()), None) => DescribedGroup::default()
                .with_group_id(gid)
                .with_group_state(sb("Dead")),
            (Ok(()), Some(g)) => {
                let protocol = g.protocol.clone().unwrap_or_default();
                DescribedGroup::default()
                    .with_group_id(gid)
                    .with_group_state(sb(g.state.name()))
                    .with_protocol_type(sb(g.protocol_type.clone()))
                    .with_protocol_data(sb(protocol.clone()))
                    .with_members(
                        g.members
                            .values()
                            .map(|m| {
                                DescribedGroupMember::default()
                                    .with_member_id(sb(m.member_id.as_str()))
                                    .with_group_instance_id(m.instance_id.clone().map(sb))
                                    .with_client_id(sb(m.client_id.clone()))
                                    .with_client_host(sb("/127.0.0.1"))
                                    .with_member_metadata(m.metadata_for(&protocol))
                                    .with_member_assignment(m.assignment.clone())
                            })
                            .collect(),
                    )
            }
        };
        resp.groups.push(d);
    }
    b.respond(to, Some(ResponseKind::DescribeGroups(resp)));
    true
}

pub(super) fn list_groups(
    c: &mut Coordinator,
    b: &mut Rt,
    to: ReplyTo,
    r: ListGroupsRequest,
) -> bool {
    let states: Vec<String> = r
        .states_filter
        .iter()
        .map(|s| s.to_string().to_lowercase())
        .collect();
    let groups = c
        .groups
        .iter()
        .filter(|(_, g)| states.is_empty() || states.contains(&g.state.name().to_lowercase()))
        .map(|(id, g)| {
            ListedGroup::default()
                .with_group_id(kafka_protocol::messages::GroupId(sb(id.as_str())))
                .with_protocol_type(sb(g.protocol_type.clone()))
                .with_group_state(sb(g.state.name()))
                .with_group_type(sb("classic"))
        })
        .collect();
    // Only loaded partitions' groups are in memory, so only they are listed; while any owned
    // partition still loads the list is incomplete, and says so (as Kafka's does).
    let code = if c.is_loading() {
        ErrorCode::COORDINATOR_LOAD_IN_PROGRESS
    } else {
        ErrorCode::NONE
    };
    b.respond(
        to,
        Some(ResponseKind::ListGroups(
            ListGroupsResponse::default()
                .with_error_code(code.into())
                .with_groups(groups),
        )),
    );
    true
}

pub(super) fn delete_groups(
    c: &mut Coordinator,
    b: &mut Rt,
    to: ReplyTo,
    r: DeleteGroupsRequest,
) -> bool {
    let mut resp = DeleteGroupsResponse::default();
    for gid in r.groups_names {
        let name = GroupId(gid.0.to_string());
        let code = match (c.serves(name.as_str()), c.groups.get(&name)) {
            (Err(code), _) => code,
            (Ok(()), None) if !c.offsets.contains_key(&name) => ErrorCode::GROUP_ID_NOT_FOUND,
            (Ok(()), Some(g)) if g.state != GroupState::Empty => ErrorCode::NON_EMPTY_GROUP,
            (Ok(()), _) => {
                let mut records: Vec<GroupRecord> = c
                    .offsets
                    .get(&name)
                    .map(|o| {
                        o.keys()
                            .map(|tp| GroupRecord::Offset {
                                group: name.0.clone(),
                                topic: tp.topic.clone(),
                                partition: tp.partition.0,
                                value: None,
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                records.push(GroupRecord::Group {
                    group: name.0.clone(),
                    value: None,
                });
                commit_records(c, b, &name, records, None);
                // Deleting replays at once: the group and its offsets are gone.
                assert!(!c.groups.contains_key(&name));
                b.log(LogLevel::Info, format!("group {name} deleted"));
                ErrorCode::NONE
            }
        };
        resp.results.push(
            delete_groups_response::DeletableGroupResult::default()
                .with_group_id(gid)
                .with_error_code(code.into()),
        );
    }
    b.respond(to, Some(ResponseKind::DeleteGroups(resp)));
    true
}
