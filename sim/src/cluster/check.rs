//! The cluster world's own checkers: what a broker of a KRaft cluster promises beyond what a
//! single broker does, judged from what the world saw on the wire and on each broker's disk
//! (the history's other checkers, in [`crate::check`], run unchanged next to these).
//!
//! * **`refused-appended`** — a produce that a broker refused with a *definite* error
//!   (NOT_LEADER_OR_FOLLOWER, LEADER_NOT_AVAILABLE, UNKNOWN_TOPIC_OR_PARTITION: the broker is
//!   not the partition's leader, the partition has none, or it does not know it) was not
//!   written by that broker. A client may retry such a batch elsewhere at once, so if the
//!   refusing broker had written it anyway, the retry would make a duplicate the idempotent
//!   producer cannot see (its sequence numbers live on the partition's leader), and a plain
//!   producer's record would exist although its send was reported failed. The check: between
//!   the moment the broker read the request and the moment it answered, it appended none of the
//!   request's records to that partition's log *as its leader*. A follower's copy does not
//!   count: the answer to a produce of several partitions leaves only when all of them are
//!   done, so a refusal may reach the wire long after it was decided, and meanwhile the
//!   refused records (written by an earlier leader, or retried there) may come back to the
//!   refusing broker through replication — another leader's write, not this broker's.
//! * **`served-unled`** — a broker answers produce and fetch for a partition (error NONE) only
//!   while the last metadata image it was handed names it the partition's leader. Kafka's
//!   broker follows the image (`ReplicaManager.applyDelta`); one that kept serving a partition
//!   after the image moved it would split the partition's history in two the moment a second
//!   replica exists (next: replication).
//!
//! Both are pure functions of the observations, so each is proven able to fail by a planted
//! observation in the tests below.

use crate::history::{Ms, Part, Value};

/// A produce of `values` to `part` that broker `node` refused with definite error `code`: it
/// read the request at `received` and answered at `t`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused {
    pub node: i32,
    pub part: Part,
    pub values: Vec<Value>,
    pub code: i16,
    pub received: Ms,
    pub t: Ms,
}

/// Broker `node` wrote a batch holding `values` to `part`'s log at `t` (seen in its storage
/// outputs): as the partition's leader, answering a produce (`as_leader`), or as a follower,
/// copying the leader's batch from a replica fetch's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Appended {
    pub node: i32,
    pub part: Part,
    pub values: Vec<Value>,
    pub t: Ms,
    pub as_leader: bool,
}

/// Broker `node` answered a produce or fetch (`api`: 0 or 1) of `part` with no error at `t`,
/// while the last image it had named `leader` (`None`: no leader, or no image at all).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Served {
    pub node: i32,
    pub part: Part,
    pub api: i16,
    pub leader: Option<i32>,
    pub t: Ms,
}

/// What the world saw that these checkers judge.
#[derive(Clone, Debug, Default)]
pub struct Observations {
    pub refused: Vec<Refused>,
    pub appended: Vec<Appended>,
    pub served: Vec<Served>,
}

/// The error codes after which a produce was definitely not written by the broker that sent
/// them: it refused before looking at the records (`Broker::serve_check`).
pub const DEFINITE: [i16; 3] = [
    6, // NOT_LEADER_OR_FOLLOWER
    5, // LEADER_NOT_AVAILABLE
    3, // UNKNOWN_TOPIC_OR_PARTITION
];

/// Run both checkers; each anomaly as (checker name, detail).
pub fn check(o: &Observations) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    for r in &o.refused {
        let written = o.appended.iter().find(|a| {
            a.as_leader
                && a.node == r.node
                && a.part == r.part
                && (r.received..=r.t).contains(&a.t)
                && a.values.iter().any(|v| r.values.contains(v))
        });
        if let Some(a) = written {
            out.push((
                "refused-appended",
                format!(
                    "broker {} refused values {:?} of partition {} with error {} at t={}ms (read at {}ms) but appended {:?} at {}ms",
                    r.node, r.values, r.part, r.code, r.t, r.received, a.values, a.t
                ),
            ));
        }
    }
    for s in &o.served {
        if s.leader != Some(s.node) {
            out.push((
                "served-unled",
                format!(
                    "broker {} served {} of partition {} at t={}ms but its image names leader {:?}",
                    s.node,
                    if s.api == 0 { "a produce" } else { "a fetch" },
                    s.part,
                    s.t,
                    s.leader
                ),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean() -> Observations {
        Observations {
            refused: vec![Refused {
                node: 2,
                part: 0,
                values: vec![7, 8],
                code: 6,
                received: 100,
                t: 101,
            }],
            appended: vec![
                // The retry, on the new leader: fine.
                Appended {
                    node: 1,
                    part: 0,
                    values: vec![7, 8],
                    t: 105,
                    as_leader: true,
                },
                // The old leader wrote them before it was asked (an earlier attempt): fine.
                Appended {
                    node: 2,
                    part: 0,
                    values: vec![7, 8],
                    t: 90,
                    as_leader: true,
                },
            ],
            served: vec![Served {
                node: 1,
                part: 0,
                api: 0,
                leader: Some(1),
                t: 105,
            }],
        }
    }

    #[test]
    fn a_clean_history_passes() {
        assert_eq!(check(&clean()), vec![]);
    }

    #[test]
    fn refused_appended_fires() {
        let mut o = clean();
        o.appended.push(Appended {
            node: 2,
            part: 0,
            values: vec![8],
            t: 100,
            as_leader: true,
        });
        let found = check(&o);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, "refused-appended");
    }

    #[test]
    fn a_followers_copy_of_refused_records_is_not_its_write() {
        // Seed 490 (replicated): broker 2, probing as a new leader, refused 7 and 8; the
        // leadership went to a follower that already held them, and broker 2 copied them
        // from it before its answer (held back by another partition of the request) left.
        let mut o = clean();
        o.appended.push(Appended {
            node: 2,
            part: 0,
            values: vec![7, 8],
            t: 100,
            as_leader: false,
        });
        assert_eq!(check(&o), vec![]);
    }

    #[test]
    fn served_unled_fires() {
        let mut o = clean();
        o.served.push(Served {
            node: 2,
            part: 0,
            api: 1,
            leader: Some(1),
            t: 106,
        });
        o.served.push(Served {
            node: 3,
            part: 1,
            api: 0,
            leader: None,
            t: 107,
        });
        let found = check(&o);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found.iter().all(|(k, _)| *k == "served-unled"));
    }
}
