//! Committed offsets: a commit never runs ahead of what the member read
//! (`commit-past-fetched`), and a committed offset read back never moves behind one already
//! acknowledged (`commit-backwards`).

use super::{Cuts, Kind};
use crate::history::{Event, History, Ms, Part};
use std::collections::{BTreeMap, BTreeSet};

pub(super) fn check(h: &History, cuts: &Cuts, bad: &mut dyn FnMut(Kind, String)) {
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
}

#[cfg(test)]
mod tests {
    use super::super::testing::{clean, kinds};
    use super::super::Kind;
    use crate::history::Event;
    use std::collections::BTreeSet;

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
}
