//! Checkers: pure functions from a [`History`] to the anomalies in it.
//!
//! Each checker is named after the anomaly it looks for (the names follow Jepsen's Kafka test,
//! so a reader can compare) and maps to one of gregor's three guarantees:
//!
//! | checker               | guarantee                                  |
//! |-----------------------|--------------------------------------------|
//! | `lost-write`          | at-least-once: an acknowledged record is never lost |
//! | `unseen`              | at-least-once: consumers eventually read every acknowledged record |
//! | `duplicate`           | exactly-once appends of the idempotent producer |
//! | `failed-write-read`   | at-most-once: a write the broker refused never appears |
//! | `inconsistent-offsets`| per-partition ordering: an offset names one record, forever |
//! | `nonmonotonic-send`   | per-partition ordering: a producer's records keep its order |
//! | `nonmonotonic-poll`   | per-partition ordering: a consumer reads offsets in order |
//! | `poll-skip`           | per-partition ordering: a consumer never jumps over a record |
//! | `group-ownership`     | a queue inside a group: one owner per partition per generation |
//! | `generation-backwards`| group generations only grow |
//! | `commit-past-fetched` | a committed offset never runs ahead of what was read |
//! | `commit-backwards`    | a committed offset never moves back |
//! | `group-skip`          | at-least-once groups never skip a record |
//! | `group-double`        | at-most-once groups never process a record twice |
//!
//! The durability policy is taken into account: under a policy that does not promise survival of
//! power loss (`none`, `interval`), what a power loss cut from the log is excused — and only that,
//! only for power loss. A process crash excuses nothing.

use crate::history::{CommitMode, Event, History, Ms, Outcome, Part, Value};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    LostWrite,
    Unseen,
    Duplicate,
    FailedWriteRead,
    InconsistentOffsets,
    NonmonotonicSend,
    NonmonotonicPoll,
    PollSkip,
    GroupOwnership,
    GenerationBackwards,
    CommitPastFetched,
    CommitBackwards,
    GroupSkip,
    GroupDouble,
}

impl Kind {
    pub const ALL: [Kind; 14] = [
        Kind::LostWrite,
        Kind::Unseen,
        Kind::Duplicate,
        Kind::FailedWriteRead,
        Kind::InconsistentOffsets,
        Kind::NonmonotonicSend,
        Kind::NonmonotonicPoll,
        Kind::PollSkip,
        Kind::GroupOwnership,
        Kind::GenerationBackwards,
        Kind::CommitPastFetched,
        Kind::CommitBackwards,
        Kind::GroupSkip,
        Kind::GroupDouble,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Kind::LostWrite => "lost-write",
            Kind::Unseen => "unseen",
            Kind::Duplicate => "duplicate",
            Kind::FailedWriteRead => "failed-write-read",
            Kind::InconsistentOffsets => "inconsistent-offsets",
            Kind::NonmonotonicSend => "nonmonotonic-send",
            Kind::NonmonotonicPoll => "nonmonotonic-poll",
            Kind::PollSkip => "poll-skip",
            Kind::GroupOwnership => "group-ownership",
            Kind::GenerationBackwards => "generation-backwards",
            Kind::CommitPastFetched => "commit-past-fetched",
            Kind::CommitBackwards => "commit-backwards",
            Kind::GroupSkip => "group-skip",
            Kind::GroupDouble => "group-double",
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
struct Cuts(Vec<(Ms, BTreeMap<Part, i64>)>);

impl Cuts {
    fn new(h: &History) -> Cuts {
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
    fn excused(&self, part: Part, offset: i64, t: Ms) -> bool {
        self.0
            .iter()
            .any(|(at, ends)| *at > t && ends.get(&part).is_some_and(|end| offset >= *end))
    }
    fn any(&self) -> bool {
        !self.0.is_empty()
    }
    /// How many policy-permitted power losses happened before `t`. A power loss may wipe a
    /// group's state, so generation numbers start again: (era, generation) names a generation.
    fn era(&self, t: Ms) -> usize {
        self.0.iter().filter(|(at, _)| *at <= t).count()
    }
}

/// Run every checker.
pub fn check(h: &History) -> Vec<Anomaly> {
    let cuts = Cuts::new(h);
    let mut out = Vec::new();
    let mut bad = |kind: Kind, detail: String| out.push(Anomaly { kind, detail });

    // The auditor's final read: the log as it stands after the liveness phase.
    let mut fin: BTreeMap<Part, BTreeMap<i64, Value>> = BTreeMap::new();
    let mut fin_by_value: BTreeMap<Value, Vec<(Part, i64)>> = BTreeMap::new();
    for e in &h.events {
        if let Event::Final { part, records } = e {
            for &(o, v) in records {
                fin.entry(*part).or_default().insert(o, v);
                fin_by_value.entry(v).or_default().push((*part, o));
            }
        }
    }

    // What each value's producer promised: (idempotent, retried).
    let mut sent: BTreeMap<Value, (bool, bool)> = BTreeMap::new();
    for e in &h.events {
        if let Event::Send {
            values,
            idempotent,
            attempt,
            ..
        } = e
        {
            for v in values {
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
    let in_shadow = |part: Part, offset: i64, t: Ms| {
        shadows
            .iter()
            .any(|(at, p, lo, hi)| *p == part && *at <= t && (*lo..=*hi).contains(&offset))
    };

    // lost-write, unseen, failed-write-read, nonmonotonic-send
    let mut last_sent: BTreeMap<(usize, Part), (i64, Ms)> = BTreeMap::new();
    for e in &h.events {
        let Event::SendDone {
            t,
            producer,
            part,
            values,
            outcome,
        } = e
        else {
            continue;
        };
        match outcome {
            Outcome::Ok { base_offset } if *base_offset >= 0 => {
                for (i, v) in values.iter().enumerate() {
                    let offset = base_offset + i as i64;
                    if cuts.excused(*part, offset, *t) {
                        continue;
                    }
                    match fin.get(part).and_then(|m| m.get(&offset)) {
                        Some(got) if got == v => {
                            if !seen.contains(v) && !in_shadow(*part, offset, *t) {
                                bad(
                                    Kind::Unseen,
                                    format!("value {v} acknowledged at {part}/{offset} (t={t}) was never read by a consumer"),
                                );
                            }
                        }
                        other => bad(
                            Kind::LostWrite,
                            format!("value {v} acknowledged at {part}/{offset} (t={t}); final log has {other:?} there"),
                        ),
                    }
                }
                let last = base_offset + values.len() as i64 - 1;
                if let Some(&(prev, prev_t)) = last_sent.get(&(*producer, *part)) {
                    let cut_between = cuts.0.iter().any(|(at, _)| *at > prev_t && *at <= *t);
                    if *base_offset <= prev && !cut_between {
                        bad(
                            Kind::NonmonotonicSend,
                            format!("producer {producer}: batch acknowledged at {part}/{base_offset} (t={t}) after one at {prev}"),
                        );
                    }
                }
                last_sent.insert((*producer, *part), (last, *t));
            }
            Outcome::Fail { code } => {
                for v in values {
                    // A read that a policy-permitted power loss later cut does not count: the
                    // write happened, was lost, and its retry was then refused.
                    let read = seen_at
                        .get(v)
                        .is_some_and(|obs| obs.iter().any(|&(p, o, at)| !cuts.excused(p, o, at)));
                    if read || fin_by_value.contains_key(v) {
                        bad(
                            Kind::FailedWriteRead,
                            format!("value {v} was refused with error {code} (t={t}) but was read"),
                        );
                    }
                }
            }
            _ => {}
        }
    }

    // duplicate
    for (v, places) in &fin_by_value {
        if places.len() > 1 {
            let (idempotent, retried) = sent.get(v).copied().unwrap_or((false, false));
            if idempotent || !retried {
                bad(
                    Kind::Duplicate,
                    format!(
                        "value {v} appears {} times in the log: {places:?}",
                        places.len()
                    ),
                );
            }
        }
    }

    // inconsistent-offsets: every observation of an offset names the same value, and every
    // observation of a value the same offset; a policy-permitted power loss forgets what it cut.
    let mut obs = Observed {
        by_offset: BTreeMap::new(),
        by_value: BTreeMap::new(),
        sent: &sent,
    };
    let mut power_lost = false;
    for e in &h.events {
        let mut b = |k: Kind, d: String| bad(k, d);
        match e {
            Event::SendDone {
                t,
                part,
                values,
                outcome: Outcome::Ok { base_offset },
                ..
            } if *base_offset >= 0 => {
                for (i, v) in values.iter().enumerate() {
                    obs.observe(
                        &mut b,
                        *part,
                        base_offset + i as i64,
                        *v,
                        *t,
                        "an acknowledgement",
                    );
                }
            }
            Event::Poll {
                t, part, records, ..
            } => {
                for &(o, v) in records {
                    obs.observe(&mut b, *part, o, v, *t, "a poll");
                }
            }
            Event::Processed {
                t,
                part,
                offset,
                value,
                ..
            } => obs.observe(&mut b, *part, *offset, *value, *t, "a group member"),
            Event::Final { part, records } => {
                for &(o, v) in records {
                    obs.observe(&mut b, *part, o, v, Ms::MAX, "the final read");
                }
            }
            Event::Crash { power_loss, .. } => power_lost = *power_loss,
            Event::Restart { log_ends, .. } => {
                if power_lost && !h.acks_survive_power_loss {
                    for &(part, end) in log_ends {
                        obs.by_offset.retain(|(p, o), _| !(*p == part && *o >= end));
                        obs.by_value
                            .retain(|_, ((p, o), _)| !(*p == part && *o >= end));
                    }
                }
                power_lost = false;
            }
            _ => {}
        }
    }

    // nonmonotonic-poll and poll-skip, per consumer position (reader, session, partition).
    let mut pos: BTreeMap<(usize, u32, Part), i64> = BTreeMap::new();
    for e in &h.events {
        let Event::Poll {
            t,
            reader,
            session,
            part,
            records,
        } = e
        else {
            continue;
        };
        for &(o, _) in records {
            if let Some(&last) = pos.get(&(*reader, *session, *part)) {
                if o <= last {
                    bad(
                        Kind::NonmonotonicPoll,
                        format!("consumer {reader} read {part}/{o} after {part}/{last} (t={t})"),
                    );
                } else if o != last + 1 && !cuts.any() {
                    bad(
                        Kind::PollSkip,
                        format!(
                            "consumer {reader} jumped from {part}/{last} to {part}/{o} (t={t})"
                        ),
                    );
                }
            }
            pos.insert((*reader, *session, *part), o);
        }
    }

    check_groups(h, &cuts, &fin, &mut bad);
    out
}

/// What has been observed at each offset and of each value (for `inconsistent-offsets`).
struct Observed<'a> {
    by_offset: BTreeMap<(Part, i64), (Value, Ms)>,
    by_value: BTreeMap<Value, ((Part, i64), Ms)>,
    sent: &'a BTreeMap<Value, (bool, bool)>,
}

impl Observed<'_> {
    fn observe(
        &mut self,
        bad: &mut dyn FnMut(Kind, String),
        part: Part,
        o: i64,
        v: Value,
        t: Ms,
        what: &str,
    ) {
        if let Some(&(prev, pt)) = self.by_offset.get(&(part, o)) {
            if prev != v {
                bad(
                    Kind::InconsistentOffsets,
                    format!("{part}/{o} held value {prev} (t={pt}) but {what} found {v} (t={t})"),
                );
            }
        } else {
            self.by_offset.insert((part, o), (v, t));
        }
        // A plain producer's retry may legitimately write a value twice.
        let retried = self.sent.get(&v).is_some_and(|s| !s.0 && s.1);
        if !retried {
            if let Some(&(prev, pt)) = self.by_value.get(&v) {
                if prev != (part, o) {
                    bad(
                        Kind::InconsistentOffsets,
                        format!(
                            "value {v} was at {}/{} (t={pt}) but {what} found it at {part}/{o} (t={t})",
                            prev.0, prev.1
                        ),
                    );
                }
            } else {
                self.by_value.insert(v, ((part, o), t));
            }
        }
    }
}

fn check_groups(
    h: &History,
    cuts: &Cuts,
    fin: &BTreeMap<Part, BTreeMap<i64, Value>>,
    bad: &mut dyn FnMut(Kind, String),
) {
    // group-ownership and generation-backwards
    let mut owners: BTreeMap<(usize, usize, i32, Part), usize> = BTreeMap::new();
    let mut last_gen: BTreeMap<(usize, usize), i32> = BTreeMap::new();
    for e in &h.events {
        if let Event::Assigned {
            t,
            group,
            member,
            generation,
            parts,
        } = e
        {
            for p in parts {
                let era = cuts.era(*t);
                if let Some(&other) = owners.get(&(*group, era, *generation, *p)) {
                    if other != *member {
                        bad(
                            Kind::GroupOwnership,
                            format!("group {group} generation {generation}: partition {p} given to members {other} and {member} (t={t})"),
                        );
                    }
                }
                owners.insert((*group, era, *generation, *p), *member);
            }
            if let Some(&g) = last_gen.get(&(*group, *member)) {
                if *generation < g && !cuts.any() {
                    bad(
                        Kind::GenerationBackwards,
                        format!("group {group} member {member}: generation {generation} after {g} (t={t})"),
                    );
                }
            }
            last_gen.insert((*group, *member), *generation);
        }
    }

    // commit-past-fetched and commit-backwards
    let mut polled_max: BTreeMap<(usize, Part), i64> = BTreeMap::new();
    let mut started_at: BTreeMap<(usize, Part), BTreeSet<i64>> = BTreeMap::new();
    let mut commits: Vec<(Ms, usize, Part, i64)> = Vec::new();
    for e in &h.events {
        match e {
            Event::Poll {
                reader,
                part,
                records,
                ..
            } => {
                if let Some(&(o, _)) = records.last() {
                    let m = polled_max.entry((*reader, *part)).or_insert(-1);
                    *m = (*m).max(o);
                }
            }
            Event::CommittedRead {
                t,
                sent,
                group,
                member,
                part,
                offset,
            } => {
                started_at
                    .entry((*member, *part))
                    .or_default()
                    .insert(*offset);
                let floor = commits
                    .iter()
                    .filter(|c| c.0 < *sent && c.1 == *group && c.2 == *part)
                    .map(|c| c.3)
                    .max();
                if let Some(floor) = floor {
                    let cut = cuts.0.iter().any(|(at, _)| *at < *t);
                    if *offset < floor && !cut {
                        bad(
                            Kind::CommitBackwards,
                            format!("group {group} partition {part}: committed offset read as {offset} (t={t}) after {floor} was acknowledged"),
                        );
                    }
                }
            }
            Event::Committed {
                t,
                group,
                member,
                part,
                offset,
                ..
            } => {
                let max = polled_max.get(&(*member, *part)).copied().unwrap_or(-1);
                let started = started_at
                    .get(&(*member, *part))
                    .is_some_and(|s| s.contains(offset));
                if *offset > max + 1 && !started {
                    bad(
                        Kind::CommitPastFetched,
                        format!("group {group} member {member} committed {part}/{offset} (t={t}) but had read only up to {max}"),
                    );
                }
                commits.push((*t, *group, *part, *offset));
            }
            _ => {}
        }
    }

    // group-skip and group-double
    for (g, mode) in h.groups.iter().enumerate() {
        let mut processed: BTreeMap<(Part, i64), u32> = BTreeMap::new();
        for e in &h.events {
            if let Event::Processed {
                group,
                part,
                offset,
                ..
            } = e
            {
                if *group == g {
                    *processed.entry((*part, *offset)).or_default() += 1;
                }
            }
        }
        match mode {
            CommitMode::AfterProcessing => {
                if cuts.any() {
                    continue;
                }
                for (part, log) in fin {
                    for (o, v) in log {
                        if !processed.contains_key(&(*part, *o)) {
                            bad(
                                Kind::GroupSkip,
                                format!("at-least-once group {g} never processed {part}/{o} (value {v})"),
                            );
                        }
                    }
                }
            }
            CommitMode::BeforeProcessing => {
                if cuts.any() {
                    continue;
                }
                for ((part, o), n) in &processed {
                    if *n > 1 {
                        bad(
                            Kind::GroupDouble,
                            format!("at-most-once group {g} processed {part}/{o} {n} times"),
                        );
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! Every checker is proven able to fail: a clean history passes, and the same history with
    //! exactly one anomaly planted is reported with exactly that kind.
    use super::*;
    use crate::history::Outcome;

    /// A clean history: producer 0 writes 1,2 then 3 to partition 0; reader 10 reads them all;
    /// an at-least-once group 0 (member 20) processes and commits; at-most-once group 1 (member
    /// 21) commits and processes.
    fn clean() -> History {
        let mut h = History::new(true);
        h.groups = vec![CommitMode::AfterProcessing, CommitMode::BeforeProcessing];
        let ev = &mut h.events;
        let send = |t, values: Vec<u64>, attempt| Event::Send {
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
            records: vec![(0, 1), (1, 2), (2, 3)],
        });
        h
    }

    fn kinds(h: &History) -> BTreeSet<Kind> {
        check(h).into_iter().map(|a| a.kind).collect()
    }

    fn fin(h: &mut History) -> &mut Vec<(i64, Value)> {
        h.events
            .iter_mut()
            .find_map(|e| match e {
                Event::Final { records, .. } => Some(records),
                _ => None,
            })
            .unwrap()
    }

    #[test]
    fn a_clean_history_passes() {
        assert_eq!(check(&clean()), vec![]);
    }

    #[test]
    fn lost_write_fires() {
        let mut h = clean();
        fin(&mut h).pop();
        assert!(kinds(&h).contains(&Kind::LostWrite));
    }

    #[test]
    fn power_loss_excuses_only_what_the_policy_allows() {
        let mut h = clean();
        fin(&mut h).pop();
        h.events.insert(
            h.events.len() - 1,
            Event::Crash {
                t: 20,
                power_loss: true,
            },
        );
        h.events.insert(
            h.events.len() - 1,
            Event::Restart {
                t: 21,
                log_ends: vec![(0, 2)],
            },
        );
        assert!(
            kinds(&h).contains(&Kind::LostWrite),
            "group commit promises survival"
        );
        h.acks_survive_power_loss = false;
        assert!(
            !kinds(&h).contains(&Kind::LostWrite),
            "policy none excuses the cut"
        );
        // A process crash excuses nothing, whatever the policy.
        for e in &mut h.events {
            if let Event::Crash { power_loss, .. } = e {
                *power_loss = false;
            }
        }
        assert!(kinds(&h).contains(&Kind::LostWrite));
    }

    #[test]
    fn unseen_fires() {
        let mut h = clean();
        h.events
            .retain(|e| !matches!(e, Event::Poll { .. } | Event::Processed { .. }));
        h.groups.clear();
        h.events.retain(|e| !matches!(e, Event::Committed { .. }));
        assert_eq!(kinds(&h), BTreeSet::from([Kind::Unseen]));
    }

    #[test]
    fn duplicate_fires() {
        let mut h = clean();
        fin(&mut h).push((3, 3));
        assert!(kinds(&h).contains(&Kind::Duplicate));
    }

    #[test]
    fn failed_write_read_fires() {
        let mut h = clean();
        fin(&mut h).push((3, 4));
        assert!(kinds(&h).contains(&Kind::FailedWriteRead));
    }

    #[test]
    fn inconsistent_offsets_fires() {
        let mut h = clean();
        fin(&mut h)[1] = (1, 99);
        assert!(kinds(&h).contains(&Kind::InconsistentOffsets));
    }

    #[test]
    fn nonmonotonic_send_fires() {
        let mut h = clean();
        for e in &mut h.events {
            if let Event::SendDone {
                values,
                outcome: Outcome::Ok { base_offset },
                ..
            } = e
            {
                if values == &vec![3] {
                    *base_offset = 1;
                }
            }
        }
        assert!(kinds(&h).contains(&Kind::NonmonotonicSend));
    }

    #[test]
    fn nonmonotonic_poll_fires() {
        let mut h = clean();
        h.events.push(Event::Poll {
            t: 30,
            reader: 10,
            session: 0,
            part: 0,
            records: vec![(1, 2)],
        });
        assert_eq!(kinds(&h), BTreeSet::from([Kind::NonmonotonicPoll]));
    }

    #[test]
    fn poll_skip_fires() {
        let mut h = clean();
        for e in &mut h.events {
            if let Event::Poll {
                reader: 10,
                records,
                ..
            } = e
            {
                records.retain(|r| r.0 != 1);
            }
        }
        assert_eq!(kinds(&h), BTreeSet::from([Kind::PollSkip]));
    }

    #[test]
    fn group_ownership_fires() {
        let mut h = clean();
        h.events.push(Event::Assigned {
            t: 30,
            group: 0,
            member: 23,
            generation: 1,
            parts: vec![0],
        });
        assert_eq!(kinds(&h), BTreeSet::from([Kind::GroupOwnership]));
    }

    #[test]
    fn generation_backwards_fires() {
        let mut h = clean();
        for generation in [3, 2] {
            h.events.push(Event::Assigned {
                t: 30,
                group: 0,
                member: 20,
                generation,
                parts: vec![0],
            });
        }
        assert_eq!(kinds(&h), BTreeSet::from([Kind::GenerationBackwards]));
    }

    #[test]
    fn commit_past_fetched_fires() {
        let mut h = clean();
        h.events.push(Event::Committed {
            t: 30,
            sent: 29,
            group: 0,
            member: 20,
            generation: 1,
            part: 0,
            offset: 7,
        });
        assert_eq!(kinds(&h), BTreeSet::from([Kind::CommitPastFetched]));
    }

    #[test]
    fn commit_backwards_fires() {
        let mut h = clean();
        h.events.push(Event::CommittedRead {
            t: 31,
            sent: 30,
            group: 0,
            member: 22,
            part: 0,
            offset: 1,
        });
        assert_eq!(kinds(&h), BTreeSet::from([Kind::CommitBackwards]));
    }

    #[test]
    fn group_skip_fires() {
        let mut h = clean();
        h.events.retain(|e| {
            !matches!(
                e,
                Event::Processed {
                    group: 0,
                    offset: 1,
                    ..
                }
            )
        });
        assert_eq!(kinds(&h), BTreeSet::from([Kind::GroupSkip]));
    }

    #[test]
    fn group_double_fires() {
        let mut h = clean();
        h.events.push(Event::Processed {
            t: 40,
            group: 1,
            member: 21,
            generation: 2,
            part: 0,
            offset: 0,
            value: 1,
        });
        assert_eq!(kinds(&h), BTreeSet::from([Kind::GroupDouble]));
    }

    #[test]
    fn every_kind_has_a_planted_test() {
        // Keep this list in step with the tests above: a checker without a test that makes it
        // fire could be silently broken.
        let tested = [
            Kind::LostWrite,
            Kind::Unseen,
            Kind::Duplicate,
            Kind::FailedWriteRead,
            Kind::InconsistentOffsets,
            Kind::NonmonotonicSend,
            Kind::NonmonotonicPoll,
            Kind::PollSkip,
            Kind::GroupOwnership,
            Kind::GenerationBackwards,
            Kind::CommitPastFetched,
            Kind::CommitBackwards,
            Kind::GroupSkip,
            Kind::GroupDouble,
        ];
        assert_eq!(tested.len(), Kind::ALL.len());
    }
}
