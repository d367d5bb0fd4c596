//! Partition assignors: who in a group reads which partition.
//!
//! In Kafka's classic protocol the *group leader* (a client) computes the assignment, with an
//! assignor both sides name in JoinGroup ("range", "roundrobin", "cooperative-sticky"); the
//! broker only relays opaque bytes. These are pure versions of the same strategies, used by the
//! simulator's consumers and available for server-side assignment later (KIP-848).
//!
//! Every assignor guarantees: each partition of a subscribed topic goes to exactly one member
//! subscribed to that topic (a queue inside the group), and no member gets a partition of a
//! topic it did not subscribe to.

use std::collections::{BTreeMap, BTreeSet};

pub type TopicPartition = (String, i32);

/// What one member asked for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Subscription {
    pub topics: BTreeSet<String>,
    /// Partitions it owned in the previous generation (used by the sticky assignor).
    pub owned: Vec<TopicPartition>,
}

pub type Assignment = BTreeMap<String, Vec<TopicPartition>>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    Range,
    RoundRobin,
    Sticky,
}

impl Strategy {
    /// The protocol name clients use in JoinGroup.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Range => "range",
            Strategy::RoundRobin => "roundrobin",
            Strategy::Sticky => "cooperative-sticky",
        }
    }
}

/// Assign `partitions` (topic → partition count) among `members`.
pub fn assign(
    strategy: Strategy,
    members: &BTreeMap<String, Subscription>,
    partitions: &BTreeMap<String, i32>,
) -> Assignment {
    let mut out: Assignment = members.keys().map(|m| (m.clone(), Vec::new())).collect();
    match strategy {
        Strategy::Range => {
            // Per topic, consumers in order take contiguous ranges; the first (n mod m) get one
            // more (Kafka's RangeAssignor).
            for (topic, &count) in partitions {
                let subs: Vec<&String> = members
                    .iter()
                    .filter(|(_, s)| s.topics.contains(topic))
                    .map(|(m, _)| m)
                    .collect();
                if subs.is_empty() {
                    continue;
                }
                let (per, extra) = (count as usize / subs.len(), count as usize % subs.len());
                let mut next = 0;
                for (i, m) in subs.iter().enumerate() {
                    let n = per + usize::from(i < extra);
                    for p in next..next + n {
                        out.get_mut(*m).unwrap().push((topic.clone(), p as i32));
                    }
                    next += n;
                }
            }
        }
        Strategy::RoundRobin => {
            // All partitions in order, dealt to subscribed members in turn.
            let names: Vec<&String> = members.keys().collect();
            let mut turn = 0;
            for (topic, &count) in partitions {
                for p in 0..count {
                    for _ in 0..names.len() {
                        let m = names[turn % names.len()];
                        turn += 1;
                        if members[m].topics.contains(topic) {
                            out.get_mut(m).unwrap().push((topic.clone(), p));
                            break;
                        }
                    }
                }
            }
        }
        Strategy::Sticky => {
            // Keep what each member owned while it stays subscribed and the total stays balanced,
            // then give the rest to the least-loaded eligible member.
            let all: Vec<TopicPartition> = partitions
                .iter()
                .flat_map(|(t, &c)| (0..c).map(move |p| (t.clone(), p)))
                .filter(|(t, _)| members.values().any(|s| s.topics.contains(t)))
                .collect();
            let quota = all.len().div_ceil(members.len().max(1));
            let mut taken: BTreeSet<TopicPartition> = BTreeSet::new();
            for (m, s) in members {
                for tp in &s.owned {
                    let exists = partitions
                        .get(&tp.0)
                        .is_some_and(|&c| tp.1 >= 0 && tp.1 < c);
                    if exists
                        && s.topics.contains(&tp.0)
                        && !taken.contains(tp)
                        && out[m].len() < quota
                    {
                        taken.insert(tp.clone());
                        out.get_mut(m).unwrap().push(tp.clone());
                    }
                }
            }
            for tp in all {
                if taken.contains(&tp) {
                    continue;
                }
                let m = members
                    .iter()
                    .filter(|(_, s)| s.topics.contains(&tp.0))
                    .min_by_key(|(m, _)| (out[*m].len(), (*m).clone()))
                    .map(|(m, _)| m.clone());
                if let Some(m) = m {
                    out.get_mut(&m).unwrap().push(tp);
                }
            }
            for v in out.values_mut() {
                v.sort();
            }
        }
    }
    assert_assignment_is_a_partitioning(strategy, members, partitions, &out);
    out
}

/// The postcondition every assignor promises, checked on every assignment it returns: each
/// partition of a subscribed topic goes to exactly one member, and only to a member subscribed
/// to its topic; every member is in the assignment (with an empty list if it gets nothing).
/// Range and round-robin are also balanced (per topic, resp. over all partitions when every
/// member has the same subscription): no member gets two more than another.
fn assert_assignment_is_a_partitioning(
    strategy: Strategy,
    members: &BTreeMap<String, Subscription>,
    partitions: &BTreeMap<String, i32>,
    out: &Assignment,
) {
    assert_eq!(out.len(), members.len(), "one entry per member");
    let mut seen: BTreeSet<&TopicPartition> = BTreeSet::new();
    for (m, tps) in out {
        let sub = &members[m];
        for tp in tps {
            assert!(sub.topics.contains(&tp.0), "{m} got {tp:?} unsubscribed");
            assert!(
                partitions
                    .get(&tp.0)
                    .is_some_and(|&c| (0..c).contains(&tp.1)),
                "{m} got {tp:?}, which does not exist"
            );
            assert!(seen.insert(tp), "{tp:?} assigned twice");
        }
    }
    let wanted: usize = partitions
        .iter()
        .filter(|(t, _)| members.values().any(|s| s.topics.contains(*t)))
        .map(|(_, &c)| c.max(0) as usize)
        .sum();
    assert_eq!(seen.len(), wanted, "every subscribed partition assigned");
    if strategy == Strategy::Range {
        for topic in partitions.keys() {
            let counts: Vec<usize> = members
                .iter()
                .filter(|(_, s)| s.topics.contains(topic))
                .map(|(m, _)| out[m].iter().filter(|tp| &tp.0 == topic).count())
                .collect();
            if let (Some(lo), Some(hi)) = (counts.iter().min(), counts.iter().max()) {
                assert!(hi - lo <= 1, "range is balanced per topic: {counts:?}");
            }
        }
    }
    let same_subscriptions = members.values().all(|s| {
        members
            .values()
            .next()
            .is_some_and(|f| f.topics == s.topics)
    });
    if strategy == Strategy::RoundRobin && same_subscriptions {
        let lens: Vec<usize> = out.values().map(Vec::len).collect();
        if let (Some(lo), Some(hi)) = (lens.iter().min(), lens.iter().max()) {
            assert!(hi - lo <= 1, "round-robin is balanced: {lens:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::{any, prop_assert, prop_assert_eq, proptest};

    fn subs(n: usize, topics: &[&str]) -> BTreeMap<String, Subscription> {
        (0..n)
            .map(|i| {
                (
                    format!("m{i}"),
                    Subscription {
                        topics: topics.iter().map(|t| t.to_string()).collect(),
                        owned: vec![],
                    },
                )
            })
            .collect()
    }

    #[test]
    fn range_gives_contiguous_ranges() {
        let a = assign(
            Strategy::Range,
            &subs(2, &["t"]),
            &BTreeMap::from([("t".to_string(), 5)]),
        );
        assert_eq!(
            a["m0"],
            vec![("t".into(), 0), ("t".into(), 1), ("t".into(), 2)]
        );
        assert_eq!(a["m1"], vec![("t".into(), 3), ("t".into(), 4)]);
    }

    #[test]
    fn sticky_keeps_owned_partitions() {
        let mut m = subs(2, &["t"]);
        m.get_mut("m1").unwrap().owned = vec![("t".into(), 0), ("t".into(), 1)];
        let a = assign(
            Strategy::Sticky,
            &m,
            &BTreeMap::from([("t".to_string(), 4)]),
        );
        assert_eq!(a["m1"], vec![("t".into(), 0), ("t".into(), 1)]);
        assert_eq!(a["m0"], vec![("t".into(), 2), ("t".into(), 3)]);
    }

    proptest! {
        #[test]
        fn every_partition_exactly_once_and_balanced(members in 1usize..6, counts in proptest::collection::vec(1i32..9, 1..4), owned_seed in any::<u64>()) {
            let topics: Vec<String> = (0..counts.len()).map(|i| format!("t{i}")).collect();
            let partitions: BTreeMap<String, i32> = topics.iter().cloned().zip(counts.iter().copied()).collect();
            let refs: Vec<&str> = topics.iter().map(|s| s.as_str()).collect();
            let mut m = subs(members, &refs);
            // Arbitrary previous ownership for the sticky assignor.
            for (i, s) in m.values_mut().enumerate() {
                if (owned_seed >> i) & 1 == 1 {
                    s.owned = vec![(topics[0].clone(), i as i32)];
                }
            }
            let total: i32 = counts.iter().sum();
            for strategy in [Strategy::Range, Strategy::RoundRobin, Strategy::Sticky] {
                let a = assign(strategy, &m, &partitions);
                let mut seen = BTreeSet::new();
                for tps in a.values() {
                    for tp in tps {
                        prop_assert!(seen.insert(tp.clone()), "{:?}: {:?} assigned twice", strategy, tp);
                    }
                }
                prop_assert_eq!(seen.len() as i32, total);
                if strategy != Strategy::Range {
                    let sizes: Vec<usize> = a.values().map(|v| v.len()).collect();
                    prop_assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1, "{:?} unbalanced: {:?}", strategy, sizes);
                }
            }
        }
    }
}
