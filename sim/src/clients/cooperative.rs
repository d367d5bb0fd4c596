//! Incremental cooperative rebalancing (KIP-429) as a client does it: the subscription a member
//! sends in JoinGroup, and the cooperative-sticky assignment its group's leader computes.
//!
//! In Kafka's classic group protocol the broker only relays opaque bytes: each member's
//! JoinGroup carries its subscription (`ConsumerProtocolSubscription`), and the member the
//! coordinator names leader receives everyone's and computes the assignment client-side. With
//! the eager protocol a member gives up every partition before it rejoins, so a partition is
//! never owned by two members, at the price of a stop-the-world pause. With the cooperative
//! protocol a member keeps its partitions through the rebalance and reports them
//! (`owned_partitions`, subscription v1+; v2 adds the generation they were owned in); the
//! leader keeps each where it is when that is balanced, and a partition that must move is
//! *not* handed to its new owner in the same rebalance: the old owner sees it missing from its
//! assignment, revokes it, and rejoins; the next rebalance finds it unowned and assigns it. So a
//! partition still has at most one owner at a time (`two-owners` in check/ownership.rs).
//!
//! gregor-core's assignor (`core/src/assignor.rs`) has a "cooperative-sticky" strategy that
//! keeps owned partitions but neither withholds partitions that change owner nor balances when
//! members own more than an even share (it keeps up to ⌈n/m⌉ each), so the simulated leader runs
//! this one.

use crate::history::Part;
use bytes::{Bytes, BytesMut};
use gregor_core::kafka_protocol::messages::consumer_protocol_subscription::TopicPartition;
use gregor_core::kafka_protocol::messages::{ConsumerProtocolSubscription, TopicName};
use gregor_core::kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use std::collections::{BTreeMap, BTreeSet};

/// The subscription version members send: v2 carries the owned partitions and the generation
/// they were owned in.
const SUBSCRIPTION_VERSION: i16 = 2;

/// What a member told the leader: the partitions of `topic` it owns, and in which generation
/// (−1: none yet).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Claim {
    pub owned: Vec<Part>,
    pub generation: i32,
}

/// A JoinGroup protocol's metadata: version, then `ConsumerProtocolSubscription` for `topic`.
pub fn subscription(topic: &str, claim: &Claim) -> Bytes {
    let owned = if claim.owned.is_empty() {
        vec![]
    } else {
        vec![TopicPartition::default()
            .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(claim.owned.clone())]
    };
    let s = ConsumerProtocolSubscription::default()
        .with_topics(vec![StrBytes::from_string(topic.to_string())])
        .with_owned_partitions(owned)
        .with_generation_id(claim.generation);
    let mut b = BytesMut::new();
    b.extend_from_slice(&SUBSCRIPTION_VERSION.to_be_bytes());
    s.encode(&mut b, SUBSCRIPTION_VERSION)
        .expect("a subscription encodes");
    b.freeze()
}

/// Read a member's subscription; `None` if it does not decode (then it claims nothing).
pub fn claim_of(topic: &str, mut metadata: Bytes) -> Option<Claim> {
    if metadata.len() < 2 {
        return None;
    }
    let version = i16::from_be_bytes([metadata[0], metadata[1]]);
    let _ = bytes::Buf::get_i16(&mut metadata);
    let s = ConsumerProtocolSubscription::decode(&mut metadata, version.clamp(0, 3)).ok()?;
    let owned = s
        .owned_partitions
        .iter()
        .filter(|tp| tp.topic.0.as_str() == topic)
        .flat_map(|tp| tp.partitions.iter().copied())
        .collect();
    Some(Claim {
        owned,
        generation: if version >= 2 { s.generation_id } else { -1 },
    })
}

/// The cooperative-sticky assignment of partitions `0..partitions` among `members` (member id →
/// what it claims), as the group's leader computes it.
///
/// 1. Claims are cleaned: a partition that does not exist is dropped; one claimed by two members
///    (a member that missed a rebalance still reports what it had) belongs to the claim with the
///    higher generation (ties: the first member id), and the other claimant will revoke it.
/// 2. Balance: with n partitions and m members each gets ⌊n/m⌋, and n mod m of them one more;
///    the larger shares go to the members that already own the most, so the fewest move.
/// 3. Sticky: each member keeps what it owns, up to its share.
/// 4. The rest is dealt to members below their share, fewest first.
/// 5. Cooperative: a partition dealt to one member while another still owns it is withheld: its
///    owner revokes it on seeing it missing, rejoins, and the next rebalance assigns it.
pub fn assign(members: &BTreeMap<String, Claim>, partitions: i32) -> BTreeMap<String, Vec<Part>> {
    let mut out: BTreeMap<String, Vec<Part>> =
        members.keys().map(|m| (m.clone(), Vec::new())).collect();
    if members.is_empty() || partitions <= 0 {
        return out;
    }
    // 1. Who owns what: the claim with the highest generation wins.
    let mut owner: BTreeMap<Part, (&String, i32)> = BTreeMap::new();
    for (m, c) in members {
        for &p in c.owned.iter().filter(|p| (0..partitions).contains(*p)) {
            match owner.get(&p) {
                Some(&(_, g)) if g >= c.generation => {}
                _ => {
                    owner.insert(p, (m, c.generation));
                }
            }
        }
    }
    let mut owns: BTreeMap<&String, Vec<Part>> = members.keys().map(|m| (m, vec![])).collect();
    for (&p, &(m, _)) in &owner {
        owns.get_mut(m).expect("a member").push(p);
    }
    // 2. Shares.
    let n = partitions as usize;
    let (floor, extra) = (n / members.len(), n % members.len());
    let mut by_owned: Vec<&String> = members.keys().collect();
    by_owned.sort_by_key(|m| std::cmp::Reverse(owns[m].len()));
    let share: BTreeMap<&String, usize> = by_owned
        .iter()
        .enumerate()
        .map(|(i, m)| (*m, floor + usize::from(i < extra)))
        .collect();
    // 3. Keep what is owned, up to the share.
    let mut taken: BTreeSet<Part> = BTreeSet::new();
    for (m, ps) in &owns {
        for &p in ps.iter().take(share[m]) {
            taken.insert(p);
            out.get_mut(*m).expect("a member").push(p);
        }
    }
    // 4. Deal the rest to members below their share, the fewest first.
    for p in 0..partitions {
        if taken.contains(&p) {
            continue;
        }
        let to = members
            .keys()
            .filter(|m| out[*m].len() < share[m])
            .min_by_key(|m| (out[*m].len(), (*m).clone()))
            .expect("the shares add up to the partitions")
            .clone();
        out.get_mut(&to).expect("a member").push(p);
        taken.insert(p);
    }
    assert_eq!(taken.len(), n, "every partition is dealt");
    // 5. Withhold what another member still owns.
    for (m, ps) in out.iter_mut() {
        ps.retain(|p| owner.get(p).is_none_or(|(o, _)| *o == m));
        ps.sort();
        assert!(ps.len() <= share[m], "{m} within its share");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(c: &[(&str, &[Part], i32)]) -> BTreeMap<String, Claim> {
        c.iter()
            .map(|(m, owned, generation)| {
                (
                    m.to_string(),
                    Claim {
                        owned: owned.to_vec(),
                        generation: *generation,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn a_subscription_round_trips() {
        let c = Claim {
            owned: vec![0, 3],
            generation: 7,
        };
        assert_eq!(claim_of("t", subscription("t", &c)), Some(c));
        assert_eq!(claim_of("t", Bytes::from_static(b"t")), None);
    }

    #[test]
    fn owners_keep_their_partitions_and_a_newcomer_waits_for_a_revocation() {
        // a owns 0,1; b owns 2,3; c joins. Balanced is 2,1,1: a keeps 0 and 1 (the larger
        // share goes to the larger owner), b keeps one, and the one b gives up is withheld
        // from c in this round.
        let first = assign(
            &claims(&[("a", &[0, 1], 4), ("b", &[2, 3], 4), ("c", &[], -1)]),
            4,
        );
        assert_eq!(first["a"], vec![0, 1]);
        assert_eq!(first["b"], vec![2]);
        assert_eq!(first["c"], Vec::<Part>::new(), "3 is still b's");
        // b revoked 3 and rejoined: now c gets it, and nobody else moves.
        let second = assign(
            &claims(&[("a", &[0, 1], 5), ("b", &[2], 5), ("c", &[], -1)]),
            4,
        );
        assert_eq!(second["a"], vec![0, 1]);
        assert_eq!(second["b"], vec![2]);
        assert_eq!(second["c"], vec![3]);
    }

    #[test]
    fn a_stale_claim_loses_to_a_newer_one() {
        // a still reports 0 from generation 3; b has owned it since generation 4.
        let a = assign(&claims(&[("a", &[0], 3), ("b", &[0], 4)]), 2);
        assert_eq!(a["b"], vec![0]);
        assert_eq!(a["a"], vec![1]);
    }

    #[test]
    fn without_claims_it_is_a_balanced_partitioning() {
        for n in 1..9 {
            for m in 1..5 {
                let members: Vec<(String, &[Part], i32)> =
                    (0..m).map(|i| (format!("m{i}"), &[][..], -1)).collect();
                let c: Vec<(&str, &[Part], i32)> = members
                    .iter()
                    .map(|(a, b, g)| (a.as_str(), *b, *g))
                    .collect();
                let a = assign(&claims(&c), n);
                let all: BTreeSet<Part> = a.values().flatten().copied().collect();
                assert_eq!(all.len(), n as usize);
                let sizes: Vec<usize> = a.values().map(Vec::len).collect();
                assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1);
            }
        }
    }
}
