//! CreatePartitions (KIP-195): grow a topic's partition count.
//!
//! Kafka never shrinks a topic: records are placed by `hash(key) % partitions`, so removing a
//! partition would strand its records and reshuffle every key. Growing also moves keys (the
//! reason operators add partitions rarely), but loses nothing. A request for fewer partitions
//! than the topic has, or the same number, is refused with INVALID_PARTITIONS, as Kafka does.
//!
//! The new partitions are created on storage (directory, `partition.meta`, first segment)
//! before the answer. Each new partition's metadata says the topic has at least `index + 1`
//! partitions and they are created in order, so a crash in the middle leaves a topic with a
//! prefix of the new partitions, never a hole that recovery would take for a lost directory.

use super::*;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;

impl Broker {
    pub(in crate::broker) fn create_partitions(&mut self, to: ReplyTo, r: CreatePartitionsRequest) {
        if self.config.kraft {
            return self.kraft_create_partitions(to, r);
        }
        let id = self.next_pending;
        self.next_pending += 1;
        let mut response = CreatePartitionsResponse::default();
        let mut outstanding = BTreeMap::new();
        let requested = r.topics.len();
        let mut seen = BTreeSet::new();
        for t in &r.topics {
            let name = name_of(&t.name.0);
            let mut res = CreatePartitionsTopicResult::default().with_name(t.name.clone());
            let duplicate = !seen.insert(name.clone());
            match self.check_create_partitions(&name, t, duplicate) {
                Err(e) => {
                    res.error_code = e.code.into();
                    res.error_message = Some(sb(e.message));
                }
                Ok(()) if r.validate_only => {}
                Ok(()) => {
                    let ops = self.add_partitions(&name, t.count, id);
                    outstanding.insert(name, ops);
                }
            }
            response.results.push(res);
        }
        assert_eq!(response.results.len(), requested, "every topic is answered");
        self.answer_when_durable(
            id,
            to,
            ResponseKind::CreatePartitions(response),
            outstanding,
        );
    }

    fn check_create_partitions(
        &self,
        name: &str,
        t: &CreatePartitionsTopic,
        duplicate: bool,
    ) -> Result<(), ClientError> {
        let refuse = |code, message: String| Err(ClientError::new(code, message));
        let Some(topic) = self.topics.get(name) else {
            return refuse(
                ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
                format!("unknown topic {name}"),
            );
        };
        let current = topic.partitions.len() as i32;
        let max = self.config.partitions_per_topic_max;
        if duplicate {
            return refuse(
                ErrorCode::INVALID_REQUEST,
                format!("topic {name} appears twice in the request"),
            );
        }
        if topic.internal {
            return refuse(
                ErrorCode::INVALID_REQUEST,
                format!("the partitions of internal topic {name} cannot be changed"),
            );
        }
        if t.count < current {
            return refuse(
                ErrorCode::INVALID_PARTITIONS,
                format!(
                    "topic {name} has {current} partitions, more than the requested {}; \
                     partitions can only be added",
                    t.count
                ),
            );
        }
        if t.count == current {
            return refuse(
                ErrorCode::INVALID_PARTITIONS,
                format!("topic {name} already has {current} partitions"),
            );
        }
        if t.count > max {
            return refuse(
                ErrorCode::INVALID_PARTITIONS,
                format!("partition count {} is above the limit {max}", t.count),
            );
        }
        // Null and empty both mean "let the broker place them".
        if let Some(assignments) = t.assignments.as_ref().filter(|a| !a.is_empty()) {
            // One broker: the only valid assignment of a new partition is this broker alone.
            let me = self.config.broker_id;
            let valid = assignments.len() as i32 == t.count - current
                && assignments
                    .iter()
                    .all(|a| a.broker_ids.len() == 1 && a.broker_ids[0].0 == me.0);
            if !valid {
                return refuse(
                    ErrorCode::INVALID_REPLICA_ASSIGNMENT,
                    format!(
                        "each of the {} new partitions must be assigned to broker {me} alone",
                        t.count - current
                    ),
                );
            }
        }
        Ok(())
    }

    /// Grow `name` to `count` partitions in memory and issue the storage requests that create
    /// the new ones, in order. Returns the number of storage operations issued.
    fn add_partitions(&mut self, name: &str, count: i32, waiter: u64) -> usize {
        let (id, settings, current) = {
            let t = &self.topics[name];
            (t.id, t.settings.clone(), t.partitions.len() as i32)
        };
        assert!(current < count && count <= self.config.partitions_per_topic_max);
        let mut ops = 0;
        for i in current..count {
            let meta = PartitionMeta {
                topic: name.to_string(),
                topic_id: id,
                partition: i,
                partition_count: i + 1,
                settings: settings.clone(),
                log_start_offset: 0,
            };
            let p = self.create_partition_files(&meta, Some(waiter));
            ops += 2;
            self.topics.get_mut(name).unwrap().partitions.push(p);
        }
        // Postcondition: the topic has the partitions asked for, the new ones empty.
        let t = &self.topics[name];
        assert_eq!(t.partitions.len() as i32, count);
        assert!(t.partitions[current as usize..]
            .iter()
            .all(|p| p.log.log_end_offset() == 0));
        self.log(
            LogLevel::Info,
            format!("topic {name} grew from {current} to {count} partitions"),
        );
        ops
    }
}
