//! The admin APIs: ApiVersions, Metadata, CreateTopics, DeleteTopics, DescribeConfigs; and in
//! submodules CreatePartitions, the config alters, DeleteRecords and the cluster descriptions.
//!
//! An admin change that touches storage (a topic created or grown, a config altered, a log
//! start moved) is answered only once every file it writes is durable: the response waits in
//! [`Broker::creates`] for its storage operations, as a CreateTopics does.

use super::*;
use crate::files::{CompactionSettings, TimestampType, TopicCompression};

mod cluster;
mod configs;
mod partitions;
mod records;

pub(super) use configs::settings_entries;

impl Broker {
    pub(super) fn api_versions(&mut self, to: ReplyTo, version: i16) {
        let (_, max) = crate::wire::supported_range(ApiKey::ApiVersions).unwrap();
        let keys = SUPPORTED
            .iter()
            // DescribeQuorum, ElectLeaders, the reassignment APIs and the SCRAM users (KIP-554)
            // are forwarded to (or read from the log of) the active controller: a standalone
            // broker has none to ask, so it does not offer them.
            .filter(|(k, _, _)| {
                self.config.kraft
                    || !matches!(
                        k,
                        ApiKey::DescribeQuorum
                            | ApiKey::ElectLeaders
                            | ApiKey::AlterPartitionReassignments
                            | ApiKey::ListPartitionReassignments
                            | ApiKey::DescribeUserScramCredentials
                            | ApiKey::AlterUserScramCredentials
                    )
            })
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
            compaction: CompactionSettings {
                policy: self.config.cleanup_policy,
                ..CompactionSettings::default()
            },
            timestamp_type: self.config.message_timestamp_type,
            compression: self.config.compression_type,
            index_interval_bytes: self.config.index_interval_bytes,
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
            let meta = PartitionMeta {
                topic: name.to_string(),
                topic_id: id,
                partition: i,
                partition_count: partitions,
                settings: settings.clone(),
                log_start_offset: 0,
            };
            parts.push(self.create_partition_files(&meta, waiter));
            ops += 2;
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
        if self.config.kraft {
            return self.kraft_metadata(to, version, r);
        }
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
                        // Standalone: epoch 0 forever (`epochs.rs`). An epoch >= 0 turns on
                        // clients' KIP-320 offset validation (OffsetForLeaderEpoch).
                        .with_leader_epoch(self.leader_epoch_of(&name, i as i32))
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

    /// Write (or replace, atomically and durably) a partition's `partition.meta`, as one
    /// storage operation of the admin request `waiter` is waiting for.
    pub(super) fn write_partition_meta(&mut self, meta: &PartitionMeta, waiter: Option<u64>) {
        let dir = PartitionDir {
            topic: meta.topic.clone(),
            partition: meta.partition,
        };
        // CreatePartition on an existing directory replaces its metadata file atomically
        // (both drivers write it to a temporary file and rename it), which is what a rewrite
        // needs.
        self.storage(
            StorageRequest::CreatePartition {
                dir,
                meta: meta.encode(),
            },
            OpPurpose::Create {
                topic: meta.topic.clone(),
                topic_id: meta.topic_id,
                waiter,
            },
        );
    }

    /// Issue the two storage requests that create a new, empty partition (its directory with
    /// `meta`, then its first segment) for the admin request `waiter`; returns the partition.
    pub(super) fn create_partition_files(
        &mut self,
        meta: &PartitionMeta,
        waiter: Option<u64>,
    ) -> Partition {
        assert_eq!(meta.log_start_offset, 0, "a new partition starts at 0");
        self.write_partition_meta(meta, waiter);
        let dir = PartitionDir {
            topic: meta.topic.clone(),
            partition: meta.partition,
        };
        let (mut log, seg) = PartitionLog::create(dir, self.now);
        if !self.config.kraft {
            // Standalone: this broker leads the new partition in epoch 0 (`epochs.rs`); in
            // KRaft mode the image's epoch is recorded when the image makes it leader.
            let added = log.assign_epoch(super::epochs::STANDALONE_LEADER_EPOCH);
            assert_eq!(added, Ok(true), "a new log has no epochs yet");
        }
        self.storage(
            seg,
            OpPurpose::Create {
                topic: meta.topic.clone(),
                topic_id: meta.topic_id,
                waiter,
            },
        );
        Partition::new(log, ProducerStates::default())
    }

    /// The metadata file of partition `i` of an existing topic, as it stands now.
    pub(super) fn partition_meta_now(&self, name: &str, i: usize) -> PartitionMeta {
        let t = &self.topics[name];
        PartitionMeta {
            topic: name.to_string(),
            topic_id: t.id,
            partition: i as i32,
            partition_count: t.partitions.len() as i32,
            settings: t.settings.clone(),
            log_start_offset: t.partitions[i].log.log_start_offset(),
        }
    }

    /// Park an admin response until its storage operations (`outstanding`, per topic) are
    /// done, or send it now if there are none.
    pub(super) fn answer_when_durable(
        &mut self,
        id: u64,
        to: ReplyTo,
        response: ResponseKind,
        outstanding: BTreeMap<String, usize>,
    ) {
        assert!(outstanding.values().all(|n| *n > 0));
        if outstanding.is_empty() {
            self.respond(to, Some(response));
        } else {
            let pending = PendingCreate {
                reply: to,
                response,
                outstanding,
            };
            assert!(self.creates.insert(id, pending).is_none());
        }
    }

    pub(super) fn topic_settings_from(
        &self,
        configs: &[(String, Option<String>)],
    ) -> Result<TopicSettings, String> {
        self.apply_topic_configs(self.default_settings(), configs)
    }

    /// `base` with the topic configs `configs` applied (a `None` value restores the broker's
    /// default), checked as a whole. The configs gregor honours are the fields of
    /// [`TopicSettings`]; `min.insync.replicas` on a standalone broker is accepted at 1 only.
    pub(super) fn apply_topic_configs(
        &self,
        base: TopicSettings,
        configs: &[(String, Option<String>)],
    ) -> Result<TopicSettings, String> {
        let d = self.default_settings();
        let mut s = base;
        for (k, v) in configs {
            if let Some(applied) = s.compaction.apply(k, v.as_deref(), &d.compaction) {
                applied?;
                continue;
            }
            if v.is_none() {
                match k.as_str() {
                    "retention.ms" => s.retention_ms = d.retention_ms,
                    "retention.bytes" => s.retention_bytes = d.retention_bytes,
                    "segment.bytes" => s.segment_bytes = d.segment_bytes,
                    "segment.ms" => s.segment_ms = d.segment_ms,
                    "max.message.bytes" => s.max_message_bytes = d.max_message_bytes,
                    "message.timestamp.type" => s.timestamp_type = d.timestamp_type,
                    "compression.type" => s.compression = d.compression,
                    "index.interval.bytes" => s.index_interval_bytes = d.index_interval_bytes,
                    "min.insync.replicas" => {}
                    crate::cluster::replication::UNCLEAN_LEADER_ELECTION_ENABLE
                        if self.config.kraft => {}
                    _ => return Err(format!("unknown topic config {k}")),
                }
                continue;
            }
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
                    if !(128..=u32::MAX as i64).contains(&n) {
                        return Err("max.message.bytes must be at least 128".into());
                    }
                    s.max_message_bytes = n as u32;
                }
                // In a cluster both replication configs are the controller's (KIP-500): checked
                // here as it checks them, enforced by leaders and the controller.
                "min.insync.replicas" | "unclean.leader.election.enable" if self.config.kraft => {
                    crate::cluster::replication::validate_config(k, v).map_err(|e| e.message())?
                }
                "min.insync.replicas" if v == "1" => {}
                "min.insync.replicas" => {
                    return Err(format!(
                        "topic config {k}={v} is not supported: gregor implements only 1"
                    ))
                }
                "message.timestamp.type" => {
                    s.timestamp_type = TimestampType::parse(v).ok_or_else(|| {
                        format!(
                            "invalid value {v:?} for configuration {k}: expected CreateTime or \
                             LogAppendTime"
                        )
                    })?
                }
                "compression.type" => {
                    s.compression = TopicCompression::parse(v).ok_or_else(|| {
                        format!(
                            "invalid value {v:?} for configuration {k}: expected one of \
                             producer, uncompressed, gzip, snappy, lz4, zstd"
                        )
                    })?
                }
                "index.interval.bytes" => {
                    s.index_interval_bytes = num()
                        .ok()
                        .and_then(|n| u32::try_from(n).ok())
                        .filter(|n| *n <= i32::MAX as u32)
                        .ok_or_else(|| {
                            format!(
                                "invalid value {v:?} for configuration {k}: expected a number \
                                 of bytes in [0, 2147483647]"
                            )
                        })?
                }
                _ => return Err(format!("unknown topic config {k}")),
            }
        }
        if s.max_message_bytes as u64 + 64 > s.segment_bytes {
            return Err(format!(
                "max.message.bytes {} does not fit in a segment of segment.bytes {}",
                s.max_message_bytes, s.segment_bytes
            ));
        }
        Ok(s)
    }

    /// The checks every new topic passes, standalone or in a cluster: a legal name not
    /// reserved for internal topics (`__`), not taken, no manual replica assignment, a partition
    /// count within `partitions_per_topic_max`, then the mode's own checks (`mode_checks`: the
    /// replication factor, the topic limit), then configs that apply. Returns the settings the
    /// configs make.
    pub(super) fn check_new_topic(
        &self,
        name: &str,
        exists: bool,
        manual_assignment: bool,
        partitions: i32,
        configs: &[(String, Option<String>)],
        mode_checks: impl FnOnce() -> Result<(), ClientError>,
    ) -> Result<TopicSettings, ClientError> {
        validate_topic_name(name)
            .map_err(|e| ClientError::new(ErrorCode::INVALID_TOPIC_EXCEPTION, e))?;
        if name.starts_with("__") {
            return Err(ClientError::new(
                ErrorCode::INVALID_TOPIC_EXCEPTION,
                "names starting with __ are reserved for internal topics",
            ));
        }
        if exists {
            return Err(ClientError::new(
                ErrorCode::TOPIC_ALREADY_EXISTS,
                format!("topic {name} already exists"),
            ));
        }
        if manual_assignment {
            return Err(ClientError::new(
                ErrorCode::INVALID_REQUEST,
                "manual replica assignment is not supported",
            ));
        }
        if partitions < 1 || partitions > self.config.partitions_per_topic_max {
            return Err(ClientError::new(
                ErrorCode::INVALID_PARTITIONS,
                format!(
                    "partition count {partitions} is not within 1..={}",
                    self.config.partitions_per_topic_max
                ),
            ));
        }
        mode_checks()?;
        self.topic_settings_from(configs)
            .map_err(|e| ClientError::new(ErrorCode::INVALID_CONFIG, e))
    }

    pub(super) fn create_topics(&mut self, to: ReplyTo, r: CreateTopicsRequest) {
        if self.config.kraft {
            return self.kraft_create_topics(to, r);
        }
        let id = self.next_pending;
        self.next_pending += 1;
        let mut response = CreateTopicsResponse::default();
        let mut outstanding = BTreeMap::new();
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
            let exists = self.topics.contains_key(&name);
            let check = self.check_new_topic(
                &name,
                exists,
                !t.assignments.is_empty(),
                partitions,
                &configs,
                || {
                    if !(t.replication_factor == -1 || t.replication_factor == 1) {
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
                    } else {
                        Ok(())
                    }
                },
            );
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
                        outstanding.insert(name.clone(), ops);
                    }
                }
            }
            response.topics.push(res);
        }
        // Every topic asked for is answered, in order.
        assert_eq!(response.topics.len(), requested);
        self.answer_when_durable(id, to, ResponseKind::CreateTopics(response), outstanding);
    }

    /// One storage operation of the admin request `id` completed (or failed) for `topic`.
    pub(super) fn create_op_done(&mut self, id: u64, topic: &str, failed: bool) {
        let Some(pc) = self.creates.get_mut(&id) else {
            return;
        };
        if failed {
            mark_storage_failed(&mut pc.response, topic);
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
            self.respond(pc.reply, Some(pc.response));
        }
    }

    pub(super) fn delete_topics(&mut self, to: ReplyTo, version: i16, r: DeleteTopicsRequest) {
        // DeleteTopics is served up to v4 (see `wire::SUPPORTED`); the v6 `topics` field (names
        // or ids, KIP-516) never arrives, so only `topic_names` is read.
        assert!(
            version <= 4,
            "DeleteTopics v{version} is above the negotiated cap"
        );
        if self.config.kraft {
            return self.kraft_delete_topics(to, r);
        }
        let names: Vec<String> = r.topic_names.iter().map(|n| name_of(&n.0)).collect();
        let mut resp = DeleteTopicsResponse::default();
        for name in names {
            let mut res =
                DeletableTopicResult::default().with_name(Some(TopicName(sb(name.clone()))));
            match self.topics.get(&name) {
                None => res.error_code = ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.into(),
                Some(t) if t.internal => res.error_code = ErrorCode::INVALID_TOPIC_EXCEPTION.into(),
                Some(_) => self.delete_local_topic(&name),
            }
            resp.responses.push(res);
        }
        self.respond(to, Some(ResponseKind::DeleteTopics(resp)));
    }

    /// Remove topic `name` and delete its partitions' directories (those this broker holds:
    /// a KRaft-mode placeholder for another broker's partition has none).
    pub(super) fn delete_local_topic(&mut self, name: &str) {
        let t = self.topics.remove(name).expect("a local topic");
        for (i, p) in t.partitions.iter().enumerate() {
            // Produces waiting on it fail now (UNKNOWN_TOPIC_OR_PARTITION).
            self.produce_waits.touch(&(name.to_string(), i as i32));
            if p.offline.as_deref() != Some(crate::broker::cluster::NOT_HOSTED) {
                self.storage(
                    StorageRequest::DeletePartition {
                        dir: PartitionDir {
                            topic: name.to_string(),
                            partition: i as i32,
                        },
                    },
                    OpPurpose::Other {
                        what: format!("delete {name}-{i}"),
                    },
                );
            }
            self.touched.insert((name.to_string(), i as i32));
        }
        assert!(!self.topics.contains_key(name));
        self.log(LogLevel::Info, format!("deleted topic {name}"));
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
                2 => match self.topic_config_entries(&name) {
                    None => {
                        out.error_code = ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.into();
                        out.error_message = Some(sb(format!("unknown topic {name}")));
                        vec![]
                    }
                    Some(entries) => entries,
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
                        (
                            "log.cleanup.policy".into(),
                            c.cleanup_policy.name().into(),
                            true,
                        ),
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

/// A storage operation an admin response waits for failed: every entry of the response about
/// `topic` becomes KAFKA_STORAGE_ERROR (the topic's partitions were taken offline).
fn mark_storage_failed(response: &mut ResponseKind, topic: &str) {
    let code: i16 = ErrorCode::KAFKA_STORAGE_ERROR.into();
    let message = Some(sb(format!("storage failed while writing topic {topic}")));
    match response {
        ResponseKind::CreateTopics(r) => {
            for t in r.topics.iter_mut().filter(|t| t.name.0.as_str() == topic) {
                t.error_code = code;
                t.error_message = message.clone();
            }
        }
        ResponseKind::CreatePartitions(r) => {
            for t in r.results.iter_mut().filter(|t| t.name.0.as_str() == topic) {
                t.error_code = code;
                t.error_message = message.clone();
            }
        }
        ResponseKind::IncrementalAlterConfigs(r) => {
            for t in r
                .responses
                .iter_mut()
                .filter(|t| t.resource_name.as_str() == topic)
            {
                t.error_code = code;
                t.error_message = message.clone();
            }
        }
        ResponseKind::AlterConfigs(r) => {
            for t in r
                .responses
                .iter_mut()
                .filter(|t| t.resource_name.as_str() == topic)
            {
                t.error_code = code;
                t.error_message = message.clone();
            }
        }
        ResponseKind::DeleteRecords(r) => {
            for t in r.topics.iter_mut().filter(|t| t.name.0.as_str() == topic) {
                for p in &mut t.partitions {
                    p.error_code = code;
                    p.low_watermark = -1;
                }
            }
        }
        other => unreachable!("no admin response of kind {other:?} waits for storage"),
    }
}
