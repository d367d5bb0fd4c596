//! Converters (`key.converter`, `value.converter`): how a connector's data becomes a record's
//! bytes and back.
//!
//! Kafka Connect passes data between connectors and converters as typed values; gregor's
//! connectors produce only two kinds, a line of text and a flat object of strings (a syslog
//! message), so a converter here turns those into bytes:
//!
//! * `bytes` (Kafka's `ByteArrayConverter`): the raw bytes; an object as its JSON text;
//! * `string` (`StringConverter`): the same, but the bytes must be UTF-8;
//! * `json` (`JsonConverter` with `schemas.enable=false`): a line as a JSON string
//!   (`"the line"`), an object as a JSON object.
//!
//! A sink reads a value back to a line: `bytes` and `string` as they are, `json` a JSON string
//! as its text and any other JSON value as its JSON text.

use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Converter {
    Bytes,
    String,
    Json,
}

/// What a source hands to a converter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Data<'a> {
    Line(&'a [u8]),
    Object(&'a [(String, String)]),
}

impl Converter {
    /// Parse a converter name: gregor's short ones, or Kafka's class names.
    pub fn parse(s: &str) -> Result<Converter, String> {
        match s {
            "bytes" | "org.apache.kafka.connect.converters.ByteArrayConverter" => {
                Ok(Converter::Bytes)
            }
            "string" | "org.apache.kafka.connect.storage.StringConverter" => Ok(Converter::String),
            "json" | "org.apache.kafka.connect.json.JsonConverter" => Ok(Converter::Json),
            other => Err(format!(
                "a converter is bytes, string or json, not {other:?}"
            )),
        }
    }

    /// The record bytes of `data`.
    pub fn from_connect(self, data: Data) -> Result<Vec<u8>, String> {
        let text = |b: &[u8]| {
            std::str::from_utf8(b)
                .map(str::to_string)
                .map_err(|e| format!("not UTF-8 text: {e}"))
        };
        let object = |fields: &[(String, String)]| {
            let map: serde_json::Map<String, Value> = fields
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect();
            serde_json::to_vec(&Value::Object(map)).expect("JSON values serialize")
        };
        match (self, data) {
            (Converter::Bytes, Data::Line(b)) => Ok(b.to_vec()),
            (Converter::String, Data::Line(b)) => text(b).map(String::into_bytes),
            (Converter::Json, Data::Line(b)) => {
                Ok(serde_json::to_vec(&Value::String(text(b)?)).expect("strings serialize"))
            }
            (_, Data::Object(fields)) => Ok(object(fields)),
        }
    }

    /// The line a sink writes for a record's value.
    pub fn to_line(self, value: &[u8]) -> Result<Vec<u8>, String> {
        match self {
            Converter::Bytes => Ok(value.to_vec()),
            Converter::String => std::str::from_utf8(value)
                .map(|_| value.to_vec())
                .map_err(|e| format!("not UTF-8 text: {e}")),
            Converter::Json => match serde_json::from_slice::<Value>(value) {
                Ok(Value::String(s)) => Ok(s.into_bytes()),
                Ok(other) => Ok(other.to_string().into_bytes()),
                Err(e) => Err(format!("not JSON: {e}")),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_objects_convert_and_a_sink_reads_them_back() {
        let line = Data::Line(b"a \"quoted\" line");
        for c in [Converter::Bytes, Converter::String, Converter::Json] {
            let bytes = c.from_connect(line.clone()).unwrap();
            assert_eq!(c.to_line(&bytes).unwrap(), b"a \"quoted\" line");
        }
        assert_eq!(
            Converter::Json.from_connect(line).unwrap(),
            br#""a \"quoted\" line""#
        );
        let fields = [("host".to_string(), "h1".to_string())];
        assert_eq!(
            Converter::Json.from_connect(Data::Object(&fields)).unwrap(),
            br#"{"host":"h1"}"#
        );
        assert!(Converter::String.from_connect(Data::Line(b"\xff")).is_err());
        assert!(Converter::Json.to_line(b"{nope").is_err());
        assert!(Converter::parse("avro").is_err());
        assert_eq!(
            Converter::parse("org.apache.kafka.connect.json.JsonConverter"),
            Ok(Converter::Json)
        );
    }
}
