//! `acl-served-denied` and `acl-refused-allowed`: every request a broker served was allowed,
//! and every one it refused for authorization was denied, by the ACLs in force as of the
//! metadata offset that broker had applied (KIP-11, the KRaft `StandardAuthorizer`).
//!
//! The simulator records, for each judged part of a request (one topic partition of a produce,
//! the group of an OffsetCommit, a topic listed by Metadata), who asked (principal and host),
//! the resource, the operation Kafka checks for that API, whether the broker served it or
//! refused it with an authorization error (TOPIC_ / GROUP_ / CLUSTER_AUTHORIZATION_FAILED), and
//! the metadata offsets of the images the broker may have decided with. The ACL sets themselves
//! are recorded per offset, from the images handed to the brokers.
//!
//! The decision is made here again, by a re-implementation of Kafka's rule that shares no code
//! with the broker's (`gregor_core::acl`): only the vocabulary (resource types, operations) is
//! common. Kafka's rule:
//!
//! 1. a super user may do everything;
//! 2. the ACLs on the resource are those of its type whose literal name is the resource's or
//!    `*`, or whose prefix (KIP-290) the resource's name starts with;
//! 3. with none at all, `allow.everyone.if.no.acl.found` decides;
//! 4. of those, the ones for the caller: principal the caller's or `User:*`, host the caller's
//!    or `*`;
//! 5. a DENY of the operation (or of All) refuses, whatever else (deny wins);
//! 6. an ALLOW of the operation, of All, or of one implying it (Read, Write, Delete, Alter
//!    imply Describe; AlterConfigs implies DescribeConfigs) grants;
//! 7. otherwise refused.
//!
//! Most requests are authorized when the broker reads them: they are judged against that one
//! image. Metadata is filtered when it is answered (an auto-creation may wait for the
//! controller), so it is judged against every image the broker applied from reading it to
//! answering it: served is right if some of them allowed it, refused if some denied it.

use crate::history::Ms;
use gregor_core::acl::{Operation, ResourceType};
use std::collections::BTreeMap;
use std::sync::Arc;

/// One ACL, as this checker reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub resource_type: ResourceType,
    pub name: String,
    pub prefixed: bool,
    pub principal: String,
    pub host: String,
    pub operation: Operation,
    pub allow: bool,
}

/// The authorizer's settings: `super.users`, `allow.everyone.if.no.acl.found`.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    pub super_users: Vec<String>,
    pub allow_if_no_acl: bool,
}

/// One judged part of a request.
#[derive(Clone, Debug)]
pub struct Judged {
    pub t: Ms,
    pub node: i32,
    /// The request's API, for the report.
    pub api: &'static str,
    pub principal: String,
    pub host: String,
    pub resource_type: ResourceType,
    pub name: String,
    pub operation: Operation,
    /// Served (true) or refused with an authorization error (false).
    pub served: bool,
    /// The metadata offsets of the images the broker may have decided with: from the one it
    /// had when it read the request to the one it had when it answered (the same for APIs
    /// authorized on reading). −1: no image yet (no ACLs at all).
    pub offsets: (i64, i64),
}

/// What the checker judges.
#[derive(Clone, Debug, Default)]
pub struct AclHistory {
    pub policy: Policy,
    /// The ACLs in force at each metadata offset a broker was handed an image of.
    pub sets: BTreeMap<i64, Arc<Vec<Rule>>>,
    pub judged: Vec<Judged>,
}

impl AclHistory {
    /// Note the ACLs of an image at `offset` (shared with the previous offset's when equal).
    pub fn image(&mut self, offset: i64, rules: Vec<Rule>) {
        if self.sets.contains_key(&offset) {
            return;
        }
        let shared = match self.sets.range(..offset).next_back() {
            Some((_, prev)) if **prev == rules => prev.clone(),
            _ => Arc::new(rules),
        };
        self.sets.insert(offset, shared);
    }

    /// How many judged parts were served and refused.
    pub fn counts(&self) -> (usize, usize) {
        let served = self.judged.iter().filter(|j| j.served).count();
        (served, self.judged.len() - served)
    }
}

/// Whether `grant` (an ALLOW's operation) grants `asked`.
fn grants(grant: Operation, asked: Operation) -> bool {
    use Operation::*;
    match (grant, asked) {
        (All, _) => true,
        (g, a) if g == a => true,
        (Read | Write | Delete | Alter, Describe) => true,
        (AlterConfigs, DescribeConfigs) => true,
        _ => false,
    }
}

/// Kafka's decision (the module docs' rule), made from scratch.
#[allow(clippy::too_many_arguments)]
pub fn allowed(
    policy: &Policy,
    rules: &[Rule],
    principal: &str,
    host: &str,
    resource_type: ResourceType,
    name: &str,
    operation: Operation,
) -> bool {
    if policy.super_users.iter().any(|s| s == principal) {
        return true;
    }
    let on_resource: Vec<&Rule> = rules
        .iter()
        .filter(|r| r.resource_type == resource_type)
        .filter(|r| {
            if r.prefixed {
                name.starts_with(r.name.as_str())
            } else {
                r.name == "*" || r.name == name
            }
        })
        .collect();
    if on_resource.is_empty() {
        return policy.allow_if_no_acl;
    }
    let mine: Vec<&&Rule> = on_resource
        .iter()
        .filter(|r| r.principal == principal || r.principal == "User:*")
        .filter(|r| r.host == host || r.host == "*")
        .collect();
    let denied = mine
        .iter()
        .any(|r| !r.allow && (r.operation == operation || r.operation == Operation::All));
    !denied
        && mine
            .iter()
            .any(|r| r.allow && grants(r.operation, operation))
}

/// Every judged part whose outcome the ACLs in force contradict: `(checker, detail)`.
pub fn check(h: &AclHistory) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let none: Arc<Vec<Rule>> = Arc::new(Vec::new());
    for j in &h.judged {
        let (from, to) = j.offsets;
        assert!(from <= to, "images only move forward within one request");
        // The images the broker may have used: its offsets in [from, to] (−1: none yet).
        let mut sets: Vec<(i64, &Arc<Vec<Rule>>)> =
            h.sets.range(from..=to).map(|(o, s)| (*o, s)).collect();
        if from < 0 {
            sets.insert(0, (-1, &none));
        }
        if sets.is_empty() {
            out.push((
                "acl-unjudged".into(),
                format!(
                    "t={}ms node {}: no ACL set recorded for offsets {from}..={to}",
                    j.t, j.node
                ),
            ));
            continue;
        }
        let decide = |rules: &[Rule]| {
            allowed(
                &h.policy,
                rules,
                &j.principal,
                &j.host,
                j.resource_type,
                &j.name,
                j.operation,
            )
        };
        let agrees = sets.iter().any(|(_, s)| decide(s) == j.served);
        if agrees {
            continue;
        }
        let (kind, verb) = if j.served {
            ("acl-served-denied", "served although the ACLs deny it")
        } else {
            ("acl-refused-allowed", "refused although the ACLs allow it")
        };
        out.push((
            kind.into(),
            format!(
                "t={}ms node {}: {} of {} from {} ({:?} on {:?}:{}) {verb}, at metadata offsets {from}..={to}; ACLs: {:?}",
                j.t,
                j.node,
                j.api,
                j.principal,
                j.host,
                j.operation,
                j.resource_type,
                j.name,
                sets.last().map(|(_, s)| s.as_slice()).unwrap_or_default()
            ),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(principal: &str, op: Operation, name: &str, prefixed: bool, allow: bool) -> Rule {
        Rule {
            resource_type: ResourceType::Topic,
            name: name.into(),
            prefixed,
            principal: principal.into(),
            host: "*".into(),
            operation: op,
            allow,
        }
    }

    fn judged(principal: &str, op: Operation, topic: &str, served: bool, at: i64) -> Judged {
        Judged {
            t: 1,
            node: 1,
            api: "Produce",
            principal: principal.into(),
            host: "10.0.0.1".into(),
            resource_type: ResourceType::Topic,
            name: topic.into(),
            operation: op,
            served,
            offsets: (at, at),
        }
    }

    fn history(rules: Vec<Rule>, judged: Vec<Judged>) -> AclHistory {
        let mut h = AclHistory {
            policy: Policy {
                super_users: vec!["User:admin".into()],
                allow_if_no_acl: false,
            },
            ..AclHistory::default()
        };
        h.image(10, rules);
        h.judged = judged;
        h
    }

    #[test]
    fn kafkas_rule_deny_wins_prefixes_wildcards_implications_super_users() {
        use Operation::*;
        let p = Policy {
            super_users: vec!["User:admin".into()],
            allow_if_no_acl: false,
        };
        let rules = vec![
            rule("User:alice", Read, "orders-", true, true),
            rule("User:*", Write, "*", false, true),
            rule("User:alice", Write, "orders-eu", false, false),
        ];
        let a = |who: &str, op, name: &str| {
            allowed(&p, &rules, who, "h", ResourceType::Topic, name, op)
        };
        assert!(a("User:alice", Read, "orders-us"));
        assert!(
            a("User:alice", Describe, "orders-us"),
            "Read implies Describe"
        );
        assert!(!a("User:alice", Read, "order"), "not under the prefix");
        assert!(a("User:bob", Write, "anything"), "the literal wildcard");
        assert!(!a("User:alice", Write, "orders-eu"), "deny wins");
        assert!(a("User:admin", Delete, "orders-eu"), "a super user");
        assert!(!a("User:bob", Read, "anything"));
        let open = Policy {
            allow_if_no_acl: true,
            ..p.clone()
        };
        assert!(allowed(
            &open,
            &rules,
            "User:x",
            "h",
            ResourceType::Group,
            "g",
            Read
        ));
        assert!(!allowed(
            &p,
            &rules,
            "User:x",
            "h",
            ResourceType::Group,
            "g",
            Read
        ));
        let host = vec![Rule {
            host: "10.0.0.9".into(),
            ..rule("User:bob", All, "t", false, true)
        }];
        assert!(allowed(
            &p,
            &host,
            "User:bob",
            "10.0.0.9",
            ResourceType::Topic,
            "t",
            Write
        ));
        assert!(!allowed(
            &p,
            &host,
            "User:bob",
            "10.0.0.8",
            ResourceType::Topic,
            "t",
            Write
        ));
    }

    #[test]
    fn a_served_request_the_acls_deny_is_reported() {
        use Operation::*;
        let rules = vec![
            rule("User:alice", All, "orders", false, true),
            rule("User:alice", Write, "orders", false, false),
        ];
        let h = history(rules, vec![judged("User:alice", Write, "orders", true, 10)]);
        let found = check(&h);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, "acl-served-denied");
    }

    #[test]
    fn a_refused_request_the_acls_allow_is_reported() {
        use Operation::*;
        let rules = vec![rule("User:alice", Read, "orders", false, true)];
        let h = history(
            rules,
            vec![judged("User:alice", Describe, "orders", false, 10)],
        );
        let found = check(&h);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, "acl-refused-allowed");
    }

    #[test]
    fn a_clean_history_passes_and_a_range_of_images_excuses_either_answer() {
        use Operation::*;
        let mut h = history(
            vec![rule("User:alice", Write, "orders", false, true)],
            vec![
                judged("User:alice", Write, "orders", true, 10),
                judged("User:bob", Write, "orders", false, 10),
            ],
        );
        assert!(check(&h).is_empty());
        // The ACL was removed at offset 12: a Metadata answer judged over 10..=12 may go
        // either way, one judged at 12 alone may not be served.
        h.image(12, Vec::new());
        h.judged = vec![
            Judged {
                offsets: (10, 12),
                ..judged("User:alice", Write, "orders", false, 10)
            },
            judged("User:alice", Write, "orders", true, 12),
        ];
        let found = check(&h);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].1.contains("offsets 12..=12"));
        // No image at all: no ACLs, so only allow.everyone.if.no.acl.found could allow.
        h.judged = vec![judged("User:alice", Read, "orders", true, -1)];
        assert_eq!(check(&h)[0].0, "acl-served-denied");
    }
}
