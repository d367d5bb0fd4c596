//! DescribeQuorum (API 55, KIP-595) as a controller request: the quorum's state computed from
//! the active controller's Raft leader state, and the request and response on the wire when a
//! broker forwards it to a remote controller.
//!
//! Kafka's brokers do not answer DescribeQuorum themselves: only the quorum's leader knows how
//! far each voter and observer has fetched, so a broker forwards the request to the active
//! controller (`kafka-metadata-quorum --bootstrap-server` relies on that). In gregor the
//! broker's request becomes [`Request::DescribeQuorum`] and takes the road every controller
//! request takes: to the co-located controller when it is active, else over the controller
//! listener as a real DescribeQuorum, which the listener answers from the Raft itself.

use super::*;
use crate::raft::wire::{self as qwire, QuorumStatus, ReplicaStatus, DESCRIBE_QUORUM_VERSIONS};
use crate::raft::{NodeId, RaftNode, Role};
use crate::time::Instant;

/// The quorum's state as `raft` sees it at `now`: the leader, epoch and high watermark, and,
/// when `raft` leads, each voter's and observer's log end and last fetch (unix ms). A replica
/// counts as caught up at its last fetch when that fetch had the leader's whole log (the
/// network driver, which sees every fetch, tracks this more finely for its own listener).
pub fn quorum_status(raft: &RaftNode, now: Instant) -> QuorumStatus {
    let end = raft.log().end();
    let me = raft.id();
    let now_ms = now.unix_ms();
    let mut status = QuorumStatus {
        leader: raft.leader(),
        epoch: raft.epoch(),
        high_watermark: raft.high_watermark(),
        voters: Vec::new(),
        observers: Vec::new(),
    };
    let Role::Leader(l) = raft.role() else {
        return status;
    };
    let row = |id: NodeId| {
        if id == me {
            return ReplicaStatus {
                id,
                log_end_offset: end,
                last_fetch_ms: now_ms,
                last_caught_up_ms: now_ms,
            };
        }
        match l.replicas.get(&id) {
            Some(p) => ReplicaStatus {
                id,
                log_end_offset: p.matched,
                last_fetch_ms: p.last_fetch.unix_ms(),
                last_caught_up_ms: if p.matched >= end {
                    p.last_fetch.unix_ms()
                } else {
                    -1
                },
            },
            None => ReplicaStatus {
                id,
                log_end_offset: -1,
                last_fetch_ms: -1,
                last_caught_up_ms: -1,
            },
        }
    };
    status.voters = raft.voters().iter().map(|v| row(*v)).collect();
    status.observers = l
        .replicas
        .keys()
        .filter(|id| !raft.voters().contains(id))
        .map(|id| row(*id))
        .collect();
    assert_eq!(
        status.voters.len(),
        raft.voters().len(),
        "every voter listed"
    );
    assert!(
        status.voters.iter().any(|v| v.id == me),
        "the leader is a voter"
    );
    status
}

/// A forwarded DescribeQuorum as a request frame (length prefix included), at the highest
/// version the listener serves.
pub(super) fn encode_describe_quorum(correlation_id: i32) -> Result<Bytes, ControllerWireError> {
    qwire::encode_describe_quorum_request(correlation_id, DESCRIBE_QUORUM_VERSIONS.1)
        .map_err(|e| malformed(ApiKey::DescribeQuorum, e))
}

/// The answer to [`encode_describe_quorum`]: the status from the leader, or a refusal. A node
/// that is not the leader answers NOT_LEADER_OR_FOLLOWER (6) naming the leader it knows; for
/// the requester's controller channel that is NOT_CONTROLLER (41), "ask the leader".
pub(super) fn decode_describe_quorum(frame: Bytes) -> Result<Answer, ControllerWireError> {
    let (status, code) = qwire::decode_describe_quorum_response(frame, DESCRIBE_QUORUM_VERSIONS.1)
        .map_err(|e| malformed(ApiKey::DescribeQuorum, e))?;
    Ok(match code {
        0 => Ok(Reply::DescribeQuorum(status)),
        6 => Err(Refusal {
            code: ControllerError::NotController { leader: None }.code(),
            message: format!(
                "not the quorum leader; it knows leader {:?} in epoch {}",
                status.leader.map(|l| l.0),
                status.epoch.0
            ),
        }),
        code => Err(Refusal {
            code,
            message: "DescribeQuorum refused".into(),
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::wire::client::{decode_response, encode_request};
    use crate::raft::wire::{decode_request, encode_describe_quorum_response, Inbound};
    use crate::raft::Epoch;

    fn status() -> QuorumStatus {
        QuorumStatus {
            leader: Some(NodeId(3)),
            epoch: Epoch(7),
            high_watermark: 41,
            voters: vec![ReplicaStatus {
                id: NodeId(3),
                log_end_offset: 42,
                last_fetch_ms: 5,
                last_caught_up_ms: 5,
            }],
            observers: vec![],
        }
    }

    /// A forwarded DescribeQuorum is the quorum's own request on the wire, which the listener
    /// decodes with the Raft's decoder; the leader's answer is the status, another node's is
    /// NOT_CONTROLLER for the channel to follow.
    #[test]
    fn a_forwarded_describe_quorum_round_trips_through_the_listeners_codec() {
        let frame = encode_request(9, "gregor-broker-1", &Request::DescribeQuorum).unwrap();
        let inbound = decode_request(frame.slice(4..)).unwrap();
        assert!(matches!(inbound.body, Inbound::DescribeQuorum));
        assert_eq!(inbound.correlation_id, 9);
        let strip = |b: Bytes| b.slice(4..);
        let leader = encode_describe_quorum_response(&inbound, &status(), true).unwrap();
        assert_eq!(
            decode_response(strip(leader), &Request::DescribeQuorum).unwrap(),
            Ok(Reply::DescribeQuorum(status()))
        );
        let follower = encode_describe_quorum_response(&inbound, &status(), false).unwrap();
        let refused = decode_response(strip(follower), &Request::DescribeQuorum).unwrap();
        assert_eq!(refused.unwrap_err().code, 41, "NOT_CONTROLLER");
    }
}
