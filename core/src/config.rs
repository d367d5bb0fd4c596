//! Broker configuration: every limit and timeout in one place, checked once by [`Config::validate`].
//!
//! Names follow the house rule `thing_unit_max`; where a setting mirrors a Kafka broker or topic
//! config, the Kafka name is given in the doc comment so a reader can look it up.

use crate::ids::BrokerId;
use crate::time::Duration;
use serde::{Deserialize, Serialize};

/// Kafka's `index.interval.bytes` default: bytes appended between two offset-index entries
/// ([`crate::log::index`]).
pub const INDEX_INTERVAL_BYTES_DEFAULT: u32 = 4096;

/// When the log is forced to stable storage, and so what an acknowledgement promises.
///
/// Kafka itself never fsyncs on the produce path: it relies on replication for durability and on
/// the page cache for speed. A single embedded broker has no replicas, so gregor's default is
/// [`Durability::GroupCommit`]: a produce with acks ≥ 1 is answered only after an fsync covering
/// its batch, and one fsync covers every batch appended since the previous one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "policy", rename_all = "kebab-case")]
pub enum Durability {
    /// Never fsync on the produce path (Kafka's default). Acknowledged records survive a process
    /// crash (they are in the page cache) but may be lost on power loss.
    None,
    /// Group commit: acks ≥ 1 are answered after an fsync that covers the batch. Survives power
    /// loss. Consumers only see records that have been synced.
    GroupCommit,
    /// fsync every `records` records or every `interval_ms`, whichever comes first
    /// (Kafka's `flush.messages` / `flush.ms`). Acks are answered after the write, so a power
    /// loss may lose up to that many records or that much time.
    Interval { records: u64, interval_ms: u64 },
}

/// What happens to a topic's old records (Kafka's `cleanup.policy`, a list of `delete` and
/// `compact`).
///
/// * `delete`: whole old segments are deleted by `retention.ms` and `retention.bytes`.
/// * `compact`: the log keeps, for every key, at least its latest record (log compaction:
///   [`crate::log::cleaner`]); nothing is deleted by age or size.
/// * `compact,delete`: both; a key's latest record still goes when its segment expires.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CleanupPolicy {
    #[default]
    Delete,
    Compact,
    CompactDelete,
}

impl CleanupPolicy {
    /// Parse a `cleanup.policy` value as Kafka accepts it: a comma-separated list of `delete`
    /// and `compact`, in any order, spaces around items allowed, no duplicates, not empty.
    pub fn parse(v: &str) -> Option<CleanupPolicy> {
        let items: Vec<&str> = v.split(',').map(str::trim).collect();
        let (mut compact, mut delete) = (false, false);
        for item in &items {
            match *item {
                "compact" if !compact => compact = true,
                "delete" if !delete => delete = true,
                _ => return None,
            }
        }
        Some(match (compact, delete) {
            (true, true) => CleanupPolicy::CompactDelete,
            (true, false) => CleanupPolicy::Compact,
            (false, true) => CleanupPolicy::Delete,
            (false, false) => return None,
        })
    }
    /// Kafka's spelling of the value.
    pub fn name(self) -> &'static str {
        match self {
            CleanupPolicy::Delete => "delete",
            CleanupPolicy::Compact => "compact",
            CleanupPolicy::CompactDelete => "compact,delete",
        }
    }
    pub fn compacts(self) -> bool {
        self != CleanupPolicy::Delete
    }
    pub fn deletes(self) -> bool {
        self != CleanupPolicy::Compact
    }
}

/// Whose clock a batch's timestamp is (Kafka's `message.timestamp.type`, per topic, and the
/// broker default `log.message.timestamp.type`):
/// * `CreateTime`: the producer's, as it sent the records (Kafka's default);
/// * `LogAppendTime`: the broker's. On append the leader marks the batch (attribute bit 3) and
///   writes its own clock's time as the batch's `maxTimestamp`; every record of the batch then
///   reads as that time (records keep their deltas, which readers ignore). Time-based retention,
///   the time index and ListOffsets by timestamp all see the append time, and the produce
///   response carries it (`log_append_time_ms`, −1 under CreateTime).
///
/// Reference: KIP-32 (timestamps in messages), Kafka's `LogValidator`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum TimestampType {
    #[default]
    CreateTime,
    LogAppendTime,
}

impl TimestampType {
    /// Parse a value as Kafka spells it (exactly `CreateTime` or `LogAppendTime`).
    pub fn parse(v: &str) -> Option<TimestampType> {
        match v {
            "CreateTime" => Some(TimestampType::CreateTime),
            "LogAppendTime" => Some(TimestampType::LogAppendTime),
            _ => None,
        }
    }
    /// Kafka's spelling of the value.
    pub fn name(self) -> &'static str {
        match self {
            TimestampType::CreateTime => "CreateTime",
            TimestampType::LogAppendTime => "LogAppendTime",
        }
    }
}

/// How a topic's batches are stored (Kafka's `compression.type`, per topic, and the broker
/// default of the same name): `producer` keeps each batch as its producer compressed it;
/// any other value is the codec every stored batch has, and a batch that arrives in another
/// codec is recompressed by the leader before it is appended (decompressed, compressed again,
/// its CRC recomputed), as Kafka's `LogValidator` does. Records themselves are not changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TopicCompression {
    #[default]
    Producer,
    Uncompressed,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl TopicCompression {
    /// Every value, in Kafka's order.
    pub const ALL: [TopicCompression; 6] = [
        TopicCompression::Producer,
        TopicCompression::Uncompressed,
        TopicCompression::Gzip,
        TopicCompression::Snappy,
        TopicCompression::Lz4,
        TopicCompression::Zstd,
    ];
    /// Parse a value as Kafka spells it (lower case).
    pub fn parse(v: &str) -> Option<TopicCompression> {
        TopicCompression::ALL.into_iter().find(|c| c.name() == v)
    }
    /// Kafka's spelling of the value.
    pub fn name(self) -> &'static str {
        match self {
            TopicCompression::Producer => "producer",
            TopicCompression::Uncompressed => "uncompressed",
            TopicCompression::Gzip => "gzip",
            TopicCompression::Snappy => "snappy",
            TopicCompression::Lz4 => "lz4",
            TopicCompression::Zstd => "zstd",
        }
    }
    /// The codec id a stored batch must carry in its attributes (bits 0–2: 0 none, 1 gzip,
    /// 2 snappy, 3 lz4, 4 zstd), or None when the producer's codec is kept.
    pub fn codec(self) -> Option<i16> {
        match self {
            TopicCompression::Producer => None,
            TopicCompression::Uncompressed => Some(0),
            TopicCompression::Gzip => Some(1),
            TopicCompression::Snappy => Some(2),
            TopicCompression::Lz4 => Some(3),
            TopicCompression::Zstd => Some(4),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// This broker's id (Kafka `node.id`).
    pub broker_id: BrokerId,
    /// Seed for the core's PRNG. The binary draws it from the OS and logs it.
    pub seed: u64,
    /// The host and port clients are told to connect to (Kafka `advertised.listeners`).
    pub advertised_host: String,
    pub advertised_port: i32,
    /// Create a topic when a client asks for its metadata or produces to it
    /// (Kafka `auto.create.topics.enable`).
    pub auto_create_topics: bool,
    /// Partitions of an auto-created topic (Kafka `num.partitions`).
    pub default_partitions: i32,
    /// Roll to a new segment when the active one would exceed this size (Kafka `segment.bytes`).
    pub segment_bytes_max: u64,
    /// Roll to a new segment when the active one is older than this (Kafka `segment.ms`).
    pub segment_age_ms_max: u64,
    /// Delete old segments when the log is larger than this; -1 means no limit
    /// (Kafka `retention.bytes`).
    pub retention_bytes: i64,
    /// Delete segments whose newest record is older than this; -1 means keep forever
    /// (Kafka `retention.ms`).
    pub retention_ms: i64,
    /// How often old segments are looked at for deletion by `retention.ms` and
    /// `retention.bytes` (Kafka `log.retention.check.interval.ms`, 5 minutes there).
    pub retention_check_interval_ms: u64,
    /// Largest record batch accepted (Kafka `message.max.bytes`).
    pub batch_bytes_max: u32,
    /// The cleanup policy of a topic created without `cleanup.policy` (Kafka
    /// `log.cleanup.policy`); see [`CleanupPolicy`].
    pub cleanup_policy: CleanupPolicy,
    /// The `message.timestamp.type` of a topic created without one (Kafka
    /// `log.message.timestamp.type`); see [`TimestampType`].
    pub message_timestamp_type: TimestampType,
    /// The `compression.type` of a topic created without one (Kafka `compression.type`);
    /// see [`TopicCompression`].
    pub compression_type: TopicCompression,
    /// The `index.interval.bytes` of a topic created without one (Kafka
    /// `log.index.interval.bytes`): bytes appended between two entries of a segment's sparse
    /// offset and time indexes ([`crate::log::index`]).
    pub index_interval_bytes: u32,
    /// How long the log cleaner waits between looks for a compacted partition dirty enough to
    /// clean (Kafka `log.cleaner.backoff.ms`).
    pub log_cleaner_backoff_ms: u64,
    /// The durability policy; see [`Durability`].
    pub durability: Durability,
    /// Most bytes returned by one fetch response, whatever the client asks
    /// (Kafka `fetch.max.bytes`).
    pub fetch_response_bytes_max: u32,
    /// Longest a fetch may wait for data (caps the client's max_wait_ms).
    pub fetch_wait_ms_max: u64,
    /// Most fetches parked waiting for data at once; more are answered at once.
    pub fetches_parked_max: usize,
    /// Most requests from one connection in flight inside the broker at once; the network layer
    /// stops reading a connection that reaches it (Kafka mutes a channel after one request).
    pub requests_per_connection_max: usize,
    /// Most partitions a topic may have.
    pub partitions_per_topic_max: i32,
    /// Most topics.
    pub topics_max: usize,
    /// Most idempotent producer ids remembered per partition.
    pub producers_per_partition_max: usize,
    /// Shortest session timeout a consumer may ask for (Kafka `group.min.session.timeout.ms`).
    pub group_session_timeout_ms_min: i32,
    /// Longest session timeout a consumer may ask for (Kafka `group.max.session.timeout.ms`).
    pub group_session_timeout_ms_max: i32,
    /// How long a new group waits for more members before its first rebalance completes
    /// (Kafka `group.initial.rebalance.delay.ms`).
    pub group_initial_rebalance_delay_ms: u64,
    /// How long the committed offsets of an empty group are kept; -1 keeps them forever
    /// (Kafka `offsets.retention.minutes`, in ms).
    pub offsets_retention_ms: i64,
    /// Partitions of the internal `__consumer_offsets` topic (Kafka
    /// `offsets.topic.num.partitions`, default 50 there).
    pub offsets_topic_partitions: i32,
    /// Replicas of each `__consumer_offsets` partition (Kafka
    /// `offsets.topic.replication.factor`, default 3), so a committed offset outlives the
    /// broker that coordinated its group. A KRaft broker asks for min(this, brokers registered)
    /// when it creates the topic, so a cluster of one or two still gets its coordinators.
    pub offsets_topic_replication_factor: i16,
    /// An offsets partition larger than this is rewritten as a snapshot of its live keys, and
    /// its older segments deleted (gregor's form of Kafka's compaction of the offsets topic).
    pub offsets_log_bytes_max: u64,
    /// Most produces (acks 1 or all) parked waiting for their batches to be acknowledged; a
    /// produce beyond it is refused before anything is written, with REQUEST_TIMED_OUT
    /// (retriable; an idempotent producer's retry is deduplicated).
    pub produces_parked_max: usize,
    /// Most internal writes (to `__consumer_offsets`) waiting for durability at once, each with
    /// the response it releases. A group operation beyond it is refused before anything is
    /// written, with COORDINATOR_NOT_AVAILABLE (retriable: the client finds the coordinator
    /// again and retries). Kafka bounds the same queue by its request queue.
    pub coordinator_writes_pending_max: usize,
    /// Kafka's `offsets.commit.timeout.ms`: how long a group coordinator's write (a commit, a
    /// join's or sync's membership record) waits for the high watermark to cover it before its
    /// request is answered with COORDINATOR_NOT_AVAILABLE (Kafka's mapping of the timeout, so
    /// the client finds the coordinator again and retries). The write stays in the log: if it
    /// becomes durable later, its records still take effect, as a reload would apply them.
    pub offsets_commit_timeout_ms: u64,
    /// Most cuts (failed writes) a partition remembers individually; older ones are folded
    /// into one conservative floor (a write is then taken for lost if it reached above the
    /// lowest folded cut, which is never wrong, only pessimistic).
    pub partition_cuts_max: usize,
    /// Most InitProducerId requests waiting for `broker.meta` to be written at once; more get
    /// COORDINATOR_LOAD_IN_PROGRESS (retriable).
    pub producer_id_waiters_max: usize,
    /// Serve as a member of a KRaft cluster (issue 9): partitions, leaders and brokers come
    /// from the metadata image the node's metadata side delivers (`Input::Metadata`), and
    /// admin changes and producer-id blocks are asked of the active controller
    /// (`Output::Controller`). False: the standalone single broker, its own controller.
    pub kraft: bool,
    /// The incarnation id this process registers with (KRaft; Kafka draws a random UUID at
    /// every start). Until the image's registration of this broker carries it, the image's
    /// roles for this broker belong to its *previous* run: the controller cannot know yet that
    /// the process restarted (its old session has not lapsed), and may still name it leader or
    /// ISR member on the strength of a log this run may no longer have. So the broker leads and
    /// follows nothing until its own registration is committed, as Kafka's broker publishes no
    /// metadata to its replica manager before it has registered and caught up. `None`: no
    /// check (tests that hand the broker images directly).
    pub incarnation_id: Option<[u8; 16]>,
    /// How often the broker checks every invariant in full after a step. Between full checks
    /// it checks what each step changed (the partitions it touched, the purgatories' counts),
    /// so a step's cost does not grow with the requests waiting. 1 is every step: what the
    /// simulator and the test harness (`testkit`) run; debug builds check in full after every
    /// step whatever this says. Default 1000.
    pub full_check_every_steps: u64,
    /// Replication (issue 10), Kafka's `replica.lag.time.max.ms`: a follower in the ISR that
    /// has not caught up with the leader's log end for this long is shrunk out of it. The
    /// leader checks every half of it.
    pub replica_lag_time_max_ms: u64,
    /// Kafka's `replica.fetch.wait.max.ms`: how long a follower's fetch may wait at the
    /// leader for new data (its `max_wait_ms`).
    pub replica_fetch_wait_max_ms: u64,
    /// Kafka's `replica.fetch.max.bytes`: a follower fetch's `partition_max_bytes`.
    pub replica_fetch_max_bytes: u32,
    /// Kafka's `replica.fetch.response.max.bytes`: a follower fetch's `max_bytes`.
    pub replica_fetch_response_max_bytes: u32,
    /// Kafka's `replica.fetch.backoff.ms`: the pause before fetching again from a leader
    /// after a failed fetch.
    pub replica_fetch_backoff_ms: u64,
    /// Kafka's `min.insync.replicas` broker default (a topic's own setting in the image wins):
    /// acks=all needs an ISR at least this big, and the high watermark does not advance
    /// while the ISR is smaller.
    pub min_insync_replicas: u32,
    /// The authorizer (Kafka's `authorizer.class.name` set to the StandardAuthorizer, with
    /// `super.users` and `allow.everyone.if.no.acl.found`): `None`, the default, checks
    /// nothing; `Some` checks every request against the ACLs of the metadata image
    /// (`crate::acl`). Set by the driver from its own settings, not from `[broker]`.
    #[serde(skip)]
    pub authorizer: Option<crate::acl::Authorizer>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            broker_id: BrokerId(0),
            seed: 0,
            advertised_host: "127.0.0.1".into(),
            advertised_port: 9092,
            auto_create_topics: true,
            default_partitions: 1,
            segment_bytes_max: 128 * 1024 * 1024,
            segment_age_ms_max: 7 * 24 * 3600 * 1000,
            retention_bytes: -1,
            retention_ms: 7 * 24 * 3600 * 1000,
            retention_check_interval_ms: 60_000,
            batch_bytes_max: 1024 * 1024 + 12,
            cleanup_policy: CleanupPolicy::Delete,
            message_timestamp_type: TimestampType::CreateTime,
            compression_type: TopicCompression::Producer,
            index_interval_bytes: INDEX_INTERVAL_BYTES_DEFAULT,
            log_cleaner_backoff_ms: 15_000,
            durability: Durability::GroupCommit,
            fetch_response_bytes_max: 50 * 1024 * 1024,
            fetch_wait_ms_max: 30_000,
            fetches_parked_max: 10_000,
            requests_per_connection_max: 64,
            partitions_per_topic_max: 10_000,
            topics_max: 10_000,
            producers_per_partition_max: 10_000,
            group_session_timeout_ms_min: 6_000,
            group_session_timeout_ms_max: 1_800_000,
            group_initial_rebalance_delay_ms: 3_000,
            offsets_retention_ms: 7 * 24 * 3600 * 1000,
            offsets_topic_partitions: 4,
            offsets_topic_replication_factor: 3,
            offsets_log_bytes_max: 16 * 1024 * 1024,
            produces_parked_max: 10_000,
            coordinator_writes_pending_max: 10_000,
            offsets_commit_timeout_ms: 5_000,
            partition_cuts_max: 64,
            producer_id_waiters_max: 1_000,
            kraft: false,
            incarnation_id: None,
            full_check_every_steps: 1_000,
            replica_lag_time_max_ms: 30_000,
            replica_fetch_wait_max_ms: 500,
            replica_fetch_max_bytes: 1024 * 1024,
            replica_fetch_response_max_bytes: 10 * 1024 * 1024,
            replica_fetch_backoff_ms: 1_000,
            min_insync_replicas: 1,
            authorizer: None,
        }
    }
}

/// What is wrong with a configuration, naming the setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid configuration: {}", self.0)
    }
}
impl std::error::Error for ConfigError {}

impl Config {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |s: &str| Err(ConfigError(s.to_string()));
        if self.broker_id < BrokerId(0) {
            return bad("broker_id must be >= 0");
        }
        if self.default_partitions < 1 || self.default_partitions > self.partitions_per_topic_max {
            return bad("default_partitions must be between 1 and partitions_per_topic_max");
        }
        if self.segment_bytes_max < 1024 {
            return bad("segment_bytes_max must be at least 1024");
        }
        if self.index_interval_bytes > i32::MAX as u32 {
            return bad("index_interval_bytes (log.index.interval.bytes) must be at most 2^31 - 1");
        }
        if (self.batch_bytes_max as u64) + 64 > self.segment_bytes_max {
            return bad("batch_bytes_max must fit in a segment (segment_bytes_max)");
        }
        if self.batch_bytes_max < 128 {
            return bad("batch_bytes_max must be at least 128");
        }
        if self.fetch_response_bytes_max < 1024 {
            return bad("fetch_response_bytes_max must be at least 1024");
        }
        if self.requests_per_connection_max == 0 {
            return bad("requests_per_connection_max must be at least 1");
        }
        if let Durability::Interval {
            records,
            interval_ms,
        } = self.durability
        {
            if records == 0 || interval_ms == 0 {
                return bad("durability interval: records and interval_ms must be > 0");
            }
        }
        if self.group_session_timeout_ms_min <= 0
            || self.group_session_timeout_ms_min > self.group_session_timeout_ms_max
        {
            return bad(
                "group_session_timeout_ms_min must be > 0 and <= group_session_timeout_ms_max",
            );
        }
        if self.offsets_topic_partitions < 1 || self.offsets_topic_partitions > 1000 {
            return bad("offsets_topic_partitions must be between 1 and 1000");
        }
        if self.offsets_topic_replication_factor < 1 {
            return bad("offsets_topic_replication_factor must be at least 1");
        }
        if self.produces_parked_max == 0 || self.fetches_parked_max == 0 {
            return bad("produces_parked_max and fetches_parked_max must be at least 1");
        }
        if self.coordinator_writes_pending_max == 0 {
            return bad("coordinator_writes_pending_max must be at least 1");
        }
        if self.offsets_commit_timeout_ms == 0 {
            return bad("offsets_commit_timeout_ms must be at least 1");
        }
        if self.partition_cuts_max == 0 {
            return bad("partition_cuts_max must be at least 1");
        }
        if self.retention_check_interval_ms == 0 {
            return bad("retention_check_interval_ms must be at least 1");
        }
        if self.log_cleaner_backoff_ms == 0 {
            return bad("log_cleaner_backoff_ms must be at least 1");
        }
        if self.full_check_every_steps == 0 {
            return bad("full_check_every_steps must be at least 1");
        }
        if self.producer_id_waiters_max == 0 {
            return bad("producer_id_waiters_max must be at least 1");
        }
        if self.replica_lag_time_max_ms < 2 || self.replica_fetch_backoff_ms == 0 {
            return bad("replica_lag_time_max_ms must be >= 2, replica_fetch_backoff_ms >= 1");
        }
        if self.replica_fetch_max_bytes == 0 || self.replica_fetch_response_max_bytes == 0 {
            return bad("replica_fetch_max_bytes and replica_fetch_response_max_bytes must be > 0");
        }
        if self.min_insync_replicas == 0 {
            return bad("min_insync_replicas must be at least 1");
        }
        if self.advertised_port <= 0 || self.advertised_port > 65535 {
            return bad("advertised_port must be a TCP port");
        }
        Ok(())
    }

    pub fn fetch_wait_max(&self) -> Duration {
        Duration::from_ms(self.fetch_wait_ms_max)
    }
}
