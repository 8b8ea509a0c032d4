//! The shared connection: one multiplexed, auto-reconnecting
//! `ConnectionManager` (RESP3, so pub/sub pushes arrive on the same
//! connection), this process's wake channel, and the dispatcher that maps a
//! waiter id to the `Notify` its acquire future sleeps on.
//!
//! Beside it, a second plain connection that never reconnects by itself
//! holds the *server proof* (see [`ServerProof`]), which spares most scripts
//! reading `INFO`.
//!
//! A message names a waiter and, since hand-off, carries the grant a script
//! made to it when it freed a permit, so the waiter needs no call of its
//! own. Messages are still only a shortcut: a lost one costs latency (the
//! waiter's timer fires and its next call finds the grant by its id), never
//! correctness. A disconnection wakes every waiter so each re-checks with
//! Redis.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncConnectionConfig, PushInfo, PushKind, RedisResult, Value};
use tokio::sync::Notify;

use crate::id;
use crate::script::{self, Grant};

/// Settings of a [`Client`]'s connection.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientOptions {
    /// How long one Redis call may take before it fails (default 1 s). Keep
    /// it well under the lease: a renewal that times out is retried, and the
    /// permit is declared lost when its lease can no longer be proven.
    pub response_timeout: Duration,
    /// How long connecting may take (default 1 s).
    pub connection_timeout: Duration,
    /// The host name shown in [`Status`](crate::Status) (default: the
    /// kernel's host name).
    pub host: Option<String>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            response_timeout: Duration::from_secs(1),
            connection_timeout: Duration::from_secs(1),
            host: None,
        }
    }
}

impl ClientOptions {
    /// Sets [`response_timeout`](Self::response_timeout).
    #[must_use]
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// Sets [`host`](Self::host).
    #[must_use]
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = Some(host.into());
        self
    }
}

/// A connection to one Redis server shared by any number of semaphores:
/// one multiplexed connection and one pub/sub wake channel per `Client`,
/// plus a second, idle connection that proves which server process it talks
/// to (so scripts need not ask with `INFO`; see the crate docs).
/// Cloning is cheap and shares the connection.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<ClientInner>,
}

pub(crate) struct ClientInner {
    pub(crate) manager: ConnectionManager,
    pub(crate) channel: String,
    pub(crate) host: String,
    pub(crate) pid: u32,
    dispatch: Arc<Dispatch>,
    proof: Arc<Mutex<Option<Arc<ServerProof>>>>,
    prover: tokio::task::JoinHandle<()>,
}

impl Drop for ClientInner {
    fn drop(&mut self) {
        self.prover.abort();
    }
}

/// Which Redis server process a script runs on, without `INFO`.
///
/// A plain connection (one TCP connection, never reconnected behind our
/// back) subscribes to a channel with a fresh random name, then reads
/// `run_id` on that same connection. Subscriptions live in the server
/// process and die with the connection; they are never persisted nor
/// replicated. So wherever a script finds that channel subscribed
/// (`PUBSUB NUMSUB`, well under a microsecond), it runs on the process whose
/// `run_id` was read, and it may compare that `run_id` with the stored one
/// instead of calling `INFO`. Anywhere else (a restarted server, a promoted
/// replica, a connection that moved) the channel has no subscriber and the
/// script reads `INFO` itself. The client's copy of the proof may be stale;
/// the server-side check is what makes it safe.
#[derive(Debug)]
pub(crate) struct ServerProof {
    pub(crate) run_id: String,
    pub(crate) channel: String,
}

/// How often the proof connection is pinged (a silent death only costs
/// `INFO` calls until noticed), and how long to wait before proving again.
const PROOF_PING: Duration = Duration::from_secs(5);
const PROOF_RETRY: Duration = Duration::from_secs(1);

fn run_id_of(info: &str) -> Option<String> {
    info.lines()
        .find_map(|l| l.strip_prefix("run_id:"))
        .map(|id| id.trim().to_owned())
        .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
pub(crate) fn tests_run_id_of(info: &str) -> Option<String> {
    run_id_of(info)
}

/// Keeps a [`ServerProof`] in `proof` while a proof connection lives,
/// making a new one (with a new channel) whenever it dies.
async fn prove_server(
    client: redis::Client,
    proof: Arc<Mutex<Option<Arc<ServerProof>>>>,
    timeout: Duration,
) {
    let set = |value: Option<Arc<ServerProof>>| {
        *proof.lock().unwrap_or_else(PoisonError::into_inner) = value;
    };
    loop {
        let (tx, mut pushes) = tokio::sync::mpsc::unbounded_channel();
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_push_sender(tx);
        if let Ok(mut con) = client
            .get_multiplexed_async_connection_with_config(&config)
            .await
        {
            let channel = format!("permits:boot:{}", id::random_hex());
            // Subscribe first, then read run_id on the same connection: the
            // channel is subscribed on the process that answered.
            let info: RedisResult<String> = async {
                con.subscribe(&channel).await?;
                redis::cmd("INFO").arg("server").query_async(&mut con).await
            }
            .await;
            if let Some(run_id) = info.ok().as_deref().and_then(run_id_of) {
                set(Some(Arc::new(ServerProof { run_id, channel })));
                loop {
                    tokio::select! {
                        push = pushes.recv() => match push {
                            Some(push) if push.kind != PushKind::Disconnection => {}
                            _ => break,
                        },
                        () = tokio::time::sleep(PROOF_PING) => {
                            let ping: RedisResult<Value> = redis::cmd("PING").query_async(&mut con).await;
                            if ping.is_err() {
                                break;
                            }
                        }
                    }
                }
                set(None);
            }
        }
        tokio::time::sleep(PROOF_RETRY).await;
    }
}

/// What a message left for one waiter: a wake-up, and the grant if the
/// message carried one.
#[derive(Default)]
pub(crate) struct Mailbox {
    pub(crate) notify: Notify,
    handoff: Mutex<Option<Grant>>,
}

#[derive(Default)]
struct Dispatch {
    waiters: Mutex<HashMap<String, Arc<Mailbox>>>,
}

impl Dispatch {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Mailbox>>> {
        // The map stays consistent across a panic: inserts and removes are single calls.
        self.waiters.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn on_push(&self, info: PushInfo) {
        match info.kind {
            PushKind::Message => {
                let Some(Value::BulkString(payload)) = info.data.get(1) else {
                    return;
                };
                // A hand-off carries the grant; anything else is a plain
                // hint naming the waiter.
                let (id, grant) = match script::parse_handoff(payload) {
                    Some((id, grant)) => (id, Some(grant)),
                    None => (String::from_utf8_lossy(payload).into_owned(), None),
                };
                let mailbox = self.lock().get(&id).cloned();
                if let Some(mailbox) = mailbox {
                    if grant.is_some() {
                        *mailbox
                            .handoff
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner) = grant;
                    }
                    // `notify_one` stores the wake-up if the waiter is not
                    // sleeping yet, so a message between its script reply
                    // and its wait is not lost; the grant is stored first.
                    mailbox.notify.notify_one();
                }
            }
            PushKind::Disconnection => {
                for mailbox in self.lock().values() {
                    mailbox.notify.notify_one();
                }
            }
            _ => {}
        }
    }
}

/// A waiter's registration with the dispatcher; unregisters on drop.
pub(crate) struct Hint {
    pub(crate) mailbox: Arc<Mailbox>,
    id: String,
    dispatch: Arc<Dispatch>,
}

impl Hint {
    /// The grant a hand-off message delivered, if one came.
    pub(crate) fn take_handoff(&self) -> Option<Grant> {
        self.mailbox
            .handoff
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

impl Drop for Hint {
    fn drop(&mut self) {
        self.dispatch.lock().remove(&self.id);
    }
}

impl Client {
    /// Connects to `url` (`redis://host:port/db`, `rediss://…`,
    /// `redis+unix:///path/to/sock`) with default [`ClientOptions`].
    ///
    /// # Errors
    /// A bad URL, or a server that cannot be reached or does not speak RESP3
    /// (Redis 6 or later is needed).
    ///
    /// # Cancel safety
    /// Cancel safe: dropping the future drops the half-made connection.
    ///
    /// # Examples
    /// ```no_run
    /// # async fn f() -> Result<(), redis::RedisError> {
    /// let client = permits_redis::Client::open("redis://127.0.0.1/").await?;
    /// # Ok(()) }
    /// ```
    pub async fn open(url: &str) -> RedisResult<Self> {
        Self::with_options(redis::Client::open(url)?, ClientOptions::default()).await
    }

    /// Wraps a `redis::Client` you already have. Its connection settings
    /// are kept, except that the protocol is switched to RESP3 (for pub/sub
    /// on the multiplexed connection).
    ///
    /// # Errors
    /// As for [`open`](Self::open).
    ///
    /// # Cancel safety
    /// Cancel safe.
    ///
    /// # Examples
    /// ```no_run
    /// # async fn f() -> Result<(), redis::RedisError> {
    /// use std::time::Duration;
    /// use permits_redis::{Client, ClientOptions};
    /// let redis = redis::Client::open("redis://127.0.0.1/")?;
    /// let options = ClientOptions::default().response_timeout(Duration::from_millis(500));
    /// let client = Client::with_options(redis, options).await?;
    /// # Ok(()) }
    /// ```
    pub async fn with_options(client: redis::Client, options: ClientOptions) -> RedisResult<Self> {
        let info = client.get_connection_info().clone();
        let settings = info
            .redis_settings()
            .clone()
            .set_protocol(redis::ProtocolVersion::RESP3);
        let client = redis::Client::open(info.set_redis_settings(settings))?;
        let dispatch = Arc::new(Dispatch::default());
        let sink = Arc::clone(&dispatch);
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(options.response_timeout))
            .set_connection_timeout(Some(options.connection_timeout))
            .set_automatic_resubscription()
            .set_push_sender(move |info: PushInfo| {
                sink.on_push(info);
                Ok::<(), redis::aio::SendError>(())
            });
        let proof_client = client.clone();
        let mut manager = ConnectionManager::new_with_config(client, config).await?;
        let channel = format!("permits:wake:{}", id::random_hex());
        manager.subscribe(&channel).await?;
        let proof = Arc::new(Mutex::new(None));
        let prover = tokio::spawn(prove_server(
            proof_client,
            Arc::clone(&proof),
            options.response_timeout,
        ));
        Ok(Self {
            inner: Arc::new(ClientInner {
                manager,
                channel,
                host: options.host.unwrap_or_else(id::host_name),
                pid: std::process::id(),
                dispatch,
                proof,
                prover,
            }),
        })
    }

    /// A clone of the underlying connection manager, for your own commands.
    pub fn connection(&self) -> ConnectionManager {
        self.inner.manager.clone()
    }

    /// The server proof, while one is held.
    pub(crate) fn proof(&self) -> Option<Arc<ServerProof>> {
        self.inner
            .proof
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn register(&self, id: &str) -> Hint {
        let mailbox = Arc::new(Mailbox::default());
        self.inner
            .dispatch
            .lock()
            .insert(id.to_owned(), Arc::clone(&mailbox));
        Hint {
            mailbox,
            id: id.to_owned(),
            dispatch: Arc::clone(&self.inner.dispatch),
        }
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("channel", &self.inner.channel)
            .field("host", &self.inner.host)
            .field("pid", &self.inner.pid)
            .finish_non_exhaustive()
    }
}
