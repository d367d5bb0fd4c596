//! `errors.tolerance`: what a connector does with a record it cannot handle (KIP-298).
//!
//! A bad record is a line longer than the limit, a value a converter refuses, a syslog frame
//! that is not syslog. With `errors.tolerance=none` (Kafka's default) the task fails: it stops,
//! and says why. With `all` the record is skipped: always logged (`errors.log.enable=true` adds
//! the record's bytes to the line, Kafka's `errors.log.include.messages`), and sent to the
//! dead-letter topic `errors.deadletterqueue.topic.name` if one is set, with the raw bytes as
//! the value and the error in headers named as Kafka names them
//! (`errors.deadletterqueue.context.headers.enable`). Kafka has dead-letter topics for sink
//! connectors only; gregor's sources use them too, since a bad log line is worth keeping.

/// `errors.tolerance`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tolerance {
    None,
    All,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorPolicy {
    pub tolerance: Tolerance,
    pub dead_letter_topic: Option<String>,
    pub log_records: bool,
}

impl Default for ErrorPolicy {
    fn default() -> Self {
        ErrorPolicy {
            tolerance: Tolerance::None,
            dead_letter_topic: None,
            log_records: false,
        }
    }
}

/// What to do with one bad record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Handling {
    /// Stop the task with this reason.
    Fail(String),
    /// Skip it; log `log`, and if `dead_letter` is set produce this record there.
    Skip {
        log: String,
        dead_letter: Option<DeadLetter>,
    },
}

/// A record for the dead-letter topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetter {
    pub topic: String,
    pub value: Vec<u8>,
    pub headers: Vec<(String, Vec<u8>)>,
}

/// How many bytes of a bad record a log line shows.
const LOGGED_BYTES_MAX: usize = 200;

impl ErrorPolicy {
    /// Decide about a record `raw` that failed in `stage` (Kafka's stage names: `TASK_POLL`
    /// for a source reading, `VALUE_CONVERTER`, ...) of `connector` because of `error`.
    pub fn handle(&self, connector: &str, stage: &str, error: &str, raw: &[u8]) -> Handling {
        assert!(!error.is_empty(), "an error says what is wrong");
        if self.tolerance == Tolerance::None {
            return Handling::Fail(format!(
                "{stage}: {error} (errors.tolerance=none stops the task; set it to all to skip \
                 bad records)"
            ));
        }
        let mut log = format!("skipping a bad record ({stage}): {error}");
        if self.log_records {
            let shown = &raw[..raw.len().min(LOGGED_BYTES_MAX)];
            log.push_str(&format!(": {:?}", String::from_utf8_lossy(shown)));
        }
        let dead_letter = self.dead_letter_topic.as_ref().map(|t| {
            log.push_str(&format!(" (sent to dead-letter topic {t})"));
            DeadLetter {
                topic: t.clone(),
                value: raw.to_vec(),
                headers: vec![
                    ("__connect.errors.connector.name".into(), connector.into()),
                    ("__connect.errors.stage".into(), stage.into()),
                    ("__connect.errors.exception.message".into(), error.into()),
                ],
            }
        });
        Handling::Skip { log, dead_letter }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn none_fails_all_skips_with_a_log_line_and_the_dead_letter_topic_gets_the_raw_bytes() {
        let mut p = ErrorPolicy::default();
        let Handling::Fail(why) = p.handle("c", "TASK_POLL", "line too long", b"xx") else {
            panic!("tolerance none fails")
        };
        assert!(why.contains("line too long"));
        p.tolerance = Tolerance::All;
        let h = p.handle("c", "TASK_POLL", "line too long", b"xx");
        assert_eq!(
            h,
            Handling::Skip {
                log: "skipping a bad record (TASK_POLL): line too long".into(),
                dead_letter: None
            }
        );
        p.dead_letter_topic = Some("dlq".into());
        p.log_records = true;
        let Handling::Skip { log, dead_letter } = p.handle("c", "TASK_POLL", "bad", b"xx") else {
            panic!("tolerance all skips")
        };
        assert!(log.contains("\"xx\"") && log.contains("dlq"), "{log}");
        let d = dead_letter.unwrap();
        assert_eq!((d.topic.as_str(), &d.value[..]), ("dlq", &b"xx"[..]));
        assert!(d
            .headers
            .contains(&("__connect.errors.exception.message".into(), b"bad".to_vec())));
    }
}
