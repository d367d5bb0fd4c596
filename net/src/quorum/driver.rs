//! The quorum member's event loop: `raft::Message`s and time in, `raft::Output`s performed.
//!
//! One task owns the [`RaftNode`]. It waits for an [`Event`] from the network or for the node's
//! next deadline ([`RaftNode::poll_timeout`]), hands it over, then drains
//! [`RaftNode::poll_output`] and performs each output **in order**: a storage output is fsynced
//! before the next output is looked at, so a vote is durable before the VoteResponse that
//! reports it is sent, and an entry before the fetch that counts it (the calling contract of
//! [`gregor_core::raft`]). A response to a peer's request goes back on the connection it came
//! on; a request goes to the peer's queue.
//!
//! On [`Output::Committed`] the newly committed data entries are decoded
//! ([`gregor_core::cluster::decode`]) and replayed into the node's [`MetadataImage`]: the only
//! way the image changes, live and after a restart alike. The driver takes a snapshot of the
//! image every `snapshot_interval_entries` committed entries (KIP-630), and loads one a
//! leader sends.
//!
//! Until the controller composition (`gregor_core::cluster`) drives this loop, a newly elected
//! leader of an empty log writes one record, the `metadata.version` feature level, so a fresh
//! quorum commits something of its own (every KRaft log starts with that record).

use super::storage::{Recovered, Storage};
use super::transport::{self, Event, Peers, Reply};
use super::QuorumConfig;
use crate::clock::Clock;
use bytes::Bytes;
use gregor_core::cluster::{self, MetadataImage, MetadataRecord};
use gregor_core::raft::wire::{QuorumStatus, ReplicaStatus};
use gregor_core::raft::{Message, NodeId, Output, RaftConfig, RaftNode, Record, Role, Snapshot};
use std::collections::{BTreeMap, BTreeSet};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

/// Events waiting for the driver; the network's tasks wait when it is full.
pub const EVENT_QUEUE_MAX: usize = 1024;
/// How often a leader repeats BeginQuorumEpoch to a voter that has not fetched for as long.
///
/// A voter that restarts, or was cut off during the election, does not know the new leader.
/// Without this it would wait for its election timeout and stand in a higher epoch, unseating a
/// leader it cannot even beat (its log is behind). Kafka's leader resends BeginQuorumEpoch
/// to voters that have not fetched lately for the same reason. The core's `RaftNode` does not
/// repeat it yet, so this driver does; the message is idempotent (a node that already follows
/// the leader of that epoch ignores it). It belongs in `RaftNode` eventually.
pub const BEGIN_QUORUM_EPOCH_RESEND: std::time::Duration = std::time::Duration::from_millis(500);
/// The `metadata.version` level a fresh log starts with: 21 is Kafka 3.9-IV0.
pub const METADATA_VERSION_LEVEL: i16 = 21;

pub async fn run(
    config: QuorumConfig,
    storage: Storage,
    recovered: Recovered,
    listener: tokio::net::TcpListener,
) -> anyhow::Result<()> {
    let clock = Clock::new();
    let (events, mut inbox) = mpsc::channel(EVENT_QUEUE_MAX);
    info!(node_id = config.node_id.0, listen = %config.listen, voters = ?config.voters,
        "metadata quorum member starting");
    tokio::spawn(transport::accept_loop(listener, events.clone()));
    let peers = Peers::start(config.node_id, &config.voters, events);
    let voters: BTreeSet<NodeId> = config.voters.keys().copied().collect();
    let image = match &recovered.snapshot {
        Some(s) => load_image(s)?,
        None => MetadataImage::new(),
    };
    let seed: u64 = rand::random();
    info!(seed, "raft seed (election timeouts)");
    let node = RaftNode::restore(
        config.node_id,
        voters.clone(),
        RaftConfig::default(),
        seed,
        clock.now(),
        recovered.state,
        recovered.snapshot,
        recovered.entries,
    );
    let mut d = Driver {
        applied: image.offset() + 1,
        snapshot_end: node.log().start(),
        snapshot_interval: config.snapshot_interval_entries,
        node,
        voters,
        storage,
        peers,
        image,
        clock,
        reply: None,
        caught_up: BTreeMap::new(),
        seen: ((-1, None), false),
    };
    d.step()?;
    let mut announce = tokio::time::interval(BEGIN_QUORUM_EPOCH_RESEND);
    loop {
        let deadline = d.clock.to_tokio(d.node.poll_timeout());
        tokio::select! {
            ev = inbox.recv() => match ev {
                Some(ev) => d.on_event(ev),
                None => return Ok(()),
            },
            _ = tokio::time::sleep_until(deadline) => d.node.tick(d.clock.now()),
            _ = announce.tick() => d.announce(),
        }
        d.step()?;
    }
}

struct Driver {
    node: RaftNode,
    voters: BTreeSet<NodeId>,
    storage: Storage,
    peers: Peers,
    image: MetadataImage,
    /// Entries below this offset are replayed into `image`.
    applied: i64,
    /// The end of the latest snapshot (the log start).
    snapshot_end: i64,
    snapshot_interval: i64,
    clock: Clock,
    /// The request being handled and where its answer goes.
    reply: Option<(NodeId, oneshot::Sender<Reply>)>,
    /// When each replica last fetched having the leader's whole log (unix ms).
    caught_up: BTreeMap<NodeId, i64>,
    /// The (epoch, leader) and leadership last logged.
    seen: ((i32, Option<NodeId>), bool),
}

fn is_response(m: &Message) -> bool {
    matches!(
        m,
        Message::VoteResponse { .. }
            | Message::FetchResponse { .. }
            | Message::FetchSnapshotResponse { .. }
    )
}

impl Driver {
    fn on_event(&mut self, ev: Event) {
        let now = self.clock.now();
        match ev {
            Event::Request {
                from,
                message,
                reply,
            } => {
                let voter_only = matches!(
                    message,
                    Message::Vote { .. }
                        | Message::BeginQuorumEpoch { .. }
                        | Message::EndQuorumEpoch { .. }
                );
                if from == self.node.id() || (voter_only && !self.voters.contains(&from)) {
                    // Only voters stand and lead; a node never hears from itself.
                    warn!(
                        from = from.0,
                        "ignoring {message:?}: not from another voter"
                    );
                    let _ = reply.send(self.reply_with(None));
                    return;
                }
                self.reply = Some((from, reply));
                self.node.handle(now, from, message);
            }
            Event::Response { from, message } => self.node.handle(now, from, message),
            Event::Describe { reply } => {
                let _ = reply.send((self.status(), self.node.is_leader()));
            }
        }
    }

    /// As leader, tell each voter that has not fetched within [`BEGIN_QUORUM_EPOCH_RESEND`]
    /// who leads this epoch.
    fn announce(&mut self) {
        let Role::Leader(l) = self.node.role() else {
            return;
        };
        let now = self.clock.now();
        let quiet = gregor_core::Duration(BEGIN_QUORUM_EPOCH_RESEND.as_nanos() as u64);
        let epoch = self.node.epoch();
        for v in self.voters.iter().filter(|v| **v != self.node.id()) {
            let last = l.replicas.get(v).map(|p| p.last_fetch);
            if last.is_none_or(|t| now.saturating_since(t) >= quiet) {
                self.peers.send(*v, Message::BeginQuorumEpoch { epoch });
            }
        }
    }

    fn reply_with(&self, response: Option<Message>) -> Reply {
        Reply {
            response,
            epoch: self.node.epoch(),
            leader: self.node.leader(),
        }
    }

    /// Perform the node's outputs, then what follows from them: answer the request being
    /// handled, bootstrap a fresh log, snapshot, log role changes.
    fn step(&mut self) -> anyhow::Result<()> {
        self.perform()?;
        if let Some((_, reply)) = self.reply.take() {
            // Raft produced no answer (BeginQuorumEpoch, EndQuorumEpoch): acknowledge.
            let _ = reply.send(self.reply_with(None));
        }
        self.log_changes();
        self.bootstrap()?;
        if self.applied - self.snapshot_end >= self.snapshot_interval {
            let data = encode_image(&self.image);
            self.node.take_snapshot(self.applied, data);
            self.perform()?;
        }
        self.log_changes();
        Ok(())
    }

    fn perform(&mut self) -> anyhow::Result<()> {
        while let Some(out) = self.node.poll_output() {
            match out {
                Output::SaveQuorumState(s) => self.storage.save_quorum_state(&s)?,
                Output::Append {
                    base_offset,
                    entries,
                } => self.storage.append(base_offset, &entries)?,
                Output::Truncate { end_offset } => {
                    assert!(end_offset >= self.applied, "committed entries stay");
                    self.storage.truncate(end_offset)?
                }
                Output::Send { to, message } if is_response(&message) => match self.reply.take() {
                    Some((from, reply)) if from == to => {
                        let _ = reply.send(self.reply_with(Some(message)));
                    }
                    other => {
                        self.reply = other;
                        debug!(to = to.0, "dropping {message:?}: no request to answer");
                    }
                },
                Output::Send { to, message } => {
                    if !self.peers.send(to, message) {
                        debug!(to = to.0, "peer queue full or unknown: message dropped");
                    }
                }
                Output::SaveSnapshot(s) => {
                    self.storage.save_snapshot(&s, true)?;
                    self.snapshot_end = s.id.end_offset;
                }
                Output::InstallSnapshot(s) => {
                    self.storage.save_snapshot(&s, false)?;
                    self.image = load_image(&s)?;
                    self.applied = s.id.end_offset;
                    self.snapshot_end = s.id.end_offset;
                    info!(
                        end_offset = s.id.end_offset,
                        "installed the leader's metadata snapshot"
                    );
                }
                Output::Committed { high_watermark } => self.apply(high_watermark)?,
            }
        }
        Ok(())
    }

    /// Replay the committed data entries below `high_watermark` into the image.
    fn apply(&mut self, high_watermark: i64) -> anyhow::Result<()> {
        while self.applied < high_watermark {
            let offset = self.applied;
            let Some(entry) = self.node.log().get(offset) else {
                // Behind the log start: a snapshot being installed covers it.
                break;
            };
            if let Record::Data(frame) = &entry.record {
                let record = cluster::decode(frame)
                    .map_err(|e| anyhow::anyhow!("committed metadata record at {offset}: {e}"))?;
                self.image
                    .replay(offset, &record)
                    .map_err(|e| anyhow::anyhow!("replaying metadata record at {offset}: {e}"))?;
                debug!(offset, ?record, "metadata record committed");
            }
            self.applied += 1;
        }
        Ok(())
    }

    /// A leader of a log with no metadata yet writes the `metadata.version` record.
    fn bootstrap(&mut self) -> anyhow::Result<()> {
        if !self.node.is_leader() || self.node.latest_snapshot().is_some() {
            return Ok(());
        }
        let log = self.node.log();
        let has_data = (log.start()..log.end())
            .any(|o| matches!(log.get(o).map(|e| &e.record), Some(Record::Data(_))));
        if has_data {
            return Ok(());
        }
        let record = MetadataRecord::FeatureLevel {
            name: "metadata.version".into(),
            level: METADATA_VERSION_LEVEL,
        };
        match self
            .node
            .propose(self.clock.now(), Bytes::from(record.encode()))
        {
            Ok(offset) => info!(
                offset,
                "wrote metadata.version {METADATA_VERSION_LEVEL} to the new log"
            ),
            Err(e) => warn!("cannot write metadata.version: {e:?}"),
        }
        self.perform()
    }

    fn log_changes(&mut self) {
        let now_ms = self.clock.now().unix_ms();
        let end = self.node.log().end();
        if let Role::Leader(l) = self.node.role() {
            for (id, p) in &l.replicas {
                if p.matched >= end {
                    self.caught_up.insert(*id, p.last_fetch.unix_ms());
                }
            }
            self.caught_up.insert(self.node.id(), now_ms);
        }
        let now = (
            (self.node.epoch().0, self.node.leader()),
            self.node.is_leader(),
        );
        if now == self.seen {
            return;
        }
        let (epoch, leader) = now.0;
        match (self.node.role(), leader) {
            (Role::Leader(_), _) => {
                info!(
                    epoch,
                    node_id = self.node.id().0,
                    "elected leader of the metadata quorum"
                )
            }
            (_, Some(l)) => info!(epoch, leader = l.0, "metadata quorum leader changed"),
            (Role::Candidate { .. }, None) => info!(epoch, "standing for election"),
            (Role::Resigned { .. }, None) => info!(epoch, "resigned: no majority heard from"),
            (_, None) => info!(epoch, "no metadata quorum leader known"),
        }
        self.seen = now;
    }

    /// DescribeQuorum's view: the leader knows every replica's progress; another node reports
    /// only the leader and epoch it knows.
    fn status(&self) -> QuorumStatus {
        let end = self.node.log().end();
        let me = self.node.id();
        let now_ms = self.clock.now().unix_ms();
        let mut status = QuorumStatus {
            leader: self.node.leader(),
            epoch: self.node.epoch(),
            high_watermark: self.node.high_watermark(),
            voters: Vec::new(),
            observers: Vec::new(),
        };
        let Role::Leader(l) = self.node.role() else {
            return status;
        };
        let row = |id: NodeId| {
            let (log_end_offset, last_fetch_ms) = if id == me {
                (end, now_ms)
            } else {
                l.replicas
                    .get(&id)
                    .map_or((-1, -1), |p| (p.matched, p.last_fetch.unix_ms()))
            };
            ReplicaStatus {
                id,
                log_end_offset,
                last_fetch_ms,
                last_caught_up_ms: self.caught_up.get(&id).copied().unwrap_or(-1),
            }
        };
        status.voters = self.voters.iter().map(|v| row(*v)).collect();
        status.observers = l
            .replicas
            .keys()
            .filter(|id| !self.voters.contains(id))
            .map(|id| row(*id))
            .collect();
        status
    }
}

/// A snapshot's bytes: the image's records ([`MetadataImage::to_records`]), each frame
/// prefixed by its length (4 bytes, big-endian).
fn encode_image(image: &MetadataImage) -> Bytes {
    let mut out = Vec::new();
    for r in image.to_records() {
        let frame = r.encode();
        out.extend_from_slice(&(frame.len() as u32).to_be_bytes());
        out.extend_from_slice(&frame);
    }
    Bytes::from(out)
}

fn load_image(s: &Snapshot) -> anyhow::Result<MetadataImage> {
    let mut records = Vec::new();
    let mut rest = &s.data[..];
    while !rest.is_empty() {
        anyhow::ensure!(rest.len() >= 4, "snapshot record length cut short");
        let len = u32::from_be_bytes(rest[..4].try_into().expect("four bytes")) as usize;
        anyhow::ensure!(rest.len() - 4 >= len, "snapshot record cut short");
        records.push(cluster::decode(&rest[4..4 + len]).map_err(|e| anyhow::anyhow!("{e}"))?);
        rest = &rest[4 + len..];
    }
    MetadataImage::load_snapshot(s.id.end_offset, &records)
        .map_err(|e| anyhow::anyhow!("loading snapshot {:?}: {e}", s.id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use gregor_core::raft::{Epoch, SnapshotId};

    #[test]
    fn an_image_round_trips_through_a_snapshot() {
        let mut image = MetadataImage::new();
        let r = MetadataRecord::FeatureLevel {
            name: "metadata.version".into(),
            level: METADATA_VERSION_LEVEL,
        };
        image.replay(3, &r).unwrap();
        let s = Snapshot {
            id: SnapshotId {
                end_offset: 4,
                epoch: Epoch(1),
            },
            data: encode_image(&image),
        };
        let back = load_image(&s).unwrap();
        assert_eq!(
            back.feature("metadata.version"),
            Some(METADATA_VERSION_LEVEL)
        );
        assert_eq!(back.offset(), 3);
        let cut = Snapshot {
            data: s.data.slice(..s.data.len() - 1),
            ..s
        };
        assert!(load_image(&cut).is_err());
    }
}
