//! Consumer groups: within one generation a partition has one owner (`group-ownership`),
//! a member's generations only grow (`generation-backwards`), an at-least-once group processes
//! every record (`group-skip`) and an at-most-once group none twice (`group-double`), and no
//! zombie's commit is accepted (`zombie-commit`).

use super::{Cuts, Facts, Kind};
use crate::history::{CommitMode, Event, History, Ms, Part};
use std::collections::BTreeMap;

pub(super) fn check(h: &History, cuts: &Cuts, f: &Facts, bad: &mut dyn FnMut(Kind, String)) {
    let fin = &f.fin;
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

    // zombie-commit: the coordinator accepts an OffsetCommit only from a member of the current
    // generation (else ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID, or FENCED_INSTANCE_ID for a static
    // member replaced by a new instance). A member evicted after its session timed out, or one
    // that missed a rebalance, is a zombie: it still holds an older generation. So a commit sent
    // after some member of the group had been handed a newer generation must not be
    // acknowledged, and the committed offset of a partition only ever comes from the current
    // generation. (A policy-permitted power loss may wipe the group and restart generations:
    // `era`.)
    let mut newest: BTreeMap<(usize, usize), Vec<(Ms, i32)>> = BTreeMap::new();
    for e in &h.events {
        match e {
            Event::Assigned {
                t,
                group,
                generation,
                ..
            } => {
                let list = newest.entry((*group, cuts.era(*t))).or_default();
                let max = list.last().map_or(*generation, |l| l.1.max(*generation));
                list.push((*t, max));
            }
            Event::Committed {
                t,
                sent,
                group,
                member,
                generation,
                part,
                offset,
            } => {
                if cuts.era(*sent) != cuts.era(*t) {
                    continue;
                }
                let Some(list) = newest.get(&(*group, cuts.era(*sent))) else {
                    continue;
                };
                let i = list.partition_point(|x| x.0 < *sent);
                if i > 0 && list[i - 1].1 > *generation {
                    bad(
                        Kind::ZombieCommit,
                        format!("group {group} member {member}: a commit of {part}/{offset} in generation {generation}, sent at t={sent} after generation {} was handed out, was accepted (t={t})", list[i - 1].1),
                    );
                }
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
    use super::super::testing::{clean, kinds};
    use super::super::Kind;
    use crate::history::Event;
    use std::collections::BTreeSet;

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
    fn zombie_commit_fires() {
        let mut h = clean();
        // Member 23 is handed generation 2 at t=30; member 20, still in generation 1 (stalled
        // past its session timeout), then has a commit accepted.
        h.events.push(Event::Assigned {
            t: 30,
            group: 0,
            member: 23,
            generation: 2,
            parts: vec![0],
        });
        h.events.push(Event::Committed {
            t: 32,
            sent: 31,
            group: 0,
            member: 20,
            generation: 1,
            part: 0,
            offset: 3,
        });
        assert_eq!(kinds(&h), BTreeSet::from([Kind::ZombieCommit]));
        // Sent before the new generation existed, it may be accepted.
        if let Some(Event::Committed { sent, .. }) = h.events.last_mut() {
            *sent = 29;
        }
        assert_eq!(kinds(&h), BTreeSet::new());
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
}
