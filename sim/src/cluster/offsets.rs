//! Committed offsets through coordinator failover (issue 10 item 7): the replicated cluster
//! world's *committer* client, and the checker that judges what it saw.
//!
//! A consumer group's committed offsets live in its partition of `__consumer_offsets`, which
//! the group's coordinator (that partition's leader) writes and answers from. With the topic
//! replicated (Kafka's `offsets.topic.replication.factor`), a commit is acknowledged only once
//! the partition's high watermark covers it, so every in-sync replica has it; when the
//! coordinator's broker crashes, a new leader is elected from the ISR, loads the partition, and
//! must answer OffsetFetch with at least every offset acknowledged before.
//!
//! The committer is an admin client standing in for a consumer: it commits ever-growing
//! offsets for one group and partition the way `kafka-consumer-groups --reset-offsets` does
//! (OffsetCommit with generation −1 for a group without members), and reads them back with
//! OffsetFetch, one operation at a time, finding the coordinator with FindCoordinator and
//! following it as it moves. Crashes, power loss and partitions in the safety phase move the
//! coordinator around.
//!
//! * **`commit-survives-failover`** — an OffsetFetch never answers an offset lower than one
//!   whose commit was acknowledged before that fetch was sent, unless the group's offsets were
//!   reset or deleted in between (then only commits acknowledged after the reset count).
//!   Acknowledged means the coordinator answered the commit without error; a commit answered
//!   with an error (or never answered) may or may not have been written, and is no floor.

use crate::history::Ms;
use std::collections::BTreeMap;

/// A commit the committer sent: `offset` for `group`'s partition `part`, sent at `sent`, and
/// acknowledged at `acked` (`None`: answered with an error, or never answered).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Commit {
    pub group: String,
    pub part: i32,
    pub offset: i64,
    pub sent: Ms,
    pub acked: Option<Ms>,
}

/// An OffsetFetch answered without error: `group`'s committed offset of `part` (`None`: no
/// offset committed), sent at `sent`, answered at `answered`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetch {
    pub group: String,
    pub part: i32,
    pub offset: Option<i64>,
    pub sent: Ms,
    pub answered: Ms,
}

/// What the committer saw.
#[derive(Clone, Debug, Default)]
pub struct Offsets {
    pub commits: Vec<Commit>,
    pub fetches: Vec<Fetch>,
    /// Groups whose offsets were reset or deleted (OffsetDelete, DeleteGroups), and when the
    /// deletion was acknowledged: earlier commits no longer bind later fetches.
    pub resets: Vec<(String, Ms)>,
}

impl Offsets {
    /// Acknowledged commits and answered fetches, for the report.
    pub fn counts(&self) -> (usize, usize) {
        let acked = self.commits.iter().filter(|c| c.acked.is_some()).count();
        (acked, self.fetches.len())
    }
}

/// `commit-survives-failover`; each anomaly as (checker name, detail).
pub fn check(o: &Offsets) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    // The latest acknowledged reset of each group, as of a time.
    let reset_before = |group: &str, t: Ms| {
        o.resets
            .iter()
            .filter(|(g, at)| g == group && *at < t)
            .map(|(_, at)| *at)
            .max()
    };
    for f in &o.fetches {
        assert!(f.sent <= f.answered, "a fetch is answered after it is sent");
        let since = reset_before(&f.group, f.sent);
        let floor = o
            .commits
            .iter()
            .filter(|c| c.group == f.group && c.part == f.part)
            .filter_map(|c| Some((c.acked?, c)))
            .filter(|(acked, c)| *acked < f.sent && since.is_none_or(|r| c.sent > r))
            .max_by_key(|(_, c)| c.offset);
        let Some((acked, c)) = floor else {
            continue;
        };
        if f.offset.is_none_or(|seen| seen < c.offset) {
            let seen = f.offset.map_or("none".to_string(), |o| o.to_string());
            out.push((
                "commit-survives-failover",
                format!(
                    "group {} partition {}: OffsetFetch sent at t={}ms answered {seen} (t={}ms), \
                     but offset {} was acknowledged at t={acked}ms",
                    f.group, f.part, f.sent, f.answered, c.offset
                ),
            ));
        }
    }
    out
}

/// The committer's state in the world: the next offset to commit, and what is in flight.
#[derive(Debug, Default)]
pub struct Committer {
    /// The offset the next commit asks for; it only grows.
    pub next: i64,
    /// The operation in flight: a commit (index into [`Offsets::commits`]) or a fetch (sent at).
    pub in_flight: Option<InFlight>,
    /// How many operations were sent, to alternate commits and fetches.
    pub sent: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InFlight {
    Commit(usize),
    Fetch(Ms),
}

/// The group and partition the committer works on.
pub const GROUP: &str = "sim-committer";
pub const PART: i32 = 0;

/// The coordinator moves the workload went through: from the leaders the images named for the
/// committer's partition of `__consumer_offsets`, by leader epoch, how many epochs changed the
/// leader to another broker.
pub fn moves(leaders: &BTreeMap<i32, Option<i32>>) -> usize {
    let named: Vec<i32> = leaders.values().filter_map(|l| *l).collect();
    named.windows(2).filter(|w| w[0] != w[1]).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(offset: i64, sent: Ms, acked: Option<Ms>) -> Commit {
        Commit {
            group: GROUP.into(),
            part: PART,
            offset,
            sent,
            acked,
        }
    }

    fn fetch(offset: Option<i64>, sent: Ms) -> Fetch {
        Fetch {
            group: GROUP.into(),
            part: PART,
            offset,
            sent,
            answered: sent + 5,
        }
    }

    fn clean() -> Offsets {
        Offsets {
            commits: vec![
                commit(3, 10, Some(20)),
                commit(7, 30, Some(40)),
                commit(9, 50, None),
            ],
            fetches: vec![fetch(None, 5), fetch(Some(3), 25), fetch(Some(9), 60)],
            resets: Vec::new(),
        }
    }

    #[test]
    fn a_clean_history_passes() {
        let o = clean();
        assert_eq!(check(&o), Vec::new());
        assert_eq!(o.counts(), (2, 3));
    }

    /// The planted history: the coordinator moved, and the new one answered an offset below
    /// one acknowledged before (as a coordinator would that loaded a follower missing the
    /// commit, or answered before its high watermark covered it).
    #[test]
    fn an_offset_lost_in_failover_fires() {
        let mut o = clean();
        o.fetches.push(fetch(Some(3), 70));
        let found = check(&o);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, "commit-survives-failover");
        assert!(found[0].1.contains("answered 3"), "{}", found[0].1);
        // No offset at all after an acknowledged commit is the same loss.
        let mut o = clean();
        o.fetches.push(fetch(None, 70));
        assert_eq!(check(&o).len(), 1);
    }

    /// A commit still in flight when the fetch was sent, or answered with an error, binds
    /// nothing; a reset releases the earlier commits.
    #[test]
    fn unacknowledged_commits_and_resets_are_excused() {
        let mut o = clean();
        // Sent at 35, before commit 7's acknowledgment at 40.
        o.fetches.push(fetch(Some(3), 35));
        assert_eq!(check(&o), Vec::new());
        o.resets.push((GROUP.into(), 45));
        o.fetches.push(fetch(None, 80));
        assert_eq!(check(&o), Vec::new());
        // A commit after the reset binds again.
        o.commits.push(commit(2, 90, Some(95)));
        o.fetches.push(fetch(None, 100));
        assert_eq!(check(&o).len(), 1);
    }

    #[test]
    fn moves_count_leader_changes() {
        let l = BTreeMap::from([
            (0, Some(1)),
            (1, Some(1)),
            (2, None),
            (3, Some(2)),
            (4, Some(1)),
        ]);
        assert_eq!(moves(&l), 2);
    }
}
