//! The broker as a member of a KRaft cluster: what it does with the metadata image.
//!
//! In a KRaft cluster (KIP-500, KIP-631) a broker decides nothing about the cluster's shape.
//! The active controller writes every decision (a broker registered or fenced, a topic created
//! with its partitions placed on brokers, a new leader elected) as records in the metadata log;
//! the node's metadata side replays the committed ones into an immutable
//! [`MetadataImage`] and hands each new image to the broker as [`Input::Metadata`]. The broker
//! then *follows* the image, as Kafka's `BrokerMetadataPublisher` and `ReplicaManager.applyDelta`
//! do:
//!
//! * **Local partitions follow the image.** A partition whose replica list names this broker
//!   has a log here: one that appears is created on disk (with the topic id the controller
//!   chose), a topic that disappears is deleted, and a topic re-created under the same name
//!   (a new id, KIP-516) replaces the old one. At a restart the logs found on disk are kept
//!   untouched until the first image arrives; then one the image does not name, or names with
//!   another topic id, is a *stray* (KIP-858: it was deleted while this broker was away) and is
//!   deleted, with a log line naming both ids. Partitions of a topic that live on other brokers
//!   are placeholders here (offline, [`NOT_HOSTED`]), so a topic's partitions keep their index.
//! * **Leadership.** Only a partition's leader serves produce, fetch, ListOffsets, DeleteRecords
//!   and DescribeProducers. Everything else answers NOT_LEADER_OR_FOLLOWER (6), and Fetch v12+
//!   also names the leader and its epoch (KIP-951), so the client goes straight there without
//!   waiting for a metadata refresh. A partition the image lacks is UNKNOWN_TOPIC_OR_PARTITION
//!   (3); one with no leader (its only replica's broker is fenced) is LEADER_NOT_AVAILABLE (5)
//!   for produce and NOT_LEADER_OR_FOLLOWER for the rest. The check is [`Broker::serve_check`],
//!   one call from each handler. Batches this broker writes as leader carry the partition's
//!   leader epoch (`partitionLeaderEpoch`), which is how Kafka later tells which leader wrote
//!   what (KIP-101).
//! * **Metadata, DescribeCluster, FindCoordinator** are answered from the image: every
//!   unfenced broker with its first endpoint, each partition's leader, epoch, replicas, ISR and
//!   offline replicas. Clients cannot reach controllers, so like Kafka's KRaft brokers the
//!   `controller_id` they are told is a live broker picked at random (from the core's seeded
//!   PRNG). A group's coordinator is the leader of its `__consumer_offsets` partition.
//! * **Admin changes are forwarded** (KIP-590's forwarding, done natively): each topic of a
//!   CreateTopics or DeleteTopics leaves as one [`Output::Controller`], and the Kafka response
//!   is assembled when every [`Input::ControllerReply`] is in, or the request's timeout passed
//!   (REQUEST_TIMED_OUT for the topics not answered). The broker's local files change later,
//!   when the committed records reach it in an image.
//! * **Producer ids** (KIP-730): blocks come from the controller (`AllocateProducerIds`, naming
//!   this broker's epoch from the image), the next one asked for when 90% of the current block
//!   is used, as Kafka's `RPCProducerIdManager` does; InitProducerId waits (bounded) meanwhile.
//!
//! * **Upgrade** (gregor's migration, [`crate::cluster::import`]): before the first image the
//!   broker reports its local topics ([`Broker::local_topics`]), which a node whose metadata
//!   log is empty imports, so a data directory from the standalone broker loses nothing.
//!
//! With `Config.kraft` false none of this runs: the broker is its own one-broker cluster (the
//! standalone broker, now only for the single-node simulator and tests; `gregor serve` alone
//! is a one-voter KRaft node).

use super::*;
use crate::cluster::{
    BrokerId as NodeId, ControllerError, MetadataImage, PartitionRegistration, Reply,
    Request as ControllerRequest, RequestId,
};
use crate::group::OFFSETS_TOPIC;
use crate::ids::PartitionIndex;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::fetch_response::LeaderIdAndEpoch;
use kafka_protocol::messages::find_coordinator_response::Coordinator as FoundCoordinator;
use std::sync::Arc;

mod answers;
mod elect;
mod forward;
mod reassign;
mod scram;

/// The `offline` reason of a placeholder: a partition of a topic this broker knows but does
/// not hold (its replicas are elsewhere). Never created on disk, never deleted there.
pub(super) const NOT_HOSTED: &str = "not a replica on this broker";

/// Kafka's RPCProducerIdManager asks for the next block once this share of the current one
/// is handed out (90%), so InitProducerId rarely waits for the controller.
const PREFETCH_PERCENT: i64 = 90;

/// A Kafka request's timeout when it gives none (Kafka's `request.timeout.ms`, 30 s).
const DEFAULT_TIMEOUT_MS: u64 = 30_000;

/// What a controller request was sent for, so its reply can be applied.
#[derive(Debug)]
enum Asked {
    /// Topic `slot` of the admin request `admin` (a CreateTopics or DeleteTopics).
    Admin {
        admin: u64,
        slot: usize,
    },
    /// A topic created for no waiting client: auto-creation on Metadata, or
    /// `__consumer_offsets` for FindCoordinator.
    Background {
        topic: String,
    },
    ProducerIds,
    /// A DescribeQuorum forwarded for the client at `reply`.
    Quorum {
        reply: ReplyTo,
    },
    /// An ISR change (AlterPartition) for a partition led here (`replica/leader.rs`).
    AlterPartition {
        key: (String, i32),
    },
}

/// A CreateTopics or DeleteTopics waiting for the controller's answers.
#[derive(Debug)]
struct PendingAdmin {
    reply: ReplyTo,
    response: ResponseKind,
    /// The topics (indexes into the response) still without an answer.
    waiting: BTreeSet<usize>,
    deadline: Instant,
}

/// The broker's KRaft-mode state (empty and unused in standalone mode).
#[derive(Debug, Default)]
pub(super) struct KraftState {
    /// The latest image delivered; `None` until the first one.
    pub(super) image: Option<Arc<MetadataImage>>,
    next_request: u64,
    /// Controller requests out, by id.
    asked: BTreeMap<RequestId, Asked>,
    admin: BTreeMap<u64, PendingAdmin>,
    /// Topics a background creation is out for (one request at a time per topic).
    creating: BTreeSet<String>,
    /// The current producer-id block `pid_start .. pid_end`: the ids from `pid_next` on are
    /// this broker's to hand out.
    pid_start: i64,
    pid_next: i64,
    pid_end: i64,
    /// The block asked for ahead of need, if its answer came before the current one ran out.
    pid_prefetched: Option<(i64, i64)>,
    /// InitProducerId requests waiting for a block.
    pid_waiters: Vec<ReplyTo>,
    /// The `__consumer_offsets` partitions this broker leads, as of `image`.
    offsets_led: BTreeSet<i32>,
    /// Metadata requests waiting for the topics they auto-create (`answers.rs`).
    metadata_waits: Vec<answers::ParkedMetadata>,
}

impl KraftState {
    fn pid_asked(&self) -> bool {
        self.asked.values().any(|a| matches!(a, Asked::ProducerIds))
    }

    /// The earliest admin deadline.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        let admin = self.admin.values().map(|a| a.deadline);
        admin
            .chain(self.metadata_waits.iter().map(|m| m.deadline))
            .min()
    }

    pub(super) fn invariants(&self, waiters_max: usize) {
        assert!(self.pid_start <= self.pid_next && self.pid_next <= self.pid_end);
        assert!(self.pid_waiters.len() <= waiters_max);
        assert!(
            self.asked
                .values()
                .filter(|a| matches!(a, Asked::ProducerIds))
                .count()
                <= 1,
            "one producer-id block asked for at a time"
        );
        for (id, a) in &self.asked {
            assert!(id.0 < self.next_request, "ids are handed out in order");
            if let Asked::Admin { admin, slot } = a {
                // A request out for an admin request that still waits for that topic; the
                // ones of timed-out requests are forgotten with them.
                let p = self.admin.get(admin).expect("asked for a waiting request");
                assert!(p.waiting.contains(slot));
            }
        }
        for p in self.admin.values() {
            assert!(!p.waiting.is_empty(), "an answered request is released");
        }
    }
}

/// The broker's node id as the cluster names it.
fn node(id: crate::ids::BrokerId) -> NodeId {
    NodeId(id.0)
}

fn uuid_of(id: [u8; 16]) -> String {
    Uuid::from_bytes(id).to_string()
}

/// A partition's replicas whose broker is fenced or not registered: Metadata's
/// `offline_replicas`.
fn offline_replicas(image: &MetadataImage, p: &PartitionRegistration) -> Vec<NodeId> {
    p.replicas
        .iter()
        .copied()
        .filter(|b| image.broker(*b).is_none_or(|r| r.fenced))
        .collect()
}

/// The request `api` (for [`Broker::serve_check`]): produce tells an offline partition apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Serve {
    Produce,
    /// Fetch, ListOffsets, DeleteRecords, DescribeProducers.
    Read,
}

impl Broker {
    /// The committed metadata image this broker serves (KRaft mode, once one has arrived).
    pub fn metadata_image(&self) -> Option<&MetadataImage> {
        self.kraft.image.as_deref()
    }

    fn kraft_image(&self) -> Option<&MetadataImage> {
        self.kraft.image.as_deref()
    }

    /// Whether `image` registers this very process (its incarnation id, [`Config::incarnation_id`]):
    /// only then are the roles it names for this broker this run's to take. A restarted broker
    /// whose previous run is still registered leads and follows nothing until its own
    /// registration commits; that registration takes it out of every ISR it was in (KIP-903:
    /// a broker back with a new broker epoch re-earns its membership by fetching).
    pub(in crate::broker) fn registered_here(&self, image: &MetadataImage) -> bool {
        let me = node(self.config.broker_id);
        let ours = self
            .config
            .incarnation_id
            .is_none_or(|inc| image.broker(me).is_some_and(|r| r.incarnation_id == inc));
        assert!(!ours || self.config.incarnation_id.is_none() || image.broker(me).is_some());
        ours
    }

    /// The topics in this broker's data directory, as gregor's migration of a standalone
    /// broker imports them into an empty metadata log ([`crate::cluster::import`]): each topic's
    /// name, its id on disk, its partition count and the configs whose values differ from this
    /// broker's defaults (none for `__consumer_offsets`, whose settings are fixed), and the
    /// first producer id the standalone broker never handed out. Read before the first image,
    /// which would delete whatever the log does not name (KIP-858).
    pub fn local_topics(&self) -> crate::cluster::import::LocalTopics {
        let d = self.default_settings();
        let topics = self
            .topics
            .iter()
            .map(|(name, t)| {
                // Every topic config the settings stand for (retention, segments, size,
                // compaction, timestamp type, compression, index interval), as DescribeConfigs
                // shows them.
                use super::admin::settings_entries;
                let configs: BTreeMap<String, String> = settings_entries(&t.settings)
                    .into_iter()
                    .zip(settings_entries(&d))
                    .filter(|_| name != OFFSETS_TOPIC)
                    .filter(|((_, v), (_, dv))| v != dv)
                    .map(|((k, v), _)| (k, v))
                    .collect();
                crate::cluster::import::LocalTopic {
                    name: name.clone(),
                    topic_id: crate::cluster::TopicId(t.id),
                    partitions: t.partitions.len() as i32,
                    configs,
                }
            })
            .collect();
        crate::cluster::import::LocalTopics {
            topics,
            next_producer_id: self.next_producer_id.max(self.producer_id_block_end),
        }
    }

    /// May this broker serve `api` on `topic`-`partition`? Always in standalone mode; in KRaft
    /// mode only if the image names it and this broker leads it (see the module docs).
    pub(super) fn serve_check(
        &self,
        topic: &str,
        partition: i32,
        api: Serve,
    ) -> Result<(), ClientError> {
        if !self.config.kraft {
            return Ok(());
        }
        let unknown = || {
            ClientError::new(
                ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
                format!("the cluster has no partition {topic}-{partition}"),
            )
        };
        let image = self.kraft_image().ok_or_else(unknown)?;
        let id = image.topic_id(topic).ok_or_else(unknown)?;
        let p = image.partition(id, partition).ok_or_else(unknown)?;
        if !self.registered_here(image) {
            return Err(ClientError::new(
                ErrorCode::NOT_LEADER_OR_FOLLOWER,
                format!(
                    "{topic}-{partition}: this broker has restarted and its new incarnation is not registered yet"
                ),
            ));
        }
        match p.leader {
            Some(l) if l == node(self.config.broker_id) => Ok(()),
            Some(l) => Err(ClientError::new(
                ErrorCode::NOT_LEADER_OR_FOLLOWER,
                format!("{topic}-{partition} is led by broker {}", l.0),
            )),
            None if api == Serve::Produce => Err(ClientError::new(
                ErrorCode::LEADER_NOT_AVAILABLE,
                format!("{topic}-{partition} has no leader (offline)"),
            )),
            None => Err(ClientError::new(
                ErrorCode::NOT_LEADER_OR_FOLLOWER,
                format!("{topic}-{partition} has no leader (offline)"),
            )),
        }
    }

    /// Fetch v12+'s `current_leader` for a partition this broker refused (KIP-951): the leader
    /// and epoch the image names, or Kafka's "unknown" (-1, -1), which is also what standalone
    /// mode sends (and, being the default, leaves off the wire).
    pub(super) fn current_leader(&self, topic: &str, partition: i32) -> LeaderIdAndEpoch {
        let found = self.kraft_image().and_then(|image| {
            let p = image.partition(image.topic_id(topic)?, partition)?;
            Some((p.leader?.0, p.leader_epoch))
        });
        let (id, epoch) = found.unwrap_or((-1, -1));
        LeaderIdAndEpoch::default()
            .with_leader_id(BrokerId(id))
            .with_leader_epoch(epoch)
    }

    /// The leader epoch stamped into the batches this broker writes to `topic`-`partition`:
    /// the image's in KRaft mode, 0 in standalone mode (one broker, one epoch forever).
    pub(super) fn leader_epoch_of(&self, topic: &str, partition: i32) -> i32 {
        self.kraft_image()
            .and_then(|image| image.partition(image.topic_id(topic)?, partition))
            .map_or(0, |p| p.leader_epoch)
    }

    /// The settings of the local `__consumer_offsets` partitions. Offsets are kept by key, not
    /// by time: never delete the log by retention (Kafka compacts this topic instead), and a
    /// snapshot batch holds every live key of a partition, so it may be as large as a segment
    /// allows. The standalone group runtime (`group::runtime::start`) applies the same.
    pub(crate) fn offsets_topic_settings(&self) -> TopicSettings {
        self.default_settings().for_offsets_topic()
    }

    /// The replication factor this broker asks for when it creates `__consumer_offsets`:
    /// Kafka's `offsets.topic.replication.factor` (3), but no more than the brokers the image
    /// registers unfenced now. Kafka refuses FindCoordinator until that many brokers are alive;
    /// gregor creates the topic with fewer replicas instead, so a cluster of one or two still
    /// has group coordinators, and says so in the log: such a topic keeps its replication
    /// factor when brokers join later (reassigning it is an operator's job, as in Kafka).
    pub(super) fn offsets_replication_factor(&mut self) -> i16 {
        let wanted = self.config.offsets_topic_replication_factor;
        assert!(wanted >= 1, "validated configuration");
        let brokers = self.kraft_image().map_or(0, |image| {
            image.brokers().values().filter(|b| !b.fenced).count()
        });
        let rf = wanted.min(brokers.clamp(1, i16::MAX as usize) as i16);
        if rf < wanted {
            self.log(
                LogLevel::Warn,
                format!(
                    "{OFFSETS_TOPIC}: offsets.topic.replication.factor is {wanted} but {brokers} \
                     broker(s) are registered; creating it with replication factor {rf}"
                ),
            );
        }
        assert!((1..=wanted).contains(&rf));
        rf
    }

    fn ask_controller(&mut self, request: ControllerRequest, why: Asked) -> RequestId {
        let id = RequestId(self.kraft.next_request);
        self.kraft.next_request += 1;
        assert!(self.kraft.asked.insert(id, why).is_none());
        self.outputs.push_back(Output::Controller { id, request });
        assert!(
            self.kraft.next_request > id.0,
            "request ids are never reused"
        );
        id
    }

    /// Ask the controller for an ISR change of `key` (one at a time per partition).
    pub(in crate::broker) fn ask_alter_partition(
        &mut self,
        request: ControllerRequest,
        key: (String, i32),
    ) -> RequestId {
        assert!(matches!(request, ControllerRequest::AlterPartition { .. }));
        self.ask_controller(request, Asked::AlterPartition { key })
    }

    // ---- the image ----------------------------------------------------------------------

    /// A new committed image: follow it (see the module docs).
    pub(super) fn on_metadata(&mut self, image: Arc<MetadataImage>) {
        if !self.config.kraft {
            self.log(
                LogLevel::Error,
                "a metadata image reached a standalone broker (kraft = false); ignored".into(),
            );
            return;
        }
        if let Some(old) = self.kraft_image() {
            if image.offset() < old.offset() {
                let (new, old) = (image.offset(), old.offset());
                self.log(
                    LogLevel::Error,
                    format!("metadata image at offset {new} arrived after one at {old}; ignored"),
                );
                return;
            }
        }
        let me = node(self.config.broker_id);
        let first = self.kraft.image.is_none();
        // 1. Local topics the image no longer holds here: deleted, or replaced.
        let local: Vec<(String, [u8; 16])> =
            self.topics.iter().map(|(n, t)| (n.clone(), t.id)).collect();
        for (name, local_id) in local {
            let named = image.topic_id(&name);
            let hosted = named.is_some_and(|id| {
                image.topics()[&id]
                    .partitions
                    .values()
                    .any(|p| p.replicas.contains(&me))
            });
            if named.is_some_and(|id| id.0 == local_id) && hosted {
                continue;
            }
            let known_before = self
                .kraft_image()
                .is_some_and(|old| old.topic_id(&name).is_some_and(|id| id.0 == local_id));
            let why = match named {
                None if known_before => "deleted from the cluster".to_string(),
                Some(id) if id.0 == local_id => "no longer has a replica here".to_string(),
                None => format!(
                    "stray (KIP-858): the cluster has no topic {name}, local id {}",
                    uuid_of(local_id)
                ),
                Some(id) => format!(
                    "stray (KIP-858): local id {} but the cluster's {name} has id {}",
                    uuid_of(local_id),
                    uuid_of(id.0)
                ),
            };
            self.log(
                LogLevel::Info,
                format!(
                    "topic {name} (id {}): {why}; deleting its local partitions",
                    uuid_of(local_id)
                ),
            );
            self.delete_local_topic(&name);
        }
        // 1b. Partitions reassigned away from here (KIP-455): their copies go.
        self.drop_moved_partitions(&image);
        // 2. Partitions the image places here that have no log yet.
        for (id, t) in image.topics() {
            if !t.partitions.values().any(|p| p.replicas.contains(&me)) {
                continue;
            }
            self.host_partitions(&t.name, id.0, &t.partitions, &t.configs);
        }
        // 2b. Config changes of topics hosted here (an AlterConfigs committed).
        self.follow_topic_configs(&image);
        // 2c. Leader epochs recovery read that no controller gave are cut (torn headers).
        let ours = self.registered_here(&image);
        if ours {
            self.cut_epochs_above_the_image(&image);
        }
        // 3. Leadership moved: parked fetches and produces on those partitions look again.
        let old = self.kraft.image.clone();
        for t in image.topics().values() {
            for (i, p) in &t.partitions {
                let before = old.as_deref().and_then(|o| {
                    o.partition(o.topic_id(&t.name)?, *i)
                        .map(|q| (q.leader, q.leader_epoch))
                });
                if before != Some((p.leader, p.leader_epoch)) {
                    self.touched.insert((t.name.clone(), *i));
                    self.produce_waits.touch(&(t.name.clone(), *i));
                    // KIP-279: a leadership starting here records its epoch at the log end
                    // before anything is appended in it.
                    if p.leader == Some(me) && ours {
                        self.leader_epoch_started(&t.name, *i, p.leader_epoch);
                    }
                }
            }
        }
        // 3b. Partitions hosted here that lost their last in-sync copy, or were elected
        // uncleanly: said once per change, since clients see only timeouts.
        self.warn_lost_partitions(old.as_deref(), &image);
        // A restarted broker whose new incarnation is not registered yet coordinates nothing:
        // the leaderships the image names are its previous run's, and its log may have been
        // lost with its disk (sim seed 8: an empty log loaded as the coordinator's and an
        // OffsetFetch answered "none" for an acknowledged commit). Its registration moves them.
        let led: BTreeSet<i32> = image
            .topic_id(OFFSETS_TOPIC)
            .filter(|_| ours)
            .map(|id| {
                image.topics()[&id]
                    .partitions
                    .iter()
                    .filter(|(_, p)| p.leader == Some(me))
                    .map(|(i, _)| *i)
                    .collect()
            })
            .unwrap_or_default();
        let gained: Vec<i32> = led.difference(&self.kraft.offsets_led).copied().collect();
        let lost: Vec<i32> = self.kraft.offsets_led.difference(&led).copied().collect();
        assert!(
            gained.iter().all(|p| !lost.contains(p)),
            "a partition gained or lost"
        );
        assert!(
            ours || led.is_empty(),
            "an unregistered incarnation coordinates"
        );
        self.kraft.offsets_led = led;
        self.kraft.image = Some(image);
        if !gained.is_empty() || !lost.is_empty() {
            self.offsets_leadership_changed(&gained, &lost);
        }
        // 4. A creation this broker asked for in the background has landed.
        let landed: Vec<String> = self
            .kraft
            .creating
            .iter()
            .filter(|n| self.kraft_image().is_some_and(|i| i.topic_id(n).is_some()))
            .cloned()
            .collect();
        for n in landed {
            self.kraft.creating.remove(&n);
        }
        // 5. InitProducerId waiting for this broker's registration.
        if !self.kraft.pid_waiters.is_empty() {
            self.ask_producer_ids();
        }
        if first {
            self.log(
                LogLevel::Info,
                format!(
                    "first metadata image (offset {}): serving the cluster's topics",
                    self.kraft_image().map_or(-1, |i| i.offset())
                ),
            );
        }
        // 6. Replication follows the roles the image gives this broker.
        self.replica_follow_image();
        // Postcondition: every partition placed here has a local log under the image's id.
        let image = self.kraft.image.clone().expect("just set");
        for t in image.topics().values() {
            for (i, p) in &t.partitions {
                if p.replicas.contains(&me) {
                    let local = self.partition(&t.name, *i);
                    assert!(local.is_some_and(|l| l.offline.as_deref() != Some(NOT_HOSTED)));
                }
            }
        }
        // And every local topic is one the image names, under the same id (no strays left).
        for (name, t) in &self.topics {
            assert_eq!(image.topic_id(name).map(|id| id.0), Some(t.id), "{name}");
            assert_eq!(
                t.partitions.len(),
                image.topics()[&crate::cluster::TopicId(t.id)]
                    .partitions
                    .len()
            );
        }
        assert!(self.kraft.offsets_led.iter().all(|p| *p >= 0));
    }

    /// A WARN for each partition hosted here whose ISR became *lost* in `image` (its only
    /// in-sync replica registered with an empty log directory, KIP-966: it stays offline until
    /// an operator allows an unclean election), and for each unclean election `image` records
    /// that `old` did not (records the old ISR held may be gone). Once per change: a partition
    /// still lost in the next image says nothing, and the first image after a start names the
    /// lost partitions again but not the elections already on record. Clients only see
    /// timeouts or LEADER_NOT_AVAILABLE; this line is where an operator learns why.
    fn warn_lost_partitions(&mut self, old: Option<&MetadataImage>, image: &MetadataImage) {
        use crate::cluster::replication::{lost_isr_reason, unclean_allowed};
        let me = node(self.config.broker_id);
        let mut lines = Vec::new();
        for (id, t) in image.topics() {
            for (i, p) in &t.partitions {
                if !p.replicas.contains(&me) {
                    continue;
                }
                // Named only for a line to write: every image passes here, nearly always silent.
                let named = || {
                    let replicas: Vec<i32> = p.replicas.iter().map(|b| b.0).collect();
                    format!("partition {}-{i} (replicas {replicas:?})", t.name)
                };
                let why = lost_isr_reason(p, unclean_allowed(image, *id));
                let why_before = old
                    .and_then(|o| lost_isr_reason(o.partition(*id, *i)?, unclean_allowed(o, *id)));
                if let Some(why) = why.filter(|w| why_before.as_ref() != Some(w)) {
                    lines.push(format!("{} has no leader: {why}", named()));
                }
                let elections = image.unclean_elections().get(&(*id, *i));
                let before = old.map_or(elections.map_or(0, Vec::len), |o| {
                    o.unclean_elections().get(&(*id, *i)).map_or(0, Vec::len)
                });
                for (leader, epoch) in elections.into_iter().flatten().skip(before) {
                    lines.push(format!(
                        "{}: unclean leader election: \
                         broker {} leads in leader epoch {epoch}, chosen from outside the \
                         in-sync replicas (unclean.leader.election.enable, or ElectLeaders \
                         unclean); records the old in-sync replicas held and it lacks are lost",
                        named(),
                        leader.0
                    ));
                }
            }
        }
        for line in lines {
            self.log(LogLevel::Warn, line);
        }
    }

    /// Make sure `name` (id `id`) has a local log for every partition of `partitions` whose
    /// replicas include this broker, through the same create path as a standalone CreateTopics,
    /// and a placeholder for each of the others.
    fn host_partitions(
        &mut self,
        name: &str,
        id: [u8; 16],
        partitions: &BTreeMap<i32, PartitionRegistration>,
        configs: &BTreeMap<String, String>,
    ) {
        let me = node(self.config.broker_id);
        let count = partitions.len() as i32;
        // The image numbers a topic's partitions 0..n.
        assert!(partitions.keys().copied().eq(0..count));
        if !self.topics.contains_key(name) {
            let internal = name.starts_with("__");
            let settings = if name == OFFSETS_TOPIC {
                self.offsets_topic_settings()
            } else {
                // The topic's configs as the controller committed them (ConfigRecords), over
                // this broker's defaults.
                let configs: Vec<(String, Option<String>)> = configs
                    .iter()
                    .map(|(k, v)| (k.clone(), Some(v.clone())))
                    .collect();
                self.topic_settings_from(&configs).unwrap_or_else(|e| {
                    self.log(
                        LogLevel::Warn,
                        format!("topic {name}: its configs do not apply here ({e}); defaults"),
                    );
                    self.default_settings()
                })
            };
            self.topics.insert(
                name.to_string(),
                Topic {
                    id,
                    settings,
                    partitions: Vec::new(),
                    internal,
                },
            );
        }
        assert_eq!(
            self.topics[name].id, id,
            "a replaced topic was deleted first"
        );
        let mut created = Vec::new();
        for (i, p) in partitions {
            let index = *i as usize;
            let t = &self.topics[name];
            let have = t.partitions.get(index);
            let here = p.replicas.contains(&me);
            let placeholder = have.is_some_and(|q| q.offline.as_deref() == Some(NOT_HOSTED));
            if have.is_some() && !(here && placeholder) {
                continue;
            }
            let partition = if here {
                let meta = PartitionMeta {
                    topic: name.to_string(),
                    topic_id: id,
                    partition: *i,
                    partition_count: count,
                    settings: t.settings.clone(),
                    log_start_offset: 0,
                };
                created.push(*i);
                self.create_partition_files(&meta, None)
            } else {
                self.placeholder(name, *i)
            };
            let t = self.topics.get_mut(name).expect("inserted above");
            if index < t.partitions.len() {
                t.partitions[index] = partition;
            } else {
                assert_eq!(index, t.partitions.len(), "partitions come in index order");
                t.partitions.push(partition);
            }
        }
        assert_eq!(self.topics[name].partitions.len(), partitions.len());
        if !created.is_empty() {
            self.log(
                LogLevel::Info,
                format!(
                    "topic {name} (id {}): created local partition(s) {created:?} of {count}",
                    uuid_of(id)
                ),
            );
        }
    }

    /// The `__consumer_offsets` partitions this broker leads changed (Kafka's
    /// `onResignation` / `onElection` for the group coordinator): the lost ones' groups leave
    /// memory and answer NOT_COORDINATOR; the gained ones are read back from their logs and
    /// answer COORDINATOR_LOAD_IN_PROGRESS until then (`group::runtime`). Resignations first, so
    /// a partition that moved away and back within one image is loaded afresh.
    fn offsets_leadership_changed(&mut self, gained: &[i32], lost: &[i32]) {
        self.log(
            LogLevel::Info,
            format!(
                "{OFFSETS_TOPIC}: this broker now leads partition(s) {gained:?} and no longer \
                 {lost:?}"
            ),
        );
        for p in lost {
            self.lose_offsets_partition(PartitionIndex(*p));
        }
        for p in gained {
            self.gain_offsets_partition(PartitionIndex(*p));
        }
    }
}
