//! A group and its members, as replayed from records.

use super::*;

// ---------------------------------------------------------------- state

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    /// Whether Kafka's group state machine lets a group move from `from` to `self`
    /// (`GroupMetadata.scala`, `validPreviousStates`).
    pub(crate) fn may_follow(self, from: GroupState) -> bool {
        use GroupState::*;
        match self {
            Empty => from == PreparingRebalance,
            PreparingRebalance => matches!(from, Stable | CompletingRebalance | Empty),
            CompletingRebalance => from == PreparingRebalance,
            Stable => from == CompletingRebalance,
            Dead => true,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Member {
    pub member_id: MemberId,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    pub session_deadline: Instant,
    pub(super) awaiting_join: Option<ReplyTo>,
    pub(super) awaiting_sync: Option<ReplyTo>,
}

impl Member {
    pub(super) fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(n, _)| n == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }
}

#[derive(Clone, Debug)]
pub struct Group {
    /// Where the group is in Kafka's state machine; changed only through [`Group::transition`]
    /// (and by replaying a record at load).
    pub state: GroupState,
    /// Rebalances completed; moved only by [`Group::next_generation`] (and by replay).
    pub generation: GenerationId,
    pub protocol_type: String,
    pub protocol: Option<String>,
    pub leader: Option<MemberId>,
    pub members: BTreeMap<MemberId, Member>,
    /// Members told MEMBER_ID_REQUIRED, until they join with their id or the session times out.
    pub(super) pending: BTreeMap<MemberId, Instant>,
    pub(super) rebalance_deadline: Option<Instant>,
    /// A new group's first rebalance does not complete before this (initial rebalance delay).
    pub(super) initial_delay_until: Option<Instant>,
    pub state_ms: i64,
    /// The group's latest membership record in `__consumer_offsets`. Until it is durable,
    /// nothing derived from it (an assignment, a generation) is shown to a client: otherwise a
    /// power loss could take back what a client was told (found by the simulator, seed 152).
    pub(super) last_write: Option<WriteMark>,
}

impl Group {
    /// Static membership (KIP-345): is a request that names `instance_id` with `member_id` from
    /// a member that was replaced? The instance id now belongs to another member id, so the
    /// old member is fenced: FENCED_INSTANCE_ID, fatal to the client (Kafka's
    /// `GroupMetadata.isStaticMemberFenced`).
    pub(super) fn is_fenced(&self, instance_id: Option<&str>, member_id: &str) -> bool {
        let Some(iid) = instance_id else {
            return false;
        };
        let holders: Vec<&Member> = self
            .members
            .values()
            .filter(|m| m.instance_id.as_deref() == Some(iid))
            .collect();
        assert!(holders.len() <= 1, "instance id {iid} held by two members");
        holders.first().is_some_and(|m| m.member_id != *member_id)
    }

    /// Move the group to state `to`, which must be a legal successor of its current state in
    /// Kafka's group state machine (see [`GroupState::may_follow`]).
    pub(super) fn transition(&mut self, to: GroupState) {
        assert!(
            to.may_follow(self.state),
            "group state {:?} cannot become {to:?}",
            self.state
        );
        self.state = to;
        assert_eq!(self.state, to);
    }

    /// A rebalance completed: the generation moves up by exactly one. Precondition: the group
    /// is completing its join phase (PreparingRebalance).
    pub(super) fn next_generation(&mut self) -> GenerationId {
        assert_eq!(
            self.state,
            GroupState::PreparingRebalance,
            "a generation ends with a rebalance"
        );
        let before = self.generation;
        self.generation = before.next();
        assert_eq!(
            self.generation.0,
            before.0 + 1,
            "one rebalance, one generation"
        );
        self.generation
    }

    pub(super) fn new(now_ms: i64) -> Group {
        Group {
            state: GroupState::Empty,
            generation: GenerationId::FIRST,
            protocol_type: String::new(),
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            pending: BTreeMap::new(),
            rebalance_deadline: None,
            initial_delay_until: None,
            state_ms: now_ms,
            last_write: None,
        }
    }

    /// How long a rebalance may wait for members to rejoin: the longest rebalance timeout of
    /// any member (Kafka's rule).
    pub(super) fn rebalance_timeout(&self) -> Duration {
        let ms = self
            .members
            .values()
            .map(|m| m.rebalance_timeout_ms)
            .max()
            .unwrap_or(0)
            .max(0);
        Duration::from_ms(ms as u64)
    }
}
