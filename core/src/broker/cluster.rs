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
//! With `Config.kraft` false none of this runs: the broker is its own one-broker cluster.

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
    image: Option<Arc<MetadataImage>>,
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
}

impl KraftState {
    fn pid_asked(&self) -> bool {
        self.asked.values().any(|a| matches!(a, Asked::ProducerIds))
    }

    /// The earliest admin deadline.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.admin.values().map(|a| a.deadline).min()
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
    fn kraft_image(&self) -> Option<&MetadataImage> {
        self.kraft.image.as_deref()
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
        let mut s = self.default_settings();
        s.retention_ms = -1;
        s.retention_bytes = -1;
        s.max_message_bytes = (s.segment_bytes - 64).min(64 * 1024 * 1024) as u32;
        s
    }

    fn ask_controller(&mut self, request: ControllerRequest, why: Asked) -> RequestId {
        let id = RequestId(self.kraft.next_request);
        self.kraft.next_request += 1;
        assert!(self.kraft.asked.insert(id, why).is_none());
        self.outputs.push_back(Output::Controller { id, request });
        id
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
        // 2. Partitions the image places here that have no log yet.
        for (id, t) in image.topics() {
            if !t.partitions.values().any(|p| p.replicas.contains(&me)) {
                continue;
            }
            self.host_partitions(&t.name, id.0, &t.partitions, &t.configs);
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
                }
            }
        }
        let led: BTreeSet<i32> = image
            .topic_id(OFFSETS_TOPIC)
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
                let dir = PartitionDir {
                    topic: name.to_string(),
                    partition: *i,
                };
                let mut missing = Partition::new(
                    PartitionLog::create(dir, self.now).0,
                    ProducerStates::default(),
                );
                missing.offline = Some(NOT_HOSTED.into());
                missing
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

    // ---- answers from the image ---------------------------------------------------------

    /// The brokers a client may talk to: every unfenced registered broker, with its first
    /// endpoint; before the first image, this broker alone.
    fn live_brokers(&self) -> Vec<(i32, String, i32, Option<String>)> {
        let Some(image) = self.kraft_image() else {
            let c = &self.config;
            return vec![(
                c.broker_id.0,
                c.advertised_host.clone(),
                c.advertised_port,
                None,
            )];
        };
        image
            .brokers()
            .values()
            .filter(|b| !b.fenced)
            .filter_map(|b| {
                let e = b.endpoints.first()?;
                Some((b.broker_id.0, e.host.clone(), e.port as i32, b.rack.clone()))
            })
            .collect()
    }

    /// What clients are told the controller is: like Kafka's KRaft brokers, a live broker
    /// picked at random (clients cannot reach the controllers; admin requests sent to this id
    /// are forwarded anyway). -1 when no broker is live.
    fn controller_id_for_clients(&mut self, brokers: &[(i32, String, i32, Option<String>)]) -> i32 {
        if brokers.is_empty() {
            return -1;
        }
        let i = self.prng.below(brokers.len() as u64) as usize;
        brokers[i].0
    }

    pub(super) fn kraft_metadata(&mut self, to: ReplyTo, version: i16, r: MetadataRequest) {
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
        let brokers = self.live_brokers();
        let controller = self.controller_id_for_clients(&brokers);
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

    fn topic_metadata(
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
                MetadataResponsePartition::default()
                    .with_partition_index(*i)
                    .with_error_code(code.into())
                    .with_leader_id(BrokerId(p.leader.map_or(-1, |l| l.0)))
                    .with_leader_epoch(p.leader_epoch)
                    .with_replica_nodes(ids(&p.replicas))
                    .with_isr_nodes(ids(&p.isr))
                    .with_offline_replicas(ids(&offline_replicas(image, p)))
            })
            .collect();
        MetadataResponseTopic::default()
            .with_name(Some(TopicName(sb(t.name.clone()))))
            .with_topic_id(TopicId(id.0).to_uuid())
            .with_is_internal(t.name.starts_with("__"))
            .with_partitions(partitions)
    }

    pub(super) fn kraft_describe_cluster(&mut self, to: ReplyTo, r: DescribeClusterRequest) {
        let brokers = self.live_brokers();
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
        self.respond(to, Some(ResponseKind::DescribeCluster(resp)));
    }

    /// Where group `key`'s coordinator is: (error, node, host, port).
    fn coordinator_of(&mut self, key: &str) -> (ErrorCode, i32, String, i32) {
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
        let leader = t.partitions.get(&p).and_then(|p| p.leader);
        let endpoint = leader.and_then(|l| {
            let b = image.broker(l).filter(|b| !b.fenced)?;
            let e = b.endpoints.first()?;
            Some((l.0, e.host.clone(), e.port as i32))
        });
        match endpoint {
            Some((id, host, port)) => (ErrorCode::NONE, id, host, port),
            None => none(ErrorCode::COORDINATOR_NOT_AVAILABLE),
        }
    }

    pub(super) fn kraft_find_coordinator(&mut self, to: ReplyTo, r: FindCoordinatorRequest) {
        let mut resp = FindCoordinatorResponse::default();
        let single = r.coordinator_keys.is_empty();
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
        self.respond(to, Some(ResponseKind::FindCoordinator(resp)));
    }

    // ---- admin forwarding ---------------------------------------------------------------

    /// Ask the controller to create `name` for no waiting client, unless already asked.
    fn create_in_background(&mut self, name: &str, partitions: i32) {
        if self.kraft.creating.contains(name) {
            return;
        }
        self.kraft.creating.insert(name.to_string());
        self.log(
            LogLevel::Info,
            format!("asking the controller to create topic {name} ({partitions} partitions)"),
        );
        let request = ControllerRequest::CreateTopic {
            name: name.to_string(),
            partitions,
            replication_factor: 1,
            configs: BTreeMap::new(),
        };
        let topic = name.to_string();
        self.ask_controller(request, Asked::Background { topic });
    }

    fn park_admin(
        &mut self,
        to: ReplyTo,
        response: ResponseKind,
        waiting: BTreeSet<usize>,
        ms: i32,
    ) {
        if waiting.is_empty() {
            self.respond(to, Some(response));
            return;
        }
        let ms = if ms > 0 {
            ms as u64
        } else {
            DEFAULT_TIMEOUT_MS
        };
        let admin = self.next_pending;
        self.next_pending += 1;
        let pending = PendingAdmin {
            reply: to,
            response,
            waiting,
            deadline: self.now + Duration::from_ms(ms),
        };
        assert!(self.kraft.admin.insert(admin, pending).is_none());
    }

    pub(super) fn kraft_create_topics(&mut self, to: ReplyTo, r: CreateTopicsRequest) {
        let admin = self.next_pending;
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
            let replication = if t.replication_factor == -1 {
                1
            } else {
                t.replication_factor
            };
            let configs: Vec<(String, Option<String>)> = t
                .configs
                .iter()
                .map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string())))
                .collect();
            let exists = self
                .kraft_image()
                .is_some_and(|i| i.topic_id(&name).is_some());
            let refuse = |code, m: String| Err(ClientError::new(code, m));
            let check = if !seen.insert(name.clone()) {
                refuse(ErrorCode::INVALID_REQUEST, format!("{name} named twice"))
            } else if let Err(e) = validate_topic_name(&name) {
                refuse(ErrorCode::INVALID_TOPIC_EXCEPTION, e)
            } else if name.starts_with("__") {
                refuse(
                    ErrorCode::INVALID_TOPIC_EXCEPTION,
                    "names starting with __ are reserved for internal topics".into(),
                )
            } else if exists {
                refuse(
                    ErrorCode::TOPIC_ALREADY_EXISTS,
                    format!("topic {name} already exists"),
                )
            } else if !t.assignments.is_empty() {
                refuse(
                    ErrorCode::INVALID_REQUEST,
                    "manual replica assignment is not supported".into(),
                )
            } else if partitions < 1 || partitions > self.config.partitions_per_topic_max {
                refuse(
                    ErrorCode::INVALID_PARTITIONS,
                    format!(
                        "partition count {partitions} is not within 1..={}",
                        self.config.partitions_per_topic_max
                    ),
                )
            } else if replication < 1 {
                refuse(
                    ErrorCode::INVALID_REPLICATION_FACTOR,
                    format!("replication factor {replication} is below 1"),
                )
            } else {
                self.topic_settings_from(&configs)
                    .map_err(|e| ClientError::new(ErrorCode::INVALID_CONFIG, e))
            };
            match check {
                Err(e) => {
                    res.error_code = e.code.into();
                    res.error_message = Some(sb(e.message));
                }
                Ok(_) => {
                    res.num_partitions = partitions;
                    res.replication_factor = replication as i16;
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
        let waiting = asks.iter().map(|(slot, _)| *slot).collect();
        self.park_admin(
            to,
            ResponseKind::CreateTopics(response),
            waiting,
            r.timeout_ms,
        );
        for (slot, request) in asks {
            assert_eq!(
                admin + 1,
                self.next_pending,
                "parked under the id asked for"
            );
            self.ask_controller(request, Asked::Admin { admin, slot });
        }
    }

    pub(super) fn kraft_delete_topics(&mut self, to: ReplyTo, r: DeleteTopicsRequest) {
        let admin = self.next_pending;
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
        let waiting = asks.iter().map(|(slot, _)| *slot).collect();
        self.park_admin(
            to,
            ResponseKind::DeleteTopics(response),
            waiting,
            r.timeout_ms,
        );
        for (slot, request) in asks {
            self.ask_controller(request, Asked::Admin { admin, slot });
        }
    }

    /// CreatePartitions in a cluster (KIP-195): checked here against the image, then one
    /// `CreatePartitions` request per topic to the active controller, which places the new
    /// partitions like a new topic's; answered when every topic's answer is back.
    pub(super) fn kraft_create_partitions(&mut self, to: ReplyTo, r: CreatePartitionsRequest) {
        use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
        let admin = self.next_pending;
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
                Some(_) if t.assignments.is_some() => refuse(
                    ErrorCode::INVALID_REQUEST,
                    "manual replica assignment is not supported".into(),
                ),
                Some(n) if t.count <= n => refuse(
                    ErrorCode::INVALID_PARTITIONS,
                    format!("topic {name} has {n} partitions; partitions are only ever added"),
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
        let waiting = asks.iter().map(|(slot, _)| *slot).collect();
        self.park_admin(
            to,
            ResponseKind::CreatePartitions(response),
            waiting,
            r.timeout_ms,
        );
        for (slot, request) in asks {
            self.ask_controller(request, Asked::Admin { admin, slot });
        }
    }

    /// The controller answered request `id`.
    pub(super) fn on_controller_reply(
        &mut self,
        id: RequestId,
        result: Result<Reply, ControllerError>,
    ) {
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
        }
    }

    fn admin_answer(&mut self, admin: u64, slot: usize, result: Result<Reply, ControllerError>) {
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
            (other, _) => unreachable!("no admin response of kind {other:?} is forwarded"),
        }
        if p.waiting.is_empty() {
            let p = self.kraft.admin.remove(&admin).expect("looked up");
            self.respond(p.reply, Some(p.response));
        }
    }

    /// Admin requests past their timeout answer REQUEST_TIMED_OUT for the topics the
    /// controller has not answered (the change may still happen).
    pub(super) fn kraft_on_time(&mut self) {
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
                    other => unreachable!("no admin response of kind {other:?} is forwarded"),
                }
            }
            self.respond(p.reply, Some(p.response));
        }
    }

    // ---- producer ids (KIP-730) ---------------------------------------------------------

    pub(super) fn kraft_init_producer_id(&mut self, to: ReplyTo) {
        if self.kraft.pid_waiters.len() >= self.config.producer_id_waiters_max {
            let resp = InitProducerIdResponse::default()
                .with_error_code(ErrorCode::COORDINATOR_LOAD_IN_PROGRESS.into())
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1);
            self.respond(to, Some(ResponseKind::InitProducerId(resp)));
            return;
        }
        self.kraft.pid_waiters.push(to);
        self.serve_producer_ids();
    }

    /// Hand ids to the waiters while the block lasts; ask for the next block once 90% of this
    /// one is used (or it is gone).
    fn serve_producer_ids(&mut self) {
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
        let k = &self.kraft;
        let (used, size) = (k.pid_next - k.pid_start, k.pid_end - k.pid_start);
        if k.pid_prefetched.is_none() && used * 100 >= size * PREFETCH_PERCENT {
            self.ask_producer_ids();
        }
    }

    /// Ask the controller for a block, if none is asked for and this broker is registered.
    fn ask_producer_ids(&mut self) {
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

    fn producer_ids_answer(&mut self, result: Result<Reply, ControllerError>) {
        match result {
            Ok(Reply::AllocateProducerIds { first, count }) => {
                assert!(count > 0 && first >= 0, "a block holds ids");
                let k = &mut self.kraft;
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
