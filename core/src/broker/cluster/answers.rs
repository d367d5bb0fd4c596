//! Metadata, DescribeCluster and FindCoordinator answered from the metadata image.

use super::*;

/// A broker as clients are told of it: id, host, port, rack.
type LiveBroker = (i32, String, i32, Option<String>);

/// How long a Metadata request that auto-creates topics waits for them to land in the image.
///
/// Kafka's broker answers at once (LEADER_NOT_AVAILABLE) and the client asks again after its
/// backoff: librdkafka waits a second, so the first produce to a new topic would take a second
/// longer than on the standalone broker, which created topics in the request. The controller
/// commits a new topic in milliseconds (at once in a one-voter quorum), so the answer waits
/// for it, up to this long, then says LEADER_NOT_AVAILABLE as Kafka does.
pub(super) const AUTO_CREATE_WAIT_MS: u64 = 1_000;

/// At most this many Metadata requests wait for auto-created topics; more are answered at once.
const METADATA_WAITERS_MAX: usize = 1_024;

/// A Metadata request waiting for the topics it auto-creates (see [`AUTO_CREATE_WAIT_MS`]).
#[derive(Debug)]
pub(super) struct ParkedMetadata {
    to: ReplyTo,
    version: i16,
    request: MetadataRequest,
    topics: Vec<String>,
    pub(super) deadline: Instant,
}

impl Broker {
    /// The brokers a client may talk to: every unfenced registered broker, with its first
    /// endpoint; before the first image, this broker alone.
    pub(super) fn live_brokers(&self) -> Vec<LiveBroker> {
        let Some(image) = self.kraft_image() else {
            let c = &self.config;
            return vec![(
                c.broker_id.0,
                c.advertised_host.clone(),
                c.advertised_port,
                None,
            )];
        };
        let live: Vec<LiveBroker> = image
            .brokers()
            .values()
            .filter(|b| !b.fenced)
            .filter_map(|b| {
                let e = b.endpoints.first()?;
                Some((b.broker_id.0, e.host.clone(), e.port as i32, b.rack.clone()))
            })
            .collect();
        // Postcondition: each broker once, in id order, none fenced.
        assert!(live.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(live
            .iter()
            .all(|b| image.broker(NodeId(b.0)).is_some_and(|r| !r.fenced)));
        live
    }

    /// What clients are told the controller is: like Kafka's KRaft brokers, a live broker
    /// picked at random (clients cannot reach the controllers; admin requests sent to this id
    /// are forwarded anyway). -1 when no broker is live.
    pub(super) fn controller_id_for_clients(&mut self, brokers: &[LiveBroker]) -> i32 {
        if brokers.is_empty() {
            return -1;
        }
        let i = self.prng.below(brokers.len() as u64) as usize;
        assert!(i < brokers.len());
        brokers[i].0
    }

    pub(in crate::broker) fn kraft_metadata(
        &mut self,
        to: ReplyTo,
        version: i16,
        r: MetadataRequest,
    ) {
        self.kraft_metadata_or_park(to, version, r, true);
    }

    /// Answer the Metadata requests whose auto-created topics have landed (or failed), or whose
    /// wait is over. Called after every step.
    pub(in crate::broker) fn release_parked_metadata(&mut self) {
        if self.kraft.metadata_waits.is_empty() {
            return;
        }
        let now = self.now;
        let creating = &self.kraft.creating;
        let (due, keep): (Vec<ParkedMetadata>, Vec<ParkedMetadata>) =
            std::mem::take(&mut self.kraft.metadata_waits)
                .into_iter()
                .partition(|p| p.deadline <= now || p.topics.iter().all(|t| !creating.contains(t)));
        self.kraft.metadata_waits = keep;
        for p in due {
            self.kraft_metadata_or_park(p.to, p.version, p.request, false);
        }
        // Postcondition: what still waits waits for a topic being created, within its time.
        assert!(self
            .kraft
            .metadata_waits
            .iter()
            .all(|p| p.deadline > now && p.topics.iter().any(|t| self.kraft.creating.contains(t))));
    }

    fn kraft_metadata_or_park(
        &mut self,
        to: ReplyTo,
        version: i16,
        r: MetadataRequest,
        may_park: bool,
    ) {
        let all = r
            .topics
            .as_ref()
            .is_none_or(|l| l.is_empty() && version == 0);
        let names: Vec<String> = match (&r.topics, self.kraft_image()) {
            (_, None) if all => Vec::new(),
            (_, Some(image)) if all => image
                .topics()
                .values()
                .filter(|t| !t.name.starts_with("__"))
                .map(|t| t.name.clone())
                .collect(),
            (Some(list), _) => list
                .iter()
                .filter_map(|t| t.name.as_ref().map(|n| name_of(&n.0)))
                .collect(),
            (None, _) => unreachable!("no list is `all`"),
        };
        let allow = r.allow_auto_topic_creation || version < 4;
        let asked = names.len();
        let mut topics = Vec::new();
        let mut creating = Vec::new();
        for name in names.iter().cloned() {
            let found = self
                .kraft_image()
                .and_then(|i| Some((i.topic_id(&name)?, i)))
                .map(|(id, image)| self.topic_metadata(image, id));
            if let Some(t) = found {
                topics.push(t);
                continue;
            }
            let valid = validate_topic_name(&name);
            let code = if valid.is_err() {
                ErrorCode::INVALID_TOPIC_EXCEPTION
            } else if allow && self.config.auto_create_topics && !name.starts_with("__") {
                self.create_in_background(&name, self.config.default_partitions);
                creating.push(name.clone());
                // Kafka's answer while an auto-created topic is being made: retry shortly.
                ErrorCode::LEADER_NOT_AVAILABLE
            } else {
                ErrorCode::UNKNOWN_TOPIC_OR_PARTITION
            };
            topics.push(
                MetadataResponseTopic::default()
                    .with_name(Some(TopicName(sb(name))))
                    .with_error_code(code.into()),
            );
        }
        // Every topic asked for is answered, in order.
        assert_eq!(topics.len(), asked);
        if may_park
            && !creating.is_empty()
            && self.kraft.metadata_waits.len() < METADATA_WAITERS_MAX
        {
            let deadline = self.now + crate::time::Duration::from_ms(AUTO_CREATE_WAIT_MS);
            self.kraft.metadata_waits.push(ParkedMetadata {
                to,
                version,
                request: r,
                topics: creating,
                deadline,
            });
            return;
        }
        let brokers = self.live_brokers();
        let controller = self.controller_id_for_clients(&brokers);
        assert!(
            self.kraft.image.is_some() || brokers.len() == 1,
            "alone before an image"
        );
        let resp = MetadataResponse::default()
            .with_brokers(
                brokers
                    .into_iter()
                    .map(|(id, host, port, rack)| {
                        MetadataResponseBroker::default()
                            .with_node_id(BrokerId(id))
                            .with_host(sb(host))
                            .with_port(port)
                            .with_rack(rack.map(sb))
                    })
                    .collect(),
            )
            .with_cluster_id(Some(sb(self.cluster_id_string())))
            .with_controller_id(BrokerId(controller))
            .with_topics(topics);
        self.respond(to, Some(ResponseKind::Metadata(resp)));
    }

    pub(super) fn topic_metadata(
        &self,
        image: &MetadataImage,
        id: crate::cluster::TopicId,
    ) -> MetadataResponseTopic {
        let t = &image.topics()[&id];
        let ids = |v: &[NodeId]| v.iter().map(|b| BrokerId(b.0)).collect::<Vec<_>>();
        let partitions = t
            .partitions
            .iter()
            .map(|(i, p)| {
                let code = if p.leader.is_some() {
                    ErrorCode::NONE
                } else {
                    ErrorCode::LEADER_NOT_AVAILABLE
                };
                // An offline partition is told as such; a leader is one of the replicas.
                assert_eq!(p.leader.is_none(), code == ErrorCode::LEADER_NOT_AVAILABLE);
                assert!(p.leader.is_none_or(|l| p.replicas.contains(&l)));
                MetadataResponsePartition::default()
                    .with_partition_index(*i)
                    .with_error_code(code.into())
                    .with_leader_id(BrokerId(p.leader.map_or(-1, |l| l.0)))
                    .with_leader_epoch(p.leader_epoch)
                    .with_replica_nodes(ids(&p.replicas))
                    .with_isr_nodes(ids(&p.isr))
                    .with_offline_replicas(ids(&offline_replicas(image, p)))
            })
            .collect::<Vec<_>>();
        assert_eq!(
            partitions.len(),
            t.partitions.len(),
            "every partition described"
        );
        MetadataResponseTopic::default()
            .with_name(Some(TopicName(sb(t.name.clone()))))
            .with_topic_id(TopicId(id.0).to_uuid())
            .with_is_internal(t.name.starts_with("__"))
            .with_partitions(partitions)
    }

    /// DescribeCluster from the image. Endpoint type 1 (brokers) lists the unfenced brokers,
    /// and from v2 the fenced ones too when the client sets `IncludeFencedBrokers` (KIP-1073),
    /// each with `IsFenced` and gregor's broker epoch in the [`BROKER_EPOCH_TAG`] tagged field.
    /// Endpoint type 2 (controllers, KIP-919) is UNSUPPORTED_ENDPOINT_TYPE from a broker, as
    /// Kafka's brokers answer: only a controller listener lists the controllers.
    ///
    /// [`BROKER_EPOCH_TAG`]: crate::cluster::wire::BROKER_EPOCH_TAG
    pub(in crate::broker) fn kraft_describe_cluster(
        &mut self,
        to: ReplyTo,
        r: DescribeClusterRequest,
    ) {
        use crate::cluster::wire::{BROKER_EPOCH_TAG, ENDPOINT_TYPE_BROKERS};
        /// Kafka's UNSUPPORTED_ENDPOINT_TYPE.
        const UNSUPPORTED_ENDPOINT_TYPE: i16 = 120;
        let brokers = self.live_brokers();
        let controller = self.controller_id_for_clients(&brokers);
        let mut resp = DescribeClusterResponse::default()
            .with_endpoint_type(ENDPOINT_TYPE_BROKERS)
            .with_cluster_id(sb(self.cluster_id_string()))
            .with_controller_id(BrokerId(controller))
            .with_cluster_authorized_operations(i32::MIN);
        if r.endpoint_type != ENDPOINT_TYPE_BROKERS {
            resp.error_code = UNSUPPORTED_ENDPOINT_TYPE;
            resp.error_message = Some(sb(format!(
                "endpoint type {} is not served: this is a broker (type 1); ask a controller \
                 listener for the controllers",
                r.endpoint_type
            )));
        } else {
            let fenced_too = to.api_version >= 2 && r.include_fenced_brokers;
            let Some(image) = self.kraft_image().cloned() else {
                // Before the first image: this broker alone, as Metadata says.
                resp.brokers = brokers
                    .into_iter()
                    .map(|(id, host, port, rack)| {
                        DescribeClusterBroker::default()
                            .with_broker_id(BrokerId(id))
                            .with_host(sb(host))
                            .with_port(port)
                            .with_rack(rack.map(sb))
                    })
                    .collect();
                self.respond(to, Some(ResponseKind::DescribeCluster(resp)));
                return;
            };
            resp.brokers = image
                .brokers()
                .values()
                .filter(|b| fenced_too || !b.fenced)
                .filter_map(|b| {
                    let e = b.endpoints.first()?;
                    let mut d = DescribeClusterBroker::default()
                        .with_broker_id(BrokerId(b.broker_id.0))
                        .with_host(sb(e.host.clone()))
                        .with_port(e.port.into())
                        .with_rack(b.rack.clone().map(sb))
                        .with_is_fenced(b.fenced);
                    d.unknown_tagged_fields.insert(
                        BROKER_EPOCH_TAG,
                        Bytes::copy_from_slice(&b.broker_epoch.0.to_be_bytes()),
                    );
                    Some(d)
                })
                .collect();
            // Postcondition: every unfenced broker is listed, a fenced one only if asked for.
            assert!(resp.brokers.len() >= brokers.len());
            assert!(fenced_too || resp.brokers.iter().all(|b| !b.is_fenced));
        }
        self.respond(to, Some(ResponseKind::DescribeCluster(resp)));
    }

    /// Where group `key`'s coordinator is: (error, node, host, port).
    pub(super) fn coordinator_of(&mut self, key: &str) -> (ErrorCode, i32, String, i32) {
        let none = |code| (code, -1, String::new(), -1);
        let Some(image) = self.kraft.image.clone() else {
            return none(ErrorCode::COORDINATOR_NOT_AVAILABLE);
        };
        let Some(id) = image.topic_id(OFFSETS_TOPIC) else {
            // Kafka's brokers create the offsets topic on the first FindCoordinator.
            let n = self.config.offsets_topic_partitions;
            self.create_in_background(OFFSETS_TOPIC, n);
            return none(ErrorCode::COORDINATOR_NOT_AVAILABLE);
        };
        let t = &image.topics()[&id];
        let n = t.partitions.len() as i32;
        let p = crate::group::partition_for(key, n).0;
        assert!(
            (0..n).contains(&p),
            "a group hashes onto an existing partition"
        );
        let leader = t.partitions.get(&p).and_then(|p| p.leader);
        let endpoint = leader.and_then(|l| {
            let b = image.broker(l).filter(|b| !b.fenced)?;
            let e = b.endpoints.first()?;
            Some((l.0, e.host.clone(), e.port as i32))
        });
        match endpoint {
            Some((id, host, port)) => {
                assert!(id >= 0 && leader == Some(NodeId(id)));
                (ErrorCode::NONE, id, host, port)
            }
            None => none(ErrorCode::COORDINATOR_NOT_AVAILABLE),
        }
    }

    pub(in crate::broker) fn kraft_find_coordinator(
        &mut self,
        to: ReplyTo,
        r: FindCoordinatorRequest,
    ) {
        let mut resp = FindCoordinatorResponse::default();
        let single = r.coordinator_keys.is_empty();
        let count = r.coordinator_keys.len();
        let keys: Vec<String> = if single {
            vec![r.key.to_string()]
        } else {
            r.coordinator_keys.iter().map(|k| k.to_string()).collect()
        };
        for key in keys {
            // key_type 0 = group; 1 = transaction (gregor has no transaction coordinator).
            let (code, id, host, port) = if r.key_type == 0 {
                self.coordinator_of(&key)
            } else {
                (ErrorCode::COORDINATOR_NOT_AVAILABLE, -1, String::new(), -1)
            };
            if single {
                resp.error_code = code.into();
                resp.node_id = BrokerId(id);
                resp.host = sb(host);
                resp.port = port;
            } else {
                resp.coordinators.push(
                    FoundCoordinator::default()
                        .with_key(sb(key))
                        .with_error_code(code.into())
                        .with_node_id(BrokerId(id))
                        .with_host(sb(host))
                        .with_port(port),
                );
            }
        }
        // v4+ answers each key of the batch; earlier versions the one key.
        assert_eq!(resp.coordinators.len(), count);
        self.respond(to, Some(ResponseKind::FindCoordinator(resp)));
    }
}
