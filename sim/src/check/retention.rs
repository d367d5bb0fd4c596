//! The log start, retention and ListOffsets.
//!
//! Retention (Kafka `retention.ms`, `retention.bytes`) deletes whole segments from the front of a
//! partition and moves its log start offset up. What a client may rely on:
//! * `log-start-backwards`: the log start never moves back (within one broker process: Kafka
//!   checkpoints the log start lazily, and after a crash it may come back lower);
//! * `log-start-above-hw`: the log start is never above the high watermark (in one fetch
//!   response, or an earliest answer against a high watermark asked for after it);
//! * `fetch-below-start`: a fetch below a log start already observed gets OFFSET_OUT_OF_RANGE,
//!   never records (a consumer then resets: `auto.offset.reset`);
//! * `latest-not-hw`: ListOffsets latest is the high watermark: never below one seen before it
//!   was asked, never above one seen after it was answered;
//! * `offset-for-timestamp`: ListOffsets for timestamp T answers the first record whose
//!   timestamp is ≥ T (KIP-79).
//!
//! And records above the log start are never lost: `lost-write` (durability) excuses only what
//! is below the final log start.
//!
//! Observations are compared only within one broker process (no crash between them): across a
//! restart the high watermark and the log start are recovered anew.

use super::{Cuts, Facts, Kind};
use crate::history::{Event, History, Ms, Part, Value};
use std::collections::BTreeMap;

/// Observations of one quantity per partition since the last crash, in the order they were
/// received, with the running maximum: "the largest value seen before time t".
#[derive(Default)]
struct Seen(BTreeMap<Part, Vec<(Ms, i64, i64)>>);

impl Seen {
    fn add(&mut self, part: Part, t: Ms, v: i64) {
        let list = self.0.entry(part).or_default();
        let max = list.last().map_or(v, |l| l.2.max(v));
        list.push((t, v, max));
    }
    /// The largest value received strictly before `sent`.
    fn max_before(&self, part: Part, sent: Ms) -> Option<i64> {
        let list = self.0.get(&part)?;
        let i = list.partition_point(|e| e.0 < sent);
        (i > 0).then(|| list[i - 1].2)
    }
    fn clear(&mut self) {
        self.0.clear();
    }
}

/// Every observation of a log start: (time, broker process, offset), per partition.
type StartLog = BTreeMap<Part, Vec<(Ms, usize, i64)>>;

/// A bound on where partition `part`'s log started at `t`, in process `incarnation`: the first
/// log start observed at or after `t` in that process (it only grows there). `None` if nothing
/// was observed then: the log may have started anywhere.
fn start_at_most(log: &StartLog, part: Part, t: Ms, incarnation: usize) -> Option<i64> {
    log.get(&part)?
        .iter()
        .find(|(at, inc, _)| *at >= t && *inc == incarnation)
        .map(|e| e.2)
}

pub(super) fn check(h: &History, cuts: &Cuts, f: &Facts, bad: &mut dyn FnMut(Kind, String)) {
    let mut start_log: StartLog = BTreeMap::new();
    let mut incarnation = 0;
    for e in &h.events {
        match e {
            Event::Crash { .. } => incarnation += 1,
            Event::Fetched {
                t,
                part,
                error: 0,
                log_start,
                ..
            } => start_log
                .entry(*part)
                .or_default()
                .push((*t, incarnation, *log_start)),
            Event::Offsets {
                t,
                part,
                spec: -2,
                offset,
                ..
            } => start_log
                .entry(*part)
                .or_default()
                .push((*t, incarnation, *offset)),
            _ => {}
        }
    }
    let mut incarnation = 0;
    let mut starts = Seen::default();
    let mut hws = Seen::default();
    let mut latests = Seen::default();
    for e in &h.events {
        match e {
            Event::Crash { .. } => {
                incarnation += 1;
                starts.clear();
                hws.clear();
                latests.clear();
            }
            Event::Fetched {
                t,
                sent,
                part,
                offset,
                error,
                log_start,
                high_watermark,
                ..
            } => {
                let start_before = starts.max_before(*part, *sent);
                if *error == 0 {
                    if let Some(s) = start_before.filter(|s| s > log_start) {
                        bad(
                            Kind::LogStartBackwards,
                            format!("{part}: a fetch answered at t={t} reports log start {log_start}, below {s} seen before it was sent"),
                        );
                    }
                    let start = start_before.unwrap_or(-1).max(*log_start);
                    if start > *high_watermark {
                        bad(
                            Kind::LogStartAboveHw,
                            format!("{part}: log start {start} above the high watermark {high_watermark} (fetch answered at t={t})"),
                        );
                    }
                    if *offset < start {
                        bad(
                            Kind::FetchBelowStart,
                            format!("{part}: a fetch at offset {offset} below the log start {start} was answered with records, not OFFSET_OUT_OF_RANGE (t={t})"),
                        );
                    }
                    if let Some(l) = latests
                        .max_before(*part, *sent)
                        .filter(|l| l > high_watermark)
                    {
                        bad(
                            Kind::LatestNotHw,
                            format!("{part}: ListOffsets latest answered {l}, above the high watermark {high_watermark} of a fetch sent after it (t={t})"),
                        );
                    }
                    starts.add(*part, *t, *log_start);
                    hws.add(*part, *t, *high_watermark);
                }
            }
            Event::Offsets {
                t,
                sent,
                part,
                spec,
                offset,
                ..
            } => match *spec {
                -2 => {
                    if let Some(s) = starts.max_before(*part, *sent).filter(|s| s > offset) {
                        bad(
                            Kind::LogStartBackwards,
                            format!("{part}: ListOffsets earliest answered {offset} at t={t}, below the log start {s} seen before it was sent"),
                        );
                    }
                    starts.add(*part, *t, *offset);
                }
                -1 => {
                    if let Some(hw) = hws.max_before(*part, *sent).filter(|hw| hw > offset) {
                        bad(
                            Kind::LatestNotHw,
                            format!("{part}: ListOffsets latest answered {offset} at t={t}, below the high watermark {hw} seen before it was sent"),
                        );
                    }
                    if let Some(s) = starts.max_before(*part, *sent).filter(|s| s > offset) {
                        bad(
                            Kind::LogStartAboveHw,
                            format!("{part}: ListOffsets latest answered {offset} at t={t}, below the log start {s} seen before it was sent"),
                        );
                    }
                    latests.add(*part, *t, *offset);
                    hws.add(*part, *t, *offset);
                }
                target => {
                    // Only records the log surely still held count: at or above a log start
                    // observed after the answer.
                    let from = start_at_most(&start_log, *part, *t, incarnation);
                    let q = Query {
                        part: *part,
                        target,
                        offset: *offset,
                        sent: *sent,
                        t: *t,
                        from,
                    };
                    offset_for_timestamp(f, cuts, &q, bad)
                }
            },
            _ => {}
        }
    }
}

/// A ListOffsets query by timestamp and its answer.
struct Query {
    part: Part,
    target: i64,
    offset: i64,
    sent: Ms,
    t: Ms,
    /// At most where the log started when it was answered.
    from: Option<i64>,
}

/// ListOffsets by timestamp (KIP-79): Kafka answers the offset of the first *record* whose
/// timestamp is at or after the target, or −1 if there is none below the high watermark.
///
/// With timestamps that are not monotonic in the log (producers' clocks differ, a retried batch
/// keeps its old timestamp), this is still exact: segments are skipped while their largest
/// timestamp is below the target, and the time index holds (largest timestamp so far, offset of
/// the batch that first reached it), so the scan starts after records that are all below the
/// target. Every record before the answer (above the log start) has a timestamp < target, and
/// the record at the answer one ≥ target. That is what is checked, against the final log.
///
/// The workload stamps each record on its own (timestamps inside a batch mostly grow but may tie
/// or go back), so a target often falls inside a batch: an answer at batch granularity (the
/// batch's first offset) is caught here, as the planted test shows.
fn offset_for_timestamp(f: &Facts, cuts: &Cuts, q: &Query, bad: &mut dyn FnMut(Kind, String)) {
    let &Query {
        part,
        target,
        offset,
        sent,
        t,
        from,
    } = q;
    let Some(log) = f.fin.get(&part) else { return };
    // Records below the log start at the time (retention deleted them) are no candidates.
    let Some(from) = from else { return };
    let ts = |v: &Value| f.timestamp_of.get(v).copied();
    if offset >= 0 {
        if cuts.any() {
            // A permitted power loss may have replaced the records the broker looked at.
            return;
        }
        if let Some(got) = log.get(&offset).and_then(ts) {
            if got < target {
                bad(
                    Kind::OffsetForTimestamp,
                    format!("{part}: ListOffsets for timestamp {target} answered {offset} (t={t}), whose record has the earlier timestamp {got}"),
                );
            }
        }
        if let Some((o, v, got)) = log
            .range(from.min(offset)..offset)
            .filter_map(|(o, v)| ts(v).map(|x| (*o, *v, x)))
            .find(|(_, _, x)| *x >= target)
        {
            bad(
                Kind::OffsetForTimestamp,
                format!("{part}: ListOffsets for timestamp {target} answered {offset} (t={t}), but {part}/{o} (value {v}) before it has the timestamp {got}, not below the target"),
            );
        }
    } else {
        // No record at or after the target: then no such record was readable when it was asked.
        for (o, v) in log.range(from..) {
            let Some(x) = ts(v).filter(|x| *x >= target) else {
                continue;
            };
            let read_before = f.seen_at.get(v).is_some_and(|obs| {
                obs.iter().any(|&(p, po, at)| {
                    // Within one broker process: a restarted broker's high watermark starts again
                    // from what it recovered, and ListOffsets looks only below it.
                    let crashed = f.crashes.iter().any(|c| *c >= at && *c <= t);
                    p == part && po == *o && at < sent && !cuts.excused(p, po, at) && !crashed
                })
            });
            if read_before {
                bad(
                    Kind::OffsetForTimestamp,
                    format!("{part}: ListOffsets for timestamp {target} found no record (t={t}), but {part}/{o} (value {v}, timestamp {x}) had been read before it was asked"),
                );
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{fetched, kinds, kinds_with};
    use super::super::Kind;
    use crate::history::Event;
    use std::collections::BTreeSet;

    fn offsets(t: u64, spec: i64, offset: i64) -> Event {
        Event::Offsets {
            t,
            sent: t - 1,
            reader: 10,
            part: 0,
            spec,
            offset,
        }
    }

    #[test]
    fn a_clean_retention_history_passes() {
        let ok = vec![
            fetched(20, 0, 0, 0, 3),
            offsets(22, -2, 0),
            offsets(24, -1, 3),
            fetched(26, 3, 0, 0, 3),
            // Timestamps: value 1 and 2 at 1, value 3 at 3 (the clean history's send times).
            offsets(28, 1_700_000_000_001, 0),
            offsets(29, 1_700_000_000_002, 2),
            offsets(30, 1_700_000_000_003, 2),
            offsets(31, 1_700_000_000_004, -1),
            // Out of range above the end is what Kafka answers (at 0, inside the log, it would be
            // `spurious-out-of-range`).
            fetched(32, 4, 1, -1, -1),
            // A later look at the log start bounds where it was during the queries.
            fetched(34, 3, 0, 0, 3),
        ];
        assert_eq!(kinds_with(ok), BTreeSet::new());
    }

    #[test]
    fn log_start_backwards_fires() {
        let h = kinds_with(vec![offsets(20, -2, 2), fetched(22, 2, 0, 1, 3)]);
        assert_eq!(h, BTreeSet::from([Kind::LogStartBackwards]));
        // Across a crash the log start is recovered anew: not an anomaly.
        let h = kinds_with(vec![
            offsets(20, -2, 2),
            Event::Crash {
                t: 21,
                power_loss: false,
            },
            Event::Restart {
                t: 21,
                log_ends: vec![(0, 3)],
            },
            fetched(23, 2, 0, 1, 3),
        ]);
        assert_eq!(h, BTreeSet::new());
    }

    #[test]
    fn log_start_above_hw_fires() {
        assert_eq!(
            kinds_with(vec![fetched(20, 3, 0, 3, 2)]),
            BTreeSet::from([Kind::LogStartAboveHw])
        );
    }

    #[test]
    fn fetch_below_start_fires() {
        // The reader saw the log start at 2, then a fetch at 0 came back with records.
        assert_eq!(
            kinds_with(vec![offsets(20, -2, 2), fetched(22, 0, 0, 2, 3)]),
            BTreeSet::from([Kind::FetchBelowStart])
        );
    }

    #[test]
    fn latest_not_hw_fires() {
        assert_eq!(
            kinds_with(vec![fetched(20, 3, 0, 0, 3), offsets(22, -1, 2)]),
            BTreeSet::from([Kind::LatestNotHw])
        );
        assert_eq!(
            kinds_with(vec![offsets(20, -1, 3), fetched(22, 2, 0, 0, 2)]),
            BTreeSet::from([Kind::LatestNotHw])
        );
    }

    #[test]
    fn offset_for_timestamp_fires() {
        // Too late: offset 2 holds timestamp 3, but offsets 0 and 1 (timestamp 1) answer target 1.
        assert_eq!(
            kinds_with(vec![
                offsets(20, 1_700_000_000_001, 2),
                fetched(40, 3, 0, 0, 3)
            ]),
            BTreeSet::from([Kind::OffsetForTimestamp])
        );
        // Too early: the record at 0 has timestamp 1 < 3.
        assert_eq!(
            kinds_with(vec![
                offsets(20, 1_700_000_000_003, 0),
                fetched(40, 3, 0, 0, 3)
            ]),
            BTreeSet::from([Kind::OffsetForTimestamp])
        );
        // Without a later look at the log start, retention may have deleted what was before.
        assert_eq!(
            kinds_with(vec![offsets(20, 1_700_000_000_001, 2)]),
            BTreeSet::new()
        );
        // Inside a batch: values 1 and 2 (offsets 0 and 1) share a batch but carry timestamps 1
        // and 6. Target 4 is the record at 1; the batch's first offset, 0, is too early.
        let inside = |answer: i64| {
            let mut h = super::super::testing::clean();
            for e in &mut h.events {
                if let Event::Send {
                    values,
                    timestamps_ms,
                    ..
                } = e
                {
                    if values == &vec![1, 2] {
                        timestamps_ms[1] = 1_700_000_000_006;
                    }
                }
            }
            let at = h.events.len() - 1;
            h.events.insert(at, offsets(20, 1_700_000_000_004, answer));
            h.events.insert(at + 1, fetched(40, 3, 0, 0, 3));
            kinds(&h)
        };
        assert_eq!(inside(0), BTreeSet::from([Kind::OffsetForTimestamp]));
        assert_eq!(inside(1), BTreeSet::new());
        // None found, though the record at 2 (timestamp 3) had been read before.
        assert_eq!(
            kinds_with(vec![
                offsets(20, 1_700_000_000_003, -1),
                fetched(40, 3, 0, 0, 3)
            ]),
            BTreeSet::from([Kind::OffsetForTimestamp])
        );
    }
}
