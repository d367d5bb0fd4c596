//! Round trips of the quorum's Kafka encoding (`gregor_core::raft::wire`): every message, the
//! record batches, DescribeQuorum; and that a flipped bit is an error. (Garbage from a peer is
//! decoded under the broker's allocator guard, in net/src/codec_props.rs.)

use bytes::Bytes;
use gregor_core::batch::BatchHeader;
use gregor_core::kafka_protocol::messages::ApiKey;
use gregor_core::raft::wire::*;
use gregor_core::raft::{
    Entry, Epoch, FetchResult, Message, NodeId, Record, SnapshotId, SnapshotResult,
};
use proptest::prelude::*;

/// Kafka's NOT_LEADER_OR_FOLLOWER.
const NOT_LEADER_OR_FOLLOWER: i16 = 6;

fn strip(frame: &Bytes) -> Bytes {
    let len = u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
    assert_eq!(len + 4, frame.len(), "the length prefix counts the rest");
    frame.slice(4..)
}

fn arb_epoch() -> impl Strategy<Value = Epoch> {
    (0..1000i32).prop_map(Epoch)
}
fn arb_node() -> impl Strategy<Value = NodeId> {
    (0..100i32).prop_map(NodeId)
}
fn arb_leader() -> impl Strategy<Value = Option<NodeId>> {
    proptest::option::of(arb_node())
}
fn arb_snapshot_id() -> impl Strategy<Value = SnapshotId> {
    (0..1i64 << 40, arb_epoch()).prop_map(|(end_offset, epoch)| SnapshotId { end_offset, epoch })
}
fn arb_entry() -> impl Strategy<Value = Entry> {
    let record = prop_oneof![
        arb_node().prop_map(|leader| Record::LeaderChange { leader }),
        proptest::collection::vec(any::<u8>(), 0..300).prop_map(|v| Record::Data(v.into())),
    ];
    ((0..4i32).prop_map(Epoch), record).prop_map(|(epoch, record)| Entry { epoch, record })
}
fn arb_entries() -> impl Strategy<Value = Vec<Entry>> {
    // Epochs never go down along a log.
    proptest::collection::vec(arb_entry(), 0..20).prop_map(|mut es| {
        es.sort_by_key(|e| e.epoch);
        es
    })
}

fn arb_request() -> impl Strategy<Value = Message> {
    prop_oneof![
        (arb_epoch(), arb_epoch(), 0..1i64 << 40).prop_map(|(epoch, last_epoch, end_offset)| {
            Message::Vote {
                epoch,
                last_epoch,
                end_offset,
            }
        }),
        arb_epoch().prop_map(|epoch| Message::BeginQuorumEpoch { epoch }),
        (arb_epoch(), proptest::collection::vec(arb_node(), 0..5))
            .prop_map(|(epoch, successors)| Message::EndQuorumEpoch { epoch, successors }),
        (arb_epoch(), -1..1i64 << 40, arb_epoch()).prop_map(
            |(epoch, fetch_offset, last_fetched_epoch)| Message::Fetch {
                epoch,
                fetch_id: 0,
                fetch_offset,
                last_fetched_epoch,
            }
        ),
        (arb_epoch(), arb_snapshot_id(), 0..1u64 << 40).prop_map(
            |(epoch, snapshot_id, position)| Message::FetchSnapshot {
                epoch,
                fetch_id: 0,
                snapshot_id,
                position,
            }
        ),
    ]
}

fn arb_fetch_result() -> impl Strategy<Value = FetchResult> {
    prop_oneof![
        (0..1i64 << 40, arb_entries()).prop_map(|(base_offset, entries)| {
            FetchResult::Entries {
                base_offset,
                entries,
            }
        }),
        (arb_epoch(), 0..1i64 << 40)
            .prop_map(|(epoch, end_offset)| FetchResult::Diverging { epoch, end_offset }),
        arb_snapshot_id().prop_map(|snapshot_id| FetchResult::Snapshot { snapshot_id }),
        Just(FetchResult::NotLeader),
    ]
}

fn arb_snapshot_result() -> impl Strategy<Value = SnapshotResult> {
    prop_oneof![
        (
            arb_snapshot_id(),
            proptest::collection::vec(any::<u8>(), 0..200),
            0..1u64 << 30,
            0..1u64 << 30
        )
            .prop_map(|(snapshot_id, bytes, position, extra)| {
                SnapshotResult::Chunk {
                    snapshot_id,
                    size: position + bytes.len() as u64 + extra,
                    position,
                    bytes: bytes.into(),
                }
            }),
        Just(SnapshotResult::NotFound),
        Just(SnapshotResult::NotLeader),
    ]
}

/// The request a response answers, and its message.
fn arb_exchange() -> impl Strategy<Value = (Message, Message)> {
    prop_oneof![
        (arb_epoch(), any::<bool>()).prop_map(|(epoch, granted)| (
            Message::Vote {
                epoch,
                last_epoch: Epoch(0),
                end_offset: 0
            },
            Message::VoteResponse { epoch, granted }
        )),
        (
            arb_epoch(),
            1..u64::MAX,
            arb_leader(),
            arb_fetch_result(),
            0..1i64 << 40
        )
            .prop_map(|(epoch, fetch_id, leader, result, high_watermark)| {
                let fetch_offset = match &result {
                    FetchResult::Entries { base_offset, .. } => *base_offset,
                    _ => 7,
                };
                (
                    Message::Fetch {
                        epoch,
                        fetch_id,
                        fetch_offset,
                        last_fetched_epoch: Epoch(0),
                    },
                    Message::FetchResponse {
                        epoch,
                        fetch_id,
                        leader,
                        result,
                        high_watermark,
                    },
                )
            }),
        (
            arb_epoch(),
            1..u64::MAX,
            arb_leader(),
            arb_snapshot_result()
        )
            .prop_map(|(epoch, fetch_id, leader, result)| (
                Message::FetchSnapshot {
                    epoch,
                    fetch_id,
                    snapshot_id: SnapshotId {
                        end_offset: 1,
                        epoch
                    },
                    position: 0
                },
                Message::FetchSnapshotResponse {
                    epoch,
                    fetch_id,
                    leader,
                    result,
                }
            )),
    ]
}

proptest! {
    #[test]
    fn requests_round_trip(from in arb_node(), corr in any::<i32>(), m in arb_request()) {
        let (frame, pending) = encode_request(from, corr, &m).unwrap();
        let req = decode_request(strip(&frame)).unwrap();
        prop_assert_eq!(req.correlation_id, corr);
        prop_assert_eq!(req.api_key, pending.api_key);
        prop_assert_eq!(req.body, Inbound::Raft { from, message: m });
    }

    #[test]
    fn responses_round_trip(from in arb_node(), corr in any::<i32>(), (req, resp) in arb_exchange()) {
        let (frame, pending) = encode_request(from, corr, &req).unwrap();
        let inbound = decode_request(strip(&frame)).unwrap();
        let out = encode_response(&inbound, &resp).unwrap();
        let body = strip(&out);
        prop_assert_eq!(response_correlation_id(&body).unwrap(), corr);
        prop_assert_eq!(decode_response(body, &pending).unwrap(), Some(resp));
    }

    #[test]
    fn acks_round_trip(from in arb_node(), e in arb_epoch(), leader in arb_leader(), end in any::<bool>()) {
        let m = if end {
            Message::EndQuorumEpoch { epoch: e, successors: vec![] }
        } else {
            Message::BeginQuorumEpoch { epoch: e }
        };
        let (frame, pending) = encode_request(from, 5, &m).unwrap();
        let inbound = decode_request(strip(&frame)).unwrap();
        let ack = encode_ack(&inbound, e, leader).unwrap();
        prop_assert_eq!(decode_response(strip(&ack), &pending).unwrap(), None);
    }

    #[test]
    fn entries_round_trip(base in 0..1i64 << 40, entries in arb_entries()) {
        let bytes = encode_entries(base, &entries);
        prop_assert_eq!(decode_entries(&bytes, base).unwrap(), entries);
    }

    #[test]
    fn describe_quorum_round_trips(
        version in 0..=2i16,
        leader in arb_leader(),
        epoch in arb_epoch(),
        hw in 0..1i64 << 40,
        ends in proptest::collection::vec((arb_node(), 0..1i64 << 40, -1..1i64 << 41), 0..5),
        is_leader in any::<bool>(),
    ) {
        let req = decode_request(strip(&encode_describe_quorum_request(9, version).unwrap())).unwrap();
        prop_assert_eq!(&req.body, &Inbound::DescribeQuorum);
        // v0 has no fetch times: they read back as -1.
        let voters: Vec<ReplicaStatus> = ends.iter().map(|(id, end, t)| ReplicaStatus {
            id: *id, log_end_offset: *end,
            last_fetch_ms: if version >= 1 { *t } else { -1 },
            last_caught_up_ms: -1,
        }).collect();
        let status = QuorumStatus { leader, epoch, high_watermark: hw, voters, observers: vec![] };
        let out = encode_describe_quorum_response(&req, &status, is_leader).unwrap();
        let (back, code) = decode_describe_quorum_response(strip(&out), version).unwrap();
        if is_leader {
            prop_assert_eq!(code, 0);
            prop_assert_eq!(back, status);
        } else {
            prop_assert_eq!(code, NOT_LEADER_OR_FOLLOWER);
            prop_assert_eq!((back.leader, back.epoch), (leader, epoch));
        }
    }

    /// A flipped bit anywhere in a batch is caught by its CRC or its length checks.
    #[test]
    fn a_flipped_bit_is_refused(entries in arb_entries(), at in any::<prop::sample::Index>(), bit in 0..8u8) {
        prop_assume!(!entries.is_empty());
        let mut bytes = encode_entries(0, &entries).to_vec();
        // Flip a bit of the first batch. Its base offset and epoch are not covered by the
        // CRC (Kafka rewrites them); a flipped base offset fails the offset check, and the
        // epoch is the leader's to set, so it is left alone.
        let (_, _, first) = read_batch(&bytes).unwrap();
        let i = at.index(first);
        prop_assume!(!(12..16).contains(&i));
        bytes[i] ^= 1 << bit;
        prop_assert!(decode_entries(&bytes, 0).is_err());
    }
}

#[test]
fn a_leader_change_is_a_control_batch_and_data_is_not() {
    let entries = vec![
        Entry {
            epoch: Epoch(3),
            record: Record::LeaderChange { leader: NodeId(2) },
        },
        Entry {
            epoch: Epoch(3),
            record: Record::Data(Bytes::from_static(b"frame")),
        },
    ];
    let bytes = encode_entries(10, &entries);
    let (base, first, size) = read_batch(&bytes).unwrap();
    assert_eq!((base, first.len()), (10, 1));
    let h = BatchHeader::parse(&bytes).unwrap();
    assert!(h.is_control());
    assert_eq!(
        h.partition_leader_epoch, 3,
        "the batch's epoch is the Raft epoch"
    );
    let h2 = BatchHeader::parse(&bytes[size..]).unwrap();
    assert!(!h2.is_control());
    assert_eq!(h2.base_offset, 11);
    assert!(decode_entries(&bytes, 9).is_err(), "offsets are checked");
}

#[test]
fn other_apis_and_versions_are_refused() {
    let (frame, _) =
        encode_request(NodeId(1), 1, &Message::BeginQuorumEpoch { epoch: Epoch(1) }).unwrap();
    let mut f = strip(&frame).to_vec();
    f[2..4].copy_from_slice(&1i16.to_be_bytes());
    assert!(decode_request(Bytes::from(f.clone())).is_err());
    f[0..2].copy_from_slice(&(ApiKey::Produce as i16).to_be_bytes());
    assert!(decode_request(Bytes::from(f)).is_err());
}
