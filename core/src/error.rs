//! Kafka's error codes, the ones gregor returns, named as in Kafka's `Errors.java`.
//!
//! Errors say whose fault they are: a client's mistake gets one of these codes (and a message
//! naming what was wrong); a storage fault becomes [`ErrorCode::KAFKA_STORAGE_ERROR`]; a bug in
//! gregor is a panic, never a code.
//!
//! Inside the core an error is an [`ErrorCode`] (a newtype, so a code is never confused with
//! another `i16` such as an API version), or a [`ClientError`] when there is something to say
//! about it. The raw `i16` appears where a response is built (`.wire()` or `.into()`). The
//! module also exports every code as a plain `i16` constant of the same name: the wire values,
//! for clients that read responses (the simulator, the fuzz targets, tests).

use std::fmt;

/// A Kafka error code, as carried in every response's `error_code` field. `NONE` (0) is
/// success.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ErrorCode(i16);

/// Defines the codes twice from one list: as [`ErrorCode`]'s associated constants and as the
/// module's `i16` wire constants; and [`ErrorCode::name`] from the same list.
macro_rules! codes {
    ($($name:ident = $value:literal;)*) => {
        impl ErrorCode {
            $(
                #[doc = concat!("Kafka's `", stringify!($name), "` (", stringify!($value), ").")]
                pub const $name: ErrorCode = ErrorCode($value);
            )*

            /// The code's name in Kafka's `Errors.java`, for log lines; `UNKNOWN` for a code
            /// gregor does not name (one read from a peer's response).
            pub fn name(self) -> &'static str {
                match self.0 {
                    $($value => stringify!($name),)*
                    _ => "UNKNOWN",
                }
            }
        }

        $(
            #[doc = concat!("The wire value of [`ErrorCode::", stringify!($name), "`].")]
            pub const $name: i16 = $value;
        )*
    };
}

codes! {
    NONE = 0;
    OFFSET_OUT_OF_RANGE = 1;
    CORRUPT_MESSAGE = 2;
    UNKNOWN_TOPIC_OR_PARTITION = 3;
    LEADER_NOT_AVAILABLE = 5;
    NOT_LEADER_OR_FOLLOWER = 6;
    REQUEST_TIMED_OUT = 7;
    MESSAGE_TOO_LARGE = 10;
    OFFSET_METADATA_TOO_LARGE = 12;
    COORDINATOR_LOAD_IN_PROGRESS = 14;
    COORDINATOR_NOT_AVAILABLE = 15;
    NOT_COORDINATOR = 16;
    NOT_ENOUGH_REPLICAS = 19;
    NOT_ENOUGH_REPLICAS_AFTER_APPEND = 20;
    INVALID_TOPIC_EXCEPTION = 17;
    RECORD_LIST_TOO_LARGE = 18;
    INVALID_REQUIRED_ACKS = 21;
    ILLEGAL_GENERATION = 22;
    INCONSISTENT_GROUP_PROTOCOL = 23;
    INVALID_GROUP_ID = 24;
    UNKNOWN_MEMBER_ID = 25;
    INVALID_SESSION_TIMEOUT = 26;
    REBALANCE_IN_PROGRESS = 27;
    INVALID_COMMIT_OFFSET_SIZE = 28;
    TOPIC_AUTHORIZATION_FAILED = 29;
    GROUP_AUTHORIZATION_FAILED = 30;
    CLUSTER_AUTHORIZATION_FAILED = 31;
    UNSUPPORTED_SASL_MECHANISM = 33;
    ILLEGAL_SASL_STATE = 34;
    UNSUPPORTED_VERSION = 35;
    TOPIC_ALREADY_EXISTS = 36;
    INVALID_PARTITIONS = 37;
    INVALID_REPLICATION_FACTOR = 38;
    INVALID_REPLICA_ASSIGNMENT = 39;
    INVALID_CONFIG = 40;
    INVALID_REQUEST = 42;
    UNSUPPORTED_FOR_MESSAGE_FORMAT = 43;
    OUT_OF_ORDER_SEQUENCE_NUMBER = 45;
    INVALID_PRODUCER_EPOCH = 47;
    TRANSACTIONAL_ID_AUTHORIZATION_FAILED = 53;
    SECURITY_DISABLED = 54;
    KAFKA_STORAGE_ERROR = 56;
    SASL_AUTHENTICATION_FAILED = 58;
    NON_EMPTY_GROUP = 68;
    GROUP_ID_NOT_FOUND = 69;
    FENCED_LEADER_EPOCH = 74;
    UNKNOWN_LEADER_EPOCH = 76;
    OFFSET_NOT_AVAILABLE = 78;
    MEMBER_ID_REQUIRED = 79;
    FENCED_INSTANCE_ID = 82;
    GROUP_SUBSCRIBED_TO_TOPIC = 86;
    INVALID_RECORD = 87;
    UNSTABLE_OFFSET_COMMIT = 88;
    RESOURCE_NOT_FOUND = 91;
    DUPLICATE_RESOURCE = 92;
    UNACCEPTABLE_CREDENTIAL = 93;
}

impl ErrorCode {
    /// The code of a response field, as read from the wire.
    pub const fn from_wire(code: i16) -> ErrorCode {
        ErrorCode(code)
    }
    /// The value for a response's `error_code` field.
    pub const fn wire(self) -> i16 {
        self.0
    }
    pub const fn is_none(self) -> bool {
        self.0 == 0
    }
}

impl From<ErrorCode> for i16 {
    fn from(code: ErrorCode) -> i16 {
        code.0
    }
}

impl PartialEq<i16> for ErrorCode {
    fn eq(&self, other: &i16) -> bool {
        self.0 == *other
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.0)
    }
}

impl fmt::Debug for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({})", self.name(), self.0)
    }
}

/// A request (or one partition of it) refused because of what the client sent or asked for:
/// the code the client acts on, and a message for the broker's log naming what was wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientError {
    pub code: ErrorCode,
    pub message: String,
}

impl ClientError {
    /// Precondition: `code` is an error, not `NONE`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ClientError {
        assert!(!code.is_none(), "an error with the success code");
        ClientError {
            code,
            message: message.into(),
        }
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_keep_their_wire_values_and_names() {
        assert_eq!(ErrorCode::NONE.wire(), 0);
        assert_eq!(ErrorCode::KAFKA_STORAGE_ERROR.wire(), KAFKA_STORAGE_ERROR);
        assert_eq!(i16::from(ErrorCode::FENCED_INSTANCE_ID), 82);
        assert_eq!(ErrorCode::from_wire(27), ErrorCode::REBALANCE_IN_PROGRESS);
        assert_eq!(ErrorCode::ILLEGAL_GENERATION.name(), "ILLEGAL_GENERATION");
        assert_eq!(ErrorCode::from_wire(59).name(), "UNKNOWN");
        assert_eq!(
            ClientError::new(ErrorCode::CORRUPT_MESSAGE, "bad crc").to_string(),
            "CORRUPT_MESSAGE (2): bad crc"
        );
    }

    #[test]
    #[should_panic(expected = "success code")]
    fn no_client_error_is_a_success() {
        ClientError::new(ErrorCode::NONE, "fine");
    }
}
