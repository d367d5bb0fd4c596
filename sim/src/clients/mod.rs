//! Simulated Kafka clients: the workloads.
//!
//! They speak to the broker with the same request types the wire layer decodes from real
//! clients, and behave like real clients where it matters for the guarantees: a request that
//! times out closes its connection (librdkafka and the Java client do), an idempotent producer
//! retries a batch with the same sequence number, a group member commits before or after
//! processing. Every value written is unique (a counter), so the history can name each record.
//!
//! A client never touches the world directly: it is handed an [`Env`] and leaves requests and
//! connection drops in its outbox; the world carries them over the simulated network.

use crate::history::{CommitMode, Event, History, Part, Value};
use bytes::{Buf, Bytes, BytesMut};
use gregor_core::assignor::{self, Strategy, Subscription};
use gregor_core::error::*;
use gregor_core::kafka_protocol::messages::*;
use gregor_core::kafka_protocol::protocol::StrBytes;
use gregor_core::kafka_protocol::records::{Compression, RecordBatchDecoder};
use gregor_core::prng::Prng;
use gregor_core::testkit::{self, Rec};
use std::collections::{BTreeMap, BTreeSet};

mod cooperative;
pub mod keyed;
mod producer;
mod reader;

pub use keyed::{Compaction, Keyed, COMPACTED};
pub use producer::{Producer, IN_FLIGHT_MAX};
pub use reader::{Reader, EARLIEST, LATEST};

pub const TOPIC: &str = "t";

/// Simulated microseconds.
pub type Us = u64;

pub const MS: Us = 1_000;

/// What a client hands the world to carry out.
// Requests are consumed at once; boxing them would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Out {
    /// Send a request (over the client's connection, opening one if needed).
    Send {
        header: RequestHeader,
        body: RequestKind,
    },
    /// Close the connection (after a request timeout, or a crash).
    Drop,
}

/// The part of the world a client may see and touch.
pub struct Env {
    pub now: Us,
    pub prng: Prng,
    pub history: History,
    pub next_value: Value,
    /// The liveness phase has begun: faults are healed, producers stop starting new batches.
    pub liveness: bool,
    /// Producers abandon unfinished batches (so the final read sees a settled log).
    pub producers_give_up: bool,
    pub partitions: i32,
    pub outbox: Vec<(usize, Out)>,
    /// Clients whose connection's buffers are full (the broker is not reading): their sends
    /// would block, so they start nothing new until it drains.
    pub socket_full: BTreeSet<usize>,
}

impl Env {
    pub fn ms(&self) -> u64 {
        self.now / MS
    }
}

#[derive(Debug, Clone)]
enum Pending {
    Produce {
        batch: u64,
    },
    InitProducerId,
    Fetch {
        epoch: u64,
        sent: u64,
    },
    ListOffsets {
        part: Part,
        spec: i64,
        sent: u64,
    },
    /// A reader's DeleteRecords of `part` below `offset`.
    DeleteRecords {
        part: Part,
        sent: u64,
    },
    Join,
    Sync,
    Heartbeat,
    OffsetFetch {
        sent: u64,
    },
    Commit {
        sent: u64,
        /// The generation and member id the commit was sent with.
        generation: i32,
        member_id: String,
        offsets: Vec<(Part, i64)>,
        held: Vec<(Part, i64, Value)>,
        /// A zombie's second try after a refusal.
        again: bool,
    },
    Leave,
    /// A group member's ListOffsets earliest after OFFSET_OUT_OF_RANGE, for its assignment
    /// `epoch`.
    MemberReset {
        part: Part,
        epoch: u64,
    },
}

/// A member's position that must be reset (auto.offset.reset=earliest) / is being reset.
const RESET_NEEDED: i64 = -2;
const RESET_INFLIGHT: i64 = -3;

/// One simulated client process.
pub struct Client {
    pub id: usize,
    /// The world's connection id, while connected.
    pub conn: Option<u64>,
    next_corr: i32,
    pending: BTreeMap<i32, (Pending, Us)>,
    request_timeout: Us,
    /// Crashed (a group member, until restarted).
    pub down: bool,
    /// Paused (a long GC, a stuck thread): events wait until then.
    pub stalled_until: Us,
    pub timer_at: Option<Us>,
    pub role: Role,
}

pub enum Role {
    Producer(Producer),
    Reader(Reader),
    Member(Member),
    /// The compacted topic's keyed producer and final reader ([`keyed`]).
    Keyed(Keyed),
}

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum MemberState {
    Joining,
    Syncing,
    FetchingOffsets,
    Consuming,
    Left,
}

pub struct Member {
    /// The client's id (as the history names the member).
    client: usize,
    pub group: usize,
    group_id: String,
    pub mode: CommitMode,
    strategy: Strategy,
    /// Incremental cooperative rebalancing (KIP-429): the member keeps its partitions through
    /// a rebalance, reports them in JoinGroup, revokes only what its new assignment lacks, and
    /// then rejoins. Members whose assignor is cooperative-sticky; the others are eager.
    cooperative: bool,
    /// The generation the member's current partitions were assigned in (its claim's).
    owned_generation: i32,
    /// A cooperative member revoked partitions in the last rebalance and rejoins once it is
    /// consuming again, so the next rebalance can hand them on.
    rejoin_after: bool,
    instance_id: Option<String>,
    member_id: String,
    /// A zombie retries a refused commit once with its stale generation and member id.
    zombie: bool,
    generation: i32,
    state: MemberState,
    assigned: Vec<Part>,
    pos: BTreeMap<Part, i64>,
    session: u32,
    /// Bumped whenever the assignment is dropped, so late fetch responses are ignored.
    epoch: u64,
    session_timeout_ms: i32,
    next_heartbeat: Us,
    hb_inflight: bool,
    fetch_inflight: bool,
    commit_inflight: bool,
    step_inflight: bool,
    retry_at: Us,
}

fn name(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// An OffsetCommit of `offsets` in `generation` as `member_id`.
fn commit_request(
    gid: GroupId,
    generation: i32,
    member_id: &str,
    instance: Option<StrBytes>,
    offsets: &[(Part, i64)],
) -> RequestKind {
    RequestKind::OffsetCommit(
        OffsetCommitRequest::default()
            .with_group_id(gid)
            .with_generation_id_or_member_epoch(generation)
            .with_member_id(name(member_id))
            .with_group_instance_id(instance)
            .with_topics(vec![
                offset_commit_request::OffsetCommitRequestTopic::default()
                    .with_name(TopicName(name(TOPIC)))
                    .with_partitions(
                        offsets
                            .iter()
                            .map(|(p, o)| {
                                offset_commit_request::OffsetCommitRequestPartition::default()
                                    .with_partition_index(*p)
                                    .with_committed_offset(*o)
                            })
                            .collect(),
                    ),
            ]),
    )
}

fn encode_parts(parts: &[Part]) -> Bytes {
    let mut b = BytesMut::new();
    for p in parts {
        b.extend_from_slice(&p.to_be_bytes());
    }
    b.freeze()
}

fn decode_parts(mut b: Bytes) -> Vec<Part> {
    let mut out = Vec::new();
    while b.remaining() >= 4 {
        out.push(b.get_i32());
    }
    out
}

/// Encode values as one v2 batch, as a producer would (value = the u64, big-endian), each record
/// with its own timestamp.
pub fn encode_batch(
    values: &[Value],
    producer: Option<(i64, i16, i32)>,
    timestamps_ms: &[i64],
) -> Bytes {
    assert_eq!(
        values.len(),
        timestamps_ms.len(),
        "one timestamp per record"
    );
    // The workload's record shape: the value names the record, the key spreads values over
    // seven keys; the encoding is the shared one (gregor_core::testkit::batch).
    let recs: Vec<Rec> = values
        .iter()
        .zip(timestamps_ms)
        .map(|(v, ts)| Rec {
            key: Some(Bytes::copy_from_slice(&(*v % 7).to_be_bytes())),
            value: Some(Bytes::copy_from_slice(&v.to_be_bytes())),
            timestamp_ms: *ts,
            headers: Vec::new(),
        })
        .collect();
    testkit::batch(&recs, producer, Compression::None)
}

/// The length of the first batch in `records`: its 12-byte prefix (base offset, batch length)
/// plus the batch length; the whole of `records` if that is shorter (a partial batch).
fn first_batch_len(records: &[u8]) -> u64 {
    if records.len() < 12 {
        return records.len() as u64;
    }
    let len = i32::from_be_bytes([records[8], records[9], records[10], records[11]]);
    (12 + len.max(0) as u64).min(records.len() as u64)
}

/// Decode a fetch response's record bytes into (offset, value); stops at a partial batch.
pub fn decode_records(bytes: Option<Bytes>) -> Vec<(i64, Value)> {
    decode_records_ts(bytes)
        .into_iter()
        .map(|(o, v, _)| (o, v))
        .collect()
}

/// Decode a fetch response's record bytes into (offset, value, timestamp).
pub fn decode_records_ts(bytes: Option<Bytes>) -> Vec<(i64, Value, i64)> {
    let mut out = Vec::new();
    let Some(mut bytes) = bytes else { return out };
    while bytes.remaining() >= 61 {
        // Every codec a topic may store (`compression.type`), LZ4 included, as the broker reads
        // them.
        let decompress = Some(gregor_core::batch::decompress);
        let Ok(set) = RecordBatchDecoder::decode_with_custom_compression(&mut bytes, decompress)
        else {
            break;
        };
        for r in set.records {
            let v = r
                .value
                .filter(|v| v.len() == 8)
                .map(|mut v| v.get_u64())
                .unwrap_or(u64::MAX);
            out.push((r.offset, v, r.timestamp));
        }
    }
    out
}

impl Client {
    fn new(id: usize, role: Role, request_timeout: Us) -> Client {
        Client {
            id,
            conn: None,
            next_corr: 0,
            pending: BTreeMap::new(),
            request_timeout,
            down: false,
            stalled_until: 0,
            timer_at: None,
            role,
        }
    }

    pub fn producer(id: usize, prng: &mut Prng, gap_ms: u64) -> Client {
        Client::new(id, Role::Producer(Producer::new(prng, gap_ms)), 4_000 * MS)
    }

    pub fn reader(id: usize, parts: Vec<Part>, auditor: bool) -> Client {
        Client::new(id, Role::Reader(Reader::new(parts, auditor)), 4_000 * MS)
    }

    pub fn keyed(id: usize, compaction: &Compaction) -> Client {
        Client::new(id, Role::Keyed(Keyed::new(compaction)), 4_000 * MS)
    }

    /// The client's part of the final read is done (or it has none): the auditor has read
    /// every partition, the compacted topic's reader its partition.
    pub fn final_read_done(&self) -> bool {
        match &self.role {
            Role::Reader(r) => !r.auditor || r.finished,
            Role::Keyed(k) => k.finished,
            _ => true,
        }
    }

    /// Make a reader fetch with this top-level byte limit; its responses are recorded for the
    /// `fetch-over-limit` checker.
    pub fn set_fetch_max_bytes(&mut self, max_bytes: i32) {
        if let Role::Reader(r) = &mut self.role {
            r.fetch_max_bytes = max_bytes;
        }
    }

    pub fn member(id: usize, group: usize, mode: CommitMode, prng: &mut Prng) -> Client {
        let strategy =
            [Strategy::Range, Strategy::RoundRobin, Strategy::Sticky][prng.below(3) as usize];
        let m = Member {
            client: id,
            group,
            group_id: format!("g{group}"),
            mode,
            strategy,
            cooperative: strategy == Strategy::Sticky,
            owned_generation: -1,
            rejoin_after: false,
            instance_id: prng.ratio(1, 3).then(|| format!("g{group}-i{id}")),
            member_id: String::new(),
            zombie: prng.ratio(1, 2),
            generation: -1,
            state: MemberState::Joining,
            assigned: vec![],
            pos: BTreeMap::new(),
            session: 0,
            epoch: 0,
            session_timeout_ms: 6_000 + prng.below(4_000) as i32,
            next_heartbeat: 0,
            hb_inflight: false,
            fetch_inflight: false,
            commit_inflight: false,
            step_inflight: false,
            retry_at: 0,
        };
        // A JoinGroup may be held for the whole rebalance: give it the rebalance timeout and more
        // (as the Java client does).
        Client::new(id, Role::Member(m), 16_000 * MS)
    }

    /// Make a reader reset a position that fell out of range to the high watermark
    /// (`auto.offset.reset=latest`) instead of the log start.
    pub fn set_reset_latest(&mut self) {
        if let Role::Reader(r) = &mut self.role {
            r.reset_to = LATEST;
        }
    }

    /// Make a group member use this assignor (the world gives some groups one for all their
    /// members); cooperative-sticky makes it a cooperative member.
    pub fn set_strategy(&mut self, strategy: Strategy) {
        if let Role::Member(m) = &mut self.role {
            m.strategy = strategy;
            m.cooperative = strategy == Strategy::Sticky;
        }
    }

    /// When the client next needs its timer.
    pub fn next_wake(&self, now: Us) -> Option<Us> {
        let mut t = self.pending.values().map(|(_, d)| *d).min();
        let mut consider = |x: Us| {
            if x > now {
                t = Some(t.map_or(x, |t| t.min(x)))
            }
        };
        match &self.role {
            Role::Producer(p) => p.next_wake(&mut consider),
            Role::Reader(r) => r.next_wake(&mut consider),
            Role::Keyed(k) => k.next_wake(&mut consider),
            Role::Member(m) => {
                consider(m.retry_at);
                if matches!(
                    m.state,
                    MemberState::Consuming | MemberState::FetchingOffsets
                ) {
                    consider(m.next_heartbeat);
                }
            }
        }
        t
    }

    fn send(
        &mut self,
        env: &mut Env,
        key: ApiKey,
        version: i16,
        body: RequestKind,
        what: Option<Pending>,
    ) {
        self.next_corr += 1;
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.next_corr)
            .with_client_id(Some(name(&format!("sim-{}", self.id))));
        if let Some(what) = what {
            self.pending
                .insert(self.next_corr, (what, env.now + self.request_timeout));
        }
        env.outbox.push((self.id, Out::Send { header, body }));
    }

    /// The connection is gone (reset by the peer, or given up after a timeout): every request
    /// on it has an unknown outcome.
    pub fn on_conn_lost(&mut self, env: &mut Env) {
        self.conn = None;
        let lost: Vec<Pending> = std::mem::take(&mut self.pending)
            .into_values()
            .map(|p| p.0)
            .collect();
        for p in lost {
            self.lost(env, p);
        }
        self.kick(env);
    }

    /// Time passed: time out overdue requests (closing the connection, as real clients do),
    /// then make progress.
    pub fn on_timer(&mut self, env: &mut Env) {
        if self.pending.values().any(|(_, d)| *d <= env.now) {
            env.outbox.push((self.id, Out::Drop));
            self.on_conn_lost(env);
            return;
        }
        self.kick(env);
    }

    pub fn on_response(&mut self, env: &mut Env, corr: i32, body: ResponseKind) {
        let Some((what, _)) = self.pending.remove(&corr) else {
            return; // answered after we gave up on it
        };
        match (&mut self.role, what, body) {
            (Role::Producer(_), Pending::Produce { batch }, ResponseKind::Produce(r)) => {
                let p = r
                    .responses
                    .first()
                    .and_then(|t| t.partition_responses.first())
                    .map(|p| (p.error_code, p.base_offset))
                    .unwrap_or((UNKNOWN_TOPIC_OR_PARTITION, -1));
                self.produce_done(env, batch, p.0, p.1);
            }
            (Role::Producer(p), Pending::InitProducerId, ResponseKind::InitProducerId(r)) => {
                p.init_done(env, r)
            }
            (Role::Reader(_), Pending::Fetch { sent, .. }, ResponseKind::Fetch(r)) => {
                self.reader_fetched(env, sent, r)
            }
            (
                Role::Reader(_),
                Pending::ListOffsets { part, spec, sent },
                ResponseKind::ListOffsets(r),
            ) => self.reader_listed(env, part, spec, sent, r),
            (
                Role::Reader(_),
                Pending::DeleteRecords { part, sent },
                ResponseKind::DeleteRecords(r),
            ) => self.reader_deleted(env, part, sent, r),
            (Role::Keyed(_), Pending::Produce { .. }, ResponseKind::Produce(r)) => {
                self.keyed_produced(env, r)
            }
            (Role::Keyed(_), Pending::Fetch { .. }, ResponseKind::Fetch(r)) => {
                self.keyed_fetched(env, r)
            }
            (Role::Member(_), what, body) => self.member_response(env, what, body),
            (_, what, body) => panic!("client {}: unexpected {body:?} for {what:?}", self.id),
        }
        self.kick(env);
    }

    /// A request's outcome is unknown (timeout or lost connection).
    fn lost(&mut self, env: &mut Env, what: Pending) {
        match (&mut self.role, what) {
            (Role::Producer(_), Pending::Produce { batch }) => self.produce_lost(env, batch),
            (Role::Producer(p), Pending::InitProducerId) => p.init_lost(env),
            (Role::Reader(r), Pending::Fetch { .. }) => {
                r.fetch_inflight = false;
                r.next_at = env.now + 100 * MS;
            }
            (Role::Reader(r), Pending::ListOffsets { part, .. }) => {
                r.resetting.remove(&part);
                r.query_inflight = false;
                r.next_at = env.now + 100 * MS;
            }
            (Role::Reader(r), Pending::DeleteRecords { .. }) => r.query_inflight = false,
            (Role::Keyed(k), what) => k.lost(env, what),
            (Role::Member(m), what) => {
                match what {
                    Pending::Heartbeat => m.hb_inflight = false,
                    Pending::Fetch { .. } => m.fetch_inflight = false,
                    Pending::MemberReset { part, epoch }
                        if epoch == m.epoch && m.pos.get(&part) == Some(&RESET_INFLIGHT) =>
                    {
                        m.pos.insert(part, RESET_NEEDED);
                    }
                    Pending::Commit { .. } => {
                        // Unknown whether it was committed: an at-most-once member must not
                        // process what it held; either kind rejoins to learn where it stands.
                        m.commit_inflight = false;
                        m.rejoin(env, false);
                    }
                    Pending::Join | Pending::Sync | Pending::OffsetFetch { .. } => {
                        m.step_inflight = false;
                        m.rejoin(env, false);
                    }
                    Pending::Leave => {}
                    _ => {}
                }
                m.retry_at = env.now + 200 * MS;
            }
            _ => {}
        }
    }

    /// Make whatever progress the client can now.
    pub fn kick(&mut self, env: &mut Env) {
        if self.down || self.stalled_until > env.now {
            return;
        }
        match &self.role {
            Role::Producer(_) => self.producer_kick(env),
            Role::Reader(_) => self.reader_kick(env),
            Role::Member(_) => self.member_kick(env),
            Role::Keyed(_) => self.keyed_kick(env),
        }
    }

    // ------------------------------------------------------------------ group member

    /// A member process crashed: it forgets everything (a static member keeps its instance id,
    /// which is configuration).
    pub fn crash_member(&mut self, env: &mut Env) {
        self.pending.clear();
        env.outbox.push((self.id, Out::Drop));
        self.conn = None;
        self.down = true;
        if let Role::Member(m) = &mut self.role {
            m.member_id.clear();
            m.generation = -1;
            m.release(env, true);
            m.state = MemberState::Joining;
            m.hb_inflight = false;
            m.fetch_inflight = false;
            m.commit_inflight = false;
            m.step_inflight = false;
        }
    }

    /// The member leaves the group politely (LeaveGroup), to come back later as a new member.
    pub fn leave_member(&mut self, env: &mut Env, back_at: Us) {
        let Role::Member(m) = &mut self.role else {
            return;
        };
        if m.member_id.is_empty() || m.instance_id.is_some() {
            return;
        }
        let req = LeaveGroupRequest::default()
            .with_group_id(GroupId(name(&m.group_id)))
            .with_members(vec![
                leave_group_request::MemberIdentity::default().with_member_id(name(&m.member_id))
            ]);
        m.member_id.clear();
        m.generation = -1;
        m.release(env, false);
        m.state = MemberState::Left;
        m.retry_at = back_at;
        self.send(
            env,
            ApiKey::LeaveGroup,
            3,
            RequestKind::LeaveGroup(req),
            Some(Pending::Leave),
        );
    }

    fn member_kick(&mut self, env: &mut Env) {
        let id = self.id;
        let Role::Member(m) = &mut self.role else {
            unreachable!()
        };
        if env.now < m.retry_at {
            return;
        }
        let mut reqs: Vec<(ApiKey, i16, RequestKind, Pending)> = Vec::new();
        let gid = GroupId(name(&m.group_id));
        let instance = m.instance_id.as_deref().map(name);
        match m.state {
            MemberState::Left => {
                m.state = MemberState::Joining;
                m.step_inflight = false;
            }
            MemberState::Joining | MemberState::Syncing | MemberState::FetchingOffsets
                if m.step_inflight => {}
            MemberState::Joining => {
                m.step_inflight = true;
                let req = JoinGroupRequest::default()
                    .with_group_id(gid.clone())
                    .with_session_timeout_ms(m.session_timeout_ms)
                    .with_rebalance_timeout_ms(10_000)
                    .with_member_id(name(&m.member_id))
                    .with_group_instance_id(instance.clone())
                    .with_protocol_type(StrBytes::from_static_str("consumer"))
                    .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default(
                    )
                    .with_name(StrBytes::from_static_str(m.strategy.name()))
                    .with_metadata(cooperative::subscription(TOPIC, &m.claim()))]);
                reqs.push((
                    ApiKey::JoinGroup,
                    5,
                    RequestKind::JoinGroup(req),
                    Pending::Join,
                ));
            }
            MemberState::Syncing | MemberState::FetchingOffsets => {}
            MemberState::Consuming => {
                for (&part, pos) in m.pos.iter_mut() {
                    if *pos == RESET_NEEDED {
                        *pos = RESET_INFLIGHT;
                        reqs.push((
                            ApiKey::ListOffsets,
                            5,
                            reader::list_offsets(part, EARLIEST),
                            Pending::MemberReset {
                                part,
                                epoch: m.epoch,
                            },
                        ));
                    }
                }
                let fetchable: Vec<Part> = m
                    .assigned
                    .iter()
                    .copied()
                    .filter(|p| m.pos.get(p).is_some_and(|o| *o >= 0))
                    .collect();
                if !m.fetch_inflight && !m.commit_inflight && !fetchable.is_empty() {
                    m.fetch_inflight = true;
                    let req = FetchRequest::default()
                        .with_replica_id(BrokerId(-1))
                        .with_max_wait_ms(300)
                        .with_min_bytes(1)
                        .with_max_bytes(1 << 20)
                        .with_topics(vec![fetch_request::FetchTopic::default()
                            .with_topic(TopicName(name(TOPIC)))
                            .with_partitions(
                                fetchable
                                    .iter()
                                    .map(|p| {
                                        fetch_request::FetchPartition::default()
                                            .with_partition(*p)
                                            .with_fetch_offset(m.pos[p])
                                            .with_partition_max_bytes(16 * 1024)
                                    })
                                    .collect(),
                            )]);
                    reqs.push((
                        ApiKey::Fetch,
                        12,
                        RequestKind::Fetch(req),
                        Pending::Fetch {
                            epoch: m.epoch,
                            sent: env.now / MS,
                        },
                    ));
                }
            }
        }
        if matches!(
            m.state,
            MemberState::Consuming | MemberState::FetchingOffsets
        ) && !m.hb_inflight
            && env.now >= m.next_heartbeat
        {
            m.hb_inflight = true;
            m.next_heartbeat = env.now + 1_000 * MS;
            let req = HeartbeatRequest::default()
                .with_group_id(gid)
                .with_generation_id(m.generation)
                .with_member_id(name(&m.member_id))
                .with_group_instance_id(instance);
            reqs.push((
                ApiKey::Heartbeat,
                3,
                RequestKind::Heartbeat(req),
                Pending::Heartbeat,
            ));
        }
        let _ = id;
        for (k, v, body, what) in reqs {
            self.send(env, k, v, body, Some(what));
        }
    }

    fn member_response(&mut self, env: &mut Env, what: Pending, body: ResponseKind) {
        let id = self.id;
        let partitions = env.partitions;
        let Role::Member(m) = &mut self.role else {
            unreachable!()
        };
        let gid = GroupId(name(&m.group_id));
        let instance = m.instance_id.as_deref().map(name);
        let mut next: Option<(ApiKey, i16, RequestKind, Pending)> = None;
        match (what, body) {
            (Pending::Join, ResponseKind::JoinGroup(r)) => {
                m.step_inflight = false;
                match r.error_code {
                    NONE => {
                        m.member_id = r.member_id.to_string();
                        m.generation = r.generation_id;
                        m.state = MemberState::Syncing;
                        let mut assignments = vec![];
                        if r.leader == r.member_id && m.cooperative {
                            // The leader of a cooperative group runs cooperative-sticky on
                            // what every member reports it owns.
                            let claims: BTreeMap<String, cooperative::Claim> = r
                                .members
                                .iter()
                                .map(|mm| {
                                    let claim = cooperative::claim_of(TOPIC, mm.metadata.clone());
                                    (mm.member_id.to_string(), claim.unwrap_or_default())
                                })
                                .collect();
                            for (member, parts) in cooperative::assign(&claims, partitions) {
                                assignments.push(
                                    sync_group_request::SyncGroupRequestAssignment::default()
                                        .with_member_id(name(&member))
                                        .with_assignment(encode_parts(&parts)),
                                );
                            }
                        } else if r.leader == r.member_id {
                            let members: BTreeMap<String, Subscription> = r
                                .members
                                .iter()
                                .map(|mm| {
                                    (
                                        mm.member_id.to_string(),
                                        Subscription {
                                            topics: BTreeSet::from([TOPIC.to_string()]),
                                            owned: vec![],
                                        },
                                    )
                                })
                                .collect();
                            let counts = BTreeMap::from([(TOPIC.to_string(), partitions)]);
                            let a = assignor::assign(m.strategy, &members, &counts);
                            for (member, tps) in a {
                                let parts: Vec<Part> = tps.iter().map(|tp| tp.1).collect();
                                assignments.push(
                                    sync_group_request::SyncGroupRequestAssignment::default()
                                        .with_member_id(name(&member))
                                        .with_assignment(encode_parts(&parts)),
                                );
                            }
                        }
                        m.step_inflight = true;
                        let req = SyncGroupRequest::default()
                            .with_group_id(gid)
                            .with_generation_id(m.generation)
                            .with_member_id(name(&m.member_id))
                            .with_group_instance_id(instance)
                            .with_assignments(assignments);
                        next = Some((
                            ApiKey::SyncGroup,
                            3,
                            RequestKind::SyncGroup(req),
                            Pending::Sync,
                        ));
                    }
                    MEMBER_ID_REQUIRED => {
                        m.member_id = r.member_id.to_string();
                    }
                    UNKNOWN_MEMBER_ID | FENCED_INSTANCE_ID => {
                        // No longer a member (evicted, or replaced by a newer instance): what a
                        // cooperative member still held is lost; it joins anew with nothing.
                        m.member_id.clear();
                        m.release(env, true);
                        m.retry_at = env.now + 200 * MS;
                    }
                    _ => m.retry_at = env.now + 200 * MS,
                }
            }
            (Pending::Sync, ResponseKind::SyncGroup(r)) => {
                m.step_inflight = false;
                if m.state != MemberState::Syncing {
                    // A rebalance overtook this answer; the member is already rejoining.
                } else if r.error_code == NONE {
                    let new = decode_parts(r.assignment);
                    env.history.events.push(Event::Assigned {
                        t: env.now / MS,
                        group: m.group,
                        member: id,
                        generation: m.generation,
                        parts: new.clone(),
                    });
                    if m.cooperative {
                        // Revoke only what the new assignment lacks, keep the rest with its
                        // position, and rejoin after, so the revoked partitions can be handed
                        // on in the next rebalance (KIP-429).
                        let revoked: Vec<Part> = m
                            .assigned
                            .iter()
                            .filter(|p| !new.contains(p))
                            .copied()
                            .collect();
                        if !revoked.is_empty() {
                            for p in &revoked {
                                m.pos.remove(p);
                            }
                            env.history.events.push(Event::Revoked {
                                t: env.now / MS,
                                group: m.group,
                                member: id,
                                parts: revoked,
                                lost: false,
                            });
                            m.rejoin_after = true;
                        }
                        if new.iter().any(|p| !m.assigned.contains(p)) {
                            m.session += 1;
                        }
                        m.owned_generation = m.generation;
                    } else {
                        m.session += 1;
                    }
                    m.assigned = new;
                    m.state = MemberState::FetchingOffsets;
                    m.next_heartbeat = env.now + 1_000 * MS;
                    // The committed offsets of the partitions without a position (an eager
                    // member: all of them).
                    let unknown: Vec<Part> = m
                        .assigned
                        .iter()
                        .filter(|p| !m.pos.contains_key(p))
                        .copied()
                        .collect();
                    if m.cooperative && unknown.is_empty() {
                        m.consuming(env);
                        return;
                    }
                    m.step_inflight = true;
                    let req = OffsetFetchRequest::default()
                        .with_group_id(gid)
                        .with_topics(Some(vec![
                            offset_fetch_request::OffsetFetchRequestTopic::default()
                                .with_name(TopicName(name(TOPIC)))
                                .with_partition_indexes(unknown),
                        ]))
                        .with_require_stable(true);
                    next = Some((
                        ApiKey::OffsetFetch,
                        7,
                        RequestKind::OffsetFetch(req),
                        Pending::OffsetFetch { sent: env.now / MS },
                    ));
                } else {
                    m.on_group_error(env, r.error_code);
                }
            }
            (Pending::OffsetFetch { sent }, ResponseKind::OffsetFetch(r)) => {
                m.step_inflight = false;
                if m.state != MemberState::FetchingOffsets {
                    // A rebalance overtook us.
                } else if r.error_code != NONE {
                    m.on_group_error(env, r.error_code);
                } else {
                    let mut ok = true;
                    for t in &r.topics {
                        for p in &t.partitions {
                            if p.error_code != NONE {
                                ok = false;
                                continue;
                            }
                            env.history.events.push(Event::CommittedRead {
                                t: env.now / MS,
                                sent,
                                group: m.group,
                                member: id,
                                part: p.partition_index,
                                offset: p.committed_offset,
                            });
                            m.pos.insert(p.partition_index, p.committed_offset.max(0));
                        }
                    }
                    if ok && m.assigned.iter().all(|p| m.pos.contains_key(p)) {
                        m.consuming(env);
                    } else {
                        m.rejoin(env, false);
                    }
                }
            }
            (Pending::Heartbeat, ResponseKind::Heartbeat(r)) => {
                m.hb_inflight = false;
                if r.error_code != NONE {
                    m.on_group_error(env, r.error_code);
                }
            }
            (Pending::Fetch { epoch, .. }, ResponseKind::Fetch(r)) => {
                m.fetch_inflight = false;
                if epoch != m.epoch || m.state != MemberState::Consuming {
                    return; // a fetch for an assignment we no longer hold
                }
                let mut got: Vec<(Part, i64, Value)> = Vec::new();
                for t in r.responses {
                    for p in t.partitions {
                        let part = p.partition_index;
                        let Some(&pos) = m.pos.get(&part) else {
                            continue;
                        };
                        match p.error_code {
                            NONE => {
                                let recs: Vec<(i64, Value)> = decode_records(p.records)
                                    .into_iter()
                                    .filter(|(o, _)| *o >= pos)
                                    .collect();
                                if recs.is_empty() {
                                    continue;
                                }
                                env.history.events.push(Event::Poll {
                                    t: env.now / MS,
                                    reader: id,
                                    session: m.session,
                                    part,
                                    records: recs.clone(),
                                });
                                m.pos.insert(part, recs.last().expect("nonempty").0 + 1);
                                got.extend(recs.into_iter().map(|(o, v)| (part, o, v)));
                            }
                            // auto.offset.reset=earliest: ListOffsets, then a fresh position.
                            OFFSET_OUT_OF_RANGE => {
                                m.pos.insert(part, RESET_NEEDED);
                            }
                            _ => {}
                        }
                    }
                }
                if got.is_empty() {
                    return;
                }
                if m.mode == CommitMode::AfterProcessing {
                    m.process(env, id, &got);
                }
                let offsets: Vec<(Part, i64)> = {
                    let touched: BTreeSet<Part> = got.iter().map(|g| g.0).collect();
                    touched.into_iter().map(|p| (p, m.pos[&p])).collect()
                };
                let held = if m.mode == CommitMode::BeforeProcessing {
                    got
                } else {
                    vec![]
                };
                m.commit_inflight = true;
                let req = commit_request(gid, m.generation, &m.member_id, instance, &offsets);
                next = Some((
                    ApiKey::OffsetCommit,
                    7,
                    req,
                    Pending::Commit {
                        sent: env.now / MS,
                        generation: m.generation,
                        member_id: m.member_id.clone(),
                        offsets,
                        held,
                        again: false,
                    },
                ));
            }
            (
                Pending::Commit {
                    sent,
                    generation,
                    member_id,
                    offsets,
                    held,
                    again,
                },
                ResponseKind::OffsetCommit(r),
            ) => {
                m.commit_inflight = false;
                let codes: Vec<i16> = r
                    .topics
                    .iter()
                    .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
                    .collect();
                if codes.iter().all(|c| *c == NONE) && !codes.is_empty() {
                    for (part, offset) in offsets {
                        env.history.events.push(Event::Committed {
                            t: env.now / MS,
                            sent,
                            group: m.group,
                            member: id,
                            generation,
                            part,
                            offset,
                        });
                    }
                    // At-most-once: only now, with the commit acknowledged, is the batch
                    // handed to the application: what it still owns of it.
                    let held: Vec<(Part, i64, Value)> = held
                        .into_iter()
                        .filter(|(p, _, _)| m.assigned.contains(p))
                        .collect();
                    m.process(env, id, &held);
                } else {
                    let code = codes
                        .into_iter()
                        .find(|c| *c != NONE)
                        .unwrap_or(UNKNOWN_MEMBER_ID);
                    let fenced = matches!(
                        code,
                        ILLEGAL_GENERATION | UNKNOWN_MEMBER_ID | FENCED_INSTANCE_ID
                    );
                    let moved_on = generation != m.generation
                        || member_id != m.member_id
                        || m.state != MemberState::Consuming;
                    if moved_on {
                        // The member has rejoined since it sent this: the refusal is old news.
                    } else if m.zombie && fenced && !again {
                        // A zombie: it was evicted or missed a rebalance, and commits the same
                        // offsets once more with its stale generation and member id. The
                        // coordinator must refuse it again (`zombie-commit`).
                        m.commit_inflight = true;
                        let req = commit_request(gid, generation, &member_id, instance, &offsets);
                        next = Some((
                            ApiKey::OffsetCommit,
                            7,
                            req,
                            Pending::Commit {
                                sent: env.now / MS,
                                generation,
                                member_id,
                                offsets,
                                held: vec![],
                                again: true,
                            },
                        ));
                    } else {
                        m.on_group_error(env, code);
                    }
                }
            }
            (Pending::Leave, ResponseKind::LeaveGroup(_)) => {}
            (Pending::MemberReset { part, epoch }, ResponseKind::ListOffsets(r)) => {
                let answer = r
                    .topics
                    .first()
                    .and_then(|t| t.partitions.first())
                    .filter(|p| p.error_code == NONE)
                    .map(|p| p.offset);
                if epoch == m.epoch && m.pos.get(&part) == Some(&RESET_INFLIGHT) {
                    if let Some(o) = answer {
                        m.pos.insert(part, o);
                        m.session += 1;
                        env.history.events.push(Event::Reset {
                            t: env.now / MS,
                            reader: id,
                            part,
                            session: m.session,
                            offset: o,
                        });
                    } else {
                        m.pos.insert(part, RESET_NEEDED);
                        m.retry_at = env.now + 100 * MS;
                    }
                }
            }
            (what, body) => panic!("member {id}: unexpected {body:?} for {what:?}"),
        }
        if let Some((k, v, body, what)) = next {
            self.send(env, k, v, body, Some(what));
        }
    }
}

impl Member {
    fn drop_assignment(&mut self) {
        self.assigned.clear();
        self.pos.clear();
        self.epoch += 1;
    }

    /// Give up every partition: revoke them (`lost` false: the member chose to, as an eager
    /// member does before it rejoins) or lose them (it crashed, or learned it is no longer in
    /// the group's generation). Either way it owns nothing after this.
    fn release(&mut self, env: &mut Env, lost: bool) {
        if !self.assigned.is_empty() {
            env.history.events.push(Event::Revoked {
                t: env.now / MS,
                group: self.group,
                member: self.client,
                parts: self.assigned.clone(),
                lost,
            });
        }
        self.drop_assignment();
        self.rejoin_after = false;
    }

    /// What the member tells the leader it owns (a cooperative member; an eager one revoked
    /// everything before it rejoined).
    fn claim(&self) -> cooperative::Claim {
        if self.cooperative && !self.assigned.is_empty() {
            cooperative::Claim {
                owned: self.assigned.clone(),
                generation: self.owned_generation,
            }
        } else {
            cooperative::Claim {
                owned: vec![],
                generation: -1,
            }
        }
    }

    /// Every partition has a position: consume. A cooperative member that revoked partitions
    /// in this rebalance rejoins now, so they can be handed on.
    fn consuming(&mut self, env: &mut Env) {
        self.state = MemberState::Consuming;
        if self.rejoin_after {
            self.rejoin_after = false;
            self.rejoin(env, false);
        }
    }

    /// Go back to JoinGroup; `forget` drops the member id (the coordinator no longer knows it),
    /// and with it the partitions (lost). An eager member revokes everything before rejoining;
    /// a cooperative one keeps its partitions and reports them in JoinGroup (KIP-429).
    fn rejoin(&mut self, env: &mut Env, forget: bool) {
        if forget {
            self.member_id.clear();
        }
        if self.state == MemberState::Left {
            return;
        }
        if forget || !self.cooperative {
            self.release(env, forget);
        }
        self.state = MemberState::Joining;
        self.step_inflight = false;
        self.retry_at = env.now;
    }

    fn on_group_error(&mut self, env: &mut Env, code: i16) {
        match code {
            UNKNOWN_MEMBER_ID | FENCED_INSTANCE_ID => self.rejoin(env, true),
            // The member's generation is gone: a cooperative member has lost its partitions
            // (another member may own them by now) and rejoins with none.
            ILLEGAL_GENERATION if self.cooperative => {
                self.release(env, true);
                self.rejoin(env, false);
            }
            REBALANCE_IN_PROGRESS | ILLEGAL_GENERATION => self.rejoin(env, false),
            _ => {
                self.rejoin(env, false);
                self.retry_at = env.now + 200 * MS;
            }
        }
    }

    fn process(&mut self, env: &mut Env, id: usize, records: &[(Part, i64, Value)]) {
        for &(part, offset, value) in records {
            env.history.events.push(Event::Processed {
                t: env.now / MS,
                group: self.group,
                member: id,
                generation: self.generation,
                part,
                offset,
                value,
            });
        }
    }
}
