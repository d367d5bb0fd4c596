//! **`acked-n-lost`** — the acks=N checker (issue 10, item 4; `core/src/broker/replica/probe.rs`).
//!
//! acks=N (2 ≤ N < all) is acknowledged once N replicas hold the record. gregor promises that
//! such a record survives a leader change as long as one of its holders is still in the ISR
//! when the leadership moves: the new leader first learns every live ISR member's position and
//! hands the leadership to one ahead of it. What the promise does not cover: a holder dropped
//! from the ISR (for lagging, or because its broker was fenced, crashed or lost its disk)
//! before the leader changed, and an unclean election.
//!
//! What the history can tell, and the conservative reading taken here:
//! * the **holders** of a record are the brokers whose storage appended it (leader or
//!   follower) at or before its acknowledgement *and* were in the partition's committed ISR
//!   then: the world sees every append of the workload's topic, and acks=N counts ISR members
//!   only (a follower outside the ISR is no clean successor; `--cluster 5 --replication` seed
//!   85). A broker that appended it and cut it again before the acknowledgement still counts
//!   (that only makes the excuse below easier to meet);
//! * a holder **left the ISR** when the committed metadata log took it out of the partition's
//!   ISR at or after the record was first sent: for any reason (fenced, restarted, lagging), so
//!   every way a holder can stop protecting the record counts as one;
//! * the final log is the auditor's read, which stops at the high watermark; an acks=N answer
//!   comes before the high watermark covers the record (it waits for N replicas, not the
//!   ISR), so a record at or past the final log's end is not judged (counted as `beyond`);
//! * a record acknowledged with acks=N that the final log lacks at its offset is an anomaly
//!   unless every one of its holders (or N of them) left the ISR after it was sent (then no
//!   holder may have been in the ISR at the election: the loss is allowed), or an unclean
//!   election of the partition was recorded after it was sent. So the checker flags only
//!   losses that happened while at least one holder never left the ISR — the case the rule
//!   exists for.

use super::check::Appended;
use crate::history::{Event, History, Ms, Outcome, Part, Value};
use std::collections::{BTreeMap, BTreeSet};

/// Broker `node` joined (`joined`) or left partition `part`'s ISR in the committed metadata
/// at `t`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IsrChange {
    pub part: Part,
    pub node: i32,
    pub t: Ms,
    pub joined: bool,
}

/// Whether `node` was in `part`'s committed ISR at `t`, by the changes in `isr`.
pub(super) fn in_isr(isr: &[IsrChange], part: Part, node: i32, t: Ms) -> bool {
    (isr.iter().rev())
        .find(|c| c.part == part && c.node == node && c.t <= t)
        .is_some_and(|c| c.joined)
}

/// What [`acked_n_lost`] counted, for the report.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct AckedN {
    /// Records acknowledged with acks=N (N ≥ 2), how many the final log lacks, and how many
    /// of those losses the rule allows (N holders left the ISR, or an unclean election).
    pub acked: u64,
    pub lost: u64,
    pub excused: u64,
    /// At or past the end of the auditor's read (not judged).
    pub beyond: u64,
}

/// acked-n-lost over the history (its `Send`, `SendDone` and `Final` events), the appends
/// the world saw, ISR changes and unclean elections. Returns anomalies and counts.
pub fn acked_n_lost(
    h: &History,
    appended: &[Appended],
    isr: &[IsrChange],
    unclean: &[(Part, Ms)],
) -> (Vec<(&'static str, String)>, AckedN) {
    let mut fin: BTreeMap<(Part, i64), Value> = BTreeMap::new();
    let mut ends: BTreeMap<Part, i64> = BTreeMap::new();
    for e in &h.events {
        if let Event::Final { part, records, .. } = e {
            fin.extend(records.iter().map(|(o, v)| ((*part, *o), *v)));
            let end = records.last().map_or(0, |(o, _)| o + 1);
            let e = ends.entry(*part).or_insert(end);
            *e = (*e).max(end);
        }
    }
    // Each value's acks and when it was first sent.
    let mut sent: BTreeMap<Value, (i16, Ms)> = BTreeMap::new();
    for e in &h.events {
        if let Event::Send {
            t, values, acks, ..
        } = e
        {
            for v in values {
                sent.entry(*v).or_insert((*acks, *t));
            }
        }
    }
    let mut out = Vec::new();
    let mut n = AckedN::default();
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
            let Some((acks, first)) = sent.get(v).copied().filter(|(a, _)| *a >= 2) else {
                continue;
            };
            assert!(*base_offset >= 0, "acks=N answers carry an offset");
            n.acked += 1;
            let at = base_offset + k as i64;
            if fin.get(&(*part, at)) == Some(v) {
                continue;
            }
            if at >= ends.get(part).copied().unwrap_or(0) {
                n.beyond += 1;
                continue;
            }
            n.lost += 1;
            let holders: BTreeSet<i32> = (appended.iter())
                .filter(|a| a.part == *part && a.t <= *t && a.values.contains(v))
                .map(|a| a.node)
                .filter(|b| in_isr(isr, *part, *b, *t))
                .collect();
            let gone: BTreeSet<i32> = (isr.iter())
                .filter(|l| !l.joined && l.part == *part && l.t >= first)
                .map(|l| l.node)
                .filter(|b| holders.contains(b))
                .collect();
            let unclean_after = unclean.iter().any(|(p, u)| p == part && *u >= first);
            assert!(gone.is_subset(&holders));
            if gone.len() >= acks as usize || gone == holders || unclean_after {
                n.excused += 1;
                continue;
            }
            out.push((
                "acked-n-lost",
                format!(
                    "value {v} acknowledged with acks={acks} at {part}/{at} (t={t}ms) is not in the final log; holders {holders:?}, of which only {gone:?} left the ISR (fewer than {acks}) and no unclean election",
                ),
            ));
        }
    }
    assert!(n.excused <= n.lost && n.lost + n.beyond <= n.acked);
    (out, n)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Value 7 sent with acks=2 at t=10 to partition 0, acknowledged at offset 3 at t=20;
    /// brokers 1 and 3 appended it by then; the final log of partition 0 is `fin`.
    fn history(fin: Vec<(i64, Value)>) -> (History, Vec<Appended>) {
        let mut h = History::new(true);
        h.events.push(Event::Send {
            t: 10,
            producer: 0,
            part: 0,
            values: vec![7],
            acks: 2,
            idempotent: false,
            attempt: 0,
            timestamps_ms: vec![0],
        });
        h.events.push(Event::SendDone {
            t: 20,
            producer: 0,
            part: 0,
            values: vec![7],
            outcome: Outcome::Ok { base_offset: 3 },
        });
        h.events.push(Event::Final {
            part: 0,
            log_start: 0,
            records: fin,
        });
        let appended = [1, 3]
            .map(|node| Appended {
                node,
                part: 0,
                values: vec![7],
                t: 15,
                as_leader: node == 1,
            })
            .to_vec();
        (h, appended)
    }

    /// Brokers 1, 2 and 3 in the ISR from t=0, then `changes`.
    fn isr(changes: &[IsrChange]) -> Vec<IsrChange> {
        let joined = |node| IsrChange {
            part: 0,
            node,
            t: 0,
            joined: true,
        };
        [joined(1), joined(2), joined(3)]
            .into_iter()
            .chain(changes.iter().cloned())
            .collect()
    }

    fn left(node: i32, t: Ms) -> IsrChange {
        IsrChange {
            part: 0,
            node,
            t,
            joined: false,
        }
    }

    #[test]
    fn a_record_past_the_auditors_read_is_not_judged() {
        let (h, a) = history(vec![(2, 6)]);
        let (out, n) = acked_n_lost(&h, &a, &isr(&[]), &[]);
        assert!(out.is_empty());
        assert_eq!((n.acked, n.lost, n.beyond), (1, 0, 1));
    }

    #[test]
    fn a_kept_record_passes() {
        let (h, a) = history(vec![(3, 7)]);
        let (out, n) = acked_n_lost(&h, &a, &isr(&[left(1, 30)]), &[]);
        assert!(out.is_empty());
        assert_eq!((n.acked, n.lost), (1, 0));
    }

    #[test]
    fn a_record_lost_while_a_holder_stayed_in_the_isr_is_flagged() {
        // The leader (1) failed and left the ISR; holder 3 never did; the final log has
        // another value at offset 3: the planted loss the rule forbids.
        let (h, a) = history(vec![(3, 8)]);
        let (out, n) = acked_n_lost(&h, &a, &isr(&[left(1, 30), left(2, 30)]), &[]);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].0, "acked-n-lost");
        assert_eq!((n.lost, n.excused), (1, 0));
    }

    #[test]
    fn a_loss_after_n_holders_left_the_isr_or_an_unclean_election_is_allowed() {
        let (h, a) = history(vec![(3, 9), (4, 10)]);
        let (out, n) = acked_n_lost(&h, &a, &isr(&[left(1, 30), left(3, 25)]), &[]);
        assert!(out.is_empty() && n.excused == 1);
        let (out, _) = acked_n_lost(&h, &a, &isr(&[left(1, 30)]), &[(0, 40)]);
        assert!(out.is_empty(), "unclean election after the send");
        // A departure before the send does not count (broker 3 was back by the send).
        let back = IsrChange {
            part: 0,
            node: 3,
            t: 8,
            joined: true,
        };
        let changes = [left(3, 5), back, left(1, 30)];
        let (out, _) = acked_n_lost(&h, &a, &isr(&changes), &[]);
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn a_holder_outside_the_isr_at_the_acknowledgement_does_not_count() {
        // Seed 85 of `--cluster 5 --replication`: broker 3 held the record but was not in the
        // ISR when it was acknowledged; broker 1, the only holder in it, left: allowed.
        let (h, a) = history(vec![(3, 8)]);
        let outside = [left(3, 1), left(1, 30)];
        let (out, n) = acked_n_lost(&h, &a, &isr(&outside), &[]);
        assert!(out.is_empty(), "{out:?}");
        assert_eq!((n.lost, n.excused), (1, 1));
        // Back in the ISR before the acknowledgement, it counts again and never left.
        let back = [
            left(3, 1),
            IsrChange {
                part: 0,
                node: 3,
                t: 12,
                joined: true,
            },
            left(1, 30),
        ];
        let (out, _) = acked_n_lost(&h, &a, &isr(&back), &[]);
        assert_eq!(out.len(), 1, "{out:?}");
    }
}
