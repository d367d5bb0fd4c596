//! The mover: an operator reassigning the workload's partitions (KIP-455) while faults are
//! active, through gregor-client's AlterPartitionReassignments, and listing the moves in
//! progress once the run has settled. What it asks and what the controller commits are judged
//! by [`crate::cluster::reassign`].
//!
//! The mover has its own PRNG and cadence, drawn only for the replicated workload on two or
//! more nodes, so a seed that does not draw it replays exactly as before it existed.

use super::{Ev, Role2, World};
use crate::clients::{Us, MS, TOPIC};
use crate::cluster::reassign::{self, Answer, Final, Move, Moves, State};
use gregor_client::{AdminId, AdminOp, AdminResult, ClientError};
use gregor_core::cluster::reassign::target_of;
use gregor_core::prng::Prng;

/// How long the mover waits before listing the moves in progress again.
const RELIST: Us = 500 * MS;

/// The mover's randomness, cadence and requests in flight, and what it saw.
pub(super) struct Movers {
    prng: Prng,
    /// About how often a move is asked (ms); none: the mover is off for this seed.
    every_ms: Option<u64>,
    /// The mover's client, once the workload has started.
    client: Option<usize>,
    /// The move in flight: its operation and its index in `moves.moves`.
    altering: Option<(AdminId, usize)>,
    /// The ListPartitionReassignments in flight, and when the next may be sent.
    listing: Option<AdminId>,
    list_not_before: Us,
    pub(super) moves: Moves,
}

impl Movers {
    /// Drawn from the seed alone: on in about three replicated seeds of four.
    pub(super) fn draw(seed: u64, nodes: usize, replication: bool) -> Movers {
        let mut prng = Prng::new(seed ^ 0x4d4f_5645_5245_4153);
        let on = replication && nodes >= 2 && prng.ratio(3, 4);
        let every_ms = on.then(|| 1_000 + prng.below(5_000));
        Movers {
            prng,
            every_ms,
            client: None,
            altering: None,
            listing: None,
            list_not_before: 0,
            moves: Moves::default(),
        }
    }

    /// The profile's line for the mover: empty when it is off.
    pub(super) fn describe(&self) -> String {
        match self.every_ms {
            Some(ms) => format!("\nreassignments: a partition moved every ~{ms} ms"),
            None => String::new(),
        }
    }

    /// The report's line: moves by kind and answer.
    pub(super) fn summary(&self) -> Option<String> {
        self.every_ms?;
        let (kinds, [accepted, refused, unknown]) = self.moves.counts();
        let listed = self.moves.lists.last().map(|(_, ps)| ps.len());
        Some(format!(
            "reassignments: {} asked {kinds:?}: {accepted} accepted, {refused} refused, {unknown} unanswered; last listing shows {listed:?} in progress",
            self.moves.moves.len()
        ))
    }
}

impl World {
    /// Start the mover with the workload, when the seed draws it.
    pub(super) fn add_mover(&mut self) {
        let Some(every) = self.movers.every_ms else {
            return;
        };
        let config = self.client_config("mover".into());
        self.add_client(config, Role2::Mover);
        self.movers.client = Some(self.clients.len() - 1);
        let first = 1 + self.movers.prng.below(every);
        self.schedule(self.now + first * MS, Ev::Reassign);
    }

    /// A move is due (safety phase only): read a partition's committed replicas, draw a move
    /// and ask for it, unless one is still in flight; schedule the next.
    pub(super) fn reassign_due(&mut self) {
        let (Some(every), Some(c)) = (self.movers.every_ms, self.movers.client) else {
            return;
        };
        if self.healed || self.stopping {
            return;
        }
        let gap = 1 + self.movers.prng.below(2 * every);
        self.schedule(self.now + gap * MS, Ev::Reassign);
        if self.movers.altering.is_some() {
            return;
        }
        // The operator reads the assignment first (kafka-reassign-partitions --generate
        // describes the topic); a move in progress counts as being at its target.
        let image = self.replication.image();
        let part = self.movers.prng.below(self.profile.partitions as u64) as i32;
        let Some(reg) = image
            .topic_id(TOPIC)
            .and_then(|id| image.partition(id, part))
        else {
            return;
        };
        let current: Vec<i32> = target_of(reg).iter().map(|b| b.0).collect();
        let nodes = self.machines.len() as i32;
        // Never fewer replicas than min.insync.replicas, nor than an acks=N producer waits
        // for: below either, its writes could never be acknowledged again.
        let acks_n = (self.profile.producers.iter())
            .filter_map(|(acks, _)| match acks {
                gregor_client::Acks::Replicas(n) => Some(*n as usize),
                _ => None,
            })
            .max();
        let floor = (self.profile.min_insync as usize).max(acks_n.unwrap_or(1));
        let Some((kind, target)) =
            reassign::draw_target(&mut self.movers.prng, &current, nodes, floor)
        else {
            return;
        };
        self.count("reassignments asked");
        self.say(|| format!("mover: {TOPIC}-{part} {current:?} -> {target:?} ({kind:?})"));
        let op = AdminOp::AlterPartitionReassignments {
            partitions: vec![((TOPIC.to_string(), part), Some(target.clone()))],
        };
        let now = self.client_now();
        let id = self.clients[c].client.admin(now, op);
        self.movers.moves.moves.push(Move {
            part,
            from: current,
            target,
            kind,
            sent: self.ms(),
            answer: Answer::Pending,
        });
        self.movers.altering = Some((id, self.movers.moves.moves.len() - 1));
        self.after_client(c);
    }

    /// The mover's operation `id` came back.
    pub(super) fn mover_answer(&mut self, id: AdminId, result: Result<AdminResult, ClientError>) {
        let t = self.ms();
        self.say(|| format!("mover: {result:?}"));
        if let Some((_, i)) = self.movers.altering.filter(|(a, _)| *a == id) {
            self.movers.altering = None;
            let mv = &mut self.movers.moves.moves[i];
            let tp = (TOPIC.to_string(), mv.part);
            let one = match &result {
                Ok(AdminResult::AlterPartitionReassignments(per)) => per.get(&tp).cloned(),
                _ => None,
            };
            mv.answer = match one {
                Some(Ok(())) => Answer::Accepted(t),
                // The controller's own refusal: on a retry after an attempt that was applied,
                // the same target is no change and is accepted, so this one changed nothing.
                Some(Err(ClientError::Broker { code: 39, .. })) => Answer::Refused(39, t),
                _ => Answer::Unknown(t),
            };
            let counter = match mv.answer {
                Answer::Accepted(_) => "reassignments accepted",
                Answer::Refused(..) => "reassignments refused",
                _ => "reassignments unanswered",
            };
            self.count(counter);
            return;
        }
        if self.movers.listing == Some(id) {
            self.movers.listing = None;
            self.movers.list_not_before = self.now + RELIST;
            if let Ok(AdminResult::ListPartitionReassignments(m)) = result {
                let parts = (m.keys())
                    .filter(|(topic, _)| topic == TOPIC)
                    .map(|(_, p)| *p)
                    .collect();
                self.movers.moves.lists.push((t, parts));
            }
        }
    }

    /// Whether the mover is done once the producers have settled: no move in flight and the
    /// last listing empty. Until then it lists the moves in progress every [`RELIST`].
    pub(super) fn mover_settled(&mut self) -> bool {
        let Some(c) = self.movers.client else {
            return true;
        };
        if self.movers.altering.is_some() || self.movers.listing.is_some() {
            return false;
        }
        if self
            .movers
            .moves
            .lists
            .last()
            .is_some_and(|(_, ps)| ps.is_empty())
        {
            return true;
        }
        if self.now >= self.movers.list_not_before {
            let now = self.client_now();
            let op = AdminOp::ListPartitionReassignments { partitions: None };
            self.movers.listing = Some(self.clients[c].client.admin(now, op));
            self.after_client(c);
        }
        false
    }

    /// Node `i` deletes its copy of partition `part` (moved away): forget the log end and high
    /// watermark the per-step checks judge it against.
    pub(super) fn forget_copy(&mut self, i: usize, part: i32) {
        self.ends.remove(&(i, part));
        self.hw.remove(&(i, part));
        self.hw_term.remove(&(i, part));
    }

    /// The reassignment checkers' verdict, on the committed metadata's history of the
    /// workload's partitions; each anomaly as (checker name, detail).
    pub(super) fn reassign_check(&mut self) -> Vec<(&'static str, String)> {
        let image = self.replication.image();
        let Some(id) = image.topic_id(TOPIC) else {
            return Vec::new();
        };
        let ids = |bs: &[gregor_core::cluster::BrokerId]| bs.iter().map(|b| b.0).collect();
        let states = (self.replication.states(id).into_iter())
            .map(|(part, r)| State {
                part,
                partition_epoch: r.partition_epoch,
                leader: r.leader.map(|b| b.0),
                leader_epoch: r.leader_epoch,
                replicas: ids(&r.replicas),
                isr: ids(&r.isr),
            })
            .collect();
        let finals = (image.topics()[&id].partitions.iter())
            .map(|(p, r)| {
                let f = Final {
                    leader: r.leader.map(|b| b.0),
                    replicas: ids(&r.replicas),
                    isr: ids(&r.isr),
                    adding: ids(&r.adding),
                    removing: ids(&r.removing),
                };
                (*p, f)
            })
            .collect();
        let m = &mut self.movers.moves;
        m.states = states;
        m.finals = finals;
        let mut out = reassign::safe(m, &self.repl.leader_appends);
        if self.movers.every_ms.is_some() {
            out.extend(reassign::complete(m));
        }
        out
    }
}
