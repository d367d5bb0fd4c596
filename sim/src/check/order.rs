//! Per-partition ordering: an offset names one record forever (`inconsistent-offsets`), a
//! producer's acknowledged batches land in the order it sent them (`nonmonotonic-send`), and a
//! consumer reads offsets in order (`nonmonotonic-poll`) without jumping over one (`poll-skip`).

use super::{Cuts, Facts, Kind};
use crate::history::{Event, History, Ms, Outcome, Part, Value};
use std::collections::{BTreeMap, BTreeSet};

pub(super) fn check(h: &History, cuts: &Cuts, f: &Facts, bad: &mut dyn FnMut(Kind, String)) {
    // nonmonotonic-send: per producer and partition, the acknowledged batches in the order the
    // producer made them (their values grow with it) sit at growing offsets. Acknowledgements may
    // come in another order: a retried batch is answered with its original offset after later
    // batches were answered (five in flight, KIP-98).
    let mut acked: BTreeMap<(usize, Part), Vec<AckedBatch>> = BTreeMap::new();
    let mut first_ack: BTreeSet<Value> = BTreeSet::new();
    for e in &h.events {
        let Event::SendDone {
            t,
            producer,
            part,
            values,
            outcome: Outcome::Ok { base_offset },
        } = e
        else {
            continue;
        };
        if *base_offset < 0 || values.is_empty() || !first_ack.insert(values[0]) {
            continue;
        }
        let last = base_offset + values.len() as i64 - 1;
        acked
            .entry((*producer, *part))
            .or_default()
            .push((values[0], *base_offset, last, *t));
    }
    for ((producer, part), mut batches) in acked {
        batches.sort();
        for w in batches.windows(2) {
            let ((_, _, prev, prev_t), (_, base, _, t)) = (w[0], w[1]);
            let (lo, hi) = (prev_t.min(t), prev_t.max(t));
            let cut_between = cuts.0.iter().any(|(at, _)| *at > lo && *at <= hi);
            if base <= prev && !cut_between {
                bad(
                    Kind::NonmonotonicSend,
                    format!("producer {producer}: a later batch was acknowledged at {part}/{base} (t={t}), not after an earlier one ending at {prev} (t={prev_t})"),
                );
            }
        }
    }

    // inconsistent-offsets: every observation of an offset names the same value, and every
    // observation of a value the same offset; a policy-permitted power loss forgets what it cut.
    let mut obs = Observed {
        by_offset: BTreeMap::new(),
        by_value: BTreeMap::new(),
        sent: &f.sent,
    };
    let mut power_lost = false;
    for e in &h.events {
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
                        &mut *bad,
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
                    obs.observe(&mut *bad, *part, o, v, *t, "a poll");
                }
            }
            Event::Processed {
                t,
                part,
                offset,
                value,
                ..
            } => obs.observe(&mut *bad, *part, *offset, *value, *t, "a group member"),
            Event::Final { part, records, .. } => {
                for &(o, v) in records {
                    obs.observe(&mut *bad, *part, o, v, Ms::MAX, "the final read");
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
}

/// An acknowledged batch: (first value, base offset, last offset, time of the acknowledgement).
type AckedBatch = (Value, i64, i64, Ms);

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

#[cfg(test)]
mod tests {
    use super::super::testing::{clean, fin, kinds};
    use super::super::Kind;
    use crate::history::Event;
    use crate::history::Outcome;
    use std::collections::BTreeSet;

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
}
