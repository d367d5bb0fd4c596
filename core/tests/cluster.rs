//! The metadata records and the image (core/src/cluster/): what a broker would see if it replayed
//! these records. A scripted cluster life (brokers join and are fenced, a topic is created, its
//! leader moves, it is deleted), the refusals a replay must make, and a property test that
//! replays random record sequences and checks, after each record, what every client of the image
//! relies on: leader ∈ ISR ⊆ replicas, the leader epoch rises exactly when the leader changes,
//! the partition epoch rises on every change, a refused record changes nothing, and a snapshot
//! of the image rebuilds it.

use gregor_core::cluster::records::{
    Endpoint, PartitionChange, PartitionRecord, RegisterBroker, RECORD_VERSION,
};
use gregor_core::cluster::{
    decode, BrokerEpoch, BrokerId, DecodeError, LeaderChange, MetadataImage, MetadataRecord,
    ReplayError, TopicId,
};
use proptest::prelude::*;

fn register(id: i32, epoch: i64) -> MetadataRecord {
    MetadataRecord::RegisterBroker(RegisterBroker {
        broker_id: BrokerId(id),
        incarnation_id: [id as u8; 16],
        broker_epoch: BrokerEpoch(epoch),
        endpoints: vec![Endpoint {
            name: "PLAINTEXT".into(),
            host: "127.0.0.1".into(),
            port: 9092 + id as u16,
        }],
        rack: None,
        fenced: true,
        in_controlled_shutdown: false,
    })
}

fn b(ids: &[i32]) -> Vec<BrokerId> {
    ids.iter().map(|i| BrokerId(*i)).collect()
}

/// Replays records at offsets 0, 1, 2, ... and returns the image.
fn replay_all(records: &[MetadataRecord]) -> MetadataImage {
    let mut image = MetadataImage::new();
    for (o, r) in records.iter().enumerate() {
        image
            .replay(o as i64, r)
            .unwrap_or_else(|e| panic!("record {o} {r:?}: {e}"));
    }
    image
}

#[test]
fn a_cluster_life_replays_into_the_image() {
    let t = TopicId([7; 16]);
    let mut records = vec![
        MetadataRecord::FeatureLevel {
            name: "metadata.version".into(),
            level: 21,
        },
        register(1, 1),
        register(2, 2),
        register(3, 3),
    ];
    for id in 1..=3 {
        records.push(MetadataRecord::BrokerRegistrationChange {
            broker_id: BrokerId(id),
            broker_epoch: BrokerEpoch(id as i64),
            fenced: Some(false),
            in_controlled_shutdown: None,
        });
    }
    records.push(MetadataRecord::Topic {
        name: "orders".into(),
        topic_id: t,
    });
    for p in 0..2 {
        records.push(MetadataRecord::Partition(PartitionRecord {
            topic_id: t,
            partition: p,
            replicas: b(&[1 + p, 2 + p]),
            isr: b(&[1 + p, 2 + p]),
            leader: Some(BrokerId(1 + p)),
            leader_epoch: 0,
            partition_epoch: 0,
        }));
    }
    let mut image = replay_all(&records);
    assert_eq!(image.offset(), records.len() as i64 - 1);
    assert_eq!(image.feature("metadata.version"), Some(21));
    assert!(image.brokers().values().all(|b| !b.fenced));
    assert_eq!(image.topic_id("orders"), Some(t));
    let p0 = image.partition(t, 0).unwrap();
    assert_eq!(
        (p0.leader, p0.leader_epoch, p0.partition_epoch),
        (Some(BrokerId(1)), 0, 0)
    );

    // Broker 1 is fenced; the controller shrinks the ISR and moves the leader to 2.
    let mut o = image.offset();
    let mut next = |image: &mut MetadataImage, r: MetadataRecord| {
        o += 1;
        image.replay(o, &r)
    };
    next(
        &mut image,
        MetadataRecord::BrokerRegistrationChange {
            broker_id: BrokerId(1),
            broker_epoch: BrokerEpoch(1),
            fenced: Some(true),
            in_controlled_shutdown: None,
        },
    )
    .unwrap();
    next(
        &mut image,
        MetadataRecord::PartitionChange(PartitionChange {
            topic_id: t,
            partition: 0,
            isr: Some(b(&[2])),
            leader: LeaderChange::To(BrokerId(2)),
            replicas: None,
        }),
    )
    .unwrap();
    let p0 = image.partition(t, 0).unwrap();
    assert_eq!(
        (p0.leader, p0.leader_epoch, p0.partition_epoch),
        (Some(BrokerId(2)), 1, 1)
    );
    assert_eq!(p0.replicas, b(&[1, 2]), "replicas unchanged");
    // Broker 1 catches up and rejoins the ISR: a new partition epoch, the same leader epoch.
    next(
        &mut image,
        MetadataRecord::PartitionChange(PartitionChange {
            topic_id: t,
            partition: 0,
            isr: Some(b(&[2, 1])),
            leader: LeaderChange::Unchanged,
            replicas: None,
        }),
    )
    .unwrap();
    let p0 = image.partition(t, 0).unwrap();
    assert_eq!((p0.leader_epoch, p0.partition_epoch), (1, 2));

    // A snapshot of the image rebuilds it.
    let snap = image.to_records();
    let back = MetadataImage::load_snapshot(image.offset() + 1, &snap).unwrap();
    assert_eq!(back, image);

    // Broker 1 restarts: a new incarnation, a new epoch; changes naming the old one are stale.
    let epoch = image.offset() + 1;
    next(&mut image, register(1, epoch)).unwrap();
    let stale = next(
        &mut image,
        MetadataRecord::BrokerRegistrationChange {
            broker_id: BrokerId(1),
            broker_epoch: BrokerEpoch(1),
            fenced: Some(false),
            in_controlled_shutdown: None,
        },
    );
    assert_eq!(
        stale,
        Err(ReplayError::StaleBrokerEpoch {
            broker: BrokerId(1),
            record: BrokerEpoch(1),
            registered: BrokerEpoch(epoch),
        })
    );
    assert!(
        image.broker(BrokerId(1)).unwrap().fenced,
        "a new incarnation starts fenced"
    );

    next(&mut image, MetadataRecord::RemoveTopic { topic_id: t }).unwrap();
    assert_eq!(image.topic_id("orders"), None);
    assert!(image.topics().is_empty());
}

#[test]
fn records_that_do_not_fit_are_refused_and_change_nothing() {
    let t = TopicId([1; 16]);
    let base = [
        register(1, 0),
        register(2, 1),
        MetadataRecord::Topic {
            name: "t".into(),
            topic_id: t,
        },
    ];
    let image = replay_all(&base);
    let partition = |partition, replicas: &[i32], isr: &[i32], leader: Option<i32>| {
        MetadataRecord::Partition(PartitionRecord {
            topic_id: t,
            partition,
            replicas: b(replicas),
            isr: b(isr),
            leader: leader.map(BrokerId),
            leader_epoch: 0,
            partition_epoch: 0,
        })
    };
    let refused = [
        (
            partition(0, &[1, 2], &[2], Some(1)),
            "leader outside the ISR",
        ),
        (
            partition(0, &[1], &[1, 2], Some(1)),
            "ISR outside the replicas",
        ),
        (partition(0, &[1, 1], &[1], Some(1)), "a repeated replica"),
        (partition(0, &[1], &[], None), "an empty ISR"),
        (
            partition(1, &[1], &[1], Some(1)),
            "a gap before partition 1",
        ),
        (
            MetadataRecord::Topic {
                name: "t".into(),
                topic_id: TopicId([2; 16]),
            },
            "a second topic named t",
        ),
        (register(1, 0), "a registration not newer"),
        (register(3, 99), "a broker epoch after its own offset"),
        (
            MetadataRecord::UnregisterBroker {
                broker_id: BrokerId(3),
                broker_epoch: BrokerEpoch(0),
            },
            "an unknown broker",
        ),
        (
            MetadataRecord::PartitionChange(PartitionChange {
                topic_id: t,
                partition: 0,
                isr: None,
                leader: LeaderChange::NoLeader,
                replicas: None,
            }),
            "a change to a partition that does not exist",
        ),
    ];
    for (r, why) in refused {
        let mut after = image.clone();
        assert!(after.replay(3, &r).is_err(), "{why}: {r:?} was accepted");
        assert_eq!(after, image, "{why}: a refused record changed the image");
    }
    let mut after = image.clone();
    assert!(matches!(
        after.replay(2, &MetadataRecord::NoOp),
        Err(ReplayError::OffsetNotAfter { .. })
    ));
}

#[test]
fn a_frame_is_versioned_and_checksummed() {
    let r = register(4, 17);
    let frame = r.encode();
    assert_eq!(frame[0], RECORD_VERSION);
    assert_eq!(decode(&frame), Ok(r.clone()));
    assert_eq!(r.api_key(), 0, "Kafka's RegisterBrokerRecord");
    let mut flipped = frame.clone();
    *flipped.last_mut().unwrap() ^= 1;
    assert!(matches!(
        decode(&flipped),
        Err(DecodeError::Checksum { .. })
    ));
    let mut future = frame.clone();
    future[0] = RECORD_VERSION + 1;
    assert_eq!(
        decode(&future),
        Err(DecodeError::UnknownVersion(RECORD_VERSION + 1))
    );
    assert_eq!(decode(&frame[..3]), Err(DecodeError::BadLength(3)));
}

// ------------------------------------------------------------------ property test

const TOPIC_NAMES: [&str; 3] = ["a", "b", "c"];

/// A record to replay, with its references left to resolve against the image it meets (so most
/// of the random records fit and change something, and some deliberately do not).
#[derive(Clone, Debug)]
enum Op {
    Register {
        broker: i32,
        fenced: bool,
    },
    Unregister {
        broker: i32,
        stale: bool,
    },
    Change {
        broker: i32,
        fenced: Option<bool>,
        shutdown: Option<bool>,
        stale: bool,
    },
    Topic {
        name: usize,
        id: u8,
    },
    Partition {
        topic: u8,
        skip: i32,
        replicas: Vec<i32>,
        isr_mask: u8,
        leader: Option<usize>,
    },
    PartitionChange {
        topic: u8,
        partition: i32,
        isr_mask: Option<u8>,
        leader: Option<Option<usize>>,
        replicas: Option<Vec<i32>>,
    },
    RemoveTopic {
        topic: u8,
    },
    Feature {
        level: i16,
    },
    Nothing,
}

fn op() -> impl Strategy<Value = Op> {
    let broker = 0..4i32;
    let replicas = proptest::collection::vec(0..5i32, 1..4);
    prop_oneof![
        1 => (broker.clone(), any::<bool>()).prop_map(|(broker, fenced)| Op::Register { broker, fenced }),
        1 => (broker.clone(), any::<bool>()).prop_map(|(broker, stale)| Op::Unregister { broker, stale }),
        1 => (broker, any::<Option<bool>>(), any::<Option<bool>>(), proptest::bool::weighted(0.2))
            .prop_map(|(broker, fenced, shutdown, stale)| Op::Change { broker, fenced, shutdown, stale }),
        1 => (0..3usize, 0..4u8).prop_map(|(name, id)| Op::Topic { name, id }),
        3 => (0..4u8, prop_oneof![4 => Just(0), 1 => 1..3i32], replicas.clone(), any::<u8>(), any::<Option<usize>>())
            .prop_map(|(topic, skip, replicas, isr_mask, leader)| Op::Partition { topic, skip, replicas, isr_mask, leader }),
        4 => (0..4u8, 0..3i32, any::<Option<u8>>(), any::<Option<Option<usize>>>(), proptest::option::weighted(0.2, replicas))
            .prop_map(|(topic, partition, isr_mask, leader, replicas)| Op::PartitionChange { topic, partition, isr_mask, leader, replicas }),
        1 => (0..4u8).prop_map(|topic| Op::RemoveTopic { topic }),
        1 => (0..3i16).prop_map(|level| Op::Feature { level }),
        1 => Just(Op::Nothing),
    ]
}

/// The members of `of` picked by the bits of `mask` (bit i picks `of[i]`).
fn pick(of: &[BrokerId], mask: u8) -> Vec<BrokerId> {
    of.iter()
        .enumerate()
        .filter(|(i, _)| mask & (1 << i) != 0)
        .map(|(_, b)| *b)
        .collect()
}

fn resolve(op: &Op, image: &MetadataImage, offset: i64) -> MetadataRecord {
    let epoch_of = |broker: i32, stale: bool| {
        let e = image
            .broker(BrokerId(broker))
            .map_or(0, |r| r.broker_epoch.0);
        BrokerEpoch(if stale { e - 1 } else { e })
    };
    match op.clone() {
        Op::Register { broker, fenced } => {
            let mut r = register(broker, offset);
            if let MetadataRecord::RegisterBroker(reg) = &mut r {
                reg.fenced = fenced;
            }
            r
        }
        Op::Unregister { broker, stale } => MetadataRecord::UnregisterBroker {
            broker_id: BrokerId(broker),
            broker_epoch: epoch_of(broker, stale),
        },
        Op::Change {
            broker,
            fenced,
            shutdown,
            stale,
        } => MetadataRecord::BrokerRegistrationChange {
            broker_id: BrokerId(broker),
            broker_epoch: epoch_of(broker, stale),
            fenced,
            in_controlled_shutdown: shutdown,
        },
        Op::Topic { name, id } => MetadataRecord::Topic {
            name: TOPIC_NAMES[name].into(),
            topic_id: TopicId([id; 16]),
        },
        Op::Partition {
            topic,
            skip,
            replicas,
            isr_mask,
            leader,
        } => {
            let topic_id = TopicId([topic; 16]);
            let next = image
                .topics()
                .get(&topic_id)
                .map_or(0, |t| t.partitions.len() as i32);
            let replicas = b(&replicas);
            let isr = pick(&replicas, isr_mask);
            MetadataRecord::Partition(PartitionRecord {
                topic_id,
                partition: next + skip,
                leader: leader.and_then(|i| isr.get(i % isr.len().max(1)).copied()),
                replicas,
                isr,
                leader_epoch: 0,
                partition_epoch: 0,
            })
        }
        Op::PartitionChange {
            topic,
            partition,
            isr_mask,
            leader,
            replicas,
        } => {
            let topic_id = TopicId([topic; 16]);
            let current = image.partition(topic_id, partition);
            let replicas = replicas.map(|r| b(&r));
            let base = replicas
                .clone()
                .or_else(|| current.map(|c| c.replicas.clone()))
                .unwrap_or_default();
            let isr = isr_mask.map(|m| pick(&base, m));
            let isr_now = isr
                .clone()
                .or_else(|| current.map(|c| c.isr.clone()))
                .unwrap_or_default();
            let leader = match leader {
                None => LeaderChange::Unchanged,
                Some(None) => LeaderChange::NoLeader,
                Some(Some(i)) => isr_now
                    .get(i % isr_now.len().max(1))
                    .map_or(LeaderChange::NoLeader, |b| LeaderChange::To(*b)),
            };
            MetadataRecord::PartitionChange(PartitionChange {
                topic_id,
                partition,
                isr,
                leader,
                replicas,
            })
        }
        Op::RemoveTopic { topic } => MetadataRecord::RemoveTopic {
            topic_id: TopicId([topic; 16]),
        },
        Op::Feature { level } => MetadataRecord::FeatureLevel {
            name: "metadata.version".into(),
            level,
        },
        Op::Nothing => MetadataRecord::NoOp,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_record_sequences_keep_the_image_consistent(ops in proptest::collection::vec(op(), 1..120)) {
        let mut image = MetadataImage::new();
        let mut offset = 0;
        let mut accepted = 0;
        for op in &ops {
            let record = resolve(op, &image, offset);
            // Every record survives its frame.
            prop_assert_eq!(decode(&record.encode()), Ok(record.clone()));
            let before = image.clone();
            match image.replay(offset, &record) {
                Err(_) => prop_assert_eq!(&image, &before, "a refused record changed nothing"),
                Ok(()) => {
                    accepted += 1;
                    prop_assert_eq!(image.offset(), offset);
                    if let MetadataRecord::PartitionChange(c) = &record {
                        let (old, new) = (
                            before.partition(c.topic_id, c.partition).unwrap(),
                            image.partition(c.topic_id, c.partition).unwrap(),
                        );
                        prop_assert_eq!(new.partition_epoch, old.partition_epoch + 1);
                        let moved = i32::from(new.leader != old.leader);
                        prop_assert_eq!(new.leader_epoch, old.leader_epoch + moved);
                    }
                }
            }
            for t in image.topics().values() {
                for p in t.partitions.values() {
                    prop_assert!(p.isr.iter().all(|i| p.replicas.contains(i)), "ISR ⊆ replicas");
                    prop_assert!(p.leader.is_none_or(|l| p.isr.contains(&l)), "leader ∈ ISR");
                }
            }
            offset += 1 + (offset % 3); // offsets skip (LeaderChange and other control records)
        }
        prop_assume!(accepted > 0);
        let back = MetadataImage::load_snapshot(image.offset() + 1, &image.to_records());
        prop_assert_eq!(back, Ok(image));
    }

    #[test]
    fn decoding_any_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = decode(&bytes);
    }
}
