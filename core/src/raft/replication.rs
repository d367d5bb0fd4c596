//! Replication by pull: followers and observers fetch, the leader validates each fetch against
//! its epoch cache and answers with entries or a diverging epoch, and the high watermark moves
//! when a majority has fetched past it (KIP-595's Fetch, Raft §5.3 and §5.4.2).

use super::node::{Progress, RaftNode, Role};
use super::{Entry, Epoch, FetchResult, Message, NodeId, Output, QuorumState, Record};

impl RaftNode {
    pub(super) fn follower(&self, leader: NodeId) -> Role {
        Role::Follower {
            leader,
            heard_at: self.now,
            next_fetch_at: self.now,
        }
    }

    /// Follow `leader` in the current epoch, recording it, and fetch at once.
    pub(super) fn follow(&mut self, leader: NodeId) {
        assert_ne!(leader, self.id, "a node does not follow itself");
        if self.state.leader != Some(leader) {
            let state = QuorumState {
                leader: Some(leader),
                ..self.state.clone()
            };
            self.save(state);
        }
        self.stop_fetching();
        self.role = self.follower(leader);
        self.send_fetch(leader);
    }

    /// Move to a later epoch: no vote cast in it yet, its leader known or not.
    pub(super) fn enter_epoch(&mut self, epoch: Epoch, leader: Option<NodeId>) {
        assert!(epoch > self.state.epoch);
        self.save(QuorumState {
            epoch,
            voted_for: None,
            leader: None,
        });
        self.stop_fetching();
        self.role = Role::Unattached {
            election_at: self.election_deadline(),
        };
        if let Some(l) = leader.filter(|l| *l != self.id) {
            self.follow(l);
        }
    }

    pub(super) fn probe_for_leader(&mut self) {
        let voters: Vec<NodeId> = self.voters.iter().copied().collect();
        let to = voters[self.probe % voters.len()];
        self.probe += 1;
        self.role = Role::Unattached {
            election_at: self.now + self.config.fetch_backoff,
        };
        self.send_fetch(to);
    }

    /// Ask `to` for what comes next: log entries from our log end, or, while downloading a
    /// snapshot, its next chunk.
    pub(super) fn send_fetch(&mut self, to: NodeId) {
        self.next_fetch_id += 1;
        self.fetch_in_flight = Some((self.next_fetch_id, self.now));
        let fetch_offset = self.log.end();
        let message = match &self.pending_snapshot {
            Some((snapshot_id, bytes)) => Message::FetchSnapshot {
                epoch: self.state.epoch,
                fetch_id: self.next_fetch_id,
                snapshot_id: *snapshot_id,
                position: bytes.len() as u64,
            },
            None => Message::Fetch {
                epoch: self.state.epoch,
                fetch_id: self.next_fetch_id,
                fetch_offset,
                last_fetched_epoch: self.log.epoch_before(fetch_offset),
            },
        };
        self.send(to, message);
    }

    /// Forget any request in flight and any snapshot half downloaded: the node stops
    /// following whom it fetched from.
    pub(super) fn stop_fetching(&mut self) {
        self.fetch_in_flight = None;
        self.pending_snapshot = None;
    }

    pub(super) fn on_fetch(
        &mut self,
        from: NodeId,
        epoch: Epoch,
        fetch_id: u64,
        fetch_offset: i64,
        last_fetched_epoch: Epoch,
    ) {
        let current = self.state.epoch;
        let respond = |node: &mut RaftNode, result: FetchResult| {
            let leader = node.leader();
            let high_watermark = node.high_watermark;
            node.send(
                from,
                Message::FetchResponse {
                    epoch: current,
                    fetch_id,
                    leader,
                    result,
                    high_watermark,
                },
            );
        };
        if !self.is_leader() || epoch != current {
            // Not the leader, or the fetcher is behind on epochs: the response names our epoch
            // and the leader we know, so it can catch up.
            return respond(self, FetchResult::NotLeader);
        }
        if fetch_offset < 0 {
            return respond(
                self,
                FetchResult::Diverging {
                    epoch: Epoch::default(),
                    end_offset: 0,
                },
            );
        }
        // Below our log start, or agreeing with us at most up to somewhere behind it (its last
        // epoch is older than our snapshot's, or differs at the very start): the entries it
        // needs are only in our snapshot (KIP-630; Kafka's `validateOffsetAndEpoch`).
        if let Some(s) = &self.snapshot {
            let start = self.log.start();
            if fetch_offset < start
                || last_fetched_epoch < s.id.epoch
                || (fetch_offset == start && last_fetched_epoch != s.id.epoch)
            {
                let snapshot_id = s.id;
                self.fetched_by(from, None);
                return respond(self, FetchResult::Snapshot { snapshot_id });
            }
        }
        // Does the fetcher's log agree with ours up to fetch_offset? It does when our log has
        // its last fetched epoch ending at or after fetch_offset (KIP-595's validation).
        let (found, end) = self.log.end_offset_for_epoch(last_fetched_epoch);
        if found != last_fetched_epoch || end < fetch_offset {
            return respond(
                self,
                FetchResult::Diverging {
                    epoch: found,
                    end_offset: end,
                },
            );
        }
        assert!(self.log.start() <= fetch_offset && fetch_offset <= self.log.end());
        self.fetched_by(from, Some(fetch_offset));
        self.advance_leader_high_watermark();
        let entries = self.log.read(fetch_offset, self.config.fetch_entries_max);
        respond(
            self,
            FetchResult::Entries {
                base_offset: fetch_offset,
                entries,
            },
        );
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_fetch_response(
        &mut self,
        from: NodeId,
        epoch: Epoch,
        fetch_id: u64,
        leader: Option<NodeId>,
        result: FetchResult,
        high_watermark: i64,
    ) {
        if !self.answer_from_leader(from, epoch, fetch_id, leader) {
            return;
        }
        match result {
            FetchResult::NotLeader => {
                // Our leader no longer leads this epoch (it resigned): wait for the next.
                self.stop_fetching();
                self.role = Role::Unattached {
                    election_at: self.election_deadline(),
                };
            }
            FetchResult::Snapshot { snapshot_id } => {
                self.heard_from_leader();
                self.start_snapshot_download(from, snapshot_id);
            }
            FetchResult::Diverging { epoch, end_offset } => {
                self.heard_from_leader();
                // Truncate to where both logs still agree, as far as this answer shows: the
                // end of that epoch in the leader's log or in ours, whichever is lower (Kafka's
                // `truncateToEndOffset`). Each answer moves the log end down, or the next fetch
                // is valid, so this converges.
                let (_, local_end) = self.log.end_offset_for_epoch(epoch);
                let end = end_offset.min(local_end);
                assert!(
                    end < self.log.end(),
                    "a diverging answer always cuts something"
                );
                if end < self.high_watermark {
                    // Committed entries never diverge in a correct quorum. Refuse rather than
                    // truncate what was committed; the simulator's checkers flag the cause.
                    return self.set_next_fetch();
                }
                self.log.truncate(end);
                self.outputs.push_back(Output::Truncate { end_offset: end });
                self.send_fetch(from);
            }
            FetchResult::Entries {
                base_offset,
                entries,
            } => {
                self.heard_from_leader();
                if base_offset != self.log.end() {
                    return self.set_next_fetch();
                }
                let got = !entries.is_empty();
                if got {
                    for e in &entries {
                        assert!(e.epoch <= self.state.epoch, "no entry from a future epoch");
                        self.log.push(e.clone());
                    }
                    self.outputs.push_back(Output::Append {
                        base_offset,
                        entries,
                    });
                }
                // The leader's high watermark, as far as our log reaches.
                let hw = high_watermark.min(self.log.end());
                if hw > self.high_watermark {
                    self.high_watermark = hw;
                    self.outputs
                        .push_back(Output::Committed { high_watermark: hw });
                }
                if got {
                    self.send_fetch(from);
                } else {
                    self.set_next_fetch();
                }
            }
        }
    }

    /// Whether an answer to a Fetch or FetchSnapshot comes from the leader we follow, for the
    /// request we wait on; if so it is no longer in flight. An answer to a probe names the
    /// leader, which we then follow.
    pub(super) fn answer_from_leader(
        &mut self,
        from: NodeId,
        epoch: Epoch,
        fetch_id: u64,
        leader: Option<NodeId>,
    ) -> bool {
        if self.fetch_in_flight.map(|(id, _)| id) != Some(fetch_id) || epoch < self.state.epoch {
            return false; // an answer to a request we no longer wait for
        }
        self.fetch_in_flight = None;
        let following = matches!(self.role, Role::Follower { leader: l, .. } if l == from);
        if !following {
            // A probe answered, or the node we fetched from is not the leader.
            match leader {
                Some(l) if l != self.id && epoch == self.state.epoch => self.follow(l),
                _ => self.set_next_fetch(),
            }
        }
        following
    }

    /// The leader heard from a replica (which counts for check-quorum); with `agreed`, that
    /// replica's log matches ours below that offset.
    pub(super) fn fetched_by(&mut self, from: NodeId, agreed: Option<i64>) {
        let now = self.now;
        let Role::Leader(l) = &mut self.role else {
            unreachable!("only the leader answers fetches")
        };
        let p = l.replicas.entry(from).or_insert(Progress {
            matched: 0,
            last_fetch: now,
        });
        // A delayed fetch may carry an older offset; agreement, once shown, holds for the
        // rest of this leader's epoch (the leader never truncates its own log).
        p.matched = p.matched.max(agreed.unwrap_or(0));
        p.last_fetch = now;
    }

    pub(super) fn heard_from_leader(&mut self) {
        if let Role::Follower { heard_at, .. } = &mut self.role {
            *heard_at = self.now;
        }
    }

    pub(super) fn set_next_fetch(&mut self) {
        let at = self.now + self.config.fetch_backoff;
        match &mut self.role {
            Role::Follower { next_fetch_at, .. } => *next_fetch_at = at,
            Role::Unattached { election_at } if !self.voters.contains(&self.id) => {
                *election_at = at
            }
            _ => {}
        }
    }

    pub(super) fn append_as_leader(&mut self, record: Record) -> i64 {
        assert!(self.is_leader());
        let offset = self.log.end();
        let entry = Entry {
            epoch: self.state.epoch,
            record,
        };
        self.log.push(entry.clone());
        self.outputs.push_back(Output::Append {
            base_offset: offset,
            entries: vec![entry],
        });
        self.advance_leader_high_watermark();
        offset
    }

    /// The high watermark is the offset a majority of voters has reached (the leader's own log
    /// end counts: the calling contract makes its appends durable), once that majority has this
    /// epoch's first record.
    pub(super) fn advance_leader_high_watermark(&mut self) {
        let Role::Leader(l) = &self.role else {
            return;
        };
        let mut reached: Vec<i64> = vec![self.log.end()];
        reached.extend(
            l.replicas
                .iter()
                .filter(|(id, _)| self.voters.contains(id))
                .map(|(_, p)| p.matched),
        );
        assert_eq!(reached.len(), self.voters.len(), "one figure per voter");
        reached.sort_unstable_by(|a, b| b.cmp(a));
        let majority_reached = reached[self.majority() - 1];
        if majority_reached > l.epoch_start && majority_reached > self.high_watermark {
            self.high_watermark = majority_reached;
            self.outputs.push_back(Output::Committed {
                high_watermark: majority_reached,
            });
        }
    }
}
