//! Read-only descriptions for operators' tools: DescribeCluster (KIP-700), DescribeLogDirs
//! (KIP-113) and DescribeProducers (KIP-664).
//!
//! * **DescribeCluster** answers what Metadata answers about brokers, without topics: the
//!   cluster id, the controller and each broker's address. AdminClients use it for
//!   `describe_cluster()` instead of a Metadata request for every topic.
//! * **DescribeLogDirs** reports, per log directory, the size on storage of each partition
//!   (segment files, headers included) and its lag behind the high watermark. gregor keeps
//!   every partition in one data directory; the core does not know its path, so the directory
//!   is named [`LOG_DIR_NAME`], and its total and usable bytes are −1 (unknown), as Kafka
//!   reports them when it cannot tell.
//! * **DescribeProducers** lists the idempotent producers a partition remembers (the state
//!   that lets it drop a retried batch as a duplicate): id, epoch and last sequence. gregor has
//!   no transactions, so the coordinator epoch and transaction start offset are −1, and the
//!   last batch's timestamp is not kept (−1).

use super::*;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};

/// The name DescribeLogDirs gives gregor's one data directory.
pub const LOG_DIR_NAME: &str = "gregor-data";

/// DescribeCluster's endpoint types (KIP-919): brokers' listeners or controllers'.
const ENDPOINT_BROKERS: i8 = 1;

impl Broker {
    pub(in crate::broker) fn describe_cluster(&mut self, to: ReplyTo, r: DescribeClusterRequest) {
        if self.config.kraft {
            return self.kraft_describe_cluster(to, r);
        }
        let me = self.config.broker_id;
        let mut resp = DescribeClusterResponse::default()
            .with_endpoint_type(ENDPOINT_BROKERS)
            .with_cluster_id(sb(self.cluster_id_string()))
            .with_controller_id(me.into())
            // i32::MIN: "not asked for"; gregor has no ACLs, so there is nothing to report
            // when it is asked either.
            .with_cluster_authorized_operations(i32::MIN);
        if r.endpoint_type != ENDPOINT_BROKERS {
            resp.error_code = ErrorCode::INVALID_REQUEST.into();
            resp.error_message = Some(sb(format!(
                "endpoint type {} is not served: this is a broker (type 1)",
                r.endpoint_type
            )));
        } else {
            resp.brokers.push(
                DescribeClusterBroker::default()
                    .with_broker_id(me.into())
                    .with_host(sb(self.config.advertised_host.clone()))
                    .with_port(self.config.advertised_port),
            );
        }
        assert!(resp.brokers.len() <= 1, "a single broker describes itself");
        assert_eq!(resp.error_code == 0, resp.brokers.len() == 1);
        self.respond(to, Some(ResponseKind::DescribeCluster(resp)));
    }

    pub(in crate::broker) fn describe_log_dirs(&mut self, to: ReplyTo, r: DescribeLogDirsRequest) {
        // `None` asks for every partition; otherwise the named ones this broker has (unknown
        // ones are left out, as Kafka leaves them out).
        let wanted: Option<BTreeMap<String, Vec<i32>>> = r.topics.map(|ts| {
            ts.into_iter()
                .map(|t| (name_of(&t.topic.0), t.partitions))
                .collect()
        });
        let mut dir = DescribeLogDirsResult::default()
            .with_log_dir(sb(LOG_DIR_NAME))
            .with_total_bytes(-1)
            .with_usable_bytes(-1);
        for (name, t) in &self.topics {
            let picked: Vec<usize> = match &wanted {
                None => (0..t.partitions.len()).collect(),
                Some(w) => match w.get(name) {
                    None => continue,
                    Some(ps) => ps
                        .iter()
                        .filter_map(|p| usize::try_from(*p).ok())
                        .filter(|p| *p < t.partitions.len())
                        .collect(),
                },
            };
            let partitions: Vec<DescribeLogDirsPartition> = picked
                .into_iter()
                .map(|i| {
                    let p = &t.partitions[i];
                    assert!(p.log.log_start_offset() <= p.log.log_end_offset());
                    DescribeLogDirsPartition::default()
                        .with_partition_index(i as i32)
                        .with_partition_size(p.log.size_bytes() as i64)
                        .with_offset_lag((p.log.log_end_offset() - p.high_watermark).max(0))
                })
                .collect();
            if !partitions.is_empty() {
                dir.topics.push(
                    DescribeLogDirsTopic::default()
                        .with_name(TopicName(sb(name.clone())))
                        .with_partitions(partitions),
                );
            }
        }
        let resp = DescribeLogDirsResponse::default().with_results(vec![dir]);
        self.respond(to, Some(ResponseKind::DescribeLogDirs(resp)));
    }

    pub(in crate::broker) fn describe_producers(
        &mut self,
        to: ReplyTo,
        r: DescribeProducersRequest,
    ) {
        let mut resp = DescribeProducersResponse::default();
        for t in r.topics {
            let name = name_of(&t.name.0);
            let mut tr = TopicResponse::default().with_name(t.name.clone());
            for index in t.partition_indexes {
                let mut pr = PartitionResponse::default().with_partition_index(index);
                let part = self
                    .topics
                    .get(&name)
                    .and_then(|t| t.partitions.get(usize::try_from(index).ok()?));
                let refused = self.serve_check(&name, index, Serve::Read).err();
                match part {
                    _ if refused.is_some() => {
                        let e = refused.expect("checked");
                        pr.error_code = e.code.into();
                        pr.error_message = Some(sb(e.message));
                    }
                    None => {
                        pr.error_code = ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.into();
                        pr.error_message = Some(sb(format!("unknown partition {name}-{index}")));
                    }
                    Some(p) => {
                        for (id, e) in p.producers.iter() {
                            assert!(e.batches.len() <= crate::producer::BATCHES_REMEMBERED);
                            let last_sequence = e.batches.back().map_or(-1, |b| b.last_seq);
                            pr.active_producers.push(
                                ProducerState::default()
                                    .with_producer_id(id.into())
                                    .with_producer_epoch(e.epoch as i32)
                                    .with_last_sequence(last_sequence)
                                    .with_last_timestamp(-1)
                                    .with_coordinator_epoch(-1)
                                    .with_current_txn_start_offset(-1),
                            );
                        }
                    }
                }
                tr.partitions.push(pr);
            }
            resp.topics.push(tr);
        }
        self.respond(to, Some(ResponseKind::DescribeProducers(resp)));
    }
}
