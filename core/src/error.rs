//! Kafka's error codes, the ones gregor returns, named as in Kafka's `Errors.java`.
//!
//! Errors say whose fault they are: a client's mistake gets one of these codes (and a log line
//! naming what was wrong); a storage fault becomes [`KAFKA_STORAGE_ERROR`]; a bug in gregor is a
//! panic, never a code.

pub type ErrorCode = i16;

pub const NONE: ErrorCode = 0;
pub const OFFSET_OUT_OF_RANGE: ErrorCode = 1;
pub const CORRUPT_MESSAGE: ErrorCode = 2;
pub const UNKNOWN_TOPIC_OR_PARTITION: ErrorCode = 3;
pub const REQUEST_TIMED_OUT: ErrorCode = 7;
pub const MESSAGE_TOO_LARGE: ErrorCode = 10;
pub const COORDINATOR_LOAD_IN_PROGRESS: ErrorCode = 14;
pub const COORDINATOR_NOT_AVAILABLE: ErrorCode = 15;
pub const NOT_COORDINATOR: ErrorCode = 16;
pub const INVALID_TOPIC_EXCEPTION: ErrorCode = 17;
pub const RECORD_LIST_TOO_LARGE: ErrorCode = 18;
pub const INVALID_REQUIRED_ACKS: ErrorCode = 21;
pub const ILLEGAL_GENERATION: ErrorCode = 22;
pub const INCONSISTENT_GROUP_PROTOCOL: ErrorCode = 23;
pub const INVALID_GROUP_ID: ErrorCode = 24;
pub const UNKNOWN_MEMBER_ID: ErrorCode = 25;
pub const INVALID_SESSION_TIMEOUT: ErrorCode = 26;
pub const REBALANCE_IN_PROGRESS: ErrorCode = 27;
pub const INVALID_COMMIT_OFFSET_SIZE: ErrorCode = 28;
pub const UNSUPPORTED_VERSION: ErrorCode = 35;
pub const TOPIC_ALREADY_EXISTS: ErrorCode = 36;
pub const INVALID_PARTITIONS: ErrorCode = 37;
pub const INVALID_REPLICATION_FACTOR: ErrorCode = 38;
pub const INVALID_REQUEST: ErrorCode = 42;
pub const UNSUPPORTED_FOR_MESSAGE_FORMAT: ErrorCode = 43;
pub const INVALID_CONFIG: ErrorCode = 40;
pub const OUT_OF_ORDER_SEQUENCE_NUMBER: ErrorCode = 45;
pub const INVALID_PRODUCER_EPOCH: ErrorCode = 47;
pub const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: ErrorCode = 53;
pub const KAFKA_STORAGE_ERROR: ErrorCode = 56;
pub const NON_EMPTY_GROUP: ErrorCode = 68;
pub const GROUP_ID_NOT_FOUND: ErrorCode = 69;
pub const MEMBER_ID_REQUIRED: ErrorCode = 79;
pub const FENCED_INSTANCE_ID: ErrorCode = 82;
pub const INVALID_RECORD: ErrorCode = 87;
pub const UNSTABLE_OFFSET_COMMIT: ErrorCode = 88;
