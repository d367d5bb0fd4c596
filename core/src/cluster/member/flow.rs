//! How a member moves: after every input, everything is pumped along until nothing moves —
//! the Raft node's (or observer's) outputs in order, the committed image handed to the broker
//! right after the output that moved it, the local controller's answers routed to whoever asked
//! (the broker here, or a remote broker through the wire), the broker lifecycle's due request
//! (registration, heartbeat), and the controller channel's sends and answers.

use super::*;

impl Member {
    /// Move everything along until nothing moves: the source's outputs (in order, the image
    /// handed over right after the last output that moved it), the local controller's answers
    /// routed to whoever asked, the lifecycle's due request, the channel's sends and answers.
    pub(super) fn pump(&mut self) {
        loop {
            let raws = self.drain_source();
            let mut busy = !raws.is_empty();
            let last_move = raws.iter().rposition(|r| {
                matches!(
                    r,
                    Raw::Raft(raft::Output::Committed { .. } | raft::Output::InstallSnapshot(_))
                )
            });
            for (i, raw) in raws.into_iter().enumerate() {
                match raw {
                    Raw::Raft(r) => self.outputs.push_back(Output::Raft(r)),
                    Raw::Respond(id, result) => self.route_answer(id, result),
                }
                if last_move == Some(i) {
                    self.hand_over_image();
                }
            }
            self.end_previous_run();
            busy |= self.drive_channel();
            if !busy {
                break;
            }
        }
        // A restart from a snapshot starts with an image no output moved.
        self.hand_over_image();
        self.invariants();
    }

    /// Everything the source has to say, in order; an observer's commits replayed.
    pub(super) fn drain_source(&mut self) -> Vec<Raw> {
        let mut raws = Vec::new();
        match &mut self.source {
            Source::Voter(c) => {
                while let Some(o) = c.poll_output() {
                    raws.push(match o {
                        quorum_controller::Output::Raft(r) => Raw::Raft(r),
                        quorum_controller::Output::Respond { id, result } => {
                            Raw::Respond(id, result)
                        }
                    });
                }
            }
            Source::Observer(o) => {
                while let Some(r) = o.raft.poll_output() {
                    follow_commits(&mut o.image, &mut o.applied, o.raft.log(), &r);
                    if let raft::Output::Truncate { end_offset } = r {
                        assert!(
                            end_offset >= o.applied,
                            "committed entries are never truncated"
                        );
                    }
                    raws.push(Raw::Raft(r));
                }
                assert!(!o.raft.is_leader(), "an observer never leads");
            }
        }
        raws
    }

    /// A combined node's controller, first active in this process, ends the session of a
    /// registration of this node's broker by another incarnation: that was this node's
    /// previous run, whose process is gone. Kafka's controller would refuse the new
    /// incarnation (DUPLICATE_BROKER_REGISTRATION) until the old session lapses (9 s); a
    /// restarted one-voter `gregor serve` would wait that long before serving.
    pub(super) fn end_previous_run(&mut self) {
        let Source::Voter(c) = &mut self.source else {
            return;
        };
        let Some(incarnation) = self.previous_run else {
            return;
        };
        let Some(working) = c.working_image() else {
            return;
        };
        let me = crate::cluster::BrokerId(self.id.0);
        if working
            .broker(me)
            .is_some_and(|b| b.incarnation_id != incarnation)
        {
            c.end_session(me);
        }
        self.previous_run = None;
    }

    /// The local controller answered request `id`: to the channel or the remote broker.
    pub(super) fn route_answer(&mut self, id: RequestId, result: Result<Reply, ControllerError>) {
        let asker = self
            .asks
            .remove(&id)
            .unwrap_or_else(|| panic!("the controller answered {id:?} twice or unasked"));
        assert!(!self.asks.contains_key(&id), "answered once");
        match asker {
            Asker::Channel(attempt) => {
                let ch = self.channel.as_mut().expect("the channel asked");
                ch.answer(self.now, attempt, result);
            }
            Asker::Remote { from, id } => {
                assert_ne!(from, self.id, "a remote asker is another node");
                self.outputs.push_back(Output::Respond {
                    to: from,
                    id,
                    result,
                })
            }
        }
    }

    pub(super) fn hand_over_image(&mut self) {
        let image = self.source.image();
        if image.offset() == self.image.offset() {
            return;
        }
        assert!(
            image.offset() > self.image.offset(),
            "the committed image only moves forward"
        );
        self.image = Arc::new(image.clone());
        assert_eq!(
            self.image.offset(),
            self.source.image().offset(),
            "the broker sees it all"
        );
        if self.role.has_broker() {
            self.outputs.push_back(Output::Image(self.image.clone()));
        }
    }

    /// The lifecycle's due request into the channel, the channel's events out; whether
    /// anything happened.
    pub(super) fn drive_channel(&mut self) -> bool {
        let Some(ch) = &mut self.channel else {
            return false;
        };
        ch.quorum_leader(self.source.raft().leader());
        let replayed = self.image.offset();
        if let Some(l) = &mut self.lifecycle {
            if let Some(request) = l.due(self.now, replayed) {
                let deadline = self.now + self.config.request_timeout;
                ch.send(self.now, Caller::Lifecycle, request, deadline);
            }
        }
        let mut busy = false;
        while let Some(e) = ch.poll_event() {
            busy = true;
            match e {
                Event::Send { to, id, request } => match &mut self.source {
                    Source::Voter(c) if to == self.id => {
                        // The local controller: no wire. Its answer comes out of the source.
                        self.next_ask += 1;
                        let ours = RequestId(self.next_ask);
                        self.asks.insert(ours, Asker::Channel(id));
                        c.request(self.now, ours, request);
                    }
                    _ => {
                        assert_ne!(to, self.id, "an observer is not a controller");
                        self.outputs.push_back(Output::Request { to, id, request });
                    }
                },
                Event::Done {
                    caller: Caller::Lifecycle,
                    result,
                } => {
                    let l = self.lifecycle.as_mut().expect("the lifecycle asked");
                    l.answer(self.now, result);
                }
                Event::Done {
                    caller: Caller::Broker(id),
                    result,
                } => {
                    assert!(
                        self.broker_waiting.remove(&id),
                        "a broker request is answered once"
                    );
                    self.outputs
                        .push_back(Output::ControllerReply { id, result });
                }
            }
        }
        busy
    }
}
