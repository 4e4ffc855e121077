//! OpenTelemetry logs: `otlp-http://` (OTLP/HTTP, `POST /v1/logs`, on
//! HTTP/1.1) and `otlp-grpc://` (OTLP/gRPC, `LogsService/Export`, on
//! HTTP/2), served by hyper on connections accepted like every other
//! stream listener's (a slot each, TLS when the collector has a
//! certificate). The generated types and the gRPC service are
//! `opentelemetry-proto`'s and tonic's; the mapping is
//! [`intake::otlp`](crate::intake::otlp)'s.
//!
//! Each request, in order:
//!
//! | step | refused with (HTTP / gRPC) |
//! |---|---|
//! | path `/v1/logs`, method `POST`, `Content-Type` protobuf or JSON, `Content-Encoding` gzip or none (HTTP only) | 404, 405, 415 |
//! | `Authorization: Bearer TOKEN` when the collector has a token | 401 / `UNAUTHENTICATED` |
//! | the body, at most `max_frame` bytes (gzip: [`INFLATE`] times that once inflated), read into memory reserved from the budget first | 413 / `OUT_OF_RANGE`; no memory within [`BUSY_WAIT`]: 429 / `RESOURCE_EXHAUSTED` with `Retry-After` |
//! | decoded (its working memory reserved too) | 400 / `INVALID_ARGUMENT` (tonic's `INTERNAL` for a message it cannot decode is answered as that): the collector and the connection go on |
//! | mapped; a record heavier than `max_frame` is refused | partial success: `rejected_log_records` and `error_message` |
//! | handed to the output stage | no room within [`BUSY_WAIT`], or stopping: 503 / `UNAVAILABLE` with `Retry-After` |
//! | answered once the output stage has written them | 200 / `OK`, as a native batch's `ACK` |
//!
//! Answers are in the request's encoding: an `ExportLogsServiceResponse`,
//! or for an error a `google.rpc.Status` (protobuf or JSON). A connection
//! is pending (see [`slots`](super::slots)) until its first request; one
//! with no request in progress for the idle timeout is closed, and a
//! stopping server lets requests in progress finish, then closes.

use std::convert::Infallible;
use std::future::Future;
use std::io::Read as _;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use logbraid::OwnedRecord;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use prost::Message as _;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Notify;
use tonic::codegen::Service as _;

use super::budget::{work_for, Reservation};
use super::stream::WORK_SHARE;
use super::{Conn, Protocol, Server, READ_CHUNK};
use crate::diag::{Action, Kind};
use crate::intake::otlp::{self, Format};
use crate::intake::SourceCache;
use crate::output::{AckTo, Body, Delivery};

/// How long a request waits for memory, or for room in the output stage,
/// before it is answered 429 or 503 (the client retries after
/// [`RETRY_AFTER`]).
pub const BUSY_WAIT: Duration = Duration::from_secs(2);

/// A gzip body may inflate to this many times `max_frame`, for requests
/// of well-compressed records; each record must still weigh at most
/// `max_frame`, as it must to travel in a native `BATCH`.
pub const INFLATE: usize = 4;

/// The `Retry-After` of a 429 or 503, in seconds.
const RETRY_AFTER: &str = "1";

/// What a connection's requests share with the connection: how many are in
/// progress and when the last ended (for the idle timeout), and the news
/// of the first.
#[derive(Debug)]
struct Activity {
    active: AtomicUsize,
    last: Mutex<Instant>,
    first: Notify,
}

/// A request in progress, until dropped.
struct Busy<'a>(&'a Activity);

impl Activity {
    fn begin(&self) -> Busy<'_> {
        self.active.fetch_add(1, Ordering::AcqRel);
        self.first.notify_one();
        Busy(self)
    }

    /// When the connection is idle for `idle`: never while a request is in
    /// progress.
    fn idle_at(&self, idle: Duration) -> Option<Instant> {
        if self.active.load(Ordering::Acquire) > 0 {
            return None;
        }
        Some(*self.last.lock().unwrap_or_else(|e| e.into_inner()) + idle)
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        *self.0.last.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        self.0.active.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Why a request is refused.
#[derive(Debug)]
enum Refusal {
    NotFound,
    Method,
    MediaType(String),
    Token,
    TooLarge(String),
    Malformed(String),
    /// No memory for the request within [`BUSY_WAIT`].
    NoMemory,
    /// The output stage had no room within [`BUSY_WAIT`], or is stopping.
    Unavailable,
}

impl Refusal {
    fn status(&self) -> StatusCode {
        match self {
            Refusal::NotFound => StatusCode::NOT_FOUND,
            Refusal::Method => StatusCode::METHOD_NOT_ALLOWED,
            Refusal::MediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Refusal::Token => StatusCode::UNAUTHORIZED,
            Refusal::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Refusal::Malformed(_) => StatusCode::BAD_REQUEST,
            Refusal::NoMemory => StatusCode::TOO_MANY_REQUESTS,
            Refusal::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn grpc(&self) -> tonic::Status {
        let m = self.to_string();
        match self {
            Refusal::Token => tonic::Status::unauthenticated(m),
            Refusal::TooLarge(_) => tonic::Status::out_of_range(m),
            Refusal::Malformed(_) => tonic::Status::invalid_argument(m),
            Refusal::NoMemory => tonic::Status::resource_exhausted(m),
            Refusal::Unavailable => tonic::Status::unavailable(m),
            Refusal::NotFound | Refusal::Method | Refusal::MediaType(_) => {
                tonic::Status::unimplemented(m)
            }
        }
    }

    /// How it is counted, if it is: what a client did wrong, or the
    /// collector being too busy for it.
    fn kind(&self) -> Option<Kind> {
        match self {
            Refusal::Token => Some(Kind::BadToken),
            Refusal::TooLarge(_) => Some(Kind::FrameTooLarge),
            Refusal::Malformed(_) => Some(Kind::Malformed),
            Refusal::NoMemory | Refusal::Unavailable => Some(Kind::Overloaded),
            Refusal::NotFound | Refusal::Method | Refusal::MediaType(_) => None,
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::NotFound => f.write_str("OTLP logs are received at /v1/logs"),
            Refusal::Method => f.write_str("/v1/logs takes POST"),
            Refusal::MediaType(m) => f.write_str(m),
            Refusal::Token => f.write_str("missing or wrong token (Authorization: Bearer TOKEN)"),
            Refusal::TooLarge(m) | Refusal::Malformed(m) => f.write_str(m),
            Refusal::NoMemory => write!(f, "no memory for the request within {BUSY_WAIT:?}"),
            Refusal::Unavailable => {
                write!(
                    f,
                    "the collector could not take the records within {BUSY_WAIT:?}"
                )
            }
        }
    }
}

/// `google.rpc.Status`, the body of an OTLP/HTTP error.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

/// Serves a connection's requests: shared by them, cheap to clone.
#[derive(Clone, Debug)]
struct Handler {
    server: Arc<Server>,
    peer: Arc<str>,
    activity: Arc<Activity>,
    /// Its listener's count of records received (the metrics').
    received: prometheus_client::metrics::counter::Counter,
}

impl Conn<'_> {
    /// Serves an `otlp-http://` or `otlp-grpc://` connection (after its
    /// TLS handshake, when the collector has a certificate).
    pub(super) async fn otlp<S>(self, s: S, proto: Protocol, server: Arc<Server>)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        if server.config.tls.is_some() {
            let alpn: &[u8] = match proto {
                Protocol::OtlpGrpc => b"h2",
                _ => b"http/1.1",
            };
            let Some((s, _)) = self.handshake(s, Some(alpn)).await else {
                return;
            };
            self.serve_otlp(s, proto, server).await;
        } else {
            self.serve_otlp(s, proto, server).await;
        }
    }

    async fn serve_otlp<S>(self, s: S, proto: Protocol, server: Arc<Server>)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let io = TokioIo::new(s);
        let activity = Arc::new(Activity {
            active: AtomicUsize::new(0),
            last: Mutex::new(Instant::now()),
            first: Notify::new(),
        });
        let handler = Handler {
            peer: Arc::from(self.peer.as_str()),
            server: Arc::clone(&server),
            activity: Arc::clone(&activity),
            received: self.received.clone(),
        };
        let header = server.config.hello_timeout;
        if proto == Protocol::OtlpGrpc {
            let cap = server.config.max_frame;
            let grpc = LogsServiceServer::new(handler.clone())
                .accept_compressed(tonic::codec::CompressionEncoding::Gzip)
                .max_decoding_message_size(cap * INFLATE);
            let svc = hyper::service::service_fn(move |req| {
                let (h, g) = (handler.clone(), grpc.clone());
                async move { Ok::<_, Infallible>(h.grpc(req, g).await) }
            });
            let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .serve_connection(io, svc);
            self.drive(conn, &activity, |c| c.graceful_shutdown()).await;
        } else {
            let svc = hyper::service::service_fn(move |req| {
                let h = handler.clone();
                async move { Ok::<_, Infallible>(h.http(req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header)
                .serve_connection(io, svc);
            self.drive(conn, &activity, |c| c.graceful_shutdown()).await;
        }
    }

    /// Runs a hyper connection until it ends: closes it gracefully when
    /// the server stops or no request came for the idle timeout, drops it
    /// when evicted before its first request or past the drain time.
    async fn drive<F>(mut self, conn: F, activity: &Activity, shutdown: impl Fn(Pin<&mut F>))
    where
        F: Future<Output = Result<(), hyper::Error>>,
    {
        let mut conn = pin!(conn);
        let idle = self.server.config.idle_timeout;
        let mut cut = self.server.cut.subscribe();
        if *cut.borrow_and_update() {
            return;
        }
        let mut spoke = false;
        let mut closing = *self.stop.borrow();
        if closing {
            shutdown(conn.as_mut());
        }
        loop {
            let idle_at = activity.idle_at(idle);
            let wait = idle_at.map_or(idle, |at| at.saturating_duration_since(Instant::now()));
            tokio::select! {
                _ = conn.as_mut() => return,
                _ = activity.first.notified(), if !spoke => {
                    spoke = true;
                    self.slot.spoke();
                }
                _ = self.slot.evicted(), if !spoke => {
                    self.reject(
                        Kind::Evicted,
                        &"no request yet, evicted to make room for a new connection",
                    );
                    return;
                }
                r = self.stop.changed(), if !closing => {
                    closing = true;
                    if r.is_ok() {
                        shutdown(conn.as_mut());
                    }
                }
                _ = cut.changed() => return,
                _ = tokio::time::sleep(wait) => {
                    let idle_now = activity.idle_at(idle).is_some_and(|at| at <= Instant::now());
                    if idle_now && !closing {
                        closing = true;
                        shutdown(conn.as_mut());
                    } else if idle_now {
                        return;
                    }
                }
            }
        }
    }
}

impl Handler {
    fn refuse(&self, r: &Refusal) {
        if let Some(kind) = r.kind() {
            self.server
                .stats
                .diagnostics
                .emit(kind, &self.peer, Action::Answered, r);
        }
    }

    /// One OTLP/HTTP request.
    async fn http(&self, req: Request<Incoming>) -> hyper::Response<Full<Bytes>> {
        let _busy = self.activity.begin();
        let format = match format_of(req.headers()) {
            Ok(f) => f,
            Err(_) => Format::Protobuf,
        };
        match self.export_http(req).await {
            Ok(resp) => answer(StatusCode::OK, format, resp.encode(format)),
            Err(r) => {
                self.refuse(&r);
                let status = RpcStatus {
                    code: r.grpc().code() as i32,
                    message: r.to_string(),
                };
                let body = match format {
                    Format::Protobuf => status.encode_to_vec(),
                    Format::Json => serde_json::json!({
                        "code": status.code,
                        "message": status.message,
                    })
                    .to_string()
                    .into_bytes(),
                };
                let mut resp = answer(r.status(), format, body);
                let h = resp.headers_mut();
                match r {
                    Refusal::NoMemory | Refusal::Unavailable => {
                        h.insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER));
                    }
                    Refusal::Method => {
                        h.insert(header::ALLOW, HeaderValue::from_static("POST"));
                    }
                    Refusal::Token => {
                        h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                    }
                    _ => {}
                }
                resp
            }
        }
    }

    async fn export_http(&self, req: Request<Incoming>) -> Result<Answer, Refusal> {
        if req.uri().path() != "/v1/logs" {
            return Err(Refusal::NotFound);
        }
        if req.method() != Method::POST {
            return Err(Refusal::Method);
        }
        let format = format_of(req.headers())?;
        let gzip = match req
            .headers()
            .get(header::CONTENT_ENCODING)
            .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase())
            .as_deref()
        {
            None | Some("identity") => false,
            Some("gzip") => true,
            Some(other) => {
                return Err(Refusal::MediaType(format!(
                    "Content-Encoding {other:?} is not gzip"
                )))
            }
        };
        self.check_token(req.headers())?;
        let cap = self.server.config.max_frame;
        let mut res = self.server.reservation();
        let body = self.read_body(req.into_body(), cap, &mut res).await?;
        let body = if gzip {
            self.gunzip(&body, cap * INFLATE, &mut res).await?
        } else {
            body
        };
        self.cover(&mut res, body.len() + work_for(body.len(), self.work_cap()))
            .await?;
        let request = otlp::decode(&body, format).map_err(|e| Refusal::Malformed(e.to_string()))?;
        drop(body);
        self.export(request, Some(res)).await
    }

    /// One OTLP/gRPC request: its body is read here, within the budget,
    /// and handed to tonic's service, which decodes it and calls
    /// [`LogsService::export`].
    async fn grpc(
        &self,
        req: Request<Incoming>,
        mut svc: LogsServiceServer<Handler>,
    ) -> hyper::Response<tonic::body::Body> {
        let _busy = self.activity.begin();
        if let Err(r) = self.check_token(req.headers()) {
            self.refuse(&r);
            return r.grpc().into_http();
        }
        let (parts, body) = req.into_parts();
        let cap = self.server.config.max_frame;
        let gzip = parts
            .headers
            .get("grpc-encoding")
            .is_some_and(|v| v.as_bytes() == b"gzip");
        let mut res = self.server.reservation();
        // The message, its 5-byte prefix, and the prefixes of an empty
        // trailing frame or two.
        let read = self.read_body(body, cap + 16, &mut res).await;
        let body = match read {
            Ok(b) => b,
            Err(r) => {
                self.refuse(&r);
                return r.grpc().into_http();
            }
        };
        // What tonic may inflate it to and decode it into.
        let decoded = if gzip { cap * INFLATE } else { body.len() };
        let need = body.len() + decoded + work_for(decoded, self.work_cap());
        if let Err(r) = self.cover(&mut res, need).await {
            self.refuse(&r);
            return r.grpc().into_http();
        }
        let mut req = Request::from_parts(parts, Full::new(Bytes::from(body)));
        // The handler gives it back once the records are mapped.
        req.extensions_mut()
            .insert(Held(Arc::new(Mutex::new(Some(res)))));
        let ready = std::future::poll_fn(|cx| {
            tonic::codegen::Service::<Request<Full<Bytes>>>::poll_ready(&mut svc, cx)
        });
        if ready.await.is_err() {
            return tonic::Status::unavailable("the service is not ready").into_http();
        }
        let mut resp = match svc.call(req).await {
            Ok(resp) => resp,
            Err(never) => match never {},
        };
        // tonic answers INTERNAL, in the headers, for a message it cannot
        // inflate or decode, before the request reaches the handler (which
        // never answers INTERNAL): the client sent something malformed.
        let h = resp.headers_mut();
        if h.get("grpc-status").is_some_and(|v| v == "13") {
            let detail = h
                .get("grpc-message")
                .map(|m| String::from_utf8_lossy(m.as_bytes()).into_owned())
                .unwrap_or_default();
            self.refuse(&Refusal::Malformed(format!(
                "not an OTLP logs request (gRPC): {detail}"
            )));
            let code = tonic::Code::InvalidArgument as i32;
            h.insert("grpc-status", HeaderValue::from(code));
        }
        resp
    }

    fn check_token(&self, headers: &HeaderMap) -> Result<(), Refusal> {
        let Some(token) = &self.server.config.token else {
            return Ok(());
        };
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "));
        match given {
            Some(t) if logbraid::wire::token_matches(t, token) => Ok(()),
            _ => Err(Refusal::Token),
        }
    }

    fn work_cap(&self) -> usize {
        self.server.config.memory / WORK_SHARE
    }

    /// Makes `res` cover `bytes`, waiting up to [`BUSY_WAIT`].
    async fn cover(&self, res: &mut Reservation, bytes: usize) -> Result<(), Refusal> {
        match tokio::time::timeout(BUSY_WAIT, res.cover(bytes)).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(Refusal::Unavailable),
            Err(_) => Err(Refusal::NoMemory),
        }
    }

    /// Reads a body of at most `cap` bytes, the memory for each part
    /// reserved before it is read.
    async fn read_body(
        &self,
        mut body: Incoming,
        cap: usize,
        res: &mut Reservation,
    ) -> Result<Vec<u8>, Refusal> {
        use hyper::body::Body as _;
        let too_large = |n: u64| {
            Refusal::TooLarge(format!(
                "a request of {n} bytes or more is over the limit of {cap} bytes"
            ))
        };
        let hint = body.size_hint().exact();
        if let Some(n) = hint {
            if n > cap as u64 {
                return Err(too_large(n));
            }
        }
        let mut buf = Vec::new();
        loop {
            let next = match hint {
                Some(n) => n as usize,
                None => buf.len() + READ_CHUNK,
            };
            self.cover(res, next.max(buf.capacity())).await?;
            if hint.is_some() && buf.capacity() == 0 {
                buf.reserve_exact(next);
            }
            let Some(frame) = body.frame().await else {
                return Ok(buf);
            };
            let frame = frame.map_err(|e| Refusal::Malformed(format!("reading the body: {e}")))?;
            if let Ok(data) = frame.into_data() {
                if buf.len() + data.len() > cap {
                    return Err(too_large((buf.len() + data.len()) as u64));
                }
                buf.extend_from_slice(&data);
            }
        }
    }

    /// Inflates a gzip body to at most `cap` bytes, the memory reserved as
    /// it grows.
    async fn gunzip(
        &self,
        body: &[u8],
        cap: usize,
        res: &mut Reservation,
    ) -> Result<Vec<u8>, Refusal> {
        let mut out = Vec::new();
        let mut gz = flate2::read::MultiGzDecoder::new(body);
        let mut chunk = vec![0u8; READ_CHUNK];
        loop {
            self.cover(res, body.len() + out.len() + 2 * READ_CHUNK)
                .await?;
            let n = gz
                .read(&mut chunk)
                .map_err(|e| Refusal::Malformed(format!("gzip: {e}")))?;
            if n == 0 {
                return Ok(out);
            }
            if out.len() + n > cap {
                return Err(Refusal::TooLarge(format!(
                    "the request inflates to more than the limit of {cap} bytes"
                )));
            }
            out.extend_from_slice(&chunk[..n]);
        }
    }

    /// Maps and writes a request's records: the answer once they are
    /// written (with the count of those refused, if any).
    ///
    /// `res`, the memory reserved for reading and decoding the request, is
    /// given back once the records are mapped: from then on they count
    /// against the output stage's budget, and a request waiting for its
    /// records to be written holds nothing of the connections' pool.
    async fn export(
        &self,
        request: ExportLogsServiceRequest,
        res: Option<Reservation>,
    ) -> Result<Answer, Refusal> {
        let max = self.server.config.max_frame;
        let now = logbraid::clock::now_ns();
        let m = otlp::map(request, &self.peer, now, max, &mut SourceCache::new());
        drop(res);
        self.deliver(m.records).await?;
        if m.rejected > 0 {
            self.server.stats.diagnostics.emit(
                Kind::FrameTooLarge,
                &self.peer,
                Action::Answered,
                &format_args!("{} record(s) refused: {}", m.rejected, m.reason),
            );
        }
        Ok(Answer(ExportLogsServiceResponse {
            partial_success: (m.rejected > 0).then(|| ExportLogsPartialSuccess {
                rejected_log_records: i64::try_from(m.rejected).unwrap_or(i64::MAX),
                error_message: m.reason,
            }),
        }))
    }

    /// Hands `records` to the output stage and waits until they are written
    /// (the round that wrote them flushed and checkpointed).
    async fn deliver(&self, records: Vec<OwnedRecord>) -> Result<(), Refusal> {
        let Some(first) = records.first() else {
            return Ok(());
        };
        let n = records.len() as u64;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let d = Delivery {
            source: Arc::clone(&first.source),
            body: Body::Records(records),
            ack: Some(AckTo::unnumbered(tx)),
        };
        match tokio::time::timeout(BUSY_WAIT, self.server.output.send(d)).await {
            Ok(true) => {}
            Ok(false) | Err(_) => return Err(Refusal::Unavailable),
        }
        self.server.count_received(n, &self.received);
        match rx.recv().await {
            Some(_) => Ok(()),
            None => Err(Refusal::Unavailable),
        }
    }
}

/// The memory reserved for a gRPC request, handed to the handler through
/// the request's extensions.
#[derive(Clone, Debug)]
struct Held(Arc<Mutex<Option<Reservation>>>);

/// A successful answer: the `ExportLogsServiceResponse`.
struct Answer(ExportLogsServiceResponse);

impl Answer {
    fn encode(&self, format: Format) -> Vec<u8> {
        match format {
            Format::Protobuf => self.0.encode_to_vec(),
            // Written out: the generated type would write a `null` for an
            // absent partial success, where OTLP/JSON leaves it out.
            Format::Json => match &self.0.partial_success {
                None => b"{}".to_vec(),
                Some(p) => serde_json::json!({
                    "partialSuccess": {
                        "rejectedLogRecords": p.rejected_log_records.to_string(),
                        "errorMessage": p.error_message,
                    }
                })
                .to_string()
                .into_bytes(),
            },
        }
    }
}

fn answer(status: StatusCode, format: Format, body: Vec<u8>) -> hyper::Response<Full<Bytes>> {
    let mut resp = hyper::Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    let ct = match format {
        Format::Protobuf => "application/x-protobuf",
        Format::Json => "application/json",
    };
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    resp
}

fn format_of(headers: &HeaderMap) -> Result<Format, Refusal> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match media.as_str() {
        "application/x-protobuf" | "application/protobuf" => Ok(Format::Protobuf),
        "application/json" => Ok(Format::Json),
        _ => Err(Refusal::MediaType(format!(
            "Content-Type {ct:?}: send application/x-protobuf or application/json"
        ))),
    }
}

#[tonic::async_trait]
impl LogsService for Handler {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        let res = request
            .extensions()
            .get::<Held>()
            .and_then(|h| h.0.lock().unwrap_or_else(|e| e.into_inner()).take());
        match Handler::export(self, request.into_inner(), res).await {
            Ok(Answer(r)) => Ok(tonic::Response::new(r)),
            Err(r) => {
                self.refuse(&r);
                Err(r.grpc())
            }
        }
    }
}
