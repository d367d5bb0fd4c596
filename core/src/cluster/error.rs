//! Why the controller refuses a request: [`ControllerError`], each variant one of Kafka's error
//! codes. Its own module because both the controller's decisions (`controller.rs`) and the ISR
//! rules (`replication.rs`) return it, and neither should import the other for it.

use super::BrokerId;

/// Why the controller refused a request; each maps to Kafka's error code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ControllerError {
    /// Another incarnation of this broker id still has a live session.
    DuplicateBrokerRegistration(BrokerId),
    /// A heartbeat from a broker id with no registration.
    BrokerIdNotRegistered(BrokerId),
    /// A heartbeat naming an older incarnation's epoch.
    StaleBrokerEpoch(BrokerId),
    TopicAlreadyExists(String),
    UnknownTopic(String),
    /// A topic name Kafka does not allow (empty, too long, bad characters): the reason.
    InvalidTopic(String),
    InvalidPartitions(i32),
    /// More replicas asked for than there are unfenced brokers.
    InvalidReplicationFactor {
        asked: i32,
        brokers: usize,
    },
    /// This node is not the active controller (or stopped being it before the request's
    /// records committed: they may still commit under the next one). `leader` is the quorum
    /// leader it knows of, the node to ask instead.
    NotController {
        leader: Option<i32>,
    },
    /// Too many of the active controller's records are waiting to commit (a majority of the
    /// quorum is slow or unreachable): nothing was written; ask again later.
    RequestTimedOut,
    /// A topic config key the brokers do not know (not in [`TOPIC_CONFIGS`]), or a value out of
    /// range: the reason.
    InvalidConfig(String),
    /// AlterPartition names a topic id the image does not have (UNKNOWN_TOPIC_ID, KIP-516).
    UnknownTopicId(super::TopicId),
    /// AlterPartition names a partition the topic does not have.
    UnknownTopicOrPartition(i32),
    /// AlterPartition from a leader epoch older than the partition's: a deposed leader.
    FencedLeaderEpoch {
        asked: i32,
        current: i32,
    },
    /// AlterPartition from a broker that does not lead the partition.
    NotLeaderOrFollower(BrokerId),
    /// AlterPartition built on a partition epoch older than the partition's: another change
    /// came first (KIP-497's optimistic concurrency).
    InvalidUpdateVersion {
        asked: i32,
        current: i32,
    },
    /// A request whose content is inconsistent (an ISR outside the replicas): the reason.
    InvalidRequest(String),
    /// AlterPartition would add a broker that may not join an ISR (KIP-841, KIP-903): why.
    IneligibleReplica(String),
    /// The change was made, and it elected another leader: the asker (shutting down) no
    /// longer leads.
    NewLeaderElected(BrokerId),
    /// ElectLeaders (KIP-460): the partition already has the leader asked for: why.
    ElectionNotNeeded(String),
    /// ElectLeaders, preferred: the preferred replica is not a live ISR member: why.
    PreferredLeaderNotAvailable(String),
    /// ElectLeaders, unclean: no replica of the partition is live: why.
    EligibleLeadersNotAvailable(String),
    /// AlterPartitionReassignments (KIP-455): the target replicas are empty, repeat a broker or
    /// name one that is not registered: why.
    InvalidReplicaAssignment(String),
    /// AlterPartitionReassignments: a cancel (null replicas) of a partition not being moved.
    NoReassignmentInProgress(String),
    /// AlterUserScramCredentials (KIP-554): a deletion of a credential that does not exist.
    ResourceNotFound(String),
    /// AlterUserScramCredentials: a user named more than once in one request.
    DuplicateResource(String),
    /// AlterUserScramCredentials: an empty user name, too few or too many iterations, a salt
    /// or salted password of the wrong shape: why.
    UnacceptableCredential(String),
    /// AlterUserScramCredentials: a mechanism number that is not a SCRAM hash Kafka knows.
    UnsupportedSaslMechanism(String),
}

impl ControllerError {
    /// Kafka's error code (`Errors.java`).
    pub fn code(&self) -> i16 {
        let code = match self {
            ControllerError::DuplicateBrokerRegistration(_) => 101,
            ControllerError::BrokerIdNotRegistered(_) => 102,
            ControllerError::StaleBrokerEpoch(_) => 77,
            ControllerError::TopicAlreadyExists(_) => 36,
            ControllerError::UnknownTopic(_) => 3,
            ControllerError::InvalidTopic(_) => 17,
            ControllerError::InvalidPartitions(_) => 37,
            ControllerError::InvalidReplicationFactor { .. } => 38,
            ControllerError::NotController { .. } => 41,
            ControllerError::RequestTimedOut => 7,
            ControllerError::InvalidConfig(_) => 40,
            ControllerError::UnknownTopicId(_) => 100,
            ControllerError::UnknownTopicOrPartition(_) => 3,
            ControllerError::FencedLeaderEpoch { .. } => 74,
            ControllerError::NotLeaderOrFollower(_) => 6,
            ControllerError::InvalidUpdateVersion { .. } => 108,
            ControllerError::InvalidRequest(_) => 42,
            ControllerError::IneligibleReplica(_) => 107,
            ControllerError::NewLeaderElected(_) => 109,
            ControllerError::ElectionNotNeeded(_) => 84,
            ControllerError::PreferredLeaderNotAvailable(_) => 80,
            ControllerError::EligibleLeadersNotAvailable(_) => 83,
            ControllerError::InvalidReplicaAssignment(_) => 39,
            ControllerError::NoReassignmentInProgress(_) => 85,
            ControllerError::ResourceNotFound(_) => 91,
            ControllerError::DuplicateResource(_) => 92,
            ControllerError::UnacceptableCredential(_) => 93,
            ControllerError::UnsupportedSaslMechanism(_) => 33,
        };
        assert!(
            code > 0,
            "a controller error is never NONE (0) nor UNKNOWN (-1)"
        );
        code
    }

    /// A sentence for the response's `error_message`.
    pub fn message(&self) -> String {
        match self {
            ControllerError::DuplicateBrokerRegistration(b) => {
                format!("broker {} is already registered with a live session", b.0)
            }
            ControllerError::BrokerIdNotRegistered(b) => {
                format!("broker {} is not registered", b.0)
            }
            ControllerError::StaleBrokerEpoch(b) => {
                format!("broker {}: the broker epoch is not its current one", b.0)
            }
            ControllerError::TopicAlreadyExists(t) => format!("topic {t} already exists"),
            ControllerError::UnknownTopic(t) => format!("topic {t} does not exist"),
            ControllerError::InvalidTopic(why) => why.clone(),
            ControllerError::InvalidPartitions(n) => format!("invalid partition count {n}"),
            ControllerError::InvalidReplicationFactor { asked, brokers } => {
                format!("replication factor {asked} with {brokers} unfenced brokers")
            }
            ControllerError::NotController { leader } => match leader {
                Some(l) => format!("not the active controller; node {l} leads the quorum"),
                None => "not the active controller; no quorum leader known".into(),
            },
            ControllerError::RequestTimedOut => {
                "the metadata quorum is not committing; try again".into()
            }
            ControllerError::InvalidConfig(why) => why.clone(),
            ControllerError::UnknownTopicId(id) => format!("no topic with id {:02x?}", id.0),
            ControllerError::UnknownTopicOrPartition(p) => format!("no partition {p}"),
            ControllerError::FencedLeaderEpoch { asked, current } => {
                format!("leader epoch {asked} is older than the partition's {current}")
            }
            ControllerError::NotLeaderOrFollower(b) => {
                format!("broker {} does not lead the partition", b.0)
            }
            ControllerError::InvalidUpdateVersion { asked, current } => {
                format!("partition epoch {asked} is not the partition's {current}")
            }
            ControllerError::InvalidRequest(why)
            | ControllerError::IneligibleReplica(why)
            | ControllerError::ElectionNotNeeded(why)
            | ControllerError::PreferredLeaderNotAvailable(why)
            | ControllerError::EligibleLeadersNotAvailable(why)
            | ControllerError::InvalidReplicaAssignment(why)
            | ControllerError::NoReassignmentInProgress(why) => why.clone(),
            ControllerError::ResourceNotFound(why)
            | ControllerError::DuplicateResource(why)
            | ControllerError::UnacceptableCredential(why)
            | ControllerError::UnsupportedSaslMechanism(why) => why.clone(),
            ControllerError::NewLeaderElected(b) => {
                format!("the ISR changed and broker {} no longer leads", b.0)
            }
        }
    }
}
