//! What a KRaft-mode broker asks of the active controller: CreateTopics and DeleteTopics
//! forwarded one topic per request, background creations (auto-created topics, the offsets
//! topic), and producer-id blocks (KIP-730).

use super::*;

impl Broker {
    /// Ask the controller to create `name` for no waiting client, unless already asked.
    pub(super) fn create_in_background(&mut self, name: &str, partitions: i32) {
        if self.kraft.creating.contains(name) {
            return;
        }
        self.kraft.creating.insert(name.to_string());
        // The offsets topic is replicated (Kafka's `offsets.topic.replication.factor`), so a
        // committed offset survives its coordinator's broker; an auto-created topic has one copy.
        let replication_factor = if name == OFFSETS_TOPIC {
            self.offsets_replication_factor()
        } else {
            1
        };
        self.log(
            LogLevel::Info,
            format!(
                "asking the controller to create topic {name} ({partitions} partitions, \
                 replication factor {replication_factor})"
            ),
        );
        let request = ControllerRequest::CreateTopic {
            name: name.to_string(),
            partitions,
            replication_factor: replication_factor.into(),
            configs: BTreeMap::new(),
        };
        assert!(partitions >= 1, "{name}: a topic has partitions");
        let topic = name.to_string();
        self.ask_controller(request, Asked::Background { topic });
        assert!(
            self.kraft.creating.contains(name),
            "asked once until it lands"
        );
    }

    /// Park `response` until the controller has answered every one of `asks` (response slot,
    /// request), and send them; answer at once when nothing is asked. `ms` is the request's
    /// timeout (the default when 0 or less).
    pub(in crate::broker) fn forward_admin(
        &mut self,
        to: ReplyTo,
        response: ResponseKind,
        asks: Vec<(usize, ControllerRequest)>,
        ms: i32,
    ) {
        let waiting: BTreeSet<usize> = asks.iter().map(|(slot, _)| *slot).collect();
        if waiting.is_empty() {
            self.respond(to, Some(response));
            return;
        }
        let ms = if ms > 0 {
            ms as u64
        } else {
            DEFAULT_TIMEOUT_MS
        };
        let slots = match &response {
            ResponseKind::CreateTopics(r) => r.topics.len(),
            ResponseKind::DeleteTopics(r) => r.responses.len(),
            ResponseKind::CreatePartitions(r) => r.results.len(),
            ResponseKind::IncrementalAlterConfigs(r) => r.responses.len(),
            ResponseKind::AlterConfigs(r) => r.responses.len(),
            ResponseKind::ElectLeaders(r) => super::elect::elect_slots(r),
            ResponseKind::AlterPartitionReassignments(r) => super::reassign::reassign_slots(r),
            ResponseKind::CreateAcls(r) => r.results.len(),
            ResponseKind::DeleteAcls(r) => r.filter_results.len(),
            ResponseKind::AlterUserScramCredentials(r) => r.results.len(),
            other => unreachable!("no admin response of kind {other:?} is forwarded"),
        };
        assert!(
            waiting.iter().all(|s| *s < slots),
            "each wait is one topic's answer"
        );
        let admin = self.next_pending;
        self.next_pending += 1;
        let pending = PendingAdmin {
            reply: to,
            response,
            waiting,
            deadline: self.now + Duration::from_ms(ms),
        };
        assert!(self.kraft.admin.insert(admin, pending).is_none());
        for (slot, request) in asks {
            self.ask_controller(request, Asked::Admin { admin, slot });
        }
    }

    pub(in crate::broker) fn kraft_create_topics(&mut self, to: ReplyTo, r: CreateTopicsRequest) {
        let mut response = CreateTopicsResponse::default();
        let mut asks = Vec::new();
        let mut seen = BTreeSet::new();
        for t in &r.topics {
            let name = name_of(&t.name.0);
            let mut res = CreatableTopicResult::default().with_name(t.name.clone());
            let partitions = if t.num_partitions == -1 {
                self.config.default_partitions
            } else {
                t.num_partitions
            };
            // -1 (KIP-464) is left to the controller, which applies its
            // `default.replication.factor`.
            let replication = t.replication_factor;
            let configs: Vec<(String, Option<String>)> = t
                .configs
                .iter()
                .map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string())))
                .collect();
            let exists = self
                .kraft_image()
                .is_some_and(|i| i.topic_id(&name).is_some());
            let named_twice = !seen.insert(name.clone());
            let check = if named_twice {
                Err(ClientError::new(
                    ErrorCode::INVALID_REQUEST,
                    format!("{name} named twice"),
                ))
            } else {
                self.check_new_topic(
                    &name,
                    exists,
                    !t.assignments.is_empty(),
                    partitions,
                    &configs,
                    || {
                        if replication < 1 && replication != -1 {
                            Err(ClientError::new(
                                ErrorCode::INVALID_REPLICATION_FACTOR,
                                format!("replication factor {replication} is below 1"),
                            ))
                        } else {
                            Ok(())
                        }
                    },
                )
            };
            match check {
                Err(e) => {
                    res.error_code = e.code.into();
                    res.error_message = Some(sb(e.message));
                }
                Ok(_) => {
                    res.num_partitions = partitions;
                    res.replication_factor = replication;
                    if !r.validate_only {
                        // The configs travel with the topic in the metadata log (ConfigRecord),
                        // so every broker holding a partition applies the same ones.
                        let request = ControllerRequest::CreateTopic {
                            name,
                            partitions,
                            replication_factor: replication.into(),
                            configs: configs
                                .iter()
                                .filter_map(|(k, v)| Some((k.clone(), v.clone()?)))
                                .collect(),
                        };
                        asks.push((response.topics.len(), request));
                    }
                }
            }
            response.topics.push(res);
        }
        assert_eq!(
            response.topics.len(),
            r.topics.len(),
            "every topic is answered"
        );
        assert!(
            !r.validate_only || asks.is_empty(),
            "validate_only is answered here"
        );
        self.forward_admin(to, ResponseKind::CreateTopics(response), asks, r.timeout_ms);
    }

    pub(in crate::broker) fn kraft_delete_topics(&mut self, to: ReplyTo, r: DeleteTopicsRequest) {
        let mut response = DeleteTopicsResponse::default();
        let mut asks = Vec::new();
        for n in &r.topic_names {
            let name = name_of(&n.0);
            let mut res =
                DeletableTopicResult::default().with_name(Some(TopicName(sb(name.clone()))));
            let exists = self
                .kraft_image()
                .is_some_and(|i| i.topic_id(&name).is_some());
            if !exists {
                res.error_code = ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.into();
            } else if name.starts_with("__") {
                res.error_code = ErrorCode::INVALID_TOPIC_EXCEPTION.into();
            } else {
                asks.push((
                    response.responses.len(),
                    ControllerRequest::DeleteTopic { name },
                ));
            }
            response.responses.push(res);
        }
        assert_eq!(
            response.responses.len(),
            r.topic_names.len(),
            "every topic answered"
        );
        self.forward_admin(to, ResponseKind::DeleteTopics(response), asks, r.timeout_ms);
    }

    /// CreatePartitions in a cluster (KIP-195): checked here against the image, then one
    /// `CreatePartitions` request per topic to the active controller, which places the new
    /// partitions like a new topic's; answered when every topic's answer is back.
    pub(in crate::broker) fn kraft_create_partitions(
        &mut self,
        to: ReplyTo,
        r: CreatePartitionsRequest,
    ) {
        use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
        let mut response = CreatePartitionsResponse::default();
        let mut asks = Vec::new();
        let mut seen = BTreeSet::new();
        for t in &r.topics {
            let name = name_of(&t.name.0);
            let now = self.kraft_image().and_then(|i| {
                let id = i.topic_id(&name)?;
                Some(i.topics()[&id].partitions.len() as i32)
            });
            let refuse = |code: ErrorCode, m: String| Some((code, m));
            let error = match now {
                _ if !seen.insert(name.clone()) => {
                    refuse(ErrorCode::INVALID_REQUEST, format!("{name} named twice"))
                }
                None => refuse(
                    ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
                    format!("topic {name} does not exist"),
                ),
                Some(_) if name.starts_with("__") => refuse(
                    ErrorCode::INVALID_TOPIC_EXCEPTION,
                    "internal topics keep their partition count".into(),
                ),
                Some(_) if t.assignments.as_ref().is_some_and(|a| !a.is_empty()) => refuse(
                    ErrorCode::INVALID_REQUEST,
                    "manual replica assignment is not supported".into(),
                ),
                Some(n) if t.count <= n => refuse(
                    ErrorCode::INVALID_PARTITIONS,
                    format!("topic {name} has {n} partitions; partitions can only be added"),
                ),
                Some(_) if t.count > self.config.partitions_per_topic_max => refuse(
                    ErrorCode::INVALID_PARTITIONS,
                    format!(
                        "partition count {} is above {}",
                        t.count, self.config.partitions_per_topic_max
                    ),
                ),
                Some(_) => None,
            };
            let mut res = CreatePartitionsTopicResult::default().with_name(t.name.clone());
            match error {
                Some((code, message)) => {
                    res.error_code = code.into();
                    res.error_message = Some(sb(message));
                }
                None if r.validate_only => {}
                None => asks.push((
                    response.results.len(),
                    ControllerRequest::CreatePartitions {
                        name,
                        count: t.count,
                    },
                )),
            }
            response.results.push(res);
        }
        self.forward_admin(
            to,
            ResponseKind::CreatePartitions(response),
            asks,
            r.timeout_ms,
        );
    }

    /// Forward config alters (`asks`: response slot, topic, changes) to the controller, one
    /// `AlterConfigs` per topic, and park `response` until every answer is back.
    pub(in crate::broker) fn forward_config_alters(
        &mut self,
        to: ReplyTo,
        response: ResponseKind,
        asks: Vec<(usize, String, crate::cluster::topic_configs::ConfigChanges)>,
    ) {
        let asks = asks
            .into_iter()
            .map(|(slot, name, changes)| (slot, ControllerRequest::AlterConfigs { name, changes }))
            .collect();
        self.forward_admin(to, response, asks, 0);
    }

    /// The controller answered request `id`.
    pub(in crate::broker) fn on_controller_reply(
        &mut self,
        id: RequestId,
        result: Result<Reply, ControllerError>,
    ) {
        assert!(
            id.0 < self.kraft.next_request,
            "an answer to a request asked"
        );
        let Some(why) = self.kraft.asked.remove(&id) else {
            // The admin request it belonged to timed out and was answered.
            return;
        };
        match why {
            Asked::Admin { admin, slot } => self.admin_answer(admin, slot, result),
            Asked::Background { topic } => {
                if let Err(e) = result {
                    self.kraft.creating.remove(&topic);
                    let level = match e {
                        ControllerError::TopicAlreadyExists(_) => LogLevel::Info,
                        _ => LogLevel::Warn,
                    };
                    self.log(
                        level,
                        format!("creating topic {topic}: controller said {e:?}"),
                    );
                }
                // On success the topic stays "being created" until an image names it.
            }
            Asked::ProducerIds => self.producer_ids_answer(result),
            Asked::Quorum { reply } => self.quorum_answer(reply, result),
            Asked::AlterPartition { key } => self.alter_partition_answer(key, id, result),
        }
    }

    pub(super) fn admin_answer(
        &mut self,
        admin: u64,
        slot: usize,
        result: Result<Reply, ControllerError>,
    ) {
        let p = self
            .kraft
            .admin
            .get_mut(&admin)
            .expect("asked entries follow their request");
        assert!(p.waiting.remove(&slot), "one answer per topic");
        let (code, message) = match &result {
            Ok(_) => (0, None),
            Err(e) => (e.code(), Some(sb(format!("{e:?}")))),
        };
        assert_eq!(
            code == 0,
            result.is_ok(),
            "every refusal has a Kafka error code"
        );
        match (&mut p.response, result) {
            (ResponseKind::CreateTopics(r), result) => {
                let t = &mut r.topics[slot];
                t.error_code = code;
                t.error_message = message;
                match result {
                    Ok(Reply::CreateTopic { topic_id }) => {
                        t.topic_id = TopicId(topic_id.0).to_uuid()
                    }
                    Ok(other) => unreachable!("a CreateTopic answered with {other:?}"),
                    Err(_) => {
                        t.num_partitions = -1;
                        t.replication_factor = -1;
                    }
                }
            }
            (ResponseKind::DeleteTopics(r), _) => {
                let t = &mut r.responses[slot];
                t.error_code = code;
                t.error_message = message;
            }
            (ResponseKind::CreatePartitions(r), _) => {
                let t = &mut r.results[slot];
                t.error_code = code;
                t.error_message = message;
            }
            (
                response @ (ResponseKind::IncrementalAlterConfigs(_)
                | ResponseKind::AlterConfigs(_)),
                _,
            ) => Broker::set_alter_error(response, slot, code, message.map(|m| m.to_string())),
            (ResponseKind::ElectLeaders(r), _) => {
                super::elect::set_elect_error(r, slot, code, message)
            }
            (ResponseKind::AlterPartitionReassignments(r), _) => {
                super::reassign::set_reassign_error(r, slot, code, message)
            }
            (response @ (ResponseKind::CreateAcls(_) | ResponseKind::DeleteAcls(_)), result) => {
                crate::broker::authz::set_acl_answer(response, slot, result)
            }
            (ResponseKind::AlterUserScramCredentials(r), _) => {
                super::scram::set_scram_error(r, slot, code, message)
            }
            (other, _) => unreachable!("no admin response of kind {other:?} is forwarded"),
        }
        if p.waiting.is_empty() {
            let p = self.kraft.admin.remove(&admin).expect("looked up");
            self.respond(p.reply, Some(p.response));
        }
    }

    /// Admin requests past their timeout answer REQUEST_TIMED_OUT for the topics the
    /// controller has not answered (the change may still happen).
    pub(in crate::broker) fn kraft_on_time(&mut self) {
        let due: Vec<u64> = self
            .kraft
            .admin
            .iter()
            .filter(|(_, p)| p.deadline <= self.now)
            .map(|(id, _)| *id)
            .collect();
        for admin in due {
            let mut p = self.kraft.admin.remove(&admin).expect("listed");
            self.kraft
                .asked
                .retain(|_, a| !matches!(a, Asked::Admin { admin: x, .. } if *x == admin));
            let code: i16 = ErrorCode::REQUEST_TIMED_OUT.into();
            let message = Some(sb(
                "the controller did not answer within the request's timeout",
            ));
            for slot in &p.waiting {
                match &mut p.response {
                    ResponseKind::CreateTopics(r) => {
                        r.topics[*slot].error_code = code;
                        r.topics[*slot].error_message = message.clone();
                    }
                    ResponseKind::DeleteTopics(r) => {
                        r.responses[*slot].error_code = code;
                        r.responses[*slot].error_message = message.clone();
                    }
                    ResponseKind::CreatePartitions(r) => {
                        r.results[*slot].error_code = code;
                        r.results[*slot].error_message = message.clone();
                    }
                    response @ (ResponseKind::IncrementalAlterConfigs(_)
                    | ResponseKind::AlterConfigs(_)) => {
                        let m = message.as_ref().map(|m| m.to_string());
                        Broker::set_alter_error(response, *slot, code, m)
                    }
                    ResponseKind::ElectLeaders(r) => {
                        super::elect::set_elect_error(r, *slot, code, message.clone())
                    }
                    ResponseKind::AlterPartitionReassignments(r) => {
                        super::reassign::set_reassign_error(r, *slot, code, message.clone())
                    }
                    ResponseKind::AlterUserScramCredentials(r) => {
                        super::scram::set_scram_error(r, *slot, code, message.clone())
                    }
                    // CreateAcls and DeleteAcls are forwarded too (found by the simulator's ACL
                    // workload, seed 5: a broker whose controller never answered panicked here).
                    response @ (ResponseKind::CreateAcls(_) | ResponseKind::DeleteAcls(_)) => {
                        let timed_out = Err(ControllerError::RequestTimedOut);
                        crate::broker::authz::set_acl_answer(response, *slot, timed_out)
                    }
                    other => unreachable!("no admin response of kind {other:?} is forwarded"),
                }
            }
            self.respond(p.reply, Some(p.response));
        }
        // Postcondition: nothing past its deadline still waits, nor asks for it.
        assert!(self.kraft.admin.values().all(|p| p.deadline > self.now));
    }

    // ---- DescribeQuorum (KIP-595) --------------------------------------------------------

    /// DescribeQuorum through a broker: only the quorum's leader knows how far each voter and
    /// observer has fetched, so the broker forwards the request to the active controller (as
    /// Kafka's brokers do, so `kafka-metadata-quorum --bootstrap-server` works) and answers
    /// with what it says. The request must name the metadata log's one partition
    /// (`__cluster_metadata`-0); anything else is UNKNOWN_TOPIC_OR_PARTITION, as in Kafka.
    pub(in crate::broker) fn kraft_describe_quorum(
        &mut self,
        to: ReplyTo,
        r: DescribeQuorumRequest,
    ) {
        use crate::raft::wire::METADATA_TOPIC;
        let recognized = r.topics.len() == 1
            && r.topics[0].topic_name.0.as_str() == METADATA_TOPIC
            && r.topics[0].partitions.len() == 1
            && r.topics[0].partitions[0].partition_index == 0;
        if !recognized {
            use kafka_protocol::messages::describe_quorum_response::{PartitionData, TopicData};
            let code: i16 = ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.into();
            let topics = r
                .topics
                .iter()
                .map(|t| {
                    let partitions = t
                        .partitions
                        .iter()
                        .map(|p| {
                            PartitionData::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(code)
                                .with_leader_id(BrokerId(-1))
                                .with_leader_epoch(-1)
                                .with_high_watermark(-1)
                        })
                        .collect();
                    TopicData::default()
                        .with_topic_name(t.topic_name.clone())
                        .with_partitions(partitions)
                })
                .collect();
            let resp = DescribeQuorumResponse::default().with_topics(topics);
            self.respond(to, Some(ResponseKind::DescribeQuorum(resp)));
            return;
        }
        self.ask_controller(
            ControllerRequest::DescribeQuorum,
            Asked::Quorum { reply: to },
        );
    }

    fn quorum_answer(&mut self, reply: ReplyTo, result: Result<Reply, ControllerError>) {
        let resp = match result {
            Ok(Reply::DescribeQuorum(status)) => {
                crate::raft::wire::describe_quorum_body(&status, true, reply.api_version)
            }
            Ok(other) => unreachable!("DescribeQuorum answered with {other:?}"),
            Err(e) => {
                let code = e.code();
                assert_ne!(code, 0, "a refusal has an error code");
                DescribeQuorumResponse::default()
                    .with_error_code(code)
                    .with_error_message(Some(sb(e.message())))
            }
        };
        self.respond(reply, Some(ResponseKind::DescribeQuorum(resp)));
    }

    // ---- producer ids (KIP-730) ---------------------------------------------------------

    pub(in crate::broker) fn kraft_init_producer_id(&mut self, to: ReplyTo) {
        if self.kraft.pid_waiters.len() >= self.config.producer_id_waiters_max {
            let resp = InitProducerIdResponse::default()
                .with_error_code(ErrorCode::COORDINATOR_LOAD_IN_PROGRESS.into())
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1);
            self.respond(to, Some(ResponseKind::InitProducerId(resp)));
            return;
        }
        self.kraft.pid_waiters.push(to);
        assert!(self.kraft.pid_waiters.len() <= self.config.producer_id_waiters_max);
        self.serve_producer_ids();
    }

    /// Hand ids to the waiters while the block lasts; ask for the next block once 90% of this
    /// one is used (or it is gone).
    pub(super) fn serve_producer_ids(&mut self) {
        while !self.kraft.pid_waiters.is_empty() {
            let k = &mut self.kraft;
            if k.pid_next >= k.pid_end {
                let Some((first, end)) = k.pid_prefetched.take() else {
                    break;
                };
                (k.pid_start, k.pid_next, k.pid_end) = (first, first, end);
            }
            let pid = k.pid_next;
            k.pid_next += 1;
            assert!(k.pid_next <= k.pid_end, "ids only from the block");
            let to = k.pid_waiters.remove(0);
            let resp = InitProducerIdResponse::default()
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(0);
            self.respond(to, Some(ResponseKind::InitProducerId(resp)));
        }
        // Postcondition: whoever still waits, waits because no id is left here.
        let k = &self.kraft;
        assert!(
            k.pid_waiters.is_empty() || (k.pid_next == k.pid_end && k.pid_prefetched.is_none())
        );
        let k = &self.kraft;
        let (used, size) = (k.pid_next - k.pid_start, k.pid_end - k.pid_start);
        if k.pid_prefetched.is_none() && used * 100 >= size * PREFETCH_PERCENT {
            self.ask_producer_ids();
        }
    }

    /// Ask the controller for a block, if none is asked for and this broker is registered.
    pub(super) fn ask_producer_ids(&mut self) {
        if self.kraft.pid_asked() {
            return;
        }
        let me = node(self.config.broker_id);
        let Some(epoch) = self
            .kraft_image()
            .and_then(|i| i.broker(me))
            .map(|b| b.broker_epoch)
        else {
            // Not registered yet: the waiters wait for an image that names this broker.
            return;
        };
        let request = ControllerRequest::AllocateProducerIds {
            broker_id: me,
            broker_epoch: epoch,
        };
        self.ask_controller(request, Asked::ProducerIds);
    }

    pub(super) fn producer_ids_answer(&mut self, result: Result<Reply, ControllerError>) {
        match result {
            Ok(Reply::AllocateProducerIds { first, count }) => {
                assert!(count > 0 && first >= 0, "a block holds ids");
                let k = &mut self.kraft;
                // KIP-730: blocks are logged and only move forward, so never overlap.
                assert!(
                    first >= k.pid_end,
                    "block {first} overlaps one ending at {}",
                    k.pid_end
                );
                if k.pid_next >= k.pid_end {
                    (k.pid_start, k.pid_next, k.pid_end) = (first, first, first + count);
                } else {
                    k.pid_prefetched = Some((first, first + count));
                }
                self.serve_producer_ids();
            }
            Ok(other) => unreachable!("AllocateProducerIds answered with {other:?}"),
            Err(e) => {
                // Retriable for the client (Kafka's producer retries
                // COORDINATOR_LOAD_IN_PROGRESS); the next InitProducerId asks again.
                self.log(
                    LogLevel::Warn,
                    format!("AllocateProducerIds refused by the controller: {e:?}"),
                );
                for to in std::mem::take(&mut self.kraft.pid_waiters) {
                    let resp = InitProducerIdResponse::default()
                        .with_error_code(ErrorCode::COORDINATOR_LOAD_IN_PROGRESS.into())
                        .with_producer_id(ProducerId(-1))
                        .with_producer_epoch(-1);
                    self.respond(to, Some(ResponseKind::InitProducerId(resp)));
                }
            }
        }
    }
}
