//! Checkers: pure functions from a [`History`] to the anomalies in it, one module per family of
//! guarantees: [`durability`], [`idempotence`], [`order`], [`groups`], [`ownership`], [`offsets`],
//! [`fetch`], [`retention`], [`reset`], [`compaction`].
//!
//! Each checker is named after the anomaly it looks for (the names follow Jepsen's Kafka test,
//! so a reader can compare) and maps to one of gregor's three guarantees:
//!
//! | checker               | module | guarantee                           |
//! |-----------------------|--------|-------------------------------------|
//! | `lost-write`          | durability | at-least-once: an acknowledged record is never lost |
//! | `unseen`              | durability | at-least-once: consumers eventually read every acknowledged record |
//! | `duplicate`           | idempotence | exactly-once appends of the idempotent producer |
//! | `idempotent-reorder`  | idempotence | an idempotent producer's records keep its send order, five in flight |
//! | `failed-write-read`   | durability | at-most-once: a write the broker refused never appears |
//! | `inconsistent-offsets`| order | per-partition ordering: an offset names one record, forever |
//! | `nonmonotonic-send`   | order | per-partition ordering: a producer's records keep its order |
//! | `nonmonotonic-poll`   | order | per-partition ordering: a consumer reads offsets in order |
//! | `poll-skip`           | order | per-partition ordering: a consumer never jumps over a record |
//! | `group-ownership`     | groups | a queue inside a group: one owner per partition per generation |
//! | `two-owners`          | ownership | a queue inside a group: a partition is not handed on until its owner gave it up (KIP-429) |
//! | `generation-backwards`| groups | group generations only grow |
//! | `zombie-commit`       | groups | a commit from a stale generation (an evicted member, one that missed a rebalance) is refused |
//! | `commit-past-fetched` | offsets | a committed offset never runs ahead of what was read |
//! | `commit-backwards`    | offsets | a committed offset never moves back |
//! | `group-skip`          | groups | at-least-once groups never skip a record |
//! | `group-double`        | groups | at-most-once groups never process a record twice |
//! | `fetch-over-limit`    | fetch | a fetch response respects the request's total `max_bytes` (KIP-74) |
//! | `log-start-backwards` | retention | the log start offset never moves back (within a broker process) |
//! | `log-start-above-hw`  | retention | the log start is never above the high watermark |
//! | `fetch-below-start`   | retention | a fetch below the log start gets OFFSET_OUT_OF_RANGE |
//! | `spurious-out-of-range` | reset | OFFSET_OUT_OF_RANGE only for a position really outside the log; after a reset reading goes on from the new position (`poll-skip`) |
//! | `latest-not-hw`       | retention | ListOffsets latest is the high watermark |
//! | `offset-for-timestamp`| retention | ListOffsets by time: the first record at or after it (KIP-79) |
//! | `compaction-offsets`  | compaction | log compaction: offsets read from a compacted partition only increase |
//! | `compaction-latest`   | compaction | log compaction: a reader from the start sees every key's latest acknowledged record (or its expired tombstone) |
//! | `compaction-unknown`  | compaction | log compaction: the cleaner never invents or moves a record |
//! | `epoch-cache`         | epochs | after every restart the leader-epoch cache is the one the batches on disk give (KIP-101); a per-step check at broker start |
//!
//! The durability policy is taken into account: under a policy that does not promise survival of
//! power loss (`none`, `interval`), what a power loss cut from the log is excused — and only that,
//! only for power loss. A process crash excuses nothing.

//!
//! Architecture invariant: the family modules depend on this one (for [`Kind`], [`Cuts`] and
//! [`Facts`]) and on `history`, never on each other or on the world.

pub mod acl;
pub mod compaction;
mod deleted;
mod durability;
pub mod epochs;
mod fetch;
mod groups;
mod idempotence;
mod offsets;
mod order;
mod ownership;
mod reset;
mod retention;

use crate::history::{Event, History, Ms, Part, Value};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    LostWrite,
    Unseen,
    Duplicate,
    IdempotentReorder,
    FailedWriteRead,
    InconsistentOffsets,
    NonmonotonicSend,
    NonmonotonicPoll,
    PollSkip,
    GroupOwnership,
    TwoOwners,
    GenerationBackwards,
    ZombieCommit,
    CommitPastFetched,
    CommitBackwards,
    GroupSkip,
    GroupDouble,
    FetchOverLimit,
    LogStartBackwards,
    LogStartAboveHw,
    FetchBelowStart,
    SpuriousOutOfRange,
    LatestNotHw,
    OffsetForTimestamp,
    DeletedServed,
    CompactionOffsets,
    CompactionLatest,
    CompactionUnknown,
}

impl Kind {
    pub const ALL: [Kind; 28] = [
        Kind::LostWrite,
        Kind::Unseen,
        Kind::Duplicate,
        Kind::IdempotentReorder,
        Kind::FailedWriteRead,
        Kind::InconsistentOffsets,
        Kind::NonmonotonicSend,
        Kind::NonmonotonicPoll,
        Kind::PollSkip,
        Kind::GroupOwnership,
        Kind::TwoOwners,
        Kind::GenerationBackwards,
        Kind::ZombieCommit,
        Kind::CommitPastFetched,
        Kind::CommitBackwards,
        Kind::GroupSkip,
        Kind::GroupDouble,
        Kind::FetchOverLimit,
        Kind::LogStartBackwards,
        Kind::LogStartAboveHw,
        Kind::FetchBelowStart,
        Kind::SpuriousOutOfRange,
        Kind::LatestNotHw,
        Kind::OffsetForTimestamp,
        Kind::DeletedServed,
        Kind::CompactionOffsets,
        Kind::CompactionLatest,
        Kind::CompactionUnknown,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Kind::LostWrite => "lost-write",
            Kind::Unseen => "unseen",
            Kind::Duplicate => "duplicate",
            Kind::IdempotentReorder => "idempotent-reorder",
            Kind::FailedWriteRead => "failed-write-read",
            Kind::InconsistentOffsets => "inconsistent-offsets",
            Kind::NonmonotonicSend => "nonmonotonic-send",
            Kind::NonmonotonicPoll => "nonmonotonic-poll",
            Kind::PollSkip => "poll-skip",
            Kind::GroupOwnership => "group-ownership",
            Kind::TwoOwners => "two-owners",
            Kind::GenerationBackwards => "generation-backwards",
            Kind::ZombieCommit => "zombie-commit",
            Kind::CommitPastFetched => "commit-past-fetched",
            Kind::CommitBackwards => "commit-backwards",
            Kind::GroupSkip => "group-skip",
            Kind::GroupDouble => "group-double",
            Kind::FetchOverLimit => "fetch-over-limit",
            Kind::LogStartBackwards => "log-start-backwards",
            Kind::LogStartAboveHw => "log-start-above-hw",
            Kind::FetchBelowStart => "fetch-below-start",
            Kind::SpuriousOutOfRange => "spurious-out-of-range",
            Kind::LatestNotHw => "latest-not-hw",
            Kind::OffsetForTimestamp => "offset-for-timestamp",
            Kind::DeletedServed => "deleted-served",
            Kind::CompactionOffsets => "compaction-offsets",
            Kind::CompactionLatest => "compaction-latest",
            Kind::CompactionUnknown => "compaction-unknown",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Anomaly {
    pub kind: Kind,
    pub detail: String,
}

/// Where power losses cut the log, when the policy allows it to: (time of restart, partition →
/// log end found). Empty under a policy that keeps acknowledged records through power loss.
pub(crate) struct Cuts(pub(crate) Vec<(Ms, BTreeMap<Part, i64>)>);

impl Cuts {
    pub(crate) fn new(h: &History) -> Cuts {
        let mut cuts = Vec::new();
        if h.acks_survive_power_loss {
            return Cuts(cuts);
        }
        let mut power_lost = false;
        for e in &h.events {
            match e {
                Event::Crash { power_loss, .. } => power_lost = *power_loss,
                Event::Restart { t, log_ends } if power_lost => {
                    cuts.push((*t, log_ends.iter().copied().collect()));
                    power_lost = false;
                }
                _ => {}
            }
        }
        Cuts(cuts)
    }
    /// Was the record at `offset`, observed at `t`, cut by a later power loss?
    pub(crate) fn excused(&self, part: Part, offset: i64, t: Ms) -> bool {
        self.0
            .iter()
            .any(|(at, ends)| *at > t && ends.get(&part).is_some_and(|end| offset >= *end))
    }
    pub(crate) fn any(&self) -> bool {
        !self.0.is_empty()
    }
    /// How many policy-permitted power losses happened before `t`. A power loss may wipe a
    /// group's state, so generation numbers start again: (era, generation) names a generation.
    pub(crate) fn era(&self, t: Ms) -> usize {
        self.0.iter().filter(|(at, _)| *at <= t).count()
    }
}

/// What several checkers need, gathered once from the history.
pub(crate) struct Facts {
    /// The auditor's final read: the log as it stands after the liveness phase.
    pub fin: BTreeMap<Part, BTreeMap<i64, Value>>,
    pub fin_by_value: BTreeMap<Value, Vec<(Part, i64)>>,
    /// Where each partition's final log starts (retention deleted what is below).
    pub fin_start: BTreeMap<Part, i64>,
    /// Each value's record timestamp.
    pub timestamp_of: BTreeMap<Value, i64>,
    /// When the broker crashed (process crash or power loss).
    pub crashes: Vec<Ms>,
    /// What each value's producer promised: (idempotent, retried).
    pub sent: BTreeMap<Value, (bool, bool)>,
    /// Which producer sent each value, and whether it is idempotent.
    pub producer_of: BTreeMap<Value, (usize, bool)>,
    /// Everything any consumer (reader or group member) ever received.
    pub seen: BTreeSet<Value>,
    /// ... and where and when: value → (partition, offset, time).
    pub seen_at: BTreeMap<Value, Vec<(Part, i64, Ms)>>,
    /// Ranges a power loss left unreadable behind every consumer: (restart, partition, from, to).
    pub shadows: Vec<(Ms, Part, i64, i64)>,
}

impl Facts {
    fn new(h: &History, cuts: &Cuts) -> Facts {
        // The auditor's final read: the log as it stands after the liveness phase.
        let mut fin: BTreeMap<Part, BTreeMap<i64, Value>> = BTreeMap::new();
        let mut fin_by_value: BTreeMap<Value, Vec<(Part, i64)>> = BTreeMap::new();
        let mut fin_start: BTreeMap<Part, i64> = BTreeMap::new();
        for e in &h.events {
            if let Event::Final {
                part,
                log_start,
                records,
            } = e
            {
                fin_start.insert(*part, *log_start);
                for &(o, v) in records {
                    fin.entry(*part).or_default().insert(o, v);
                    fin_by_value.entry(v).or_default().push((*part, o));
                }
            }
        }

        // What each value's producer promised: (idempotent, retried).
        let mut sent: BTreeMap<Value, (bool, bool)> = BTreeMap::new();
        let mut producer_of: BTreeMap<Value, (usize, bool)> = BTreeMap::new();
        let mut timestamp_of: BTreeMap<Value, i64> = BTreeMap::new();
        for e in &h.events {
            if let Event::Send {
                producer,
                timestamps_ms,
                values,
                idempotent,
                attempt,
                ..
            } = e
            {
                for (v, ts) in values.iter().zip(timestamps_ms) {
                    producer_of.insert(*v, (*producer, *idempotent));
                    timestamp_of.insert(*v, *ts);
                    let s = sent.entry(*v).or_insert((*idempotent, false));
                    s.1 |= *attempt > 0;
                }
            }
        }

        // Everything any consumer (reader or group member) ever received.
        let mut seen: BTreeSet<Value> = BTreeSet::new();
        // ... and where and when: value → (partition, offset, time).
        let mut seen_at: BTreeMap<Value, Vec<(Part, i64, Ms)>> = BTreeMap::new();
        for e in &h.events {
            match e {
                Event::Poll {
                    t, part, records, ..
                } => {
                    for &(o, v) in records {
                        seen.insert(v);
                        seen_at.entry(v).or_default().push((*part, o, *t));
                    }
                }
                Event::Processed {
                    t,
                    part,
                    offset,
                    value,
                    ..
                } => {
                    seen.insert(*value);
                    seen_at
                        .entry(*value)
                        .or_default()
                        .push((*part, *offset, *t));
                }
                _ => {}
            }
        }

        // A power loss that cut a partition below where consumers had read leaves a shadow:
        // records written there after the restart sit behind every consumer's position, and (as
        // in Kafka without KIP-320's truncation detection) nobody reads them. Excused with the cut.
        let mut shadows: Vec<(Ms, Part, i64, i64)> = Vec::new();
        for (at, ends) in &cuts.0 {
            for (part, end) in ends {
                let read_max = h
                    .events
                    .iter()
                    .filter(|e| e.time() < *at)
                    .filter_map(|e| match e {
                        Event::Poll {
                            part: p, records, ..
                        } if p == part => records.last().map(|r| r.0),
                        _ => None,
                    })
                    .max();
                if let Some(m) = read_max {
                    shadows.push((*at, *part, *end, m));
                }
            }
        }
        Facts {
            fin,
            fin_by_value,
            fin_start,
            timestamp_of,
            crashes: h
                .events
                .iter()
                .filter_map(|e| match e {
                    Event::Crash { t, .. } => Some(*t),
                    _ => None,
                })
                .collect(),
            sent,
            producer_of,
            seen,
            seen_at,
            shadows,
        }
    }

    /// Is `offset` in a power loss's shadow at `t`?
    pub fn in_shadow(&self, part: Part, offset: i64, t: Ms) -> bool {
        self.shadows
            .iter()
            .any(|(at, p, lo, hi)| *p == part && *at <= t && (*lo..=*hi).contains(&offset))
    }
}

/// Run every checker.
pub fn check(h: &History) -> Vec<Anomaly> {
    let cuts = Cuts::new(h);
    let facts = Facts::new(h, &cuts);
    let mut out = Vec::new();
    let mut bad = |kind: Kind, detail: String| out.push(Anomaly { kind, detail });
    durability::check(h, &cuts, &facts, &mut bad);
    idempotence::check(&facts, &cuts, &mut bad);
    order::check(h, &cuts, &facts, &mut bad);
    groups::check(h, &cuts, &facts, &mut bad);
    ownership::check(h, &cuts, &mut bad);
    offsets::check(h, &cuts, &mut bad);
    fetch::check(h, &mut bad);
    retention::check(h, &cuts, &facts, &mut bad);
    reset::check(h, &cuts, &mut bad);
    deleted::check(h, &cuts, &mut bad);
    compaction::check(h, &cuts, &mut bad);
    out
}

#[cfg(test)]
pub(crate) mod testing {
    //! The clean history every planted-anomaly test starts from.
    use super::*;
    use crate::history::{CommitMode, Outcome};

    /// A clean history: producer 0 writes 1,2 then 3 to partition 0; reader 10 reads them all;
    /// an at-least-once group 0 (member 20) processes and commits; at-most-once group 1 (member
    /// 21) commits and processes.
    pub fn clean() -> History {
        let mut h = History::new(true);
        h.groups = vec![CommitMode::AfterProcessing, CommitMode::BeforeProcessing];
        let ev = &mut h.events;
        let send = |t, values: Vec<u64>, attempt| Event::Send {
            timestamps_ms: values
                .iter()
                .map(|_| 1_700_000_000_000 + t as i64)
                .collect(),
            t,
            producer: 0,
            part: 0,
            values,
            acks: -1,
            idempotent: true,
            attempt,
        };
        ev.push(send(1, vec![1, 2], 0));
        ev.push(Event::SendDone {
            t: 2,
            producer: 0,
            part: 0,
            values: vec![1, 2],
            outcome: Outcome::Ok { base_offset: 0 },
        });
        ev.push(send(3, vec![3], 0));
        ev.push(Event::SendDone {
            t: 4,
            producer: 0,
            part: 0,
            values: vec![3],
            outcome: Outcome::Ok { base_offset: 2 },
        });
        ev.push(send(5, vec![4], 0));
        ev.push(Event::SendDone {
            t: 6,
            producer: 0,
            part: 0,
            values: vec![4],
            outcome: Outcome::Fail { code: 2 },
        });
        ev.push(Event::Poll {
            t: 7,
            reader: 10,
            session: 0,
            part: 0,
            records: vec![(0, 1), (1, 2)],
        });
        ev.push(Event::Poll {
            t: 8,
            reader: 10,
            session: 0,
            part: 0,
            records: vec![(2, 3)],
        });
        for (g, member) in [(0usize, 20usize), (1, 21)] {
            ev.push(Event::Assigned {
                t: 9,
                group: g,
                member,
                generation: 1,
                parts: vec![0],
            });
            ev.push(Event::CommittedRead {
                t: 10,
                sent: 9,
                group: g,
                member,
                part: 0,
                offset: -1,
            });
            ev.push(Event::Poll {
                t: 11,
                reader: member,
                session: 0,
                part: 0,
                records: vec![(0, 1), (1, 2), (2, 3)],
            });
            for (o, v) in [(0, 1), (1, 2), (2, 3)] {
                ev.push(Event::Processed {
                    t: 12,
                    group: g,
                    member,
                    generation: 1,
                    part: 0,
                    offset: o,
                    value: v,
                });
            }
            ev.push(Event::Committed {
                t: 13,
                sent: 12,
                group: g,
                member,
                generation: 1,
                part: 0,
                offset: 3,
            });
        }
        ev.push(Event::CommittedRead {
            t: 15,
            sent: 14,
            group: 0,
            member: 22,
            part: 0,
            offset: 3,
        });
        ev.push(Event::Final {
            part: 0,
            log_start: 0,
            records: vec![(0, 1), (1, 2), (2, 3)],
        });
        h
    }

    pub fn kinds(h: &History) -> BTreeSet<Kind> {
        check(h).into_iter().map(|a| a.kind).collect()
    }

    /// The kinds reported for the clean history with `evs` added just before the final read.
    pub fn kinds_with(evs: Vec<Event>) -> BTreeSet<Kind> {
        let mut h = clean();
        let at = h.events.len() - 1;
        for (i, e) in evs.into_iter().enumerate() {
            h.events.insert(at + i, e);
        }
        kinds(&h)
    }

    /// Reader 10's fetch of partition 0 at `offset`, answered at `t` (sent 1 ms before) with
    /// `error` and the partition's log start and high watermark.
    pub fn fetched(t: u64, offset: i64, error: i16, log_start: i64, hw: i64) -> Event {
        Event::Fetched {
            t,
            sent: t - 1,
            reader: 10,
            part: 0,
            offset,
            error,
            log_start,
            high_watermark: hw,
        }
    }

    pub fn fin(h: &mut History) -> &mut Vec<(i64, Value)> {
        h.events
            .iter_mut()
            .find_map(|e| match e {
                Event::Final { records, .. } => Some(records),
                _ => None,
            })
            .unwrap()
    }
}

#[cfg(test)]
mod tests {
    //! Every checker is proven able to fail: a clean history passes, and the same history with
    //! exactly one anomaly planted is reported with exactly that kind (the planted tests live
    //! beside each checker).
    use super::testing::clean;
    use super::*;

    #[test]
    fn a_clean_history_passes() {
        assert_eq!(check(&clean()), vec![]);
    }
    #[test]
    fn every_kind_has_a_planted_test() {
        // Keep this list in step with the tests above: a checker without a test that makes it
        // fire could be silently broken.
        let tested = [
            Kind::LostWrite,
            Kind::Unseen,
            Kind::Duplicate,
            Kind::IdempotentReorder,
            Kind::FailedWriteRead,
            Kind::InconsistentOffsets,
            Kind::NonmonotonicSend,
            Kind::NonmonotonicPoll,
            Kind::PollSkip,
            Kind::GroupOwnership,
            Kind::TwoOwners,
            Kind::GenerationBackwards,
            Kind::ZombieCommit,
            Kind::CommitPastFetched,
            Kind::CommitBackwards,
            Kind::GroupSkip,
            Kind::GroupDouble,
            Kind::FetchOverLimit,
            Kind::LogStartBackwards,
            Kind::LogStartAboveHw,
            Kind::FetchBelowStart,
            Kind::SpuriousOutOfRange,
            Kind::LatestNotHw,
            Kind::OffsetForTimestamp,
            Kind::DeletedServed,
            Kind::CompactionOffsets,
            Kind::CompactionLatest,
            Kind::CompactionUnknown,
        ];
        assert_eq!(tested.len(), Kind::ALL.len());
    }
}
