//! Durability: what the broker acknowledged stays in the log (`lost-write`), consumers
//! eventually read it (`unseen`), and what it refused never appears (`failed-write-read`).
//!
//! A power loss under a policy that does not promise survival excuses what it cut, and only
//! that ([`Cuts`]); a process crash excuses nothing. Retention excuses what it deleted: records
//! below the final log start.

use super::{Cuts, Facts, Kind};
use crate::history::{Event, History, Outcome};

pub(super) fn check(h: &History, cuts: &Cuts, f: &Facts, bad: &mut dyn FnMut(Kind, String)) {
    for e in &h.events {
        let Event::SendDone {
            t,
            part,
            values,
            outcome,
            ..
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
                    // Retention deleted it: below the log start is not lost, and only below.
                    if offset < f.fin_start.get(part).copied().unwrap_or(0) {
                        continue;
                    }
                    match f.fin.get(part).and_then(|m| m.get(&offset)) {
                        Some(got) if got == v => {
                            if !f.seen.contains(v) && !f.in_shadow(*part, offset, *t) {
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
            }
            Outcome::Fail { code } => {
                for v in values {
                    // A read that a policy-permitted power loss later cut does not count: the
                    // write happened, was lost, and its retry was then refused.
                    let read = f
                        .seen_at
                        .get(v)
                        .is_some_and(|obs| obs.iter().any(|&(p, o, at)| !cuts.excused(p, o, at)));
                    if read || f.fin_by_value.contains_key(v) {
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
}

#[cfg(test)]
mod tests {
    use super::super::testing::{clean, fin, kinds};
    use super::super::Kind;
    use crate::history::Event;
    use std::collections::BTreeSet;

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
    fn retention_excuses_only_what_is_below_the_log_start() {
        let mut h = clean();
        // Retention deleted offsets 0 and 1: the final read starts at 2.
        fin(&mut h).drain(..2);
        for e in &mut h.events {
            if let Event::Final { log_start, .. } = e {
                *log_start = 2;
            }
        }
        assert!(!kinds(&h).contains(&Kind::LostWrite));
        // ... but a record above the log start must be there.
        fin(&mut h).clear();
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
    fn failed_write_read_fires() {
        let mut h = clean();
        fin(&mut h).push((3, 4));
        assert!(kinds(&h).contains(&Kind::FailedWriteRead));
    }
}
