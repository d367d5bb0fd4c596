//! A local broker request is answered exactly once, with an answer of its own kind: every
//! request a broker hands its node's metadata side (CreateTopic, DeleteTopic,
//! AllocateProducerIds) comes back as one `ControllerReply`, whether the node's own controller
//! answered it, a remote one did, or its deadline passed; never twice, never to an id nobody
//! asked, never a reply of another request's kind (a misrouted answer). A request still waiting
//! when its node's process ends is dropped with it.

use super::Anomaly;
use gregor_core::cluster::{ControllerError, Reply, Request, RequestId};
use gregor_core::raft::NodeId;
use gregor_core::time::{Duration, Instant};
use std::collections::{BTreeMap, BTreeSet};

type Key = (NodeId, u64, RequestId);

pub struct LocalRequests {
    /// How long a request may take before it must have been answered.
    deadline: Duration,
    waiting: BTreeMap<Key, (Instant, &'static str)>,
    answered: BTreeSet<Key>,
    pub anomalies: Vec<Anomaly>,
}

fn kind(r: &Request) -> &'static str {
    match r {
        Request::CreateTopic { .. } => "CreateTopic",
        Request::DeleteTopic { .. } => "DeleteTopic",
        Request::AllocateProducerIds { .. } => "AllocateProducerIds",
        Request::AlterPartition { .. } => "AlterPartition",
        _ => "other",
    }
}

fn reply_kind(r: &Reply) -> &'static str {
    match r {
        Reply::CreateTopic { .. } => "CreateTopic",
        Reply::DeleteTopic => "DeleteTopic",
        Reply::AllocateProducerIds { .. } => "AllocateProducerIds",
        Reply::AlterPartition { .. } => "AlterPartition",
        _ => "other",
    }
}

impl LocalRequests {
    pub fn new(deadline: Duration) -> LocalRequests {
        LocalRequests {
            deadline,
            waiting: BTreeMap::new(),
            answered: BTreeSet::new(),
            anomalies: Vec::new(),
        }
    }

    /// How many were answered.
    pub fn answered(&self) -> usize {
        self.answered.len()
    }

    /// The broker of `node` (process life `life`) asked `request` as `id` at `at`.
    pub fn asked(
        &mut self,
        node: NodeId,
        life: u64,
        id: RequestId,
        request: &Request,
        at: Instant,
    ) {
        let key = (node, life, id);
        assert!(
            !self.waiting.contains_key(&key) && !self.answered.contains(&key),
            "the workload reuses no id"
        );
        self.waiting.insert(key, (at, kind(request)));
    }

    /// `node` handed its broker the answer to `id`.
    pub fn reply(
        &mut self,
        node: NodeId,
        life: u64,
        id: RequestId,
        result: &Result<Reply, ControllerError>,
    ) {
        let key = (node, life, id);
        let Some((_, asked)) = self.waiting.remove(&key) else {
            let why = if self.answered.contains(&key) {
                "a second answer"
            } else {
                "an answer to a request never asked"
            };
            self.anomalies.push(Anomaly {
                kind: "local_requests",
                detail: format!(
                    "node {} (life {life}) gave {why} for {id:?}: {result:?}",
                    node.0
                ),
            });
            return;
        };
        self.answered.insert(key);
        if let Ok(r) = result {
            if reply_kind(r) != asked {
                self.anomalies.push(Anomaly {
                    kind: "local_requests",
                    detail: format!("node {}'s {asked} {id:?} was answered {r:?}", node.0),
                });
            }
        }
    }

    /// `node`'s process life `life` ended: what it was asked dies with it.
    pub fn life_ended(&mut self, node: NodeId, life: u64) {
        self.waiting.retain(|k, _| (k.0, k.1) != (node, life));
    }

    /// The verdict at `end`: every request asked a deadline ago has its answer.
    pub fn finish(&self, end: Instant) -> Vec<Anomaly> {
        self.waiting
            .iter()
            .filter(|(_, (at, _))| *at + self.deadline < end)
            .map(|((node, life, id), (at, what))| Anomaly {
                kind: "local_requests",
                detail: format!(
                    "node {} (life {life}): {what} {id:?} asked at {} ms never answered",
                    node.0,
                    at.unix_ms()
                ),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_twice_unasked_misrouted_or_missing_is_caught() {
        let mut c = LocalRequests::new(Duration::from_ms(1_000));
        let del = Request::DeleteTopic { name: "t".into() };
        let at = Instant::from_unix_ms(0);
        c.asked(NodeId(1), 1, RequestId(1), &del, at);
        c.reply(NodeId(1), 1, RequestId(1), &Ok(Reply::DeleteTopic));
        assert!(c.anomalies.is_empty() && c.finish(at).is_empty());
        c.reply(NodeId(1), 1, RequestId(1), &Ok(Reply::DeleteTopic));
        assert_eq!(c.anomalies.len(), 1, "twice");
        c.reply(
            NodeId(1),
            2,
            RequestId(1),
            &Err(ControllerError::RequestTimedOut),
        );
        assert_eq!(c.anomalies.len(), 2, "another life never asked it");
        c.asked(NodeId(1), 1, RequestId(2), &del, at);
        c.reply(
            NodeId(1),
            1,
            RequestId(2),
            &Ok(Reply::CreateTopic {
                topic_id: gregor_core::cluster::TopicId([0; 16]),
            }),
        );
        assert_eq!(c.anomalies.len(), 3, "another request's answer");
        c.asked(NodeId(2), 1, RequestId(3), &del, at);
        assert!(
            c.finish(at + Duration::from_ms(500)).is_empty(),
            "not due yet"
        );
        assert_eq!(
            c.finish(at + Duration::from_ms(2_000)).len(),
            1,
            "never answered"
        );
        c.life_ended(NodeId(2), 1);
        assert!(
            c.finish(at + Duration::from_ms(2_000)).is_empty(),
            "died with its node"
        );
    }
}
