//! `two-owners`: no partition is owned by two members of one group at the same time.
//!
//! A member owns a partition from the `Assigned` that gives it until the `Revoked` that gives
//! it up: a cooperative member keeps it through rebalances while its assignments keep listing
//! it (KIP-429); an eager member gives up everything as it rejoins; a member that crashed or
//! learned it was evicted has lost everything. `group-ownership` already catches one partition
//! handed to two members in one generation; this checker catches the cooperative protocol's own
//! failure: a partition handed to a new owner while the old one still holds it — the leader did
//! not withhold it, or the old owner did not revoke it before it rejoined.
//!
//! Not every overlap in time is a fault. A member stalled past its session timeout is evicted
//! without knowing it; until it learns (a heartbeat answered UNKNOWN_MEMBER_ID) it still thinks
//! it owns its partitions, which the group has handed on in a later generation. Kafka fences
//! such a zombie by refusing its commits (`zombie-commit`), not by preventing the overlap. What
//! the protocol promises is the overlap never happens among members *of one generation*: so
//! each ownership also records the generations its owner took part in while holding it (every
//! `Assigned` the member received meanwhile), and two ownerships conflict only when they
//! overlap in time and share a generation. The evicted zombie took part in no later generation.
//!
//! Events are ordered by their place in the history (the simulator records them in the order
//! they happened), not by their millisecond; a policy-permitted power loss may restart
//! generation numbers, so a generation is named by (era, number).

use super::{Cuts, Kind};
use crate::history::{Event, History, Part};
use std::collections::BTreeMap;

/// One member's ownership of one partition.
struct Ownership {
    member: usize,
    /// Where in the history it began (the `Assigned`) and ended (the `Revoked`; `None`: never).
    from: usize,
    to: Option<usize>,
    /// The generation that handed it over, and the newest the owner took part in while holding
    /// it, as (era, generation).
    first: (usize, i32),
    last: (usize, i32),
}

impl Ownership {
    fn overlaps_in_time(&self, o: &Ownership) -> bool {
        self.from < o.to.unwrap_or(usize::MAX) && o.from < self.to.unwrap_or(usize::MAX)
    }
    fn share_a_generation(&self, o: &Ownership) -> bool {
        self.first <= o.last && o.first <= self.last
    }
}

pub(super) fn check(h: &History, cuts: &Cuts, bad: &mut dyn FnMut(Kind, String)) {
    // (group, partition) → every ownership; (group, member, partition) → the open one's index.
    let mut all: BTreeMap<(usize, Part), Vec<Ownership>> = BTreeMap::new();
    let mut open: BTreeMap<(usize, usize, Part), usize> = BTreeMap::new();
    let mut era = 0;
    for (i, e) in h.events.iter().enumerate() {
        // A power loss the durability policy permits may wipe every group's state, and the
        // generations start again: what a member held before it is a claim from a group that
        // no longer exists, so every ownership ends there (seeds 1131 and 1898 compared a
        // pre-loss owner's generation range with the new group's generations).
        let now_era = match e {
            Event::Assigned { t, .. } | Event::Revoked { t, .. } => cuts.era(*t),
            _ => era,
        };
        if now_era != era {
            era = now_era;
            for ((g, _, p), k) in std::mem::take(&mut open) {
                all.get_mut(&(g, p)).expect("an open ownership")[k].to = Some(i);
            }
        }
        match e {
            Event::Assigned {
                t,
                group,
                member,
                generation,
                parts,
            } => {
                let g = (cuts.era(*t), *generation);
                // The member takes part in this generation with everything it still holds.
                for (&(og, om, p), &k) in open.range((*group, *member, Part::MIN)..) {
                    if (og, om) != (*group, *member) {
                        break;
                    }
                    let o = &mut all.get_mut(&(og, p)).expect("an open ownership")[k];
                    o.last = o.last.max(g);
                }
                for &p in parts {
                    if open.contains_key(&(*group, *member, p)) {
                        continue;
                    }
                    let list = all.entry((*group, p)).or_default();
                    open.insert((*group, *member, p), list.len());
                    list.push(Ownership {
                        member: *member,
                        from: i,
                        to: None,
                        first: g,
                        last: g,
                    });
                }
            }
            Event::Revoked {
                group,
                member,
                parts,
                ..
            } => {
                for p in parts {
                    if let Some(k) = open.remove(&(*group, *member, *p)) {
                        all.get_mut(&(*group, *p)).expect("an open ownership")[k].to = Some(i);
                    }
                }
            }
            _ => {}
        }
    }
    for ((group, part), list) in &all {
        for (k, a) in list.iter().enumerate() {
            for b in &list[k + 1..] {
                // Two members handed it in one generation is `group-ownership`'s to report.
                if a.member == b.member || a.first == b.first {
                    continue;
                }
                if a.overlaps_in_time(b) && a.share_a_generation(b) {
                    let (old, new) = if a.from <= b.from { (a, b) } else { (b, a) };
                    bad(
                        Kind::TwoOwners,
                        format!(
                            "group {group}: partition {part} handed to member {} in generation {} while member {} (owner since generation {}, and in generation {}) had not given it up (at {}: {:?})",
                            new.member, new.first.1, old.member, old.first.1, old.last.1, new.from, h.events[new.from]
                        ),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::kinds_with;
    use super::super::Kind;
    use crate::history::Event;
    use std::collections::BTreeSet;

    fn assigned(t: u64, member: usize, generation: i32, parts: Vec<i32>) -> Event {
        Event::Assigned {
            t,
            group: 0,
            member,
            generation,
            parts,
        }
    }

    fn revoked(t: u64, member: usize, parts: Vec<i32>) -> Event {
        Event::Revoked {
            t,
            group: 0,
            member,
            parts,
            lost: false,
        }
    }

    #[test]
    fn two_owners_fires() {
        // Generation 2 hands partition 0 to member 23 while member 20, in generation 2 too,
        // still owns it: it revokes only after 23 was handed it.
        let planted = vec![
            assigned(30, 23, 2, vec![0]),
            assigned(31, 20, 2, vec![]),
            revoked(31, 20, vec![0]),
        ];
        assert_eq!(kinds_with(planted), BTreeSet::from([Kind::TwoOwners]));
    }

    #[test]
    fn a_revocation_first_or_an_evicted_zombie_is_no_conflict() {
        // Cooperative, done right: 20 revokes in generation 2, 23 gets it in generation 3.
        let handed_on = vec![
            assigned(30, 20, 2, vec![]),
            revoked(30, 20, vec![0]),
            assigned(32, 23, 3, vec![0]),
            assigned(32, 20, 3, vec![]),
        ];
        assert_eq!(kinds_with(handed_on), BTreeSet::new());
        // Eager: 20 gave everything up as it rejoined.
        let eager = vec![
            revoked(29, 20, vec![0]),
            assigned(30, 23, 2, vec![0]),
            assigned(30, 20, 2, vec![]),
        ];
        assert_eq!(kinds_with(eager), BTreeSet::new());
        // 20 stalled past its session timeout and was evicted: generation 2 goes on without
        // it; it learns later and loses the partition. A zombie, fenced by its commits.
        let zombie = vec![
            assigned(30, 23, 2, vec![0]),
            Event::Revoked {
                t: 40,
                group: 0,
                member: 20,
                parts: vec![0],
                lost: true,
            },
        ];
        assert_eq!(kinds_with(zombie), BTreeSet::new());
    }
}
