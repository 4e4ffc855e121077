//! The parts of the JetStream API that logbraid uses: requests with JSON
//! bodies on `$JS.API.…` subjects, publishes acknowledged with a `PubAck`,
//! and the acknowledgement subjects of consumed messages.

use std::time::Duration;

use serde_json::{json, Value};

use super::client::Client;
use super::proto::Message;
use super::NatsError;

/// How long an API request waits for its answer (a stream being created
/// on three servers answers in milliseconds; a leader election takes
/// seconds).
pub const API_WAIT: Duration = Duration::from_secs(5);

/// The header JetStream deduplicates publishes by.
pub const MSG_ID: &str = "Nats-Msg-Id";

/// A JetStream API request: its answer's JSON, or the API error it holds.
pub async fn api(client: &Client, what: &str, body: &Value) -> Result<Value, NatsError> {
    let subject = format!("$JS.API.{what}");
    let m = client
        .request(&subject, &[], body.to_string().as_bytes(), API_WAIT)
        .await?;
    answer(&m)
}

/// The JSON of an API answer or `PubAck`, or its error.
fn answer(m: &Message) -> Result<Value, NatsError> {
    let v: Value = serde_json::from_slice(&m.payload).map_err(|e| {
        NatsError::Protocol(format!(
            "a JetStream answer that is not JSON ({e}): {:?}",
            String::from_utf8_lossy(&m.payload)
        ))
    })?;
    if let Some(e) = v.get("error") {
        return Err(NatsError::Api {
            code: e["code"].as_u64().unwrap_or(0),
            err_code: e["err_code"].as_u64().unwrap_or(0),
            description: e["description"].as_str().unwrap_or("").to_string(),
        });
    }
    Ok(v)
}

/// JetStream's error code for "stream not found".
pub const STREAM_NOT_FOUND: u64 = 10059;

/// JetStream's error code for "consumer not found".
pub const CONSUMER_NOT_FOUND: u64 = 10014;

/// JetStream's error code for "insufficient resources" (a stream asking
/// for more replicas than the cluster has servers).
pub const INSUFFICIENT_RESOURCES: u64 = 10023;

/// JetStream's error code for "replicas > 1 not supported in non-clustered
/// mode".
pub const NOT_CLUSTERED: u64 = 10074;

/// What a stream is created with when it does not exist.
#[derive(Clone, Debug)]
pub struct StreamSpec {
    /// Its name.
    pub name: String,
    /// The subjects it stores (`logs.*.*`).
    pub subjects: Vec<String>,
    /// Servers holding a copy.
    pub replicas: usize,
    /// How long a message id is remembered for deduplication.
    pub duplicate_window: Duration,
}

/// The stream's configuration, creating the stream first when it does
/// not exist (file storage, limits retention, `spec`'s replicas and
/// duplicate window). An existing stream is used as it is.
pub async fn ensure_stream(client: &Client, spec: &StreamSpec) -> Result<Value, NatsError> {
    match api(client, &format!("STREAM.INFO.{}", spec.name), &json!({})).await {
        Ok(info) => return Ok(info["config"].clone()),
        Err(NatsError::Api { err_code, .. }) if err_code == STREAM_NOT_FOUND => {}
        Err(e) => return Err(e),
    }
    let config = json!({
        "name": spec.name,
        "subjects": spec.subjects,
        "retention": "limits",
        "storage": "file",
        "num_replicas": spec.replicas,
        "duplicate_window": spec.duplicate_window.as_nanos() as u64,
        "discard": "old",
        "max_msgs": -1,
        "max_bytes": -1,
        "max_age": 0,
        "max_msg_size": -1,
    });
    let created = api(client, &format!("STREAM.CREATE.{}", spec.name), &config).await?;
    Ok(created["config"].clone())
}

/// A stream's first and last sequence numbers now.
pub async fn stream_bounds(client: &Client, stream: &str) -> Result<(u64, u64), NatsError> {
    let info = api(client, &format!("STREAM.INFO.{stream}"), &json!({})).await?;
    let state = &info["state"];
    Ok((
        state["first_seq"].as_u64().unwrap_or(0),
        state["last_seq"].as_u64().unwrap_or(0),
    ))
}

/// A publish JetStream stored (or recognised as a duplicate).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PubAck {
    /// The message's sequence number in the stream.
    pub seq: u64,
    /// A message with the same id was stored before, within the window.
    pub duplicate: bool,
}

/// Publishes `payload` to `subject` with `headers` and waits for
/// JetStream's acknowledgement.
pub async fn publish(
    client: &Client,
    subject: &str,
    headers: &[(&str, &str)],
    payload: &[u8],
    wait: Duration,
) -> Result<PubAck, NatsError> {
    let m = client.request(subject, headers, payload, wait).await?;
    let v = answer(&m)?;
    let seq = v["seq"]
        .as_u64()
        .ok_or_else(|| NatsError::Protocol(format!("a PubAck without seq: {v}")))?;
    Ok(PubAck {
        seq,
        duplicate: v["duplicate"].as_bool().unwrap_or(false),
    })
}

/// A durable pull consumer's settings.
#[derive(Clone, Debug)]
pub struct ConsumerSpec {
    /// The stream.
    pub stream: String,
    /// The consumer's (durable) name.
    pub name: String,
    /// Only messages of these subjects (empty: all of the stream's).
    pub filter: Option<String>,
    /// Deliver from this stream sequence on (`None`: from the first).
    pub start: Option<u64>,
    /// How long a delivered message may stay unacknowledged before it is
    /// delivered again.
    pub ack_wait: Duration,
    /// Messages delivered and not yet acknowledged, at most.
    pub max_ack_pending: usize,
}

/// Creates the durable consumer anew: deleted first if it exists, so it
/// starts where `spec` says and no delivery of an earlier run waits for
/// its ack wait.
pub async fn recreate_consumer(client: &Client, spec: &ConsumerSpec) -> Result<(), NatsError> {
    match api(
        client,
        &format!("CONSUMER.DELETE.{}.{}", spec.stream, spec.name),
        &json!({}),
    )
    .await
    {
        Ok(_) => {}
        Err(NatsError::Api { err_code, .. }) if err_code == CONSUMER_NOT_FOUND => {}
        Err(e) => return Err(e),
    }
    let mut config = json!({
        "durable_name": spec.name,
        "ack_policy": "explicit",
        "ack_wait": spec.ack_wait.as_nanos() as u64,
        "max_ack_pending": spec.max_ack_pending,
        "max_deliver": -1,
        "replay_policy": "instant",
        "max_waiting": 16,
    });
    match spec.start {
        Some(seq) => {
            config["deliver_policy"] = json!("by_start_sequence");
            config["opt_start_seq"] = json!(seq);
        }
        None => config["deliver_policy"] = json!("all"),
    }
    if let Some(f) = &spec.filter {
        config["filter_subject"] = json!(f);
    }
    api(
        client,
        &format!("CONSUMER.DURABLE.CREATE.{}.{}", spec.stream, spec.name),
        &json!({ "stream_name": spec.stream, "config": config }),
    )
    .await?;
    Ok(())
}

/// Asks for up to `batch` messages on `inbox`, the request ending after
/// `expires`, with idle heartbeats every `heartbeat` meanwhile.
pub fn pull(
    client: &Client,
    spec: &ConsumerSpec,
    inbox: &str,
    batch: usize,
    expires: Duration,
    heartbeat: Duration,
) -> Result<(), NatsError> {
    let body = json!({
        "batch": batch,
        "expires": expires.as_nanos() as u64,
        "idle_heartbeat": heartbeat.as_nanos() as u64,
    });
    let subject = format!("$JS.API.CONSUMER.MSG.NEXT.{}.{}", spec.stream, spec.name);
    let mut out = Vec::new();
    super::proto::publish(
        &mut out,
        &subject,
        Some(inbox),
        &[],
        body.to_string().as_bytes(),
    );
    client.publish_raw(out)
}

/// Where a consumed message stands, from its acknowledgement subject.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivered {
    /// How many times it was delivered (1 the first time).
    pub count: u64,
    /// Its sequence number in the stream.
    pub stream_seq: u64,
    /// Its sequence number among the consumer's deliveries.
    pub consumer_seq: u64,
    /// Messages left for the consumer after it.
    pub pending: u64,
}

/// Reads an acknowledgement subject:
/// `$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<time>.<pending>`,
/// or the longer form with a domain and an account hash in front of the
/// stream (and a token at the end).
pub fn delivered(reply: &str) -> Option<Delivered> {
    let t: Vec<&str> = reply.split('.').collect();
    if t.len() < 9 || t[0] != "$JS" || t[1] != "ACK" {
        return None;
    }
    let at = if t.len() == 9 { 4 } else { 6 };
    let n = |i: usize| t.get(at + i).and_then(|s| s.parse::<u64>().ok());
    Some(Delivered {
        count: n(0)?,
        stream_seq: n(1)?,
        consumer_seq: n(2)?,
        pending: n(4)?,
    })
}

/// Acknowledges a consumed message (`+ACK`), or says it is still being
/// worked on (`+WPI`: its ack wait starts again).
pub fn ack(client: &Client, reply: &str, progress: bool) -> Result<(), NatsError> {
    let body: &[u8] = if progress { b"+WPI" } else { b"+ACK" };
    client.publish(reply, &[], body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acknowledgement_subjects() {
        assert_eq!(
            delivered("$JS.ACK.LOGS.w.1.42.7.1700000000000000000.3"),
            Some(Delivered {
                count: 1,
                stream_seq: 42,
                consumer_seq: 7,
                pending: 3
            })
        );
        assert_eq!(
            delivered("$JS.ACK.dom.ACC.LOGS.w.2.42.8.1700000000000000000.0.tok"),
            Some(Delivered {
                count: 2,
                stream_seq: 42,
                consumer_seq: 8,
                pending: 0
            })
        );
        assert_eq!(delivered("$JS.ACK.LOGS.w.x.42.7.1.3"), None);
        assert_eq!(delivered("_INBOX.a.b"), None);
    }

    #[test]
    fn api_errors_are_told_apart_from_answers() {
        let m = Message {
            payload: br#"{"error":{"code":404,"err_code":10059,"description":"stream not found"}}"#
                .to_vec(),
            ..Message::default()
        };
        match answer(&m) {
            Err(NatsError::Api { err_code, .. }) => assert_eq!(err_code, STREAM_NOT_FOUND),
            other => panic!("{other:?}"),
        }
        let m = Message {
            payload: br#"{"stream":"LOGS","seq":9,"duplicate":true}"#.to_vec(),
            ..Message::default()
        };
        assert_eq!(answer(&m).unwrap()["seq"], 9);
        let m = Message {
            payload: b"nope".to_vec(),
            ..Message::default()
        };
        assert!(matches!(answer(&m), Err(NatsError::Protocol(_))));
    }
}
