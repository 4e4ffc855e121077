//! A NATS connection that survives its servers: one task owns the socket,
//! connects to the servers of the list in turn (and to those the cluster
//! announces), subscribes again after each reconnect, answers `PING`, and
//! sends `PING` itself so that a dead peer is noticed within seconds.
//!
//! What was handed to the task while no server was connected is sent
//! once one is. What the socket had taken when it failed may be lost: a
//! request then times out and its caller tries again (JetStream
//! deduplicates a publish by its message id).

use std::collections::HashMap;
use std::hash::{BuildHasher as _, Hasher as _};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};

use super::proto::{self, Message, ServerOp};
use super::NatsError;

/// How long a connection attempt (TCP and the `CONNECT` handshake) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// A `PING` is sent after this long without one; two unanswered and the
/// connection is given up.
const PING_EVERY: Duration = Duration::from_secs(2);

/// Longest wait between two rounds of connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// What the server said of itself in `INFO`.
#[derive(Clone, Debug, Default)]
pub struct ServerInfo {
    /// The longest payload it accepts.
    pub max_payload: usize,
    /// Client URLs (`host:port`) of every server of its cluster, itself
    /// included; empty when it is not clustered.
    pub connect_urls: Vec<String>,
    /// Its name.
    pub name: String,
    /// The name of its cluster, when it is clustered.
    pub cluster: Option<String>,
}

impl ServerInfo {
    fn parse(json: &str) -> Result<ServerInfo, NatsError> {
        let v: serde_json::Value = serde_json::from_str(json)
            .map_err(|e| NatsError::Protocol(format!("INFO is not JSON: {e}")))?;
        Ok(ServerInfo {
            max_payload: v["max_payload"].as_u64().unwrap_or(1 << 20) as usize,
            connect_urls: v["connect_urls"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|u| u.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
            name: v["server_name"].as_str().unwrap_or_default().to_string(),
            cluster: v["cluster"].as_str().map(str::to_string),
        })
    }
}

enum Cmd {
    /// Bytes of the protocol, ready to send.
    Send(Vec<u8>),
    /// Subscribe (also after every reconnect) with this id.
    Sub(u64, String),
    Unsub(u64),
}

#[derive(Debug)]
struct Shared {
    /// `_INBOX.<random>`: requests are answered on `<inbox>.<token>`.
    inbox: String,
    next: AtomicU64,
    /// Requests waiting for their answer, by token.
    pending: Mutex<HashMap<u64, oneshot::Sender<Message>>>,
    /// Subscriptions by id: their subject and where their messages go.
    subs: Mutex<HashMap<u64, (String, mpsc::UnboundedSender<Message>)>>,
    info: Mutex<ServerInfo>,
    /// Counts connections made: a subscriber that must start over after a
    /// reconnect (a pull consumer) watches it.
    connected: watch::Sender<u64>,
}

/// A handle on the connection; cheap to clone. The connection ends when
/// the last handle is dropped.
#[derive(Clone, Debug)]
pub struct Client {
    tx: mpsc::UnboundedSender<CmdBox>,
    shared: Arc<Shared>,
}

/// `Cmd` behind a type `Debug` can show.
struct CmdBox(Cmd);

impl std::fmt::Debug for CmdBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cmd")
    }
}

/// A random 64-bit number, from the standard library's per-process keys.
pub(crate) fn random() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

/// The `host:port` of a `nats://host:port` URL (the scheme may be left out).
pub fn server_addr(url: &str) -> Result<String, NatsError> {
    let hp = url.strip_prefix("nats://").unwrap_or(url);
    let ok = hp
        .rsplit_once(':')
        .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p != 0));
    if !ok || hp.contains('/') || hp.contains('@') {
        return Err(NatsError::Url(url.to_string()));
    }
    Ok(hp.to_string())
}

impl Client {
    /// Starts connecting to `servers` (`nats://host:port`) and returns at
    /// once; [`Client::connected`] waits for the first connection.
    pub fn start(servers: &[String], name: &str) -> Result<Client, NatsError> {
        let addrs = servers
            .iter()
            .map(|s| server_addr(s))
            .collect::<Result<Vec<_>, _>>()?;
        if addrs.is_empty() {
            return Err(NatsError::Url("no server given".into()));
        }
        let shared = Arc::new(Shared {
            inbox: format!("_INBOX.{:016x}", random()),
            next: AtomicU64::new(1),
            pending: Mutex::new(HashMap::new()),
            subs: Mutex::new(HashMap::new()),
            info: Mutex::new(ServerInfo::default()),
            connected: watch::Sender::new(0),
        });
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(addrs, name.to_string(), Arc::clone(&shared), rx));
        Ok(Client { tx, shared })
    }

    /// Waits until a server has answered the handshake, for at most `wait`.
    pub async fn connected(&self, wait: Duration) -> Result<(), NatsError> {
        let mut rx = self.shared.connected.subscribe();
        tokio::time::timeout(wait, rx.wait_for(|n| *n > 0))
            .await
            .map_err(|_| NatsError::Timeout("connecting to a NATS server".into()))?
            .map_err(|_| NatsError::Closed)?;
        Ok(())
    }

    /// A receiver that changes with each new connection.
    pub fn connections(&self) -> watch::Receiver<u64> {
        self.shared.connected.subscribe()
    }

    /// What the server connected last said of itself.
    pub fn info(&self) -> ServerInfo {
        lock(&self.shared.info).clone()
    }

    fn send(&self, cmd: Cmd) -> Result<(), NatsError> {
        self.tx.send(CmdBox(cmd)).map_err(|_| NatsError::Closed)
    }

    /// Publishes without waiting for anything.
    pub fn publish(
        &self,
        subject: &str,
        headers: &[(&str, &str)],
        payload: &[u8],
    ) -> Result<(), NatsError> {
        let mut out = Vec::with_capacity(payload.len() + 64);
        proto::publish(&mut out, subject, None, headers, payload);
        self.send(Cmd::Send(out))
    }

    /// Sends bytes of the protocol as they are.
    pub(crate) fn publish_raw(&self, bytes: Vec<u8>) -> Result<(), NatsError> {
        self.send(Cmd::Send(bytes))
    }

    /// Publishes with a reply subject and waits up to `wait` for the first
    /// answer. A `503` status (nobody subscribes to the subject: JetStream
    /// has no stream for it, or none of its servers answers now) is
    /// [`NatsError::NoResponders`].
    pub async fn request(
        &self,
        subject: &str,
        headers: &[(&str, &str)],
        payload: &[u8],
        wait: Duration,
    ) -> Result<Message, NatsError> {
        let token = self.shared.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        lock(&self.shared.pending).insert(token, tx);
        let reply = format!("{}.{token}", self.shared.inbox);
        let mut out = Vec::with_capacity(payload.len() + 96);
        proto::publish(&mut out, subject, Some(&reply), headers, payload);
        if let Err(e) = self.send(Cmd::Send(out)) {
            lock(&self.shared.pending).remove(&token);
            return Err(e);
        }
        match tokio::time::timeout(wait, rx).await {
            Ok(Ok(m)) if m.status == Some(503) => Err(NatsError::NoResponders(subject.into())),
            Ok(Ok(m)) => Ok(m),
            Ok(Err(_)) => Err(NatsError::Closed),
            Err(_) => {
                lock(&self.shared.pending).remove(&token);
                Err(NatsError::Timeout(format!(
                    "no answer on {subject} within {wait:?}"
                )))
            }
        }
    }

    /// Subscribes to `subject` (again after each reconnect); its messages
    /// arrive on the receiver until [`Client::unsubscribe`].
    pub fn subscribe(
        &self,
        subject: &str,
    ) -> Result<(u64, mpsc::UnboundedReceiver<Message>), NatsError> {
        let sid = self.shared.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::unbounded_channel();
        lock(&self.shared.subs).insert(sid, (subject.to_string(), tx));
        self.send(Cmd::Sub(sid, subject.to_string()))?;
        Ok((sid, rx))
    }

    /// Ends a subscription.
    pub fn unsubscribe(&self, sid: u64) {
        lock(&self.shared.subs).remove(&sid);
        let _ = self.send(Cmd::Unsub(sid));
    }

    /// A subject no other client uses, for a subscription's replies.
    pub fn new_inbox(&self) -> String {
        let n = self.shared.next.fetch_add(1, Ordering::Relaxed);
        format!("{}.s{n}", self.shared.inbox)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The connection task: connects, serves, reconnects, until every handle
/// is gone.
async fn run(
    mut addrs: Vec<String>,
    name: String,
    shared: Arc<Shared>,
    mut rx: mpsc::UnboundedReceiver<CmdBox>,
) {
    let mut next = 0usize;
    let mut backoff = Duration::from_millis(50);
    loop {
        let mut round_failed = true;
        for _ in 0..addrs.len() {
            let addr = addrs[next % addrs.len()].clone();
            next += 1;
            let Ok(Ok((stream, info, buf))) =
                tokio::time::timeout(CONNECT_TIMEOUT, handshake(&addr, &name)).await
            else {
                continue;
            };
            round_failed = false;
            backoff = Duration::from_millis(50);
            for u in &info.connect_urls {
                if !addrs.contains(u) {
                    addrs.push(u.clone());
                }
            }
            *lock(&shared.info) = info;
            match serve(stream, buf, &shared, &mut rx).await {
                Ended::Closed => return,
                Ended::Failed => {}
            }
        }
        if round_failed {
            if rx.is_closed() {
                return;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}

/// Connects and completes `CONNECT`/`PING`/`PONG`; returns the stream,
/// the server's `INFO` and what it already sent after its `PONG`.
async fn handshake(addr: &str, name: &str) -> Result<(TcpStream, ServerInfo, Vec<u8>), NatsError> {
    let mut s = TcpStream::connect(addr).await?;
    let _ = s.set_nodelay(true);
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 16 << 10];
    let mut info = None;
    let mut sent = false;
    loop {
        while let Some((op, used)) = proto::parse(&buf, 1 << 20)? {
            buf.drain(..used);
            match op {
                ServerOp::Info(json) if info.is_none() => {
                    info = Some(ServerInfo::parse(&json)?);
                    let mut out = Vec::new();
                    proto::connect(&mut out, name);
                    s.write_all(&out).await?;
                    sent = true;
                }
                ServerOp::Pong if sent => {
                    let Some(info) = info else {
                        unreachable!("sent after INFO")
                    };
                    return Ok((s, info, buf));
                }
                ServerOp::Err(e) => return Err(NatsError::Server(e)),
                ServerOp::Ping => s.write_all(b"PONG\r\n").await?,
                _ => {}
            }
        }
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Err(NatsError::Closed);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

enum Ended {
    /// Every handle is gone.
    Closed,
    /// The connection failed: connect again.
    Failed,
}

/// Serves one connection until it fails or every handle is gone.
async fn serve(
    stream: TcpStream,
    mut buf: Vec<u8>,
    shared: &Shared,
    rx: &mut mpsc::UnboundedReceiver<CmdBox>,
) -> Ended {
    let (mut read, mut write) = stream.into_split();
    let max_payload = lock(&shared.info).max_payload;
    // Subscriptions first: requests are answered on the inbox.
    let mut out = Vec::new();
    proto::subscribe(&mut out, &format!("{}.*", shared.inbox), 0);
    for (sid, (subject, _)) in lock(&shared.subs).iter() {
        proto::subscribe(&mut out, subject, *sid);
    }
    if write.write_all(&out).await.is_err() {
        return Ended::Failed;
    }
    out.clear();
    shared.connected.send_modify(|n| *n += 1);
    let mut chunk = vec![0u8; 64 << 10];
    let mut pings_out = 0u32;
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping.tick().await;
    loop {
        // Biased: reading first keeps answers flowing while a publisher
        // floods the socket.
        tokio::select! {
            biased;
            r = read.read(&mut chunk) => {
                let n = match r {
                    Ok(0) | Err(_) => return Ended::Failed,
                    Ok(n) => n,
                };
                buf.extend_from_slice(&chunk[..n]);
                loop {
                    match proto::parse(&buf, max_payload) {
                        Ok(Some((op, used))) => {
                            buf.drain(..used);
                            match op {
                                ServerOp::Msg(m) => dispatch(shared, m),
                                ServerOp::Ping => out.extend_from_slice(b"PONG\r\n"),
                                ServerOp::Pong => pings_out = 0,
                                ServerOp::Err(e) => {
                                    // Permission and limit errors leave the
                                    // connection open; the rest close it.
                                    if !e.to_ascii_lowercase().starts_with("permissions") {
                                        eprintln!("logbraid: NATS server: {e}");
                                        return Ended::Failed;
                                    }
                                }
                                ServerOp::Info(json) => {
                                    if let Ok(info) = ServerInfo::parse(&json) {
                                        *lock(&shared.info) = info;
                                    }
                                }
                                ServerOp::Ok => {}
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            eprintln!("logbraid: {e}");
                            return Ended::Failed;
                        }
                    }
                }
            }
            cmd = rx.recv() => {
                let Some(CmdBox(cmd)) = cmd else { return Ended::Closed };
                take(cmd, &mut out);
                // Everything queued goes in one write, up to 1 MiB.
                while out.len() < 1 << 20 {
                    match rx.try_recv() {
                        Ok(CmdBox(cmd)) => take(cmd, &mut out),
                        Err(_) => break,
                    }
                }
            }
            _ = ping.tick() => {
                if pings_out >= 2 {
                    return Ended::Failed;
                }
                pings_out += 1;
                out.extend_from_slice(b"PING\r\n");
            }
        }
        if !out.is_empty() {
            if write.write_all(&out).await.is_err() {
                // What was in this write may or may not have arrived;
                // requests time out and are tried again.
                return Ended::Failed;
            }
            out.clear();
        }
    }
}

fn take(cmd: Cmd, out: &mut Vec<u8>) {
    match cmd {
        Cmd::Send(bytes) => out.extend_from_slice(&bytes),
        Cmd::Sub(sid, subject) => proto::subscribe(out, &subject, sid),
        Cmd::Unsub(sid) => proto::unsubscribe(out, sid),
    }
}

fn dispatch(shared: &Shared, m: Message) {
    if m.sid == 0 {
        let token = m
            .subject
            .rsplit_once('.')
            .and_then(|(_, t)| t.parse::<u64>().ok());
        if let Some(tx) = token.and_then(|t| lock(&shared.pending).remove(&t)) {
            let _ = tx.send(m);
        }
        return;
    }
    let subs = lock(&shared.subs);
    if let Some((_, tx)) = subs.get(&m.sid) {
        let _ = tx.send(m);
    }
}
