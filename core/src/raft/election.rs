//! Elections: standing, voting, winning, and stepping down (Raft §5.2, KIP-595's Vote,
//! BeginQuorumEpoch and EndQuorumEpoch, check-quorum from KAFKA-15489).

use super::node::{LeaderState, Progress, RaftNode, Role};
use super::{Epoch, Message, NodeId, QuorumState, Record};
use crate::time::{Duration, Instant};
use std::collections::BTreeSet;

impl RaftNode {
    pub(super) fn election_deadline(&mut self) -> Instant {
        let spread = self.config.election_backoff_max.0.max(1);
        self.now + self.config.election_timeout + Duration(self.prng.below(spread))
    }

    pub(super) fn become_candidate(&mut self) {
        assert!(self.is_voter(), "only voters stand for election");
        let epoch = self.state.epoch.next();
        self.save(QuorumState {
            epoch,
            voted_for: Some(self.id),
            leader: None,
        });
        self.stop_fetching();
        self.role = Role::Candidate {
            granted: BTreeSet::from([self.id]),
            election_at: self.election_deadline(),
        };
        let (last_epoch, end_offset) = (self.log.last_epoch(), self.log.end());
        for v in self.other_voters() {
            self.send(
                v,
                Message::Vote {
                    epoch,
                    last_epoch,
                    end_offset,
                },
            );
        }
        self.maybe_win();
    }

    pub(super) fn on_vote(
        &mut self,
        candidate: NodeId,
        epoch: Epoch,
        last_epoch: Epoch,
        end_offset: i64,
    ) {
        let current = self.state.epoch;
        // One vote per epoch, and only for a log at least as up to date as ours (Raft §5.4.1):
        // a candidate missing a committed entry cannot gather a majority, since a majority has
        // that entry and each of them refuses it.
        let up_to_date = (last_epoch, end_offset) >= (self.log.last_epoch(), self.log.end());
        let free = match self.state.voted_for {
            None => self.leader().is_none(),
            Some(v) => v == candidate,
        };
        let granted = epoch == current && self.is_voter() && free && up_to_date;
        if granted && self.state.voted_for.is_none() {
            let state = QuorumState {
                voted_for: Some(candidate),
                ..self.state.clone()
            };
            self.save(state);
            // Having voted, give the candidate time to win before standing ourselves.
            self.role = Role::Unattached {
                election_at: self.election_deadline(),
            };
        }
        self.send(
            candidate,
            Message::VoteResponse {
                epoch: current,
                granted,
            },
        );
    }

    pub(super) fn on_vote_response(&mut self, voter: NodeId, epoch: Epoch, granted: bool) {
        if epoch != self.state.epoch || !granted || !self.voters.contains(&voter) {
            return;
        }
        if let Role::Candidate { granted, .. } = &mut self.role {
            granted.insert(voter);
            self.maybe_win();
        }
    }

    pub(super) fn maybe_win(&mut self) {
        let won = match &self.role {
            Role::Candidate { granted, .. } => granted.len() >= self.majority(),
            _ => false,
        };
        if won {
            self.become_leader();
        }
    }

    pub(super) fn become_leader(&mut self) {
        assert_eq!(
            self.state.voted_for,
            Some(self.id),
            "a leader voted for itself"
        );
        let state = QuorumState {
            leader: Some(self.id),
            ..self.state.clone()
        };
        self.save(state);
        let epoch_start = self.log.end();
        let replicas = self
            .other_voters()
            .into_iter()
            .map(|v| {
                (
                    v,
                    Progress {
                        matched: 0,
                        last_fetch: self.now,
                    },
                )
            })
            .collect();
        self.role = Role::Leader(LeaderState {
            epoch_start,
            replicas,
            check_quorum_at: self.now + self.check_quorum_timeout(),
        });
        self.append_as_leader(Record::LeaderChange { leader: self.id });
        let epoch = self.state.epoch;
        for v in self.other_voters() {
            self.send(v, Message::BeginQuorumEpoch { epoch });
        }
    }

    pub(super) fn check_quorum_timeout(&self) -> Duration {
        Duration(self.config.fetch_timeout.0 / 2 * 3)
    }

    /// KAFKA-15489: a leader cut off from its majority must stop leading, or a client that
    /// still reaches it would be served stale metadata while another leader takes writes.
    pub(super) fn check_quorum(&mut self) {
        let timeout = self.check_quorum_timeout();
        let (majority, now) = (self.majority(), self.now);
        let Role::Leader(l) = &mut self.role else {
            unreachable!("check-quorum runs on the leader")
        };
        let since = self.now.0.saturating_sub(timeout.0);
        let heard = 1 + l
            .replicas
            .iter()
            .filter(|(id, p)| self.voters.contains(id) && p.last_fetch.0 >= since)
            .count();
        if heard >= majority {
            l.check_quorum_at = now + Duration(timeout.0 / 4).max(Duration(1));
            return;
        }
        self.step_down();
    }

    /// Stop leading this epoch and say so with EndQuorumEpoch (KIP-595), naming the other
    /// voters most caught up first: each stands after a backoff in proportion to its place in
    /// that list, so the best successor is elected at once rather than after a fetch timeout.
    pub(super) fn step_down(&mut self) {
        assert!(self.is_leader(), "only a leader steps down");
        let successors = self.successors();
        let epoch = self.state.epoch;
        self.role = Role::Resigned {
            election_at: self.election_deadline(),
        };
        for v in self.other_voters() {
            self.send(
                v,
                Message::EndQuorumEpoch {
                    epoch,
                    successors: successors.clone(),
                },
            );
        }
    }

    /// The other voters, most caught up first: whom a resigning leader suggests.
    pub(super) fn successors(&self) -> Vec<NodeId> {
        let Role::Leader(l) = &self.role else {
            return Vec::new();
        };
        let mut v: Vec<(i64, NodeId)> = l
            .replicas
            .iter()
            .filter(|(id, _)| self.voters.contains(id))
            .map(|(id, p)| (p.matched, *id))
            .collect();
        v.sort_by(|a, b| b.cmp(a));
        v.into_iter().map(|(_, id)| id).collect()
    }

    pub(super) fn on_end_quorum_epoch(
        &mut self,
        from: NodeId,
        epoch: Epoch,
        successors: &[NodeId],
    ) {
        if epoch != self.state.epoch || self.leader() != Some(from) || !self.is_voter() {
            return;
        }
        // The leader stepped down: stand soon, the most caught-up successor first (KIP-595
        // has the others back off in proportion to their place in the list).
        let rank = successors
            .iter()
            .position(|s| *s == self.id)
            .unwrap_or(successors.len());
        let backoff = self.config.election_backoff_max.0 / (successors.len() as u64 + 1);
        self.stop_fetching();
        self.role = Role::Unattached {
            election_at: self.now + Duration(backoff * rank as u64),
        };
    }
}
