//! Partition reassignment under faults (issue 10, items 6 and 9; KIP-455): what the replicated
//! cluster world's *mover* asked, what the controller committed, and the checkers that judge
//! them. Like the other checkers of the cluster world, each is a pure function of its
//! observations, proven able to fail by a planted history in the tests below.
//!
//! The mover is an operator with `kafka-reassign-partitions.sh`: during the safety phase, while
//! links are cut and nodes crash, it reads a partition's committed replicas and asks, with
//! gregor-client's AlterPartitionReassignments, to move one replica to another broker, to grow
//! the replication factor by one, to shrink it by one (never below `min.insync.replicas`), or
//! to put another replica first (the preferred leader). [`draw_target`] makes that choice. One
//! move is asked at a time; the next may replace a move still in progress, as Kafka allows.
//! After the heal it asks nothing new, and once the producers have settled it lists the moves
//! in progress (ListPartitionReassignments) until the list is empty or the run ends.
//!
//! * **`reassign-complete`** — every accepted move completes once the network heals and every
//!   broker is up (the liveness phase): the final committed metadata shows each moved
//!   partition on exactly the target of its last accepted move (or of a later one whose answer
//!   was lost: it may have been applied), with nothing still being added or removed, an ISR
//!   that is not empty and within the replicas, a leader in the ISR; and the last
//!   ListPartitionReassignments answer lists nothing.
//! * **`reassign-safe`** — a replica removed from a partition's assignment is never elected
//!   leader, nor kept in the ISR, until a later move adds it back (judged on every committed
//!   state of the partition, in partition-epoch order); and every batch a broker appended as
//!   leader carries a leader epoch the controller gave to that broker (a broker that went on
//!   leading after it was moved away, or invented an epoch, fails it).
//!
//! What the other checkers already cover, and so is not repeated here:
//! * no record acknowledged with acks=all before or during a move is lost: `acked-lost`
//!   ([`super::replicated`]) compares every such record with the auditor's final read, which
//!   covers every partition of the topic from whichever broker leads it at the end, so moved
//!   partitions included;
//! * a new replica joins the ISR only after catching up: `hw-above-isr` ([`super::hw_bound`])
//!   checks after every step, on every leader, that the high watermark is within the log end of
//!   every in-sync replica its image names, so a replica added to the ISR with less than the
//!   high watermark fails it the moment the leader sees the change; and `hw-exposed`
//!   ([`super::replicated`]) checks that every record a consumer read is in the log of every
//!   member of the final ISR, the replicas a move added included.

use super::replicated::LeaderAppend;
use crate::history::{Ms, Part};
use gregor_core::prng::Prng;
use std::collections::{BTreeMap, BTreeSet};

/// What a move changes, relative to the committed replicas it was drawn from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// One replica replaced by a broker that had none.
    Move,
    /// One replica more (a higher replication factor).
    Grow,
    /// One replica fewer.
    Shrink,
    /// The same replicas, another one first: the preferred leader changes.
    Reorder,
}

/// How a move's AlterPartitionReassignments was answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Not yet.
    Pending,
    /// Accepted by the controller at this time: the move started (or was already done).
    Accepted(Ms),
    /// Refused by the controller's decision (INVALID_REPLICA_ASSIGNMENT): nothing changed.
    Refused(i16, Ms),
    /// No answer in time, or an error a broker gave on its own (its image did not know the
    /// partition yet, say) possibly after an earlier attempt was applied: it may or may not
    /// have been applied.
    Unknown(Ms),
}

/// One move the mover asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Move {
    pub part: Part,
    /// The committed replicas it was drawn from.
    pub from: Vec<i32>,
    pub target: Vec<i32>,
    pub kind: Kind,
    pub sent: Ms,
    pub answer: Answer,
}

/// One committed state of a workload partition: its registration after a partition record or
/// change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct State {
    pub part: Part,
    pub partition_epoch: i32,
    pub leader: Option<i32>,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

/// A partition's registration in the final committed metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Final {
    pub leader: Option<i32>,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub adding: Vec<i32>,
    pub removing: Vec<i32>,
}

/// What the checkers judge.
#[derive(Clone, Debug, Default)]
pub struct Moves {
    pub moves: Vec<Move>,
    /// Every committed state of every workload partition, in (partition, partition epoch)
    /// order (filled at the end of the run).
    pub states: Vec<State>,
    /// Each partition in the final committed metadata (filled at the end of the run).
    pub finals: BTreeMap<Part, Final>,
    /// The answers to ListPartitionReassignments after the liveness phase: when, and the
    /// partitions it listed as being moved.
    pub lists: Vec<(Ms, Vec<Part>)>,
}

impl Moves {
    /// Moves asked, by kind, and by answer (accepted, refused, unknown or pending), for the
    /// report.
    pub fn counts(&self) -> (BTreeMap<Kind, usize>, [usize; 3]) {
        let mut kinds = BTreeMap::new();
        let mut answers = [0; 3];
        for m in &self.moves {
            *kinds.entry(m.kind).or_default() += 1;
            answers[match m.answer {
                Answer::Accepted(_) => 0,
                Answer::Refused(..) => 1,
                Answer::Pending | Answer::Unknown(_) => 2,
            }] += 1;
        }
        (kinds, answers)
    }
}

/// A move for a partition now on `current` (not empty) in a cluster of brokers `1..=nodes`,
/// never leaving fewer than `min_replicas` replicas; `None` when no move fits (one broker).
pub fn draw_target(
    prng: &mut Prng,
    current: &[i32],
    nodes: i32,
    min_replicas: usize,
) -> Option<(Kind, Vec<i32>)> {
    assert!(!current.is_empty(), "a partition has replicas");
    let outside: Vec<i32> = (1..=nodes).filter(|b| !current.contains(b)).collect();
    let mut kinds = Vec::new();
    if !outside.is_empty() {
        kinds.extend([Kind::Move, Kind::Grow]);
    }
    if current.len() > min_replicas.max(1) {
        kinds.push(Kind::Shrink);
    }
    if current.len() >= 2 {
        kinds.push(Kind::Reorder);
    }
    if kinds.is_empty() {
        return None;
    }
    let kind = kinds[prng.below(kinds.len() as u64) as usize];
    let mut target = current.to_vec();
    let pick = |prng: &mut Prng, n: usize| prng.below(n as u64) as usize;
    match kind {
        Kind::Move => {
            let i = pick(prng, target.len());
            target[i] = outside[pick(prng, outside.len())];
        }
        Kind::Grow => target.push(outside[pick(prng, outside.len())]),
        Kind::Shrink => {
            target.remove(pick(prng, target.len()));
        }
        Kind::Reorder => {
            let i = 1 + pick(prng, target.len() - 1);
            let b = target.remove(i);
            target.insert(0, b);
        }
    }
    let distinct: BTreeSet<i32> = target.iter().copied().collect();
    assert_eq!(distinct.len(), target.len(), "a target names a broker once");
    assert!(target.len() >= min_replicas.max(1).min(current.len()));
    Some((kind, target))
}

/// reassign-complete (see the module docs); each anomaly as (checker name, detail).
pub fn complete(m: &Moves) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if m.moves.is_empty() {
        return out;
    }
    let name = "reassign-complete";
    // Per partition: the replicas it may end on, from its first committed state on.
    let mut may_end: BTreeMap<Part, Vec<Vec<i32>>> = BTreeMap::new();
    for s in &m.states {
        may_end
            .entry(s.part)
            .or_insert_with(|| vec![s.replicas.clone()]);
    }
    for mv in &m.moves {
        let ends = may_end.entry(mv.part).or_default();
        match mv.answer {
            Answer::Accepted(_) => *ends = vec![mv.target.clone()],
            Answer::Pending | Answer::Unknown(_) => ends.push(mv.target.clone()),
            Answer::Refused(..) => {}
        }
    }
    for (part, ends) in &may_end {
        let Some(f) = m.finals.get(part) else {
            out.push((
                name,
                format!("partition {part} is not in the final metadata"),
            ));
            continue;
        };
        if !ends.contains(&f.replicas) {
            out.push((
                name,
                format!(
                    "partition {part} ends on replicas {:?}, not on the target of its last accepted move (or of a later unanswered one): {ends:?}",
                    f.replicas
                ),
            ));
        }
    }
    for (part, f) in &m.finals {
        if !f.adding.is_empty() || !f.removing.is_empty() {
            out.push((
                name,
                format!(
                    "partition {part} is still being moved after the liveness phase: replicas {:?}, adding {:?}, removing {:?}, ISR {:?}",
                    f.replicas, f.adding, f.removing, f.isr
                ),
            ));
        }
        let within = f.isr.iter().all(|b| f.replicas.contains(b));
        let led = f.leader.is_some_and(|l| f.isr.contains(&l));
        if f.isr.is_empty() || !within || !led {
            out.push((
                name,
                format!(
                    "partition {part} ends with ISR {:?} and leader {:?} on replicas {:?}",
                    f.isr, f.leader, f.replicas
                ),
            ));
        }
    }
    match m.lists.last() {
        None => out.push((
            name,
            "no ListPartitionReassignments was answered after the liveness phase".into(),
        )),
        Some((t, parts)) if !parts.is_empty() => out.push((
            name,
            format!("ListPartitionReassignments at t={t}ms still lists partitions {parts:?}"),
        )),
        Some(_) => {}
    }
    out
}

/// reassign-safe (see the module docs) on the committed states and the brokers' leader
/// appends; each anomaly as (checker name, detail).
pub fn safe(m: &Moves, appends: &[LeaderAppend]) -> Vec<(&'static str, String)> {
    let name = "reassign-safe";
    let mut out = Vec::new();
    let mut by_part: BTreeMap<Part, Vec<&State>> = BTreeMap::new();
    for s in &m.states {
        by_part.entry(s.part).or_default().push(s);
    }
    // (partition, leader epoch) → the broker the controller gave it to.
    let mut given: BTreeMap<(Part, i32), Option<i32>> = BTreeMap::new();
    for (part, states) in &by_part {
        assert!(
            states
                .windows(2)
                .all(|w| w[0].partition_epoch < w[1].partition_epoch),
            "states in partition-epoch order"
        );
        // Brokers a committed change took out of the replicas, and the partition epoch then.
        let mut gone: BTreeMap<i32, i32> = BTreeMap::new();
        let mut before: Option<&State> = None;
        for s in states {
            if let Some(b) = before {
                for r in b.replicas.iter().filter(|r| !s.replicas.contains(*r)) {
                    gone.insert(*r, s.partition_epoch);
                }
            }
            gone.retain(|r, _| !s.replicas.contains(r));
            for (r, at) in &gone {
                if s.leader == Some(*r) || s.isr.contains(r) {
                    out.push((
                        name,
                        format!(
                            "partition {part} partition epoch {}: broker {r}, removed from the replicas at partition epoch {at}, is {} (leader {:?}, ISR {:?}, replicas {:?})",
                            s.partition_epoch,
                            if s.leader == Some(*r) { "the leader" } else { "in the ISR" },
                            s.leader,
                            s.isr,
                            s.replicas
                        ),
                    ));
                }
            }
            given.entry((*part, s.leader_epoch)).or_insert(s.leader);
            before = Some(s);
        }
    }
    let mut judged = BTreeSet::new();
    for a in appends {
        if !by_part.contains_key(&a.part) || !judged.insert((a.node, a.part, a.epoch)) {
            continue;
        }
        match given.get(&(a.part, a.epoch)) {
            Some(Some(l)) if *l == a.node => {}
            other => out.push((
                name,
                format!(
                    "broker {} appended to partition {} as leader in leader epoch {} at t={}ms, an epoch the controller gave to {}",
                    a.node,
                    a.part,
                    a.epoch,
                    a.t,
                    match other {
                        Some(Some(l)) => format!("broker {l}"),
                        Some(None) => "no broker".into(),
                        None => "nobody (never committed)".into(),
                    }
                ),
            )),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(part: Part, pe: i32, leader: i32, le: i32, replicas: &[i32], isr: &[i32]) -> State {
        State {
            part,
            partition_epoch: pe,
            leader: Some(leader),
            leader_epoch: le,
            replicas: replicas.to_vec(),
            isr: isr.to_vec(),
        }
    }

    fn done(replicas: &[i32], isr: &[i32]) -> Final {
        Final {
            leader: Some(isr[0]),
            replicas: replicas.to_vec(),
            isr: isr.to_vec(),
            adding: vec![],
            removing: vec![],
        }
    }

    fn asked(part: Part, from: &[i32], target: &[i32], answer: Answer) -> Move {
        Move {
            part,
            from: from.to_vec(),
            target: target.to_vec(),
            kind: Kind::Move,
            sent: 1,
            answer,
        }
    }

    /// Partition 0 moves from [1, 2] to [2, 3]: started (the target, then the leaving 1),
    /// 3 catches up and joins the ISR, the move completes and 1 leaves (leadership moves to
    /// 2 in a new epoch). Partition 1 is never moved.
    fn clean() -> Moves {
        Moves {
            moves: vec![asked(0, &[1, 2], &[2, 3], Answer::Accepted(5))],
            states: vec![
                state(0, 0, 1, 0, &[1, 2], &[1, 2]),
                state(0, 1, 1, 0, &[2, 3, 1], &[1, 2]),
                state(0, 2, 1, 0, &[2, 3, 1], &[1, 2, 3]),
                state(0, 3, 2, 1, &[2, 3], &[2, 3]),
                state(1, 0, 3, 0, &[3, 1], &[3, 1]),
            ],
            finals: [(0, done(&[2, 3], &[2, 3])), (1, done(&[3, 1], &[3, 1]))].into(),
            lists: vec![(100, vec![0]), (600, vec![])],
        }
    }

    fn appends() -> Vec<LeaderAppend> {
        let a = |node, part, epoch, t| LeaderAppend {
            node,
            part,
            epoch,
            t,
        };
        vec![a(1, 0, 0, 2), a(2, 0, 1, 9), a(3, 1, 0, 3)]
    }

    #[test]
    fn a_clean_history_passes() {
        let m = clean();
        assert_eq!(complete(&m), vec![]);
        assert_eq!(safe(&m, &appends()), vec![]);
    }

    #[test]
    fn reassign_complete_fires_for_a_move_left_undone() {
        // The final metadata still has the original replicas, mid-move.
        let mut m = clean();
        m.finals.insert(
            0,
            Final {
                leader: Some(1),
                replicas: vec![2, 3, 1],
                isr: vec![1, 2],
                adding: vec![3],
                removing: vec![1],
            },
        );
        m.lists.push((900, vec![0]));
        let found = complete(&m);
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(found.iter().all(|(k, _)| *k == "reassign-complete"));
        assert!(
            found[0].1.contains("ends on replicas [2, 3, 1]"),
            "{found:?}"
        );
        assert!(found[1].1.contains("still being moved"), "{found:?}");
        assert!(
            found[2].1.contains("still lists partitions [0]"),
            "{found:?}"
        );
    }

    #[test]
    fn reassign_complete_excuses_an_unanswered_later_move_but_not_a_refused_one() {
        let mut m = clean();
        // A later move to [3, 1] whose answer was lost: it may have been applied.
        m.moves
            .push(asked(0, &[2, 3], &[3, 1], Answer::Unknown(20)));
        m.finals.insert(0, done(&[3, 1], &[3, 1]));
        assert_eq!(complete(&m), vec![]);
        // Refused moves change nothing: ending on their target is an anomaly.
        m.moves[1].answer = Answer::Refused(39, 20);
        let found = complete(&m);
        assert_eq!(found.len(), 1, "{found:?}");
        // And the moves, not their order of answers, decide: accepted last wins.
        m.moves[1].answer = Answer::Accepted(20);
        assert_eq!(complete(&m), vec![]);
    }

    #[test]
    fn reassign_complete_fires_without_a_final_listing_or_with_an_isr_outside_the_replicas() {
        let mut m = clean();
        m.lists.clear();
        m.finals.insert(
            1,
            Final {
                leader: Some(2),
                replicas: vec![3, 1],
                isr: vec![3, 2],
                adding: vec![],
                removing: vec![],
            },
        );
        let found = complete(&m);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].1.contains("ISR [3, 2]"), "{found:?}");
        assert!(found[1].1.contains("no ListPartitionReassignments"));
    }

    #[test]
    fn reassign_safe_fires_for_a_removed_replica_elected_or_kept_in_the_isr() {
        let mut m = clean();
        // After the move completed, 1 (removed at partition epoch 3) is elected again.
        m.states.insert(4, state(0, 4, 1, 2, &[2, 3], &[1]));
        let found = safe(&m, &appends());
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, "reassign-safe");
        assert!(found[0].1.contains("broker 1, removed"), "{found:?}");
        // A later move that adds 1 back makes it a replica like any other.
        let mut m = clean();
        m.states
            .insert(4, state(0, 4, 2, 1, &[2, 3, 1], &[2, 3, 1]));
        m.states
            .insert(5, state(0, 5, 1, 2, &[2, 3, 1], &[2, 3, 1]));
        assert_eq!(safe(&m, &appends()), vec![]);
    }

    #[test]
    fn reassign_safe_fires_for_a_broker_leading_in_an_epoch_not_given_to_it() {
        let m = clean();
        let mut a = appends();
        // Broker 1, moved away, appends as leader in epoch 1 (broker 2's), and in epoch 7
        // (never committed).
        a.push(LeaderAppend {
            node: 1,
            part: 0,
            epoch: 1,
            t: 12,
        });
        a.push(LeaderAppend {
            node: 1,
            part: 0,
            epoch: 7,
            t: 13,
        });
        let found = safe(&m, &a);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].1.contains("gave to broker 2"), "{found:?}");
        assert!(found[1].1.contains("never committed"), "{found:?}");
    }

    #[test]
    fn targets_are_drawn_within_the_cluster_and_above_the_floor() {
        let mut prng = Prng::new(7);
        let mut kinds = BTreeSet::new();
        for _ in 0..500 {
            let current = [2, 3];
            let (kind, target) = draw_target(&mut prng, &current, 3, 2).unwrap();
            kinds.insert(kind);
            assert!(target.len() >= 2, "never below min.insync.replicas");
            assert!(target.iter().all(|b| (1..=3).contains(b)));
            match kind {
                Kind::Grow => assert_eq!(target.len(), 3),
                Kind::Move => assert_eq!(target.iter().filter(|b| **b == 1).count(), 1),
                Kind::Reorder => assert_eq!(target, vec![3, 2]),
                Kind::Shrink => unreachable!("not below the floor"),
            }
        }
        assert_eq!(kinds.len(), 3, "{kinds:?}");
        // Every broker already a replica: only a shrink or a new order.
        let (kind, _) = draw_target(&mut prng, &[1, 2, 3], 3, 1).unwrap();
        assert!(matches!(kind, Kind::Shrink | Kind::Reorder));
        // One broker: nothing to move.
        assert_eq!(draw_target(&mut prng, &[1], 1, 1), None);
    }
}
