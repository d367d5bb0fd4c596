//! Metadata, DescribeCluster and FindCoordinator answered from the metadata image.

use super::*;

/// A broker as clients are told of it: id, host, port, rack.
type LiveBroker = (i32, String, i32, Option<String>);

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
        for name in names {
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

    pub(in crate::broker) fn kraft_describe_cluster(
        &mut self,
        to: ReplyTo,
        r: DescribeClusterRequest,
    ) {
        let brokers = self.live_brokers();
        let brokers_none = brokers.is_empty();
        let controller = self.controller_id_for_clients(&brokers);
        let mut resp = DescribeClusterResponse::default()
            .with_endpoint_type(1)
            .with_cluster_id(sb(self.cluster_id_string()))
            .with_controller_id(BrokerId(controller))
            .with_cluster_authorized_operations(i32::MIN);
        if r.endpoint_type != 1 {
            resp.error_code = ErrorCode::INVALID_REQUEST.into();
            resp.error_message = Some(sb(format!(
                "endpoint type {} is not served: this is a broker (type 1)",
                r.endpoint_type
            )));
        } else {
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
        }
        assert_eq!(
            resp.error_code == 0,
            !resp.brokers.is_empty() || brokers_none
        );
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
