//! Wire types of the parsec server API (`parsec-server.openapi.yaml`): field names as parsec's
//! Go server writes them, durations in nanoseconds.

use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use parsec_actors::{OperationReport, StepMeasurement};
use serde::{Deserialize, Serialize};

/// Body of `POST /provide`.
#[derive(Debug, Deserialize, Serialize)]
pub struct ProvideRequest {
    /// The blob to provide.
    #[serde(rename = "Content")]
    pub content: Content,
}

/// Bytes as Go's `encoding/json` writes a `[]byte` (standard base64 with padding) or as the
/// OpenAPI file describes them (an array of integers).
#[derive(Debug, Deserialize, Serialize)]
#[serde(
    untagged,
    expecting = "a standard base64 string or an array of byte values (0-255)"
)]
pub enum Content {
    /// Base64 text.
    Base64(String),
    /// Byte values.
    Bytes(Vec<u8>),
}

impl Content {
    /// The decoded bytes.
    pub fn decode(self) -> Result<Bytes, base64::DecodeError> {
        match self {
            Content::Base64(text) => base64::engine::general_purpose::STANDARD
                .decode(text)
                .map(Bytes::from),
            Content::Bytes(bytes) => Ok(bytes.into()),
        }
    }

    /// Base64, as parsec's scheduler sends it.
    pub fn encode(bytes: &[u8]) -> Self {
        Content::Base64(base64::engine::general_purpose::STANDARD.encode(bytes))
    }
}

/// Response of `POST /provide` and `POST /retrieve/{cid}`.
#[derive(Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct OperationResponse {
    /// The CID worked on.
    #[serde(rename = "CID")]
    pub cid: String,
    /// One entry per step.
    #[serde(rename = "Measurements")]
    pub measurements: Vec<MeasurementDto>,
    /// Routing-table size after the operation.
    #[serde(rename = "RoutingTableSize")]
    pub routing_table_size: u64,
    /// Ours, beyond parsec's contract (its scheduler ignores unknown fields): for a provide, how
    /// many peers acknowledged the provider record.
    #[serde(rename = "RecordPeers", default, skip_serializing_if = "Option::is_none")]
    pub record_peers: Option<u32>,
    /// Ours too: `warm` or `cold`, what the server does with its connections when an operation
    /// ends (docs/method.md); parsec's servers do not say, and keep them warm.
    #[serde(rename = "Connections", default, skip_serializing_if = "Option::is_none")]
    pub connections: Option<String>,
}

/// One step's measurement on the wire.
#[derive(Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct MeasurementDto {
    /// Step name; optional in retrieval responses, per the OpenAPI file.
    #[serde(rename = "Step", default)]
    pub step: String,
    /// Nanoseconds (Go's `time.Duration`).
    #[serde(rename = "Duration")]
    pub duration: i64,
    /// Error text, empty when none.
    #[serde(rename = "Error", default)]
    pub error: String,
}

impl From<OperationReport> for OperationResponse {
    fn from(report: OperationReport) -> Self {
        Self {
            cid: report.cid,
            measurements: report
                .measurements
                .into_iter()
                .map(|m| MeasurementDto {
                    step: m.step,
                    duration: i64::try_from(m.duration.as_nanos()).unwrap_or(i64::MAX),
                    error: m.error.unwrap_or_default(),
                })
                .collect(),
            routing_table_size: report.routing_table_size,
            record_peers: report.record_peers,
            connections: report.connections.map(|c| c.name().to_owned()),
        }
    }
}

impl OperationResponse {
    /// The domain report; `default_step` names steps a server left unnamed.
    pub fn into_report(self, default_step: &str) -> Result<OperationReport, String> {
        let connections = self.connections.as_deref().map(str::parse).transpose()?;
        let measurements = self
            .measurements
            .into_iter()
            .map(|m| {
                let nanos =
                    u64::try_from(m.duration).map_err(|_| format!("negative duration {}", m.duration))?;
                Ok(StepMeasurement {
                    step: if m.step.is_empty() {
                        default_step.to_owned()
                    } else {
                        m.step
                    },
                    duration: Duration::from_nanos(nanos),
                    error: (!m.error.is_empty()).then_some(m.error),
                })
            })
            .collect::<Result<_, String>>()?;
        Ok(OperationReport {
            cid: self.cid,
            measurements,
            routing_table_size: self.routing_table_size,
            trace_id: None,
            record_peers: self.record_peers,
            connections,
        })
    }
}

/// Body of `GET /readiness`.
#[derive(Debug, Deserialize, Serialize)]
pub struct ReadinessResponse {
    /// Whether the node takes requests.
    pub ready: bool,
    /// Peers in the routing table.
    pub routing_table_size: u64,
    /// The server's libp2p peer id, so a scheduler can tell that the process answering at a
    /// registered address is still the node registered there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_id: Option<String>,
}

/// Body of every error response.
#[derive(Debug, Deserialize, Serialize)]
pub struct ErrorResponse {
    /// What went wrong and, where it helps, how to fix it.
    pub error: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_accepts_base64_and_byte_arrays() {
        let b64: ProvideRequest = serde_json::from_str(r#"{"Content":"AAEC/w=="}"#).unwrap();
        assert_eq!(b64.content.decode().unwrap().as_ref(), [0, 1, 2, 255]);
        let array: ProvideRequest = serde_json::from_str(r#"{"Content":[0,1,2,255]}"#).unwrap();
        assert_eq!(array.content.decode().unwrap().as_ref(), [0, 1, 2, 255]);
    }

    #[test]
    fn response_matches_parsec_field_names_and_nanoseconds() {
        let report = OperationReport {
            cid: "QmX".into(),
            measurements: vec![StepMeasurement {
                step: "provide".into(),
                duration: Duration::from_millis(1500),
                error: None,
            }],
            routing_table_size: 202,
            trace_id: None,
            record_peers: None,
            connections: None,
        };
        let json = serde_json::to_value(OperationResponse::from(report)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"CID":"QmX","Measurements":[{"Step":"provide","Duration":1_500_000_000i64,"Error":""}],"RoutingTableSize":202})
        );
    }

    #[test]
    fn record_peers_and_connections_are_extra_fields_that_parsec_responses_lack() {
        let report = OperationReport {
            cid: "QmX".into(),
            measurements: vec![],
            routing_table_size: 3,
            trace_id: None,
            record_peers: Some(3),
            connections: Some(parsec_actors::Connections::Cold),
        };
        let json = serde_json::to_value(OperationResponse::from(report.clone())).unwrap();
        assert_eq!(json["RecordPeers"], 3);
        assert_eq!(json["Connections"], "cold");
        let back: OperationResponse = serde_json::from_value(json).unwrap();
        assert_eq!(back.into_report("provide").unwrap(), report);
        let parsec: OperationResponse =
            serde_json::from_str(r#"{"CID":"QmX","Measurements":[],"RoutingTableSize":1}"#).unwrap();
        assert_eq!((parsec.record_peers, parsec.connections.as_deref()), (None, None));
        let odd: OperationResponse = serde_json::from_str(
            r#"{"CID":"QmX","Measurements":[],"RoutingTableSize":1,"Connections":"tepid"}"#,
        )
        .unwrap();
        let error = odd.into_report("provide").unwrap_err();
        assert!(error.contains("expected warm or cold"), "{error}");
    }

    #[test]
    fn retrieval_response_without_step_gets_the_default_and_errors_survive() {
        let body = r#"{"CID":"QmX","Measurements":[{"Duration":5000000000,"Error":"not found"}],"RoutingTableSize":201}"#;
        let response: OperationResponse = serde_json::from_str(body).unwrap();
        let report = response.into_report("retrieval").unwrap();
        assert_eq!(report.measurements[0].step, "retrieval");
        assert_eq!(report.measurements[0].error.as_deref(), Some("not found"));
        assert_eq!(report.measurements[0].duration, Duration::from_secs(5));
    }

    #[test]
    fn negative_durations_are_rejected() {
        let body = r#"{"CID":"QmX","Measurements":[{"Step":"provide","Duration":-1,"Error":""}],"RoutingTableSize":1}"#;
        let response: OperationResponse = serde_json::from_str(body).unwrap();
        assert!(response.into_report("provide").is_err());
    }
}
