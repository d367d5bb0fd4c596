//! The durability policy in the replicated cluster world (issue 10, item 5): which losses each
//! policy allows, so that the checkers judge a seed by the policy its brokers ran.
//!
//! A seed runs **group commit** (gregor's default) unless its options name another policy:
//! **none** (Kafka's default: acknowledge from the page cache, leave syncing to the OS), or a
//! policy drawn per seed ([`draw`], `gregor-sim --cluster N --replication --durability drawn`).
//! Drawing is not the default yet: `none` seeds still fail (see docs/simulation.md).
//!
//! * Under **group commit** a follower reports a record as fetched only once it is durable on
//!   its own disk, and a leader acknowledges and exposes only what it has synced itself, so a
//!   record acknowledged with acks=all, or exposed below a high watermark, is on the stable
//!   storage of every in-sync replica. No fault excuses its loss, not even a power loss of every
//!   broker at once; `hw-above-durable` ([`super::hw_bound`]) checks the leader's half of it
//!   after every step.
//! * Under **none** the same record is only in the page cache of every in-sync replica. A
//!   process crash (kill -9) keeps the page cache, so it excuses nothing; a power loss (or a
//!   replaced data disk) keeps only what the OS happened to sync. The promise is: **the record
//!   survives any failure that leaves one copy in the page cache of a replica that was in the
//!   ISR when it was acknowledged (or read)**.
//!
//! ## The rule, precisely ([`gone`])
//!
//! A record at `offset` of partition `part`, acknowledged with acks=all or read by a consumer at
//! time `t`, may be missing from the final log under `none` only if every broker in the
//! partition's committed ISR at `t` (each of them held it then: the high watermark covered it)
//! later lost power, at or after `t`, and the log its next start recovered for `part` ended at or
//! before `offset` (its copy was not yet synced, or was already gone). One ISR member that never
//! lost power after `t`, or that recovered the record from what was synced, and the loss is an
//! anomaly (`acked-lost`, and `lost-write`, `hw-exposed` and the order checkers on what was
//! read). What the rule does not credit: a broker that copied the record only after `t` (it
//! joined the ISR later); a broker that left the ISR before `t`.
//!
//! Where every ISR member's copy was gone, what the world saw the partition lose is a *cut*
//! ([`lost`]): the checkers written for one broker ([`crate::check`]) already excuse what a
//! power loss cut under a policy that allows it, so the history they judge ([`judged`]) carries
//! those cuts as power losses of "the partition" and no other: a single broker's power loss cuts
//! only its own copy, which the others still hold.
//!
//! acks=N needs no rule of its own: a broker that lost power leaves the ISR when it registers
//! again (KIP-903), so `acked-n-lost` ([`super::acked_n`]) already counts its copy as gone.

use super::acked_n::{in_isr, IsrChange};
use super::check::Appended;
use crate::history::{Event, History, Ms, Outcome, Part, Value};
use gregor_core::prng::Prng;
use gregor_core::Durability;
use std::collections::{BTreeMap, BTreeSet};

/// A drawn policy (`--durability drawn`): `none` in about one replicated seed of three, group
/// commit otherwise (and always without replication, whose checkers excuse no loss). From a generator
/// of its own, so the seed's faults and workload stay as they were; a seed that draws `none`
/// still runs another history, since its brokers acknowledge before syncing.
pub fn draw(seed: u64, replication: bool) -> Durability {
    if replication && Prng::new(seed ^ 0x0d0b_1e5e_ed00_0005).ratio(1, 3) {
        Durability::None
    } else {
        Durability::GroupCommit
    }
}

/// Broker `node` lost power (or its data disk) at `at`; its next start recovered each partition
/// of the workload's topic to end at `ends` (a partition it no longer has ends at 0).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PowerLoss {
    pub node: i32,
    pub at: Ms,
    pub ends: BTreeMap<Part, i64>,
}

/// The power losses of a run, as the world reports them.
#[derive(Clone, Debug, Default)]
pub struct PowerLosses {
    /// Brokers down after a power loss, and when it happened.
    down: BTreeMap<i32, Ms>,
    pub losses: Vec<PowerLoss>,
}

impl PowerLosses {
    /// `node` lost power at `at` (a second loss while it is down changes nothing).
    pub fn lost(&mut self, node: i32, at: Ms) {
        self.down.entry(node).or_insert(at);
    }

    /// `node` started again, with these log ends; a power loss before it is complete.
    pub fn started(&mut self, node: i32, ends: impl Iterator<Item = (Part, i64)>) {
        if let Some(at) = self.down.remove(&node) {
            let ends = ends.collect();
            self.losses.push(PowerLoss { node, at, ends });
        }
    }
}

/// When the last copy of `value`, at `offset` of `part`, acknowledged or read at `t`, was gone
/// (the rule in the module docs): the latest of the power losses that took it from the members
/// of the partition's committed ISR at `t`. None if one of them kept it (or no ISR is known at
/// `t`). A member's copy counts from its last append of the value at or before `t`
/// (`appended`), not from `t`: an answer may reach its client after the power loss that took
/// what it acknowledged (seed 47 of `--cluster 3 --replication`, drawing `none`).
pub fn gone(
    isr: &[IsrChange],
    losses: &[PowerLoss],
    appended: &[Appended],
    (part, offset, value): (Part, i64, Value),
    t: Ms,
) -> Option<Ms> {
    let members: BTreeSet<i32> = (isr.iter())
        .filter(|c| c.part == part && in_isr(isr, part, c.node, t))
        .map(|c| c.node)
        .collect();
    let mut last = None;
    for m in members {
        let since = (appended.iter())
            .filter(|a| a.node == m && a.part == part && a.t <= t && a.values.contains(&value))
            .map(|a| a.t)
            .max()
            .unwrap_or(t);
        let took = (losses.iter())
            .filter(|l| l.node == m && l.at >= since)
            .filter(|l| l.ends.get(&part).copied().unwrap_or(0) <= offset)
            .map(|l| l.at)
            .min()?;
        last = last.max(Some(took));
    }
    last
}

/// What the policy let power losses take from each partition: for every record acknowledged
/// with acks=all or read by a consumer that the final log lacks at its offset and whose copies
/// were all [`gone`], (partition, offset, when the last copy went, or the record's exposure if
/// later); one per partition and loss, at the smallest such offset. Empty under group commit
/// (pass no losses).
pub fn lost(
    h: &History,
    isr: &[IsrChange],
    losses: &[PowerLoss],
    appended: &[Appended],
) -> Vec<(Part, i64, Ms)> {
    let mut fin: BTreeMap<(Part, i64), Value> = BTreeMap::new();
    let mut strong: BTreeSet<Value> = BTreeSet::new();
    for e in &h.events {
        match e {
            Event::Final { part, records, .. } => {
                fin.extend(records.iter().map(|(o, v)| ((*part, *o), *v)));
            }
            Event::Send { values, acks, .. } if *acks == -1 => strong.extend(values),
            _ => {}
        }
    }
    // Every exposure: (partition, offset, value, when).
    let mut exposed: Vec<(Part, i64, Value, Ms)> = Vec::new();
    for e in &h.events {
        match e {
            Event::SendDone {
                t,
                part,
                values,
                outcome: Outcome::Ok { base_offset },
                ..
            } if *base_offset >= 0 => {
                let at = (values.iter().enumerate()).filter(|(_, v)| strong.contains(v));
                exposed.extend(at.map(|(k, v)| (*part, base_offset + k as i64, *v, *t)));
            }
            Event::Poll {
                t, part, records, ..
            } => exposed.extend(records.iter().map(|(o, v)| (*part, *o, *v, *t))),
            _ => {}
        }
    }
    // Per (partition, loss): the smallest offset, and the latest exposure (an answer can
    // reach its client after the loss: the cut stands after what it excuses).
    let mut cuts: BTreeMap<(Part, Ms), (i64, Ms)> = BTreeMap::new();
    for (part, offset, v, t) in exposed {
        if fin.get(&(part, offset)) == Some(&v) {
            continue;
        }
        if let Some(at) = gone(isr, losses, appended, (part, offset, v), t) {
            let (o, last) = cuts.entry((part, at)).or_insert((offset, t));
            (*o, *last) = ((*o).min(offset), (*last).max(t));
        }
    }
    let cuts = cuts
        .into_iter()
        .map(|((p, at), (o, last))| (p, o, at.max(last)));
    cuts.collect()
}

/// Whether `lost` excuses the record at `offset` of `part` observed at `t`: a cut at or below it
/// took the partition's last copies at or after `t`.
pub fn excused(lost: &[(Part, i64, Ms)], part: Part, offset: i64, t: Ms) -> bool {
    (lost.iter()).any(|(p, o, at)| *p == part && offset >= *o && *at >= t)
}

/// The history the single-broker checkers judge under `none`: their power-loss excuses
/// (`Crash { power_loss }` then `Restart { log_ends }`, under a policy that does not promise
/// survival) come from the partition cuts in `lost`, not from each broker's own power losses.
/// A reader whose partition was cut starts a new position there (its client resets when its
/// offset is out of range; the cluster world records every read in session 0): each cut of a
/// partition before a read moves the read to the next session.
pub fn judged(mut h: History, lost: &[(Part, i64, Ms)]) -> History {
    h.acks_survive_power_loss = false;
    for e in &mut h.events {
        match e {
            Event::Crash { power_loss, .. } => *power_loss = false,
            Event::Poll {
                t, part, session, ..
            } => {
                let cuts = (lost.iter())
                    .filter(|(p, _, at)| p == part && at < t)
                    .count();
                *session += cuts as u32;
            }
            _ => {}
        }
    }
    for &(part, offset, at) in lost {
        // Those checkers excuse what was observed strictly before the restart that found the
        // cut; `excused` counts an observation at the instant of the loss too.
        let t = at + 1;
        let i = h.events.partition_point(|e| e.time() <= t);
        let cut = [
            Event::Crash {
                t,
                power_loss: true,
            },
            Event::Restart {
                t,
                log_ends: vec![(part, offset)],
            },
        ];
        h.events.splice(i..i, cut);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(node: i32, t: Ms, joined: bool) -> IsrChange {
        IsrChange {
            part: 0,
            node,
            t,
            joined,
        }
    }

    /// Brokers 1, 2 and 3 in partition 0's ISR from t=0; broker 3 leaves at t=50.
    fn isr() -> Vec<IsrChange> {
        vec![
            change(1, 0, true),
            change(2, 0, true),
            change(3, 0, true),
            change(3, 50, false),
        ]
    }

    fn loss(node: i32, at: Ms, end: i64) -> PowerLoss {
        PowerLoss {
            node,
            at,
            ends: [(0, end)].into(),
        }
    }

    #[test]
    fn a_record_is_gone_only_when_every_isr_member_lost_it_to_power() {
        // Offset 10 acknowledged at t=20 by the ISR {1, 2, 3}.
        let two = [loss(1, 30, 8), loss(2, 40, 10)];
        assert_eq!(
            gone(&isr(), &two, &[], (0, 10, 7), 20),
            None,
            "broker 3 kept it"
        );
        let all = [loss(1, 30, 8), loss(2, 40, 10), loss(3, 35, 4)];
        assert_eq!(gone(&isr(), &all, &[], (0, 10, 7), 20), Some(40));
        // A copy synced before the power loss survives it: broker 2 recovered offset 10.
        let synced = [loss(1, 30, 8), loss(2, 40, 11), loss(3, 35, 4)];
        assert_eq!(gone(&isr(), &synced, &[], (0, 10, 7), 20), None);
        // A power loss before the acknowledgement took nothing the ISR had then.
        let early = [loss(1, 30, 8), loss(2, 15, 0), loss(3, 35, 4)];
        assert_eq!(gone(&isr(), &early, &[], (0, 10, 7), 20), None);
        // Broker 3 left the ISR at t=50: a record read at t=60 was held by 1 and 2 only.
        assert_eq!(gone(&isr(), &all[..2], &[], (0, 10, 7), 25), None);
        let later = [loss(1, 70, 8), loss(2, 80, 10)];
        assert_eq!(gone(&isr(), &later, &[], (0, 10, 7), 60), Some(80));
        // An answer may reach its client after the power loss that took what it acknowledged:
        // a member's copy counts from its append (t=12 here), not from the answer (t=20).
        let appended: Vec<Appended> = (1..=3)
            .map(|node| Appended {
                node,
                part: 0,
                values: vec![7],
                t: 12,
                as_leader: node == 1,
            })
            .collect();
        let before_answer = [loss(1, 15, 8), loss(2, 15, 10), loss(3, 15, 4)];
        assert_eq!(gone(&isr(), &before_answer, &[], (0, 10, 7), 20), None);
        let found = gone(&isr(), &before_answer, &appended, (0, 10, 7), 20);
        assert_eq!(found, Some(15));
        // Another partition's losses say nothing about this one.
        assert_eq!(gone(&isr(), &all, &[], (1, 10, 7), 20), None);
    }

    fn send(h: &mut History, t: Ms, values: Vec<Value>, base_offset: i64) {
        h.events.push(Event::Send {
            t,
            producer: 0,
            part: 0,
            values: values.clone(),
            acks: -1,
            idempotent: false,
            attempt: 0,
            timestamps_ms: vec![0; values.len()],
        });
        h.events.push(Event::SendDone {
            t: t + 1,
            producer: 0,
            part: 0,
            values,
            outcome: Outcome::Ok { base_offset },
        });
    }

    fn poll(h: &mut History, t: Ms, session: u32, records: Vec<(i64, Value)>) {
        h.events.push(Event::Poll {
            t,
            reader: 100,
            session,
            part: 0,
            records,
        });
    }

    /// Value 6 at offset 9, then 7 and 8 at 10 and 11 acknowledged with acks=all at t=20 and 7
    /// read at t=25; the ISR loses power from t=30 and the partition's log ends at 10 after;
    /// 99 is written at 10 at t=46 and read. The final log: 6 and 99.
    fn history() -> History {
        let mut h = History::new(true);
        send(&mut h, 5, vec![6], 9);
        send(&mut h, 19, vec![7, 8], 10);
        poll(&mut h, 25, 0, vec![(9, 6), (10, 7)]);
        h.events.push(Event::Crash {
            t: 30,
            power_loss: true,
        });
        send(&mut h, 45, vec![99], 10);
        poll(&mut h, 47, 0, vec![(10, 99)]);
        h.events.push(Event::Final {
            part: 0,
            log_start: 0,
            records: vec![(9, 6), (10, 99)],
        });
        h
    }

    #[test]
    fn lost_names_the_cut_and_judged_turns_it_into_the_partitions_power_loss() {
        let h = history();
        let all = [loss(1, 30, 8), loss(2, 40, 10), loss(3, 35, 4)];
        // Offsets 10 and 11 were acknowledged and lost, 10 was read too: one cut at 10.
        assert_eq!(lost(&h, &isr(), &all, &[]), vec![(0, 10, 40)]);
        assert!(excused(&[(0, 10, 40)], 0, 11, 20));
        assert!(!excused(&[(0, 10, 40)], 0, 9, 20), "below the cut");
        assert!(!excused(&[(0, 10, 40)], 0, 11, 41), "after the cut");
        // Broker 3 kept its copy: nothing is excused.
        assert_eq!(lost(&h, &isr(), &all[..2], &[]), vec![]);
        let j = judged(h, &[(0, 10, 40)]);
        assert!(!j.acks_survive_power_loss);
        let sessions: Vec<u32> = (j.events.iter())
            .filter_map(|e| match e {
                Event::Poll { session, .. } => Some(*session),
                _ => None,
            })
            .collect();
        assert_eq!(
            sessions,
            [0, 1],
            "the read after the cut starts a new position"
        );
        let crashes: Vec<&Event> = (j.events.iter())
            .filter(|e| matches!(e, Event::Crash { .. } | Event::Restart { .. }))
            .collect();
        assert_eq!(
            crashes,
            [
                &Event::Crash {
                    t: 30,
                    power_loss: false
                },
                &Event::Crash {
                    t: 41,
                    power_loss: true
                },
                &Event::Restart {
                    t: 41,
                    log_ends: vec![(0, 10)]
                }
            ]
        );
    }

    #[test]
    fn the_history_checkers_excuse_the_cut_and_only_it() {
        let h = history();
        let kinds = |h: &History| -> Vec<&'static str> {
            let found = crate::check::check(h);
            found.iter().map(|a| a.kind.name()).collect()
        };
        let plain = kinds(&h);
        assert!(plain.contains(&"lost-write"), "{plain:?}");
        assert!(plain.contains(&"nonmonotonic-poll"), "{plain:?}");
        assert_eq!(
            kinds(&judged(h.clone(), &[(0, 10, 40)])),
            Vec::<&str>::new()
        );
        // A cut above the lost offsets, or one before they were acknowledged, excuses less.
        assert!(kinds(&judged(h.clone(), &[(0, 11, 40)])).contains(&"lost-write"));
        assert!(kinds(&judged(h, &[(0, 10, 15)])).contains(&"lost-write"));
    }

    #[test]
    fn draw_gives_both_policies_and_only_with_replication() {
        let drawn: BTreeSet<bool> = (0..20).map(|s| draw(s, true) == Durability::None).collect();
        assert_eq!(drawn.len(), 2);
        assert!((0..20).all(|s| draw(s, false) == Durability::GroupCommit));
    }
}
