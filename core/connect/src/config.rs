//! `connect.toml`: the worker's settings and its connectors, with Kafka Connect's names.
//!
//! ```toml
//! [worker]
//! offset.storage.topic = "connect-offsets"   # Kafka's distributed-worker name
//! offset.flush.interval.ms = 1000
//!
//! [[connector]]
//! name = "app-log"
//! connector.class = "file-source"            # or `class`; Kafka's FileStreamSource too
//! file = "/var/log/app.log"
//! topic = "app-log"
//! value.converter = "string"
//! errors.tolerance = "all"
//! errors.deadletterqueue.topic.name = "app-log-dlq"
//! ```
//!
//! TOML reads `a.b = 1` as a table `a` holding `b`; the settings are flattened back to Kafka's
//! dotted names, so `value.converter = "json"` and `"value.converter" = "json"` are the same.
//! An unknown setting is an error: a misspelt name silently ignored would be a worse one.

use crate::convert::Converter;
use crate::errors::{ErrorPolicy, Tolerance};
use std::collections::BTreeMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    FileSource,
    FileSink,
    SyslogSource,
}

/// Which syslog field becomes the record key (`key.field`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyField {
    Host,
    App,
    None,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ConnectorConfig {
    pub name: String,
    pub class: Class,
    /// A source's topic.
    pub topic: Option<String>,
    /// A sink's topics.
    pub topics: Vec<String>,
    pub file: Option<String>,
    pub tasks_max: u32,
    pub key_converter: Converter,
    pub value_converter: Converter,
    pub errors: ErrorPolicy,
    /// The longest line a file source takes (bytes, `max.line.length`).
    pub line_bytes_max: usize,
    /// How often a file source looks at its file (`poll.interval.ms`).
    pub poll_interval_ms: u64,
    /// Syslog listeners (`listen.udp`, `listen.tcp`: host:port).
    pub listen_udp: Option<String>,
    pub listen_tcp: Option<String>,
    pub key_field: KeyField,
    /// The largest syslog frame (`max.message.bytes`).
    pub syslog_bytes_max: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub struct WorkerConfig {
    pub offset_topic: String,
    pub offset_flush_interval_ms: u64,
    pub connectors: Vec<ConnectorConfig>,
}

/// Flatten nested TOML tables into dotted names with string values.
fn flatten(
    prefix: &str,
    v: &toml::Value,
    out: &mut BTreeMap<String, String>,
) -> Result<(), String> {
    match v {
        toml::Value::Table(t) => {
            for (k, v) in t {
                let name = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&name, v, out)?;
            }
        }
        toml::Value::String(s) => drop(out.insert(prefix.to_string(), s.clone())),
        toml::Value::Integer(i) => drop(out.insert(prefix.to_string(), i.to_string())),
        toml::Value::Boolean(b) => drop(out.insert(prefix.to_string(), b.to_string())),
        toml::Value::Array(a) => {
            let items: Result<Vec<String>, String> = a
                .iter()
                .map(|x| match x {
                    toml::Value::String(s) => Ok(s.clone()),
                    other => Err(format!("{prefix}: a list of strings, not {other}")),
                })
                .collect();
            out.insert(prefix.to_string(), items?.join(","));
        }
        other => return Err(format!("{prefix}: unsupported value {other}")),
    }
    Ok(())
}

/// The settings of one table, taken one by one; what is left at the end is unknown.
struct Settings {
    what: String,
    map: BTreeMap<String, String>,
}

impl Settings {
    fn take(&mut self, name: &str) -> Option<String> {
        self.map.remove(name)
    }
    fn num<T: std::str::FromStr>(&mut self, name: &str, default: T) -> Result<T, String> {
        match self.take(name) {
            None => Ok(default),
            Some(s) => s
                .parse()
                .map_err(|_| format!("{}: {name} = {s:?} is not a number", self.what)),
        }
    }
    fn done(self) -> Result<(), String> {
        match self.map.keys().next() {
            None => Ok(()),
            Some(k) => Err(format!("{}: unknown setting {k:?}", self.what)),
        }
    }
}

fn class(s: &str) -> Result<Class, String> {
    match s {
        "file-source"
        | "FileStreamSource"
        | "org.apache.kafka.connect.file.FileStreamSourceConnector" => Ok(Class::FileSource),
        "file-sink"
        | "FileStreamSink"
        | "org.apache.kafka.connect.file.FileStreamSinkConnector" => Ok(Class::FileSink),
        "syslog-source" => Ok(Class::SyslogSource),
        other => Err(format!(
            "connector class {other:?}: gregor has file-source, file-sink and syslog-source"
        )),
    }
}

fn connector(table: &toml::Value, index: usize) -> Result<ConnectorConfig, String> {
    let mut map = BTreeMap::new();
    flatten("", table, &mut map)?;
    let mut s = Settings {
        what: format!("connector #{}", index + 1),
        map,
    };
    let name = s.take("name").ok_or(format!("{}: no name", s.what))?;
    s.what = format!("connector {name:?}");
    let cls = s
        .take("connector.class")
        .or_else(|| s.take("class"))
        .ok_or(format!("{}: no class", s.what))?;
    let class = class(&cls).map_err(|e| format!("{}: {e}", s.what))?;
    let conv = |s: &mut Settings, n: &str| {
        Converter::parse(&s.take(n).unwrap_or("string".into()))
            .map_err(|e| format!("{}: {n}: {e}", s.what))
    };
    let key_converter = conv(&mut s, "key.converter")?;
    let value_converter = conv(&mut s, "value.converter")?;
    let tolerance = match s.take("errors.tolerance").as_deref() {
        None | Some("none") => Tolerance::None,
        Some("all") => Tolerance::All,
        Some(o) => {
            return Err(format!(
                "{}: errors.tolerance is none or all, not {o:?}",
                s.what
            ))
        }
    };
    let errors = ErrorPolicy {
        tolerance,
        dead_letter_topic: s
            .take("errors.deadletterqueue.topic.name")
            .filter(|t| !t.is_empty()),
        log_records: s.take("errors.log.enable").is_some_and(|v| v == "true")
            | s.take("errors.log.include.messages")
                .is_some_and(|v| v == "true"),
    };
    let key_field = match s.take("key.field").as_deref() {
        None | Some("none") => KeyField::None,
        Some("host") => KeyField::Host,
        Some("app") => KeyField::App,
        Some(o) => {
            return Err(format!(
                "{}: key.field is host, app or none, not {o:?}",
                s.what
            ))
        }
    };
    let topics = s
        .take("topics")
        .map(|t| {
            t.split(',')
                .map(|x| x.trim().to_string())
                .filter(|x| !x.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let c = ConnectorConfig {
        topic: s.take("topic"),
        topics,
        file: s.take("file"),
        tasks_max: s.num("tasks.max", 1)?,
        key_converter,
        value_converter,
        errors,
        line_bytes_max: s.num("max.line.length", 1 << 20)?,
        poll_interval_ms: s.num("poll.interval.ms", 100)?,
        listen_udp: s.take("listen.udp"),
        listen_tcp: s.take("listen.tcp"),
        key_field,
        syslog_bytes_max: s.num("max.message.bytes", 64 * 1024)?,
        name,
        class,
    };
    s.done()?;
    check(&c)?;
    Ok(c)
}

fn check(c: &ConnectorConfig) -> Result<(), String> {
    let w = format!("connector {:?}", c.name);
    let fail = |m: &str| Err(format!("{w}: {m}"));
    if c.tasks_max != 1 {
        // One file is read by one task, and one file written by one; a syslog port is bound
        // once. Kafka's FileStream connectors make one task whatever tasks.max says.
        return fail("tasks.max must be 1: each of gregor's connectors runs one task");
    }
    if c.line_bytes_max == 0 || c.syslog_bytes_max < 16 || c.poll_interval_ms == 0 {
        return fail("max.line.length and poll.interval.ms must be > 0, max.message.bytes ≥ 16");
    }
    match c.class {
        Class::FileSource if c.file.is_none() || c.topic.is_none() => fail("needs file and topic"),
        Class::FileSink if c.file.is_none() || c.topics.is_empty() => fail("needs file and topics"),
        Class::SyslogSource if c.topic.is_none() => fail("needs topic"),
        Class::SyslogSource if c.listen_udp.is_none() && c.listen_tcp.is_none() => {
            fail("needs listen.udp or listen.tcp (host:port)")
        }
        Class::FileSink
            if c.errors.dead_letter_topic.is_some()
                && c.topics
                    .iter()
                    .any(|t| Some(t) == c.errors.dead_letter_topic.as_ref()) =>
        {
            fail("the dead-letter topic cannot be one of the topics read")
        }
        _ => Ok(()),
    }
}

/// Parse `connect.toml`.
pub fn parse(text: &str) -> Result<WorkerConfig, String> {
    let v: toml::Value = toml::from_str(text).map_err(|e| format!("connect config: {e}"))?;
    let toml::Value::Table(mut top) = v else {
        return Err("connect config: not a table".into());
    };
    let mut map = BTreeMap::new();
    if let Some(w) = top.remove("worker") {
        flatten("", &w, &mut map)?;
    }
    let mut s = Settings {
        what: "[worker]".into(),
        map,
    };
    let offset_topic = s
        .take("offset.storage.topic")
        .unwrap_or("connect-offsets".into());
    let offset_flush_interval_ms = s.num("offset.flush.interval.ms", 1000)?;
    s.done()?;
    let connectors = match top.remove("connector") {
        Some(toml::Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, t)| connector(t, i))
            .collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
        Some(_) => return Err("connect config: connectors are [[connector]] tables".into()),
    };
    if let Some(k) = top.keys().next() {
        return Err(format!(
            "connect config: unknown section {k:?} ([worker], [[connector]])"
        ));
    }
    if connectors.is_empty() {
        return Err("connect config: no [[connector]]".into());
    }
    let mut names: Vec<&str> = connectors.iter().map(|c| c.name.as_str()).collect();
    names.sort();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(format!("connect config: two connectors named {:?}", w[0]));
    }
    assert!(!connectors.is_empty());
    Ok(WorkerConfig {
        offset_topic,
        offset_flush_interval_ms,
        connectors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_and_quoted_names_read_the_same_and_defaults_apply() {
        let c = parse(
            r#"
            [worker]
            offset.flush.interval.ms = 250
            [[connector]]
            name = "src"
            connector.class = "FileStreamSource"
            file = "/tmp/x"
            topic = "t"
            "value.converter" = "json"
            errors.tolerance = "all"
            errors.deadletterqueue.topic.name = "dlq"
            [[connector]]
            name = "sink"
            class = "file-sink"
            file = "/tmp/y"
            topics = ["t", "u"]
            "#,
        )
        .unwrap();
        assert_eq!(c.offset_topic, "connect-offsets");
        assert_eq!(c.offset_flush_interval_ms, 250);
        let src = &c.connectors[0];
        assert_eq!(
            (src.class, src.value_converter),
            (Class::FileSource, Converter::Json)
        );
        assert_eq!(src.key_converter, Converter::String);
        assert_eq!(src.errors.tolerance, Tolerance::All);
        assert_eq!(src.errors.dead_letter_topic.as_deref(), Some("dlq"));
        assert_eq!(c.connectors[1].topics, ["t", "u"]);
    }

    #[test]
    fn mistakes_are_named() {
        let base =
            "[[connector]]\nname = \"a\"\nclass = \"file-source\"\nfile = \"f\"\ntopic = \"t\"\n";
        assert!(parse(base).is_ok());
        for (extra, says) in [
            ("tpoic = \"x\"\n", "unknown setting \"tpoic\""),
            ("tasks.max = 2\n", "tasks.max"),
            ("errors.tolerance = \"some\"\n", "errors.tolerance"),
            ("value.converter = \"avro\"\n", "converter"),
            ("[[connector]]\nname = \"a\"\nclass = \"file-sink\"\nfile = \"g\"\ntopics = \"t\"\n", "two connectors"),
        ] {
            let e = parse(&format!("{base}{extra}")).unwrap_err();
            assert!(e.contains(says), "{e}");
        }
        assert!(parse("").unwrap_err().contains("no [[connector]]"));
        let e = parse("[[connector]]\nname = \"s\"\nclass = \"syslog-source\"\ntopic = \"t\"\n");
        assert!(e.unwrap_err().contains("listen"));
    }
}
