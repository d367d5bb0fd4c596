//! The admin APIs: ApiVersions, Metadata, CreateTopics, DeleteTopics, DescribeConfigs.

use super::*;

impl Broker {
    pub(super) fn api_versions(&mut self, to: ReplyTo, version: i16) {
        let (_, max) = crate::wire::supported_range(ApiKey::ApiVersions).unwrap();
        let keys = SUPPORTED
            .iter()
            .map(|(k, lo, hi)| {
                ApiVersion::default()
                    .with_api_key(*k as i16)
                    .with_min_version(*lo)
                    .with_max_version(*hi)
            })
            .collect();
        let mut resp = ApiVersionsResponse::default().with_api_keys(keys);
        if version > max {
            // KIP-511: answer in v0 so any client can read it, and say which versions we speak.
            resp.error_code = ErrorCode::UNSUPPORTED_VERSION.into();
            self.respond_at(to, 0, Some(ResponseKind::ApiVersions(resp)));
        } else {
            self.respond(to, Some(ResponseKind::ApiVersions(resp)));
        }
    }

    pub(super) fn default_settings(&self) -> TopicSettings {
        TopicSettings {
            segment_bytes: self.config.segment_bytes_max,
            segment_ms: self.config.segment_age_ms_max,
            retention_bytes: self.config.retention_bytes,
            retention_ms: self.config.retention_ms,
            max_message_bytes: self.config.batch_bytes_max,
        }
    }

    /// Create a topic in memory and emit the storage requests that create it on disk, in order,
    /// before anything else written to it. Returns the number of storage ops emitted.
    pub(crate) fn create_topic(
        &mut self,
        name: &str,
        partitions: i32,
        settings: TopicSettings,
        waiter: Option<u64>,
    ) -> usize {
        assert!(
            partitions >= 1
                && partitions
                    <= self
                        .config
                        .partitions_per_topic_max
                        .max(self.config.offsets_topic_partitions)
        );
        assert!(!self.topics.contains_key(name), "{name} created twice");
        let id = self.prng.uuid_bytes();
        let mut parts = Vec::new();
        let mut ops = 0;
        for i in 0..partitions {
            let dir = PartitionDir {
                topic: name.to_string(),
                partition: i,
            };
            let meta = PartitionMeta {
                topic: name.to_string(),
                topic_id: id,
                partition: i,
                partition_count: partitions,
                settings: settings.clone(),
            };
            self.storage(
                StorageRequest::CreatePartition {
                    dir: dir.clone(),
                    meta: meta.encode(),
                },
                OpPurpose::Create {
                    topic: name.to_string(),
                    topic_id: id,
                    waiter,
                },
            );
            let (log, seg) = PartitionLog::create(dir, self.now);
            self.storage(
                seg,
                OpPurpose::Create {
                    topic: name.to_string(),
                    topic_id: id,
                    waiter,
                },
            );
            ops += 2;
            parts.push(Partition::new(log, ProducerStates::default()));
        }
        self.topics.insert(
            name.to_string(),
            Topic {
                id,
                settings,
                partitions: parts,
                internal: name.starts_with("__"),
            },
        );
        // Postcondition: the topic exists with every partition empty, and each partition's two
        // creation steps (directory with its metadata, first segment) are issued.
        let t = &self.topics[name];
        assert_eq!(t.partitions.len(), partitions as usize);
        assert!(t.partitions.iter().all(|p| p.log.log_end_offset() == 0));
        assert_eq!(ops, 2 * partitions as usize);
        self.log(
            LogLevel::Info,
            format!("created topic {name} with {partitions} partition(s)"),
        );
        ops
    }

    pub(super) fn metadata(&mut self, to: ReplyTo, version: i16, r: MetadataRequest) {
        let names: Vec<String> = match &r.topics {
            None => self
                .topics
                .iter()
                .filter(|(_, t)| !t.internal)
                .map(|(n, _)| n.clone())
                .collect(),
            Some(list) if list.is_empty() && version == 0 => self
                .topics
                .iter()
                .filter(|(_, t)| !t.internal)
                .map(|(n, _)| n.clone())
                .collect(),
            Some(list) => list
                .iter()
                .filter_map(|t| t.name.as_ref().map(|n| name_of(&n.0)))
                .collect(),
        };
        // Metadata v0-v3 always allow auto-creation (the field exists from v4).
        let allow = r.allow_auto_topic_creation || version < 4;
        let mut topics = Vec::new();
        for name in names {
            if !self.topics.contains_key(&name) {
                let valid = validate_topic_name(&name);
                if allow
                    && self.config.auto_create_topics
                    && valid.is_ok()
                    && self.topics.len() < self.config.topics_max
                {
                    let n = self.config.default_partitions;
                    let s = self.default_settings();
                    self.create_topic(&name, n, s, None);
                } else {
                    let code = if valid.is_err() {
                        ErrorCode::INVALID_TOPIC_EXCEPTION
                    } else {
                        ErrorCode::UNKNOWN_TOPIC_OR_PARTITION
                    };
                    topics.push(
                        MetadataResponseTopic::default()
                            .with_name(Some(TopicName(sb(name))))
                            .with_error_code(code.into()),
                    );
                    continue;
                }
            }
            let t = &self.topics[&name];
            assert!(!t.partitions.is_empty(), "{name}: a topic has partitions");
            let partitions = t
                .partitions
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    MetadataResponsePartition::default()
                        .with_partition_index(i as i32)
                        .with_error_code(
                            if p.offline.is_some() {
                                ErrorCode::KAFKA_STORAGE_ERROR
                            } else {
                                ErrorCode::NONE
                            }
                            .into(),
                        )
                        .with_leader_id(self.config.broker_id.into())
                        // -1: leader epochs are not tracked yet, which turns off clients'
                        // KIP-320 offset validation instead of confusing it.
                        .with_leader_epoch(LeaderEpoch::NONE.0)
                        .with_replica_nodes(vec![self.config.broker_id.into()])
                        .with_isr_nodes(vec![self.config.broker_id.into()])
                })
                .collect();
            topics.push(
                MetadataResponseTopic::default()
                    .with_name(Some(TopicName(sb(name))))
                    .with_topic_id(TopicId(t.id).to_uuid())
                    .with_is_internal(t.internal)
                    .with_partitions(partitions),
            );
        }
        let resp = MetadataResponse::default()
            .with_brokers(vec![MetadataResponseBroker::default()
                .with_node_id(self.config.broker_id.into())
                .with_host(sb(self.config.advertised_host.clone()))
                .with_port(self.config.advertised_port)])
            .with_cluster_id(Some(sb(self.cluster_id_string())))
            .with_controller_id(self.config.broker_id.into())
            .with_topics(topics);
        self.respond(to, Some(ResponseKind::Metadata(resp)));
    }

    pub(super) fn topic_settings_from(
        &self,
        configs: &[(String, Option<String>)],
    ) -> Result<TopicSettings, String> {
        let mut s = self.default_settings();
        for (k, v) in configs {
            let v = v.as_deref().unwrap_or("");
            let num = || {
                v.parse::<i64>()
                    .map_err(|_| format!("config {k}: {v:?} is not a number"))
            };
            match k.as_str() {
                "retention.ms" => s.retention_ms = num()?,
                "retention.bytes" => s.retention_bytes = num()?,
                "segment.bytes" => {
                    let n = num()?;
                    if n < 1024 {
                        return Err("segment.bytes must be at least 1024".into());
                    }
                    s.segment_bytes = n as u64;
                }
                "segment.ms" => s.segment_ms = num()?.max(1) as u64,
                "max.message.bytes" => {
                    let n = num()?;
                    if n < 128 || n as u64 + 64 > s.segment_bytes {
                        return Err(
                            "max.message.bytes must be at least 128 and fit in a segment".into(),
                        );
                    }
                    s.max_message_bytes = n as u32;
                }
                "cleanup.policy" if v == "delete" => {}
                "min.insync.replicas" if v == "1" => {}
                "compression.type" if v == "producer" => {}
                _ => return Err(format!("unsupported topic config {k}={v}")),
            }
        }
        Ok(s)
    }

    pub(super) fn create_topics(&mut self, to: ReplyTo, r: CreateTopicsRequest) {
        let id = self.next_pending;
        self.next_pending += 1;
        let mut pending = PendingCreate {
            reply: to,
            response: CreateTopicsResponse::default(),
            outstanding: BTreeMap::new(),
        };
        let requested = r.topics.len();
        for t in r.topics {
            let name = name_of(&t.name.0);
            let mut res = CreatableTopicResult::default().with_name(t.name.clone());
            let partitions = if t.num_partitions == -1 {
                self.config.default_partitions
            } else {
                t.num_partitions
            };
            let configs: Vec<(String, Option<String>)> = t
                .configs
                .iter()
                .map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string())))
                .collect();
            let check = validate_topic_name(&name)
                .map_err(|e| ClientError::new(ErrorCode::INVALID_TOPIC_EXCEPTION, e))
                .and_then(|_| {
                    if self.topics.contains_key(&name) {
                        Err(ClientError::new(
                            ErrorCode::TOPIC_ALREADY_EXISTS,
                            format!("topic {name} already exists"),
                        ))
                    } else if !t.assignments.is_empty() {
                        Err(ClientError::new(
                            ErrorCode::INVALID_REQUEST,
                            "manual replica assignment is not supported",
                        ))
                    } else if partitions < 1 || partitions > self.config.partitions_per_topic_max {
                        Err(ClientError::new(
                            ErrorCode::INVALID_PARTITIONS,
                            format!(
                                "partition count {partitions} is not within 1..={}",
                                self.config.partitions_per_topic_max
                            ),
                        ))
                    } else if !(t.replication_factor == -1 || t.replication_factor == 1) {
                        Err(ClientError::new(
                            ErrorCode::INVALID_REPLICATION_FACTOR,
                            format!(
                                "replication factor {} is larger than the 1 broker available",
                                t.replication_factor
                            ),
                        ))
                    } else if self.topics.len() >= self.config.topics_max {
                        Err(ClientError::new(
                            ErrorCode::INVALID_REQUEST,
                            format!("topic limit {} reached", self.config.topics_max),
                        ))
                    } else if name.starts_with("__") {
                        Err(ClientError::new(
                            ErrorCode::INVALID_TOPIC_EXCEPTION,
                            "names starting with __ are reserved for internal topics",
                        ))
                    } else {
                        self.topic_settings_from(&configs)
                            .map_err(|e| ClientError::new(ErrorCode::INVALID_CONFIG, e))
                    }
                });
            match check {
                Err(e) => {
                    res.error_code = e.code.into();
                    res.error_message = Some(sb(e.message));
                }
                Ok(settings) => {
                    res.num_partitions = partitions;
                    res.replication_factor = 1;
                    if !r.validate_only {
                        let ops = self.create_topic(&name, partitions, settings, Some(id));
                        res.topic_id = TopicId(self.topics[&name].id).to_uuid();
                        pending.outstanding.insert(name.clone(), ops);
                    }
                }
            }
            pending.response.topics.push(res);
        }
        // Every topic asked for is answered, in order.
        assert_eq!(pending.response.topics.len(), requested);
        if pending.outstanding.is_empty() {
            self.respond(to, Some(ResponseKind::CreateTopics(pending.response)));
        } else {
            self.creates.insert(id, pending);
        }
    }

    pub(super) fn create_op_done(&mut self, id: u64, topic: &str, failed: bool) {
        let Some(pc) = self.creates.get_mut(&id) else {
            return;
        };
        if failed {
            if let Some(r) = pc
                .response
                .topics
                .iter_mut()
                .find(|r| r.name.0.as_str() == topic)
            {
                r.error_code = ErrorCode::KAFKA_STORAGE_ERROR.into();
                r.error_message = Some(sb("storage failed while creating the topic"));
            }
        }
        if let Some(n) = pc.outstanding.get_mut(topic) {
            assert!(*n > 0, "a creation step completes once");
            *n -= 1;
            if *n == 0 {
                pc.outstanding.remove(topic);
            }
        }
        if pc.outstanding.is_empty() {
            let pc = self.creates.remove(&id).unwrap();
            self.respond(pc.reply, Some(ResponseKind::CreateTopics(pc.response)));
        }
    }

    pub(super) fn delete_topics(&mut self, to: ReplyTo, version: i16, r: DeleteTopicsRequest) {
        // DeleteTopics is served up to v4 (see `wire::SUPPORTED`); the v6 `topics` field (names
        // or ids, KIP-516) never arrives, so only `topic_names` is read.
        assert!(
            version <= 4,
            "DeleteTopics v{version} is above the negotiated cap"
        );
        let names: Vec<String> = r.topic_names.iter().map(|n| name_of(&n.0)).collect();
        let mut resp = DeleteTopicsResponse::default();
        for name in names {
            let mut res =
                DeletableTopicResult::default().with_name(Some(TopicName(sb(name.clone()))));
            match self.topics.get(&name) {
                None => res.error_code = ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.into(),
                Some(t) if t.internal => res.error_code = ErrorCode::INVALID_TOPIC_EXCEPTION.into(),
                Some(_) => {
                    let t = self.topics.remove(&name).unwrap();
                    for i in 0..t.partitions.len() {
                        // Produces waiting on it fail now (UNKNOWN_TOPIC_OR_PARTITION).
                        self.produce_waits.touch(&(name.clone(), i as i32));
                        self.storage(
                            StorageRequest::DeletePartition {
                                dir: PartitionDir {
                                    topic: name.clone(),
                                    partition: i as i32,
                                },
                            },
                            OpPurpose::Other {
                                what: format!("delete {name}-{i}"),
                            },
                        );
                        self.touched.insert((name.clone(), i as i32));
                    }
                    assert!(!self.topics.contains_key(&name));
                    self.log(LogLevel::Info, format!("deleted topic {name}"));
                }
            }
            resp.responses.push(res);
        }
        self.respond(to, Some(ResponseKind::DeleteTopics(resp)));
    }

    pub(super) fn describe_configs(&mut self, to: ReplyTo, r: DescribeConfigsRequest) {
        let mut resp = DescribeConfigsResponse::default();
        let requested = r.resources.len();
        for res in r.resources {
            let name = res.resource_name.to_string();
            let mut out = DescribeConfigsResult::default()
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name.clone());
            let entries: Vec<(String, String, bool)> = match res.resource_type {
                2 => match self.topics.get(&name) {
                    None => {
                        out.error_code = ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.into();
                        out.error_message = Some(sb(format!("unknown topic {name}")));
                        vec![]
                    }
                    Some(t) => {
                        let d = self.default_settings();
                        let s = &t.settings;
                        vec![
                            ("cleanup.policy".into(), "delete".into(), true),
                            ("compression.type".into(), "producer".into(), true),
                            (
                                "max.message.bytes".into(),
                                s.max_message_bytes.to_string(),
                                s.max_message_bytes == d.max_message_bytes,
                            ),
                            ("message.timestamp.type".into(), "CreateTime".into(), true),
                            ("min.insync.replicas".into(), "1".into(), true),
                            (
                                "retention.bytes".into(),
                                s.retention_bytes.to_string(),
                                s.retention_bytes == d.retention_bytes,
                            ),
                            (
                                "retention.ms".into(),
                                s.retention_ms.to_string(),
                                s.retention_ms == d.retention_ms,
                            ),
                            (
                                "segment.bytes".into(),
                                s.segment_bytes.to_string(),
                                s.segment_bytes == d.segment_bytes,
                            ),
                            (
                                "segment.ms".into(),
                                s.segment_ms.to_string(),
                                s.segment_ms == d.segment_ms,
                            ),
                        ]
                    }
                },
                4 if name.is_empty() || name == self.config.broker_id.to_string() => {
                    let c = &self.config;
                    let durability = match c.durability {
                        Durability::None => "none".to_string(),
                        Durability::GroupCommit => "group-commit".to_string(),
                        Durability::Interval {
                            records,
                            interval_ms,
                        } => format!("interval(records={records},ms={interval_ms})"),
                    };
                    vec![
                        (
                            "auto.create.topics.enable".into(),
                            c.auto_create_topics.to_string(),
                            true,
                        ),
                        ("broker.id".into(), c.broker_id.to_string(), true),
                        (
                            "fetch.max.bytes".into(),
                            c.fetch_response_bytes_max.to_string(),
                            true,
                        ),
                        ("gregor.durability".into(), durability, true),
                        (
                            "log.retention.bytes".into(),
                            c.retention_bytes.to_string(),
                            true,
                        ),
                        ("log.retention.ms".into(), c.retention_ms.to_string(), true),
                        ("log.roll.ms".into(), c.segment_age_ms_max.to_string(), true),
                        (
                            "log.segment.bytes".into(),
                            c.segment_bytes_max.to_string(),
                            true,
                        ),
                        (
                            "message.max.bytes".into(),
                            c.batch_bytes_max.to_string(),
                            true,
                        ),
                        (
                            "num.partitions".into(),
                            c.default_partitions.to_string(),
                            true,
                        ),
                    ]
                }
                4 => {
                    out.error_code = ErrorCode::INVALID_REQUEST.into();
                    out.error_message = Some(sb(format!(
                        "this broker is {}, not {name}",
                        self.config.broker_id
                    )));
                    vec![]
                }
                other => {
                    out.error_code = ErrorCode::INVALID_REQUEST.into();
                    out.error_message = Some(sb(format!("resource type {other} is not supported")));
                    vec![]
                }
            };
            let wanted: Option<Vec<String>> = res
                .configuration_keys
                .map(|ks| ks.iter().map(|k| k.to_string()).collect());
            for (k, v, is_default) in entries {
                if wanted
                    .as_ref()
                    .is_some_and(|w| !w.is_empty() && !w.contains(&k))
                {
                    continue;
                }
                // config_source: 5 = DEFAULT_CONFIG, 1 = DYNAMIC_TOPIC_CONFIG, 4 = STATIC_BROKER_CONFIG.
                let source = if res.resource_type == 4 {
                    4
                } else if is_default {
                    5
                } else {
                    1
                };
                out.configs.push(
                    DescribeConfigsResourceResult::default()
                        .with_name(sb(k))
                        .with_value(Some(sb(v)))
                        .with_read_only(res.resource_type == 4)
                        .with_config_source(source),
                );
            }
            // An error answers with no entries; a success with at most what was asked for.
            assert!(out.error_code == 0 || out.configs.is_empty());
            resp.results.push(out);
        }
        assert_eq!(resp.results.len(), requested, "every resource is answered");
        self.respond(to, Some(ResponseKind::DescribeConfigs(resp)));
    }
}
