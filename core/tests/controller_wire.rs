//! The broker-to-controller RPCs in Kafka's encoding (`gregor_core::cluster::wire`): every
//! request round trips through the wire at every served version into the same `Request`, every
//! answer back into the same reply or error code; refusals at decoding say why. Garbage is a
//! clean error under the broker's
//! allocator guard, in net/src/codec_props.rs (an array claiming billions of elements would
//! abort a test process without it).

use bytes::Bytes;
use gregor_core::acl::{
    AclBinding, AclFilter, Operation, PatternFilter, PatternType, Permission, ResourceType,
};
use gregor_core::cluster::elect_leaders::ElectionType;
use gregor_core::cluster::records::Endpoint;
use gregor_core::cluster::scram::ScramChange;
use gregor_core::cluster::wire::client::{self, encode_request_at};
use gregor_core::cluster::wire::{self, Call, Refusal, SERVED};
use gregor_core::cluster::{BrokerEpoch, BrokerId, Registration, Reply, Request, TopicId};
use gregor_core::kafka_protocol::messages::ApiKey;
use gregor_core::sasl::scram::ScramMechanism;
use proptest::prelude::*;
use std::collections::BTreeMap;

fn strip(frame: &Bytes) -> Bytes {
    let len = u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
    assert_eq!(len + 4, frame.len(), "the length prefix counts the rest");
    frame.slice(4..)
}

fn arb_name() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9._-]{1,40}"
}

fn arb_request() -> impl Strategy<Value = Request> {
    let endpoint = ("[A-Z]{1,10}", "[a-z0-9.]{1,20}", any::<u16>())
        .prop_map(|(name, host, port)| Endpoint { name, host, port });
    prop_oneof![
        (
            0..1000i32,
            any::<[u8; 16]>(),
            proptest::collection::vec(endpoint, 0..3),
            proptest::option::of("[a-z0-9]{1,8}")
        )
            .prop_map(|(id, inc, endpoints, rack)| {
                // Listener names are a map key in Kafka's schema: distinct.
                let mut seen = std::collections::BTreeSet::new();
                let endpoints = endpoints
                    .into_iter()
                    .filter(|e: &Endpoint| seen.insert(e.name.clone()))
                    .collect();
                Request::BrokerRegistration(Registration {
                    broker_id: BrokerId(id),
                    incarnation_id: inc,
                    endpoints,
                    rack,
                    // Derived, so the round trip covers both values.
                    log_dir_new: id % 2 == 0,
                })
            }),
        (0..1000i32, any::<i64>(), any::<i64>(), any::<bool>()).prop_map(|(id, e, o, w)| {
            Request::BrokerHeartbeat {
                broker_id: BrokerId(id),
                broker_epoch: BrokerEpoch(e),
                metadata_offset: o,
                want_shut_down: w,
            }
        }),
        (
            arb_name(),
            1..10_000i32,
            1..100i32,
            proptest::collection::btree_map("[a-z.]{1,20}", "[a-z0-9]{0,10}", 0..4)
        )
            .prop_map(|(name, partitions, replication_factor, configs)| {
                Request::CreateTopic {
                    name,
                    partitions,
                    replication_factor,
                    configs,
                }
            }),
        arb_name().prop_map(|name| Request::DeleteTopic { name }),
        (arb_name(), any::<i32>())
            .prop_map(|(name, count)| Request::CreatePartitions { name, count }),
        (0..1000i32, any::<i64>()).prop_map(|(id, e)| Request::AllocateProducerIds {
            broker_id: BrokerId(id),
            broker_epoch: BrokerEpoch(e),
        }),
        // Broker epochs of -1 in the ISR: v2 carries none, so only those survive every version.
        (
            0..1000i32,
            any::<i64>(),
            any::<[u8; 16]>(),
            (0..1000i32, any::<i32>(), any::<i32>()),
            proptest::collection::vec(0..1000i32, 0..5)
        )
            .prop_map(
                |(id, e, topic, (partition, le, pe), isr)| Request::AlterPartition {
                    broker_id: BrokerId(id),
                    broker_epoch: BrokerEpoch(e),
                    topic_id: TopicId(topic),
                    partition,
                    leader_epoch: le,
                    partition_epoch: pe,
                    new_isr: isr
                        .into_iter()
                        .map(|b| (BrokerId(b), BrokerEpoch(-1)))
                        .collect(),
                    // gregor's handover tag rides along on some (acks=N).
                    successor: (pe % 2 == 0).then_some(BrokerId(id)),
                }
            ),
        // IncrementalAlterConfigs: sets and deletes of distinct keys.
        (
            arb_name(),
            proptest::collection::btree_map(
                "[a-z.]{1,20}",
                proptest::option::of("[a-z0-9]{0,10}"),
                0..4
            )
        )
            .prop_map(|(name, changes)| Request::AlterConfigs {
                name,
                changes: changes.into_iter().collect(),
            }),
        // CreateAcls, one ACL; DeleteAcls, one filter (KIP-11).
        arb_acl().prop_map(Request::CreateAcl),
        arb_acl_filter().prop_map(Request::DeleteAcls),
        // ElectLeaders: one partition, either election type.
        (arb_name(), 0..1000i32, any::<bool>()).prop_map(|(topic, partition, unclean)| {
            Request::ElectLeader {
                topic,
                partition,
                kind: if unclean {
                    ElectionType::Unclean
                } else {
                    ElectionType::Preferred
                },
            }
        }),
        // AlterPartitionReassignments (KIP-455): one partition, a target or a cancel.
        (
            arb_name(),
            0..1000i32,
            proptest::option::of(proptest::collection::vec(0..1000i32, 0..5))
        )
            .prop_map(|(topic, partition, target)| Request::AlterReassignment {
                topic,
                partition,
                target: target.map(|t| t.into_iter().map(BrokerId).collect()),
            }),
        // AlterUserScramCredentials: one user's upsertion (well-formed, so the controller
        // wire's checks pass it) or deletion.
        (
            "[a-z]{1,12}",
            any::<bool>(),
            4096..=16384u32,
            proptest::collection::vec(any::<u8>(), 1..32)
        )
            .prop_map(|(user, sha512, iterations, salt)| {
                let mechanism = if sha512 {
                    ScramMechanism::Sha512
                } else {
                    ScramMechanism::Sha256
                };
                let change = if salt[0] % 3 == 0 {
                    ScramChange::Delete { mechanism }
                } else {
                    ScramChange::Upsert {
                        mechanism,
                        iterations,
                        salted_password: vec![salt[0]; mechanism.hash_len()],
                        salt,
                    }
                };
                Request::AlterScram { user, change }
            }),
    ]
}

fn arb_acl() -> impl Strategy<Value = AclBinding> {
    (
        prop::sample::select(ResourceType::ALL.to_vec()),
        arb_name(),
        any::<bool>(),
        "User:[a-z*]{1,8}",
        prop::sample::select(vec!["*", "10.0.0.1"]),
        prop::sample::select(Operation::ALL.to_vec()),
        any::<bool>(),
    )
        .prop_map(
            |(t, name, prefixed, principal, host, operation, allow)| AclBinding {
                resource_type: t,
                resource_name: if t == ResourceType::Cluster {
                    "kafka-cluster".into()
                } else {
                    name
                },
                pattern_type: if prefixed {
                    PatternType::Prefixed
                } else {
                    PatternType::Literal
                },
                principal,
                host: host.into(),
                operation,
                permission: if allow {
                    Permission::Allow
                } else {
                    Permission::Deny
                },
            },
        )
}

fn arb_acl_filter() -> impl Strategy<Value = AclFilter> {
    (
        proptest::option::of(prop::sample::select(ResourceType::ALL.to_vec())),
        proptest::option::of(arb_name()),
        prop::sample::select(vec![
            PatternFilter::Any,
            PatternFilter::Match,
            PatternFilter::Exactly(PatternType::Literal),
            PatternFilter::Exactly(PatternType::Prefixed),
        ]),
        proptest::option::of("User:[a-z]{1,8}"),
        proptest::option::of(prop::sample::select(Operation::ALL.to_vec())),
        proptest::option::of(prop::sample::select(vec![
            Permission::Allow,
            Permission::Deny,
        ])),
    )
        .prop_map(
            |(resource_type, resource_name, pattern, principal, operation, permission)| AclFilter {
                resource_type,
                resource_name,
                pattern,
                principal,
                host: None,
                operation,
                permission,
            },
        )
}

/// A reply of the request's kind.
fn arb_reply(r: &Request) -> BoxedStrategy<Reply> {
    match r {
        Request::BrokerRegistration(_) => (0..i64::MAX)
            .prop_map(|e| Reply::BrokerRegistration {
                broker_epoch: BrokerEpoch(e),
            })
            .boxed(),
        Request::BrokerHeartbeat { .. } => any::<(bool, bool)>()
            .prop_map(|(fenced, should_shut_down)| Reply::BrokerHeartbeat {
                fenced,
                should_shut_down,
            })
            .boxed(),
        Request::CreateTopic { .. } => any::<[u8; 16]>()
            .prop_map(|id| Reply::CreateTopic {
                topic_id: TopicId(id),
            })
            .boxed(),
        Request::DeleteTopic { .. } => Just(Reply::DeleteTopic).boxed(),
        Request::CreatePartitions { .. } => Just(Reply::CreatePartitions).boxed(),
        Request::AllocateProducerIds { .. } => (0..1i64 << 50, 1..100_000i64)
            .prop_map(|(first, count)| Reply::AllocateProducerIds { first, count })
            .boxed(),
        Request::AlterPartition { .. } => (
            proptest::option::of(0..1000i32),
            any::<i32>(),
            any::<i32>(),
            proptest::collection::vec(0..1000i32, 0..5),
        )
            .prop_map(|(l, le, pe, isr)| Reply::AlterPartition {
                leader: l.map(BrokerId),
                leader_epoch: le,
                partition_epoch: pe,
                isr: isr.into_iter().map(BrokerId).collect(),
            })
            .boxed(),
        // Not generated by `arb_request`: it travels as the quorum's own DescribeQuorum, whose
        // round trip `cluster::wire::quorum`'s unit test checks.
        Request::AlterConfigs { .. } => Just(Reply::AlterConfigs).boxed(),
        Request::ElectLeader { .. } => Just(Reply::ElectLeader).boxed(),
        Request::AlterReassignment { .. } => Just(Reply::AlterReassignment).boxed(),
        Request::CreateAcl(_) => Just(Reply::CreateAcl).boxed(),
        Request::DeleteAcls(_) => proptest::collection::vec(arb_acl(), 0..4)
            .prop_map(Reply::DeleteAcls)
            .boxed(),
        Request::AlterScram { .. } => Just(Reply::AlterScram).boxed(),
        Request::DescribeQuorum => unreachable!("DescribeQuorum is not served in SERVED"),
    }
}

fn arb_exchange() -> impl Strategy<Value = (Request, Result<Reply, Refusal>)> {
    arb_request().prop_flat_map(|r| {
        let refusal = (
            prop::sample::select(vec![
                3i16, 7, 17, 33, 36, 37, 38, 39, 40, 41, 77, 80, 83, 84, 85, 91, 92, 93, 101, 102,
            ]),
            "[a-z ]{0,30}",
        )
            .prop_map(|(code, message)| Err(Refusal { code, message }));
        let answer = prop_oneof![arb_reply(&r).prop_map(Ok), refusal];
        (Just(r), answer)
    })
}

fn versions(key: ApiKey) -> std::ops::RangeInclusive<i16> {
    let (lo, hi) = wire::served_range(key).unwrap();
    lo..=hi
}

/// What survives a response at `version`: the APIs without an error message lose it, and
/// CreateTopics before v7 has no topic id.
fn as_carried(key: ApiKey, version: i16, a: &Result<Reply, Refusal>) -> Result<Reply, Refusal> {
    match a {
        Ok(Reply::CreateTopic { .. }) if version < 7 => Ok(Reply::CreateTopic {
            topic_id: TopicId([0; 16]),
        }),
        Ok(r) => Ok(r.clone()),
        Err(r) => {
            let has_message = match key {
                ApiKey::CreateTopics | ApiKey::CreatePartitions => true,
                ApiKey::IncrementalAlterConfigs | ApiKey::ElectLeaders => true,
                ApiKey::AlterPartitionReassignments => true,
                ApiKey::CreateAcls | ApiKey::DeleteAcls => true,
                ApiKey::AlterUserScramCredentials => true,
                ApiKey::DeleteTopics => version >= 5,
                _ => false,
            };
            Err(Refusal {
                code: r.code,
                message: if has_message {
                    r.message.clone()
                } else {
                    String::new()
                },
            })
        }
    }
}

/// What a request says once carried at `version`: BrokerRegistration before v3 has no
/// `PreviousBrokerEpoch`, so the controller reads the log directory as new (KIP-966: as Kafka
/// reads a missing previous epoch as an unclean shutdown).
fn request_as_carried(r: &Request, version: i16) -> Request {
    match r {
        Request::BrokerRegistration(reg) if version < 3 => {
            Request::BrokerRegistration(Registration {
                log_dir_new: true,
                ..reg.clone()
            })
        }
        _ => r.clone(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_request_and_answer_round_trips_at_every_served_version(
        corr in any::<i32>(),
        (request, answer) in arb_exchange(),
    ) {
        let key = wire::api_of(&request);
        for v in versions(key) {
            let frame = encode_request_at(corr, "t", &request, v).unwrap();
            let decoded = wire::decode_request(strip(&frame)).unwrap();
            prop_assert_eq!(decoded.correlation_id, corr);
            prop_assert_eq!((decoded.api_key, decoded.version), (key, v));
            let Call::Controller(items) = &decoded.call else { panic!("{:?}", decoded.call) };
            prop_assert_eq!(items.len(), 1);
            prop_assert_eq!(items[0].request.as_ref(), Ok(&request_as_carried(&request, v)), "v{}", v);
            let response = wire::encode_response(&decoded, std::slice::from_ref(&answer)).unwrap();
            let body = strip(&response);
            prop_assert_eq!(client::response_correlation_id(&body), Some(corr));
            let back = client::decode_response_at(body, &request, v).unwrap();
            prop_assert_eq!(back, as_carried(key, v, &answer), "v{}", v);
        }
    }
}

#[test]
fn a_multi_topic_create_topics_is_one_request_per_topic_and_refusals_say_why() {
    use gregor_core::kafka_protocol::messages::create_topics_request::*;
    use gregor_core::kafka_protocol::messages::{CreateTopicsRequest, RequestHeader, TopicName};
    use gregor_core::kafka_protocol::protocol::{Encodable, StrBytes};
    let topic = |n: &str| {
        CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_string(n.into())))
            .with_num_partitions(-1)
            .with_replication_factor(-1)
    };
    let body = CreateTopicsRequest::default().with_topics(vec![
        topic("a"),
        topic("b").with_assignments(vec![CreatableReplicaAssignment::default()]),
        topic("a"),
    ]);
    let mut buf = bytes::BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(ApiKey::CreateTopics as i16)
        .with_request_api_version(7)
        .with_correlation_id(9)
        .encode(&mut buf, ApiKey::CreateTopics.request_header_version(7))
        .unwrap();
    body.encode(&mut buf, 7).unwrap();
    let r = wire::decode_request(buf.freeze()).unwrap();
    let Call::Controller(items) = &r.call else {
        panic!()
    };
    assert_eq!(
        items[0].request,
        Ok(Request::CreateTopic {
            name: "a".into(),
            partitions: 1,
            // -1 is the controller's to resolve (`default.replication.factor`).
            replication_factor: -1,
            configs: BTreeMap::new(),
        }),
        "-1 partitions takes gregor's default; -1 replicas the controller's"
    );
    let refusal = |i: usize| items[i].request.clone().unwrap_err();
    assert_eq!(refusal(1).code, 42);
    assert!(refusal(1).message.contains("assignments"));
    assert_eq!(refusal(2).code, 42);
    assert!(refusal(2).message.contains("more than once"));
}

#[test]
fn other_apis_and_versions_are_refused_and_api_versions_lists_the_listener() {
    let hb = Request::BrokerHeartbeat {
        broker_id: BrokerId(1),
        broker_epoch: BrokerEpoch(1),
        metadata_offset: 0,
        want_shut_down: false,
    };
    let mut frame = strip(&client::encode_request(1, "t", &hb).unwrap()).to_vec();
    frame[2..4].copy_from_slice(&9i16.to_be_bytes());
    assert!(
        wire::decode_request(Bytes::from(frame.clone())).is_err(),
        "v9"
    );
    frame[0..2].copy_from_slice(&(ApiKey::Produce as i16).to_be_bytes());
    assert!(wire::decode_request(Bytes::from(frame)).is_err(), "Produce");
    let table = wire::api_versions_table();
    for (k, _, _) in SERVED {
        assert!(table.iter().any(|(t, _, _)| t == k));
    }
    assert!(table.iter().any(|(k, _, _)| *k == ApiKey::DescribeQuorum));
}
