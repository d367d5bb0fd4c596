//! DeleteRecords (KIP-107): once the broker acknowledged that a partition's records below a low
//! watermark are deleted, none of them is served again (`deleted-served`): no fetch sent after
//! the acknowledgement at an offset below it is answered with records, no ListOffsets earliest
//! sent after it answers lower, and the final log does not start below it.
//!
//! gregor makes the new log start durable before acknowledging, so this holds across crashes
//! too, with one exception: under a durability policy that lets a power loss take acknowledged
//! records, the log may come back shorter than the low watermark, and the broker starts it at
//! its recovered end; a power loss after the acknowledgement then excuses what follows.
//!
//! The other half, "no acknowledged record at or above the low watermark disappears", is
//! `lost-write` (check/durability.rs), which excuses a missing record only below the final log
//! start.

use super::{Cuts, Kind};
use crate::history::{Event, History, Ms, Part};

pub(super) fn check(h: &History, cuts: &Cuts, bad: &mut dyn FnMut(Kind, String)) {
    // (acknowledged at, partition, low watermark)
    let deleted: Vec<(Ms, Part, i64)> = h
        .events
        .iter()
        .filter_map(|e| match e {
            Event::RecordsDeleted {
                t,
                part,
                low_watermark,
                ..
            } => Some((*t, *part, *low_watermark)),
            _ => None,
        })
        .collect();
    // The low watermark in force for a request sent at `sent`: the highest acknowledged before
    // it and not excused by a policy-permitted power loss in between.
    let in_force = |part: Part, sent: Ms| {
        deleted
            .iter()
            .filter(|(t, p, _)| *p == part && *t < sent)
            .filter(|(t, _, _)| !cuts.0.iter().any(|(at, _)| at > t && *at <= sent))
            .map(|(_, _, lw)| *lw)
            .max()
    };
    let mut deleted_before: Vec<(Ms, Part, i64)> = Vec::new();
    for e in &h.events {
        match e {
            Event::RecordsDeleted {
                t,
                part,
                low_watermark,
                ..
            } => deleted_before.push((*t, *part, *low_watermark)),
            Event::Fetched {
                t,
                sent,
                part,
                offset,
                error: 0,
                ..
            } => {
                if let Some(lw) = in_force(*part, *sent).filter(|lw| offset < lw) {
                    bad(
                        Kind::DeletedServed,
                        format!("{part}: a fetch at offset {offset}, sent at t={sent} after records below {lw} were deleted, was answered with records (t={t})"),
                    );
                }
            }
            Event::Offsets {
                t,
                sent,
                part,
                spec: -2,
                offset,
                ..
            } => {
                if let Some(lw) = in_force(*part, *sent).filter(|lw| offset < lw) {
                    bad(
                        Kind::DeletedServed,
                        format!("{part}: ListOffsets earliest answered {offset} at t={t}, below the low watermark {lw} acknowledged before it was sent"),
                    );
                }
            }
            Event::Final {
                part, log_start, ..
            } => {
                // Deletions acknowledged before the auditor finished its read (earlier in the
                // history: a Final has no time of its own).
                let before_final = deleted_before
                    .iter()
                    .filter(|(_, p, _)| p == part)
                    .filter(|(t, _, _)| !cuts.0.iter().any(|(at, _)| at > t))
                    .map(|(_, _, lw)| *lw)
                    .max();
                if let Some(lw) = before_final.filter(|lw| log_start < lw) {
                    bad(
                        Kind::DeletedServed,
                        format!("{part}: the final log starts at {log_start}, below the acknowledged low watermark {lw}"),
                    );
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{clean, fetched, kinds};
    use super::super::Kind;
    use crate::history::Event;
    use std::collections::BTreeSet;

    fn deleted(t: u64, low_watermark: i64) -> Event {
        Event::RecordsDeleted {
            t,
            sent: t - 1,
            reader: 10,
            part: 0,
            low_watermark,
        }
    }

    /// The clean history with `evs` before the final read, which starts at `start`.
    fn kinds_from(evs: Vec<Event>, start: i64) -> BTreeSet<Kind> {
        let mut h = clean();
        let at = h.events.len() - 1;
        for (i, e) in evs.into_iter().enumerate() {
            h.events.insert(at + i, e);
        }
        if let Some(Event::Final {
            log_start, records, ..
        }) = h.events.last_mut()
        {
            *log_start = start;
            records.retain(|(o, _)| *o >= start);
        }
        kinds(&h)
    }

    #[test]
    fn a_fetch_below_an_acknowledged_low_watermark_is_caught() {
        // Deleting below 1, then fetching from 1 (or from 0 before the ack), is fine...
        let ok = vec![
            fetched(30, 0, 0, 0, 3),
            deleted(31, 1),
            fetched(33, 1, 0, 1, 3),
        ];
        assert_eq!(kinds_from(ok, 1), BTreeSet::new());
        // ...but records served from 0 after the acknowledgement are not (by a broker that
        // forgot the deletion, so its answer reports the old log start).
        let served = vec![deleted(31, 1), fetched(33, 0, 0, 0, 3)];
        assert_eq!(kinds_from(served, 1), BTreeSet::from([Kind::DeletedServed]));
    }

    #[test]
    fn a_final_log_starting_below_the_low_watermark_is_caught() {
        let mut h = clean();
        let at = h.events.len() - 1;
        h.events.insert(at, deleted(31, 2));
        assert_eq!(
            kinds(&h),
            BTreeSet::from([Kind::DeletedServed]),
            "the final read still starts at 0"
        );
        if let Some(Event::Final { log_start, .. }) = h.events.last_mut() {
            *log_start = 2;
        }
        // The records below 2 are gone from the final read: deleted, not lost.
        let mut h2 = h.clone();
        if let Some(Event::Final { records, .. }) = h2.events.last_mut() {
            records.retain(|(o, _)| *o >= 2);
        }
        assert_eq!(kinds(&h2), BTreeSet::new());
    }
}
