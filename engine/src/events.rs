//! Typed input events and the bundled Avro schemas of every topic.
//!
//! The structs mirror `schemas/*.avsc` field for field (the schemas are compiled in from that
//! folder, so the two cannot drift apart silently: a unit test decodes an Avro datum of each
//! into its struct). Each event knows how to [`validate`](InputEvent::validate) the values the
//! schema cannot constrain — finiteness of numbers, ranges, non-empty required text — so
//! operators only ever see events they can score.

use std::sync::OnceLock;

use apache_avro::Schema;
use serde::{Deserialize, Serialize};

/// The input schemas, one per input topic kind.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum SchemaKind {
    /// LLM prompts (`schemas/prompt.avsc`).
    Prompt,
    /// Network connection records (`schemas/flow.avsc`).
    Flow,
    /// Email messages (`schemas/email.avsc`).
    Email,
    /// SIEM alerts (`schemas/alert.avsc`).
    Alert,
    /// Email addresses to score for fraud (`schemas/address.avsc`).
    Address,
}

/// The text of a bundled schema file.
macro_rules! schema_text {
    ($name:literal) => {
        include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../schemas/", $name))
    };
}

/// The text of `schemas/scored.avsc` (the scored envelope).
pub const SCORED_SCHEMA_TEXT: &str = schema_text!("scored.avsc");

impl SchemaKind {
    /// Every input schema.
    pub const ALL: [SchemaKind; 5] = [
        Self::Prompt,
        Self::Flow,
        Self::Email,
        Self::Alert,
        Self::Address,
    ];

    /// The schema's short name, as used in config.
    pub fn name(self) -> &'static str {
        match self {
            Self::Prompt => "prompt",
            Self::Flow => "flow",
            Self::Email => "email",
            Self::Alert => "alert",
            Self::Address => "address",
        }
    }

    /// The bundled Avro schema's text (`schemas/<name>.avsc`).
    pub fn avro_schema_text(self) -> &'static str {
        match self {
            Self::Prompt => schema_text!("prompt.avsc"),
            Self::Flow => schema_text!("flow.avsc"),
            Self::Email => schema_text!("email.avsc"),
            Self::Alert => schema_text!("alert.avsc"),
            Self::Address => schema_text!("address.avsc"),
        }
    }

    /// The parsed Avro schema bundled for this kind.
    pub fn avro_schema(self) -> &'static Schema {
        let schemas = bundled_schemas();
        match self {
            Self::Prompt => &schemas.prompt,
            Self::Flow => &schemas.flow,
            Self::Email => &schemas.email,
            Self::Alert => &schemas.alert,
            Self::Address => &schemas.address,
        }
    }
}

/// All bundled schemas, parsed once.
pub struct BundledSchemas {
    /// `schemas/prompt.avsc`.
    pub prompt: Schema,
    /// `schemas/flow.avsc`.
    pub flow: Schema,
    /// `schemas/email.avsc`.
    pub email: Schema,
    /// `schemas/alert.avsc`.
    pub alert: Schema,
    /// `schemas/address.avsc`.
    pub address: Schema,
    /// `schemas/scored.avsc`.
    pub scored: Schema,
    /// `schemas/dead_letter.avsc`.
    pub dead_letter: Schema,
    /// `schemas/feedback.avsc`.
    pub feedback: Schema,
    /// `schemas/drift.avsc`.
    pub drift: Schema,
}

/// The bundled schemas. They are compiled into the binary and checked by unit tests, so a
/// parse failure here is a build defect, reported with the schema's name.
pub fn bundled_schemas() -> &'static BundledSchemas {
    static SCHEMAS: OnceLock<BundledSchemas> = OnceLock::new();
    SCHEMAS.get_or_init(|| {
        let parse = |name: &str, text: &str| {
            Schema::parse_str(text)
                .unwrap_or_else(|error| panic!("bundled schema {name} is invalid: {error}"))
        };
        BundledSchemas {
            prompt: parse("prompt", schema_text!("prompt.avsc")),
            flow: parse("flow", schema_text!("flow.avsc")),
            email: parse("email", schema_text!("email.avsc")),
            alert: parse("alert", schema_text!("alert.avsc")),
            address: parse("address", schema_text!("address.avsc")),
            scored: parse("scored", schema_text!("scored.avsc")),
            dead_letter: parse("dead_letter", schema_text!("dead_letter.avsc")),
            feedback: parse("feedback", schema_text!("feedback.avsc")),
            drift: parse("drift", schema_text!("drift.avsc")),
        }
    })
}

/// A value the schema allows but the engine cannot score.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InvalidValue {
    /// NaN or infinity.
    #[error("field {field} is not a finite number")]
    NotFinite {
        /// Field name.
        field: &'static str,
    },
    /// Outside the documented range.
    #[error("field {field} is out of range: {reason}")]
    OutOfRange {
        /// Field name.
        field: &'static str,
        /// Which bound was violated.
        reason: &'static str,
    },
    /// A required text field is empty.
    #[error("field {field} must not be empty")]
    Empty {
        /// Field name.
        field: &'static str,
    },
}

/// An LLM prompt (`schemas/prompt.avsc`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename = "Prompt")] // the Avro record name; schema-aware serde checks it
pub struct PromptEvent {
    /// Producer-assigned id.
    #[serde(default)]
    pub event_id: Option<String>,
    /// Prompt text.
    pub text: String,
    /// Sending user.
    #[serde(default)]
    pub user: Option<String>,
    /// Target application.
    #[serde(default)]
    pub app: Option<String>,
    /// Conversation id.
    #[serde(default)]
    pub session_id: Option<String>,
    /// Event time, epoch ms.
    #[serde(default)]
    pub timestamp_ms: Option<i64>,
}

/// Declares the flow struct and its ordered feature accessors from one field list, so the
/// struct, [`FlowEvent::FEATURE_NAMES`] and [`FlowEvent::numeric_features`] cannot disagree.
macro_rules! flow_event {
    (symbolic: [$($symbolic:ident),*], numeric: [$($numeric:ident),*]) => {
        /// A network connection record with the 41 NSL-KDD features (`schemas/flow.avsc`).
        #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
        #[serde(rename = "Flow")] // the Avro record name; schema-aware serde checks it
        pub struct FlowEvent {
            /// Producer-assigned id.
            #[serde(default)]
            pub event_id: Option<String>,
            /// Event time, epoch ms.
            #[serde(default)]
            pub timestamp_ms: Option<i64>,
            $(
                /// Symbolic NSL-KDD feature (see the schema's field doc).
                pub $symbolic: String,
            )*
            $(
                /// Continuous NSL-KDD feature (see the schema's field doc).
                pub $numeric: f64,
            )*
        }

        impl FlowEvent {
            /// Names of the symbolic features.
            pub const SYMBOLIC_NAMES: [&'static str; 3] = [$(stringify!($symbolic)),*];
            /// Names of the continuous features, in schema order.
            pub const NUMERIC_NAMES: [&'static str; 38] = [$(stringify!($numeric)),*];

            /// The continuous features, in [`Self::NUMERIC_NAMES`] order.
            pub fn numeric_features(&self) -> [f64; 38] {
                [$(self.$numeric),*]
            }

            /// The symbolic features, in [`Self::SYMBOLIC_NAMES`] order.
            pub fn symbolic_features(&self) -> [&str; 3] {
                [$(self.$symbolic.as_str()),*]
            }

            /// A record from its symbolic and continuous features, in name order.
            pub fn from_features(symbolic: [String; 3], numeric: [f64; 38]) -> Self {
                let [$($symbolic),*] = symbolic;
                let [$($numeric),*] = numeric;
                Self { event_id: None, timestamp_ms: None, $($symbolic,)* $($numeric,)* }
            }
        }
    };
}

flow_event!(
    symbolic: [protocol_type, service, flag],
    numeric: [
        duration, src_bytes, dst_bytes, land, wrong_fragment, urgent, hot, num_failed_logins,
        logged_in, num_compromised, root_shell, su_attempted, num_root, num_file_creations,
        num_shells, num_access_files, num_outbound_cmds, is_host_login, is_guest_login, count,
        srv_count, serror_rate, srv_serror_rate, rerror_rate, srv_rerror_rate, same_srv_rate,
        diff_srv_rate, srv_diff_host_rate, dst_host_count, dst_host_srv_count,
        dst_host_same_srv_rate, dst_host_diff_srv_rate, dst_host_same_src_port_rate,
        dst_host_srv_diff_host_rate, dst_host_serror_rate, dst_host_srv_serror_rate,
        dst_host_rerror_rate, dst_host_srv_rerror_rate
    ]
);

/// Metadata of one email attachment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attachment {
    /// File name.
    pub filename: String,
    /// MIME type.
    #[serde(default = "default_content_type")]
    pub content_type: String,
    /// Decoded size in bytes.
    pub size_bytes: i64,
}

fn default_content_type() -> String {
    "application/octet-stream".to_owned()
}

/// An email message (`schemas/email.avsc`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename = "Email")] // the Avro record name; schema-aware serde checks it
pub struct EmailEvent {
    /// Producer-assigned id.
    #[serde(default)]
    pub event_id: Option<String>,
    /// From header.
    pub from: String,
    /// To recipients.
    #[serde(default)]
    pub to: Vec<String>,
    /// Cc recipients.
    #[serde(default)]
    pub cc: Vec<String>,
    /// Bcc recipients.
    #[serde(default)]
    pub bcc: Vec<String>,
    /// Send time, epoch ms.
    #[serde(default)]
    pub date_ms: Option<i64>,
    /// Subject.
    #[serde(default)]
    pub subject: String,
    /// Plain-text body.
    #[serde(default)]
    pub body: String,
    /// Attachment metadata.
    #[serde(default)]
    pub attachments: Vec<Attachment>,
    /// Whole raw message, when forwarded unparsed.
    #[serde(default)]
    pub raw_rfc822: Option<String>,
}

/// An email address to score for fraud (`schemas/address.avsc`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename = "Address")] // the Avro record name; schema-aware serde checks it
pub struct AddressEvent {
    /// Producer-assigned id.
    #[serde(default)]
    pub event_id: Option<String>,
    /// The address, optionally with a display name.
    pub address: String,
    /// Where it was seen (signup, account_change, sender, ...).
    #[serde(default = "default_address_context")]
    pub context: String,
    /// Account it belongs to.
    #[serde(default)]
    pub account: Option<String>,
    /// When it was seen, epoch ms.
    #[serde(default)]
    pub observed_ms: Option<i64>,
}

fn default_address_context() -> String {
    "signup".to_owned()
}

/// A SIEM alert (`schemas/alert.avsc`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename = "Alert")] // the Avro record name; schema-aware serde checks it
pub struct AlertEvent {
    /// Producer-assigned id.
    #[serde(default)]
    pub event_id: Option<String>,
    /// SIEM alert id.
    pub alert_id: String,
    /// informational, low, medium, high or critical.
    pub severity: String,
    /// Which SIEM raised it.
    pub siem_source: String,
    /// Detection rule id.
    pub rule_id: String,
    /// Detection rule name.
    #[serde(default)]
    pub rule_name: String,
    /// ATT&CK tactic ids.
    #[serde(default)]
    pub tactics: Vec<String>,
    /// ATT&CK technique ids.
    #[serde(default)]
    pub techniques: Vec<String>,
    /// Users involved.
    #[serde(default)]
    pub users: Vec<String>,
    /// Hosts involved.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// IPs involved.
    #[serde(default)]
    pub ips: Vec<String>,
    /// Matched IOCs.
    #[serde(default)]
    pub ioc_count: i32,
    /// Affected assets.
    #[serde(default)]
    pub asset_count: i32,
    /// Highest asset criticality, 0..=1.
    #[serde(default)]
    pub asset_criticality: f64,
    /// Raw events aggregated.
    #[serde(default = "default_event_count")]
    pub event_count: i32,
    /// First raw event, epoch ms.
    pub first_seen_ms: i64,
    /// Last raw event, epoch ms.
    pub last_seen_ms: i64,
}

fn default_event_count() -> i32 {
    1
}

/// Alert severities the engine understands, lower-case.
pub const ALERT_SEVERITIES: [&str; 5] = ["informational", "low", "medium", "high", "critical"];

/// One decoded input event of any kind.
#[derive(Debug, Clone, PartialEq)]
pub enum InputEvent {
    /// A prompt.
    Prompt(PromptEvent),
    /// A connection record.
    Flow(Box<FlowEvent>),
    /// An email.
    Email(Box<EmailEvent>),
    /// A SIEM alert.
    Alert(Box<AlertEvent>),
    /// An address to score.
    Address(AddressEvent),
}

impl InputEvent {
    /// The event as the JSON of its schema (the form the JSON input format reads).
    pub fn to_json_value(&self) -> serde_json::Value {
        let value = match self {
            Self::Prompt(prompt) => serde_json::to_value(prompt),
            Self::Flow(flow) => serde_json::to_value(flow),
            Self::Email(email) => serde_json::to_value(email),
            Self::Alert(alert) => serde_json::to_value(alert),
            Self::Address(address) => serde_json::to_value(address),
        };
        value.unwrap_or(serde_json::Value::Null)
    }

    /// The schema this event belongs to.
    pub fn kind(&self) -> SchemaKind {
        match self {
            Self::Prompt(_) => SchemaKind::Prompt,
            Self::Flow(_) => SchemaKind::Flow,
            Self::Email(_) => SchemaKind::Email,
            Self::Alert(_) => SchemaKind::Alert,
            Self::Address(_) => SchemaKind::Address,
        }
    }

    /// The producer-assigned id, if it set a non-empty one.
    pub fn producer_event_id(&self) -> Option<&str> {
        let id = match self {
            Self::Prompt(event) => event.event_id.as_deref(),
            Self::Flow(event) => event.event_id.as_deref(),
            Self::Email(event) => event.event_id.as_deref(),
            Self::Alert(event) => event.event_id.as_deref(),
            Self::Address(event) => event.event_id.as_deref(),
        };
        id.filter(|id| !id.is_empty())
    }

    /// Event time from the payload, epoch ms, when it carries one.
    pub fn event_time_ms(&self) -> Option<i64> {
        match self {
            Self::Prompt(event) => event.timestamp_ms,
            Self::Flow(event) => event.timestamp_ms,
            Self::Email(event) => event.date_ms,
            Self::Alert(event) => Some(event.last_seen_ms),
            Self::Address(event) => event.observed_ms,
        }
    }

    /// Checks the values the schema cannot constrain.
    pub fn validate(&self) -> Result<(), InvalidValue> {
        match self {
            Self::Prompt(event) => validate_prompt(event),
            Self::Flow(event) => validate_flow(event),
            Self::Email(event) => validate_email(event),
            Self::Alert(event) => validate_alert(event),
            Self::Address(event) => validate_address(event),
        }
    }
}

fn validate_prompt(event: &PromptEvent) -> Result<(), InvalidValue> {
    if event.text.trim().is_empty() {
        return Err(InvalidValue::Empty { field: "text" });
    }
    Ok(())
}

fn validate_flow(event: &FlowEvent) -> Result<(), InvalidValue> {
    for (field, value) in FlowEvent::NUMERIC_NAMES
        .iter()
        .zip(event.numeric_features())
    {
        if !value.is_finite() {
            return Err(InvalidValue::NotFinite { field });
        }
        if value < 0.0 {
            return Err(InvalidValue::OutOfRange {
                field,
                reason: "negative",
            });
        }
    }
    let symbolic = [
        ("protocol_type", &event.protocol_type),
        ("service", &event.service),
        ("flag", &event.flag),
    ];
    for (field, value) in symbolic {
        if value.is_empty() {
            return Err(InvalidValue::Empty { field });
        }
    }
    Ok(())
}

fn validate_email(event: &EmailEvent) -> Result<(), InvalidValue> {
    let has_raw = event
        .raw_rfc822
        .as_deref()
        .is_some_and(|raw| !raw.is_empty());
    if event.from.trim().is_empty() && !has_raw {
        return Err(InvalidValue::Empty { field: "from" });
    }
    if event
        .attachments
        .iter()
        .any(|attachment| attachment.size_bytes < 0)
    {
        return Err(InvalidValue::OutOfRange {
            field: "attachments.size_bytes",
            reason: "negative",
        });
    }
    Ok(())
}

fn validate_address(event: &AddressEvent) -> Result<(), InvalidValue> {
    if event.address.trim().is_empty() {
        return Err(InvalidValue::Empty { field: "address" });
    }
    Ok(())
}

fn validate_alert(event: &AlertEvent) -> Result<(), InvalidValue> {
    if !event.asset_criticality.is_finite() {
        return Err(InvalidValue::NotFinite {
            field: "asset_criticality",
        });
    }
    if !(0.0..=1.0).contains(&event.asset_criticality) {
        return Err(InvalidValue::OutOfRange {
            field: "asset_criticality",
            reason: "outside [0, 1]",
        });
    }
    let counts = [
        ("ioc_count", event.ioc_count),
        ("asset_count", event.asset_count),
        ("event_count", event.event_count),
    ];
    for (field, value) in counts {
        if value < 0 {
            return Err(InvalidValue::OutOfRange {
                field,
                reason: "negative",
            });
        }
    }
    if event.last_seen_ms < event.first_seen_ms {
        return Err(InvalidValue::OutOfRange {
            field: "last_seen_ms",
            reason: "before first_seen_ms",
        });
    }
    if !ALERT_SEVERITIES.contains(&event.severity.to_ascii_lowercase().as_str()) {
        return Err(InvalidValue::OutOfRange {
            field: "severity",
            reason: "not informational, low, medium, high or critical",
        });
    }
    if event.alert_id.is_empty() {
        return Err(InvalidValue::Empty { field: "alert_id" });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bundled_schema_parses() {
        let schemas = bundled_schemas();
        for kind in SchemaKind::ALL {
            assert!(matches!(kind.avro_schema(), Schema::Record(_)), "{kind:?}");
        }
        assert!(matches!(schemas.scored, Schema::Record(_)));
        assert!(matches!(schemas.dead_letter, Schema::Record(_)));
        assert!(matches!(schemas.feedback, Schema::Record(_)));
        assert!(matches!(schemas.drift, Schema::Record(_)));
    }

    #[test]
    fn flow_schema_has_the_41_nsl_kdd_fields_in_order() {
        let Schema::Record(record) = SchemaKind::Flow.avro_schema() else {
            panic!("flow schema is not a record");
        };
        let names: Vec<&str> = record
            .fields
            .iter()
            .map(|field| field.name.as_str())
            .collect();
        let expected = include_str!("../../models/flow/data/field_names.csv")
            .lines()
            .filter_map(|line| line.split(',').next())
            .filter(|name| !name.is_empty())
            .collect::<Vec<_>>();
        assert_eq!(expected.len(), 41);
        assert_eq!(&names[2..], expected.as_slice());
        assert_eq!(
            FlowEvent::SYMBOLIC_NAMES.len() + FlowEvent::NUMERIC_NAMES.len(),
            41
        );
    }

    #[test]
    fn every_schema_field_has_a_doc() {
        for text in [
            schema_text!("prompt.avsc"),
            schema_text!("flow.avsc"),
            schema_text!("email.avsc"),
            schema_text!("alert.avsc"),
            schema_text!("scored.avsc"),
            schema_text!("dead_letter.avsc"),
            schema_text!("feedback.avsc"),
            schema_text!("drift.avsc"),
        ] {
            let json: serde_json::Value = serde_json::from_str(text).unwrap();
            let mut missing = Vec::new();
            collect_undocumented_fields(&json, &mut missing);
            assert!(missing.is_empty(), "fields without doc: {missing:?}");
        }
    }

    fn collect_undocumented_fields(node: &serde_json::Value, missing: &mut Vec<String>) {
        match node {
            serde_json::Value::Object(object) => {
                if let Some(serde_json::Value::Array(fields)) = object.get("fields") {
                    for field in fields {
                        if field
                            .get("doc")
                            .and_then(|doc| doc.as_str())
                            .is_none_or(str::is_empty)
                        {
                            missing.push(field["name"].to_string());
                        }
                    }
                }
                object
                    .values()
                    .for_each(|child| collect_undocumented_fields(child, missing));
            }
            serde_json::Value::Array(items) => items
                .iter()
                .for_each(|child| collect_undocumented_fields(child, missing)),
            _ => {}
        }
    }
}
