//! The replication checkers of the cluster world (issue 10): what Kafka's replication protocol
//! promises, judged from what the world saw each broker write and expose. Like the checkers in
//! [`super::check`], each is a pure function of its observations, proven able to fail by a
//! planted history in the tests below.
//!
//! * **`one-leader-per-epoch`** — at most one broker appends as leader in a given (partition,
//!   leader epoch). A leader stamps its epoch into every batch it appends
//!   (`partitionLeaderEpoch`, KIP-101); a follower copies the leader's batches unchanged, so only
//!   appends a broker made on its own account (not while taking a replica fetch's answer) count.
//!   Two leaders in one epoch would let two histories of the partition carry the same epoch, and
//!   the epoch-based truncation of KIP-101/KIP-279 could no longer tell them apart.
//! * **`acked-lost`** — no record acknowledged with `acks=all` is missing from (or different in)
//!   the final log, unless the seed's durability policy allows the loss ([`super::durability`]).
//!   Under group commit, which acknowledges only what every in-sync replica has synced, no
//!   fault excuses a loss — not even power loss of every node. Under `none` a loss is excused
//!   only when every member of the ISR that acknowledged the record lost its copy to a power
//!   loss before syncing it; a process crash keeps the page cache and excuses nothing. Records
//!   acknowledged with acks=1 or 0 may be lost when leadership moves (the leader acked before
//!   any follower had them): they are counted, not judged.
//! * **`truncate-below-hw`** — no replica truncates its log below the high watermark it
//!   exposed itself, unless an unclean election of the partition was recorded first
//!   (`unclean.leader.election.enable`: the operator chose availability over those records),
//!   or, under durability `none`, power losses took every copy of the partition's records from
//!   an offset below that high watermark first (`lost`, [`super::durability::lost`]).
//!   Everything below it is committed in that log and may have been read by a consumer (Kafka
//!   warns "truncating below high watermark" for the same reason). A higher watermark another
//!   broker exposed is not the measure: a follower's uncommitted tail of an old epoch is cut to
//!   make room for the new leader's records at the same offsets, which that one covers. The
//!   new leader losing committed records shows as `lost-write` and `hw-exposed`.
//! * **`hw-exposed`** — every record a consumer fetched (so below the high watermark of the
//!   leader that served it) is present, with the same value at the same offset, in the log of
//!   every broker the final metadata names in the partition's ISR. Being in the ISR is the
//!   promise that a replica has everything up to the high watermark; a broker that rejoined
//!   with an empty disk (KIP-903) or a follower that never fetched must not be in it.
//! * **`isr-fenced`** — no fenced broker and no stale broker epoch in a committed ISR: the quorum
//!   checkers' replay of the committed metadata log ([`crate::quorum::check::replication`])
//!   checks it, and the cluster world runs that replay on its own committed log.

use crate::history::{Event, History, Ms, Outcome, Part, Value};
use std::collections::BTreeMap;

/// Broker `node` appended, as leader, a batch stamped with `epoch` to `part` at `t`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderAppend {
    pub node: i32,
    pub part: Part,
    pub epoch: i32,
    pub t: Ms,
}

/// Broker `node`'s log of `part` shrank to end at `end` at `t`, when the high watermark it had
/// last exposed itself was `exposed`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Truncation {
    pub node: i32,
    pub part: Part,
    pub end: i64,
    pub exposed: i64,
    pub t: Ms,
}

/// What the world saw that these checkers judge.
#[derive(Clone, Debug, Default)]
pub struct Replicated {
    pub leader_appends: Vec<LeaderAppend>,
    pub truncations: Vec<Truncation>,
    /// Partitions with an unclean election on record, and when the world saw it committed.
    pub unclean: Vec<(Part, Ms)>,
    /// Brokers the committed metadata put in or took out of a partition's ISR, and when
    /// (`acked-n-lost`).
    pub isr_changes: Vec<super::acked_n::IsrChange>,
    /// Brokers' power losses and what their next start recovered (durability `none`).
    pub power_losses: super::durability::PowerLosses,
    /// What the durability policy let power losses take: (partition, from offset, when).
    pub lost: Vec<(Part, i64, Ms)>,
}

/// One-leader-per-epoch and truncate-below-hw; each anomaly as (checker name, detail).
pub fn check(o: &Replicated) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let mut leader_of: BTreeMap<(Part, i32), &LeaderAppend> = BTreeMap::new();
    for a in &o.leader_appends {
        let first = *leader_of.entry((a.part, a.epoch)).or_insert(a);
        if first.node != a.node {
            out.push((
                "one-leader-per-epoch",
                format!(
                    "partition {} leader epoch {}: broker {} appended as leader at t={}ms, broker {} at t={}ms",
                    a.part, a.epoch, first.node, first.t, a.node, a.t
                ),
            ));
        }
    }
    for x in &o.truncations {
        let excused = o.unclean.iter().any(|(p, t)| *p == x.part && *t <= x.t)
            || (o.lost.iter()).any(|(p, from, t)| *p == x.part && *from < x.exposed && *t <= x.t);
        if x.end < x.exposed && !excused {
            out.push((
                "truncate-below-hw",
                format!(
                    "broker {} truncated partition {} to {} at t={}ms, below its own exposed high watermark {} (no unclean election recorded)",
                    x.node, x.part, x.end, x.t, x.exposed
                ),
            ));
        }
    }
    out
}

/// hw-exposed: `polled` holds every record a consumer fetched, as (partition, offset, value);
/// `logs` each final ISR member's log of a partition, as (node, partition, offset → value, log
/// start). Each anomaly as (checker name, detail).
pub fn hw_exposed(
    polled: &[(Part, i64, Value)],
    logs: &[(i32, Part, BTreeMap<i64, Value>, i64)],
) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    for (node, part, log, start) in logs {
        let mut missing = polled
            .iter()
            .filter(|(p, o, v)| p == part && o >= start && log.get(o) != Some(v));
        if let Some((_, o, v)) = missing.next() {
            out.push((
                "hw-exposed",
                format!(
                    "broker {node} is in partition {part}'s final ISR but its log has {:?} at offset {o}, where a consumer read value {v} ({} more such offsets)",
                    log.get(o),
                    missing.count()
                ),
            ));
        }
    }
    out
}

/// What [`acked_lost`] counted, for the report.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct AckCounts {
    /// Records acknowledged with acks=all, how many of them the final log lacks, and how many
    /// of those losses the durability policy allows.
    pub all: u64,
    pub all_lost: u64,
    pub all_excused: u64,
    /// Records acknowledged with acks=1 or 0, and how many of them the final log lacks
    /// (allowed: not an anomaly).
    pub weak: u64,
    pub weak_lost: u64,
}

/// acked-lost: every record acknowledged with acks=all is in the final log at its offset (the
/// history's `Final` events, the auditor's read), unless `allowed(partition, offset, value,
/// time of the acknowledgement)` says the durability policy let it go ([`super::durability::gone`]
/// under `none`; nothing under group commit). Returns the anomalies and the counts.
pub fn acked_lost(
    h: &History,
    allowed: impl Fn(Part, i64, Value, Ms) -> bool,
) -> (Vec<(&'static str, String)>, AckCounts) {
    let mut fin: BTreeMap<Part, BTreeMap<i64, Value>> = BTreeMap::new();
    let mut by_value: BTreeMap<Value, (Part, i64)> = BTreeMap::new();
    for e in &h.events {
        if let Event::Final { part, records, .. } = e {
            for (o, v) in records {
                fin.entry(*part).or_default().insert(*o, *v);
                by_value.insert(*v, (*part, *o));
            }
        }
    }
    let acks_of: BTreeMap<Value, i16> = h
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Send { values, acks, .. } => Some(values.iter().map(move |v| (*v, *acks))),
            _ => None,
        })
        .flatten()
        .collect();
    let mut out = Vec::new();
    let mut n = AckCounts::default();
    for e in &h.events {
        let Event::SendDone {
            t,
            part,
            values,
            outcome: Outcome::Ok { base_offset },
            ..
        } = e
        else {
            continue;
        };
        for (k, v) in values.iter().enumerate() {
            if acks_of.get(v).is_some_and(|a| *a >= 2) {
                continue; // acks=N: `acked-n-lost` (`acked_n.rs`) judges it
            }
            let strong = acks_of.get(v).copied() == Some(-1);
            // acks=0 reports no offset: such a record is lost if its value is nowhere.
            let present = if *base_offset >= 0 {
                let at = base_offset + k as i64;
                fin.get(part).and_then(|m| m.get(&at)) == Some(v)
            } else {
                by_value.contains_key(v)
            };
            if strong {
                n.all += 1;
            } else {
                n.weak += 1;
            }
            if present {
                continue;
            }
            if strong && allowed(*part, base_offset + k as i64, *v, *t) {
                n.all_lost += 1;
                n.all_excused += 1;
            } else if strong {
                n.all_lost += 1;
                out.push((
                    "acked-lost",
                    format!(
                        "value {v} acknowledged with acks=all at {part}/{} (t={t}ms) is not there in the final log (found at {:?})",
                        base_offset + k as i64,
                        by_value.get(v)
                    ),
                ));
            } else {
                n.weak_lost += 1;
            }
        }
    }
    (out, n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean() -> Replicated {
        Replicated {
            leader_appends: vec![
                LeaderAppend {
                    node: 1,
                    part: 0,
                    epoch: 3,
                    t: 10,
                },
                LeaderAppend {
                    node: 1,
                    part: 0,
                    epoch: 3,
                    t: 11,
                },
                // A new leader, a new epoch: fine.
                LeaderAppend {
                    node: 2,
                    part: 0,
                    epoch: 4,
                    t: 20,
                },
                // Another partition may use the same epoch number.
                LeaderAppend {
                    node: 3,
                    part: 1,
                    epoch: 3,
                    t: 20,
                },
            ],
            truncations: vec![
                // A follower cutting its uncommitted tail: fine.
                Truncation {
                    node: 3,
                    part: 0,
                    end: 12,
                    exposed: 10,
                    t: 21,
                },
            ],
            unclean: vec![(1, 30)],
            isr_changes: Vec::new(),
            power_losses: Default::default(),
            lost: Vec::new(),
        }
    }

    /// Broker `node` cut partition `part` to end at 5 at `t`, below the high watermark 8 it
    /// had exposed.
    fn trunc(node: i32, part: Part, t: Ms) -> Truncation {
        Truncation {
            node,
            part,
            end: 5,
            exposed: 8,
            t,
        }
    }

    #[test]
    fn a_clean_history_passes() {
        assert_eq!(check(&clean()), vec![]);
    }

    #[test]
    fn one_leader_per_epoch_fires() {
        let mut o = clean();
        o.leader_appends.push(LeaderAppend {
            node: 2,
            part: 0,
            epoch: 3,
            t: 12,
        });
        let found = check(&o);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, "one-leader-per-epoch");
    }

    #[test]
    fn truncate_below_hw_fires_unless_an_unclean_election_came_first() {
        let mut o = clean();
        // Below the exposed high watermark, before partition 1's unclean election, and on
        // partition 0 which never had one.
        o.truncations.push(trunc(2, 1, 29));
        o.truncations.push(trunc(2, 0, 40));
        // After partition 1's unclean election: excused.
        o.truncations.push(trunc(3, 1, 31));
        let found = check(&o);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found.iter().all(|(k, _)| *k == "truncate-below-hw"));
    }

    #[test]
    fn truncate_below_hw_is_excused_by_a_cut_durability_none_allowed_before_it() {
        let mut o = clean();
        o.truncations.push(trunc(2, 0, 40));
        // Every copy from offset 6 on was lost to power at t=35: the cut may follow.
        o.lost = vec![(0, 6, 35)];
        assert_eq!(check(&o), vec![]);
        // A loss only above the exposed high watermark, or only later, excuses nothing.
        for lost in [(0, 8, 35), (0, 6, 41), (1, 6, 35)] {
            o.lost = vec![lost];
            let found = check(&o);
            assert_eq!(found.len(), 1, "{lost:?}: {found:?}");
            assert_eq!(found[0].0, "truncate-below-hw");
        }
    }

    #[test]
    fn acked_lost_under_durability_none_excuses_only_a_loss_of_every_isr_copy() {
        use super::super::acked_n::IsrChange;
        use super::super::durability::{gone, PowerLoss};
        // Value 1 acknowledged with acks=all at offset 0 (t=2) by the ISR {1, 2, 3}; the final
        // log has another value there.
        let mut h = History::new(true);
        sent(&mut h, 1, -1, 0);
        h.events.push(Event::Final {
            part: 0,
            log_start: 0,
            records: vec![(0, 9)],
        });
        let isr: Vec<IsrChange> = (1..=3)
            .map(|node| IsrChange {
                part: 0,
                node,
                t: 0,
                joined: true,
            })
            .collect();
        let lost_power = |node, at| PowerLoss {
            node,
            at,
            ends: [(0, 0)].into(),
        };
        // Brokers 1 and 2 lost power before syncing it; broker 3 only crashed (kill -9), so its
        // page cache kept the record: the loss is an anomaly.
        let losses = vec![lost_power(1, 5), lost_power(2, 6)];
        let (found, n) = acked_lost(&h, |p, o, v, t| {
            gone(&isr, &losses, &[], (p, o, v), t).is_some()
        });
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, "acked-lost");
        assert_eq!((n.all_lost, n.all_excused), (1, 0));
        // Broker 3 lost power too, before syncing it: every copy was gone, the policy allows it.
        let losses = vec![lost_power(1, 5), lost_power(2, 6), lost_power(3, 7)];
        let (found, n) = acked_lost(&h, |p, o, v, t| {
            gone(&isr, &losses, &[], (p, o, v), t).is_some()
        });
        assert_eq!(found, vec![]);
        assert_eq!((n.all_lost, n.all_excused), (1, 1));
    }

    #[test]
    fn hw_exposed_fires_for_an_isr_member_lacking_a_read_record() {
        let polled = vec![(0, 0, 10), (0, 1, 11), (1, 0, 20)];
        let full: BTreeMap<i64, Value> = [(0, 10), (1, 11), (2, 12)].into();
        let mut logs = vec![
            (1, 0, full.clone(), 0),
            // A follower whose log starts later (retention) is judged from its start.
            (2, 0, [(1, 11)].into(), 1),
            (1, 1, [(0, 20)].into(), 0),
        ];
        assert_eq!(hw_exposed(&polled, &logs), vec![]);
        // An empty replica in the ISR (KIP-903's case), and one with another value at 1.
        logs.push((3, 0, BTreeMap::new(), 0));
        logs.push((2, 1, [(0, 21)].into(), 0));
        let found = hw_exposed(&polled, &logs);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found.iter().all(|(k, _)| *k == "hw-exposed"));
        assert!(found[0].1.contains("broker 3"), "{found:?}");
    }

    fn sent(h: &mut History, v: Value, acks: i16, offset: i64) {
        h.events.push(Event::Send {
            t: 1,
            producer: 0,
            part: 0,
            values: vec![v],
            acks,
            idempotent: false,
            attempt: 0,
            timestamps_ms: vec![0],
        });
        h.events.push(Event::SendDone {
            t: 2,
            producer: 0,
            part: 0,
            values: vec![v],
            outcome: Outcome::Ok {
                base_offset: offset,
            },
        });
    }

    #[test]
    fn acked_lost_fires_for_acks_all_and_only_counts_acks_1_and_0() {
        let mut h = History::new(true);
        sent(&mut h, 1, -1, 0);
        sent(&mut h, 2, 1, 1);
        sent(&mut h, 3, -1, 2);
        sent(&mut h, 4, 0, -1);
        sent(&mut h, 5, 1, 3);
        h.events.push(Event::Final {
            part: 0,
            log_start: 0,
            records: vec![(0, 1), (1, 2), (2, 3), (3, 4)],
        });
        let (found, n) = acked_lost(&h, |_, _, _, _| false);
        assert_eq!(found, vec![]);
        assert_eq!(
            n,
            AckCounts {
                all: 2,
                all_lost: 0,
                all_excused: 0,
                weak: 3,
                weak_lost: 1
            }
        );
        // The final log lost acks=all value 3 (another value took its offset), and acks=0 4.
        h.events.pop();
        h.events.push(Event::Final {
            part: 0,
            log_start: 0,
            records: vec![(0, 1), (1, 2), (2, 5)],
        });
        let (found, n) = acked_lost(&h, |_, _, _, _| false);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, "acked-lost");
        assert!(found[0].1.contains("value 3"), "{found:?}");
        assert_eq!(
            n,
            AckCounts {
                all: 2,
                all_lost: 1,
                all_excused: 0,
                weak: 3,
                weak_lost: 2
            }
        );
    }
}
