//! Falling off the log: OFFSET_OUT_OF_RANGE and `auto.offset.reset`.
//!
//! A consumer whose position is below the partition's log start (retention deleted it) or above
//! its log end (a power loss cut it) gets OFFSET_OUT_OF_RANGE, asks ListOffsets for the earliest
//! or latest offset (its `auto.offset.reset`), and reads on from there. Two promises:
//! * `spurious-out-of-range`: the error comes only for a position really out of range. A
//!   position at or below a high watermark observed before the fetch was sent, and at or above a
//!   log start observed after it was answered (both in the same broker process, where the high
//!   watermark and the log start only grow), was inside the log when the broker looked;
//! * `poll-skip` after a reset: the first records read at the new position start exactly
//!   there (the offsets are dense), so the reset itself skips nothing it did not mean to.
//!
//! `fetch-below-start` (check/retention.rs) is the other side: records instead of the error.

use super::{Cuts, Kind};
use crate::history::{Event, History, Ms, Part};
use std::collections::BTreeMap;

/// Kafka's OFFSET_OUT_OF_RANGE.
const OFFSET_OUT_OF_RANGE: i16 = 1;

pub(super) fn check(h: &History, cuts: &Cuts, bad: &mut dyn FnMut(Kind, String)) {
    // Every observation of a high watermark, by when its answer arrived, and of a log start, by
    // when its request was sent: (time, broker process, value). A high watermark received
    // before a request was sent was the broker's before it saw that request; a log start asked
    // for after an answer arrived is the broker's after it gave that answer. (Timing a log start
    // by its arrival is wrong: a response held up on a clogged link arrives late with an old
    // log start; seed 609.)
    let mut hws: BTreeMap<Part, Vec<(Ms, usize, i64)>> = BTreeMap::new();
    let mut starts: BTreeMap<Part, Vec<(Ms, usize, i64)>> = BTreeMap::new();
    let mut incarnation = 0;
    for e in &h.events {
        match e {
            Event::Crash { .. } => incarnation += 1,
            Event::Fetched {
                t,
                sent,
                part,
                error: 0,
                log_start,
                high_watermark,
                ..
            } => {
                hws.entry(*part)
                    .or_default()
                    .push((*t, incarnation, *high_watermark));
                starts
                    .entry(*part)
                    .or_default()
                    .push((*sent, incarnation, *log_start));
            }
            Event::Offsets {
                t,
                sent,
                part,
                spec,
                offset,
                ..
            } if *spec == -1 || *spec == -2 => {
                let (to, at) = if *spec == -1 {
                    (&mut hws, *t)
                } else {
                    (&mut starts, *sent)
                };
                to.entry(*part)
                    .or_default()
                    .push((at, incarnation, *offset));
            }
            _ => {}
        }
    }
    let mut incarnation = 0;
    for e in &h.events {
        match e {
            Event::Crash { .. } => incarnation += 1,
            Event::Fetched {
                t,
                sent,
                reader,
                part,
                offset,
                error: OFFSET_OUT_OF_RANGE,
                ..
            } => {
                let hw_before = hws.get(part).and_then(|l| {
                    l.iter()
                        .filter(|(at, inc, _)| *at < *sent && *inc == incarnation)
                        .map(|e| e.2)
                        .max()
                });
                let start_after = starts.get(part).and_then(|l| {
                    l.iter()
                        .filter(|(at, inc, _)| *at > *t && *inc == incarnation)
                        .map(|e| e.2)
                        .min()
                });
                if let (Some(hw), Some(start)) = (hw_before, start_after) {
                    if (start..=hw).contains(offset) {
                        bad(
                            Kind::SpuriousOutOfRange,
                            format!("consumer {reader}: a fetch of {part} at {offset} was answered OFFSET_OUT_OF_RANGE (t={t}), though the high watermark was already {hw} and the log start was still at most {start}"),
                        );
                    }
                }
            }
            _ => {}
        }
    }

    // After a reset the position's first records start at the reset offset. A power loss the
    // policy permits may cut the log under the new position: then nothing is promised.
    if cuts.any() {
        return;
    }
    let mut reset_at: BTreeMap<(usize, u32, Part), (i64, Ms)> = BTreeMap::new();
    for e in &h.events {
        match e {
            Event::Reset {
                t,
                reader,
                part,
                session,
                offset,
            } => {
                reset_at.insert((*reader, *session, *part), (*offset, *t));
            }
            Event::Poll {
                t,
                reader,
                session,
                part,
                records,
            } => {
                let Some((at, reset_t)) = reset_at.remove(&(*reader, *session, *part)) else {
                    continue;
                };
                if let Some(&(first, _)) = records.first() {
                    if first != at {
                        bad(
                            Kind::PollSkip,
                            format!("consumer {reader} reset {part} to {at} (t={reset_t}) but then read from {first} (t={t})"),
                        );
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{fetched, kinds_with};
    use super::super::Kind;
    use crate::history::Event;
    use std::collections::BTreeSet;

    #[test]
    fn spurious_out_of_range_fires() {
        // The high watermark was 3 and the log start 0 before and after: offset 1 is in range.
        let planted = vec![
            fetched(20, 3, 0, 0, 3),
            fetched(22, 1, 1, -1, -1),
            fetched(24, 3, 0, 0, 3),
        ];
        assert_eq!(
            kinds_with(planted),
            BTreeSet::from([Kind::SpuriousOutOfRange])
        );
        // Beyond the high watermark, or below a log start seen later, it may be out of range.
        let above = vec![
            fetched(20, 3, 0, 0, 3),
            fetched(22, 5, 1, -1, -1),
            fetched(24, 3, 0, 0, 3),
        ];
        assert_eq!(kinds_with(above), BTreeSet::new());
        let below = vec![
            fetched(20, 3, 0, 0, 3),
            fetched(22, 1, 1, -1, -1),
            fetched(24, 3, 0, 2, 3),
        ];
        assert_eq!(kinds_with(below), BTreeSet::new());
        // An answer that arrives after the error but was asked for before it (held up on a
        // clogged link) says nothing about the log start after the error (seed 609).
        let late = Event::Fetched {
            t: 24,
            sent: 21,
            reader: 10,
            part: 0,
            offset: 3,
            error: 0,
            log_start: 0,
            high_watermark: 3,
        };
        let held_up = vec![fetched(20, 3, 0, 0, 3), fetched(22, 1, 1, -1, -1), late];
        assert_eq!(kinds_with(held_up), BTreeSet::new());
    }

    #[test]
    fn a_reset_that_skips_fires() {
        let reset = |offset| Event::Reset {
            t: 20,
            reader: 10,
            part: 0,
            session: 1,
            offset,
        };
        let poll = Event::Poll {
            t: 21,
            reader: 10,
            session: 1,
            part: 0,
            records: vec![(1, 2), (2, 3)],
        };
        assert_eq!(
            kinds_with(vec![reset(0), poll.clone()]),
            BTreeSet::from([Kind::PollSkip])
        );
        assert_eq!(kinds_with(vec![reset(1), poll]), BTreeSet::new());
    }
}
