//! The Lua scripts (one per operation, each prefixed by the shared prelude in
//! `lua/prelude.lua`) and the typed calls and replies around them. Every
//! decision about permits happens inside these scripts, atomically and on
//! Redis server time; the Rust side only sends, parses and waits.
//!
//! `redis::Script` sends `EVALSHA` and, on `NOSCRIPT` (after a restart,
//! failover or `SCRIPT FLUSH`), loads the script and retries once.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::{RedisResult, Script};

use crate::client::ServerProof;
use crate::{FenceToken, ServerTime};

struct Scripts {
    acquire: Script,
    renew: Script,
    release: Script,
    status: Script,
    resize: Script,
}

static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    acquire: Script::new(concat!(
        include_str!("lua/prelude.lua"),
        include_str!("lua/acquire.lua")
    )),
    renew: Script::new(concat!(
        include_str!("lua/prelude.lua"),
        include_str!("lua/renew.lua")
    )),
    release: Script::new(concat!(
        include_str!("lua/prelude.lua"),
        include_str!("lua/release.lua")
    )),
    status: Script::new(concat!(
        include_str!("lua/prelude.lua"),
        include_str!("lua/status.lua")
    )),
    resize: Script::new(concat!(
        include_str!("lua/prelude.lua"),
        include_str!("lua/resize.lua")
    )),
});

/// The keys of one semaphore, all under one hash tag (Cluster-safe).
#[derive(Debug, Clone)]
pub(crate) struct Keys([String; 7]);

impl Keys {
    pub(crate) fn new(name: &str) -> Self {
        let key = |part: &str| format!("permits:{{{name}}}:{part}");
        Self([
            key("meta"),
            key("holders"),
            key("pinfo"),
            key("used"),
            key("queue"),
            key("qdl"),
            key("winfo"),
        ])
    }
}

/// The arguments every script takes first (see the prelude).
#[derive(Debug, Clone)]
pub(crate) struct Common {
    /// Which server process the client proved it talks to, if it holds a
    /// proof (see `ServerProof`).
    pub(crate) proof: Option<Arc<ServerProof>>,
    pub(crate) lease: Duration,
    pub(crate) quarantine: bool,
    /// Stored when Redis has none (first use, or after a state loss); 0:
    /// none given.
    pub(crate) capacity: u32,
    /// A stored capacity other than `capacity` is a conflict (at connect);
    /// otherwise the stored one rules (it may have been resized).
    pub(crate) strict: bool,
}

/// What an acquire script call decided.
#[derive(Debug)]
pub(crate) enum AcquireReply {
    Granted(Grant),
    /// Queued; re-check at `wake_at` (0: nothing scheduled) at the latest.
    Wait {
        wake_at: u64,
        now: u64,
    },
    Busy {
        wake_at: u64,
        quarantined: bool,
    },
    TooLarge {
        capacity: u32,
    },
}

#[derive(Debug, Clone)]
pub(crate) struct Grant {
    pub(crate) tokens: Vec<FenceToken>,
    pub(crate) deadline: ServerTime,
    /// Server time of this reply (a retry's, for an idempotent one).
    pub(crate) now: ServerTime,
    /// Server time of the grant itself.
    pub(crate) since: ServerTime,
}

/// Parses a hand-off message, `G seq deadline now slots id`, published on a
/// waiter's wake channel by the script that granted it a freed permit (see
/// `grant_heads` in the prelude). The id comes last and may hold spaces.
pub(crate) fn parse_handoff(payload: &[u8]) -> Option<(String, Grant)> {
    let text = std::str::from_utf8(payload).ok()?;
    let mut parts = text.strip_prefix("G ")?.splitn(5, ' ');
    let seq: u64 = parts.next()?.parse().ok()?;
    let deadline = ServerTime(parts.next()?.parse().ok()?);
    let now = ServerTime(parts.next()?.parse().ok()?);
    let tokens = parts
        .next()?
        .split(',')
        .map(|s| s.parse().ok().map(|slot| FenceToken { slot, seq }))
        .collect::<Option<Vec<_>>>()?;
    let id = parts.next()?.to_owned();
    Some((
        id,
        Grant {
            tokens,
            deadline,
            now,
            since: now,
        },
    ))
}

#[derive(Debug)]
pub(crate) enum RenewReply {
    Renewed {
        deadline: ServerTime,
        now: ServerTime,
    },
    Lost,
}

pub(crate) struct AcquireArgs<'a> {
    pub(crate) id: &'a str,
    pub(crate) n: u32,
    pub(crate) wait: bool,
    /// A random id on its first call: nothing can have been granted to it
    /// yet, so the script skips the look-up that makes retries idempotent.
    /// False for an id the caller chose and for every later call (a retry
    /// after an error must find a grant that landed).
    pub(crate) fresh: bool,
    pub(crate) liveness: Duration,
    pub(crate) host: &'a str,
    pub(crate) pid: u32,
    pub(crate) channel: &'a str,
}

fn invocation<'s>(script: &'s Script, keys: &Keys, common: Common) -> redis::ScriptInvocation<'s> {
    let mut inv = script.prepare_invoke();
    for key in &keys.0 {
        inv.key(key);
    }
    inv.arg(common.lease.as_millis().max(1) as u64)
        .arg(if common.quarantine { "1" } else { "0" })
        .arg(common.capacity)
        .arg(if common.strict { "1" } else { "0" });
    match &common.proof {
        Some(proof) => inv.arg(&proof.run_id).arg(&proof.channel),
        None => inv.arg("").arg(""),
    };
    inv
}

fn protocol_error(what: &str, reply: &[String]) -> redis::RedisError {
    redis::RedisError::from((
        redis::ErrorKind::Parse,
        "unexpected reply from a permits script",
        format!("{what}: {reply:?}"),
    ))
}

fn num<T: std::str::FromStr>(reply: &[String], i: usize, what: &str) -> RedisResult<T> {
    reply
        .get(i)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| protocol_error(what, reply))
}

pub(crate) async fn acquire(
    con: &mut ConnectionManager,
    keys: &Keys,
    common: Common,
    args: &AcquireArgs<'_>,
) -> RedisResult<AcquireReply> {
    let mut inv = invocation(&SCRIPTS.acquire, keys, common);
    inv.arg(args.id)
        .arg(args.n)
        .arg(if args.wait { "wait" } else { "try" })
        .arg(args.liveness.as_millis().max(1) as u64)
        .arg(args.host)
        .arg(args.pid)
        .arg(args.channel)
        .arg(if args.fresh { "1" } else { "0" });
    let reply: Vec<String> = inv.invoke_async(con).await?;
    let what = "acquire";
    Ok(match reply.first().map(String::as_str) {
        Some("granted") => {
            let seq: u64 = num(&reply, 1, what)?;
            let tokens = (5..reply.len())
                .map(|i| num(&reply, i, what).map(|slot| FenceToken { slot, seq }))
                .collect::<RedisResult<Vec<_>>>()?;
            if tokens.len() != args.n as usize {
                return Err(protocol_error("a grant of another size", &reply));
            }
            AcquireReply::Granted(Grant {
                tokens,
                deadline: ServerTime(num(&reply, 2, what)?),
                now: ServerTime(num(&reply, 3, what)?),
                since: ServerTime(num(&reply, 4, what)?),
            })
        }
        Some("wait") => AcquireReply::Wait {
            wake_at: num(&reply, 1, what)?,
            now: num(&reply, 2, what)?,
        },
        Some("busy") => AcquireReply::Busy {
            wake_at: num(&reply, 1, what)?,
            quarantined: reply.get(3).map(String::as_str) == Some("1"),
        },
        Some("toolarge") => AcquireReply::TooLarge {
            capacity: num(&reply, 1, what)?,
        },
        _ => return Err(protocol_error(what, &reply)),
    })
}

pub(crate) async fn renew(
    con: &mut ConnectionManager,
    keys: &Keys,
    common: Common,
    id: &str,
    seq: u64,
) -> RedisResult<RenewReply> {
    let mut inv = invocation(&SCRIPTS.renew, keys, common);
    inv.arg(id).arg(seq.to_string());
    let reply: Vec<String> = inv.invoke_async(con).await?;
    Ok(match reply.first().map(String::as_str) {
        Some("renewed") => RenewReply::Renewed {
            deadline: ServerTime(num(&reply, 1, "renew")?),
            now: ServerTime(num(&reply, 2, "renew")?),
        },
        Some("lost") => RenewReply::Lost,
        _ => return Err(protocol_error("renew", &reply)),
    })
}

/// Frees `id`'s grant and queue entry; `true` if it held a grant.
pub(crate) async fn release(
    con: &mut ConnectionManager,
    keys: &Keys,
    common: Common,
    id: &str,
) -> RedisResult<bool> {
    let mut inv = invocation(&SCRIPTS.release, keys, common);
    inv.arg(id);
    let reply: Vec<String> = inv.invoke_async(con).await?;
    match reply.first().map(String::as_str) {
        Some("released") => Ok(true),
        Some("none") => Ok(false),
        _ => Err(protocol_error("release", &reply)),
    }
}

/// The raw status reply, or the stored capacity on a conflict.
pub(crate) async fn status(
    con: &mut ConnectionManager,
    keys: &Keys,
    common: Common,
) -> RedisResult<Result<crate::Status, u32>> {
    let reply: Vec<String> = invocation(&SCRIPTS.status, keys, common)
        .invoke_async(con)
        .await?;
    let what = "status";
    match reply.first().map(String::as_str) {
        Some("status") => {}
        Some("conflict") => return Ok(Err(num(&reply, 1, what)?)),
        _ => return Err(protocol_error(what, &reply)),
    }
    let now = ServerTime(num(&reply, 1, what)?);
    let q_until = ServerTime(num(&reply, 3, what)?);
    let holders: usize = num(&reply, 5, what)?;
    let waiters: usize = num(&reply, 6, what)?;
    if reply.len() != 7 + holders * 7 + waiters * 6 {
        return Err(protocol_error(what, &reply));
    }
    let mut at = 7;
    let mut status = crate::Status {
        server_time: now,
        capacity: num(&reply, 2, what)?,
        quarantined_until: (q_until > now).then_some(q_until),
        last_seq: num(&reply, 4, what)?,
        holders: Vec::with_capacity(holders),
        waiters: Vec::with_capacity(waiters),
    };
    for _ in 0..holders {
        let seq: u64 = num(&reply, at + 2, what)?;
        let tokens = reply[at + 5]
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().map(|slot| FenceToken { slot, seq }))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| protocol_error(what, &reply))?;
        status.holders.push(crate::Holder {
            id: crate::PermitId(reply[at].clone()),
            lease_deadline: ServerTime(num(&reply, at + 1, what)?),
            since: ServerTime(num(&reply, at + 3, what)?),
            pid: num(&reply, at + 4, what)?,
            tokens,
            host: reply[at + 6].clone(),
        });
        at += 7;
    }
    for _ in 0..waiters {
        status.waiters.push(crate::Waiter {
            id: crate::PermitId(reply[at].clone()),
            permits: num(&reply, at + 1, what)?,
            since: ServerTime(num(&reply, at + 2, what)?),
            pid: num(&reply, at + 3, what)?,
            host: reply[at + 4].clone(),
            liveness_deadline: ServerTime(num(&reply, at + 5, what)?),
        });
        at += 6;
    }
    Ok(Ok(status))
}

/// Sets the stored capacity (an admin operation); returns the previous one.
pub(crate) async fn resize(
    con: &mut ConnectionManager,
    keys: &Keys,
    common: Common,
    capacity: u32,
) -> RedisResult<u32> {
    let mut inv = invocation(&SCRIPTS.resize, keys, common);
    inv.arg(capacity);
    let reply: Vec<String> = inv.invoke_async(con).await?;
    match reply.first().map(String::as_str) {
        Some("resized") => num(&reply, 1, "resize"),
        _ => Err(protocol_error("resize", &reply)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handoff_message_round_trips_with_any_id() {
        let (id, grant) =
            parse_handoff(b"G 1796656559709039 1796656589709 1796656559709 0,2 job 7|a b").unwrap();
        assert_eq!(id, "job 7|a b", "the id is the rest of the message");
        assert_eq!(
            grant.tokens,
            [
                FenceToken {
                    slot: 0,
                    seq: 1796656559709039
                },
                FenceToken {
                    slot: 2,
                    seq: 1796656559709039
                }
            ]
        );
        assert_eq!(grant.deadline, ServerTime(1796656589709));
        assert_eq!(grant.now, ServerTime(1796656559709));
        assert_eq!(grant.since, grant.now, "granted when it was sent");
    }

    #[test]
    fn anything_else_is_not_a_handoff() {
        for payload in [
            &b"3f2a9c"[..],       // a plain hint naming a waiter
            b"G 12 34 56 0",      // no id
            b"G 12 34 56  id",    // no slot
            b"G x 34 56 0 id",    // not a number
            b"G 12 34 56 0,x id", // not a slot
            b"\xff\xfe",          // not UTF-8
        ] {
            assert!(parse_handoff(payload).is_none(), "{payload:?}");
        }
    }

    /// A private `redis-server` persisting every write (AOF, fsync always),
    /// so a `kill -9` and restart keeps the semaphore's state (including the
    /// stored `boot`) under a new `run_id`. Killed by pid on drop.
    struct Server {
        dir: std::path::PathBuf,
        child: std::process::Child,
    }

    impl Server {
        fn start(dir: std::path::PathBuf) -> Self {
            std::fs::create_dir_all(&dir).unwrap();
            let child = std::process::Command::new("redis-server")
                .args(["--port", "0", "--unixsocket"])
                .arg(dir.join("r.sock"))
                .arg("--dir")
                .arg(&dir)
                .args([
                    "--save",
                    "",
                    "--appendonly",
                    "yes",
                    "--appendfsync",
                    "always",
                ])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("redis-server not found: apt-get install redis-server");
            Self { dir, child }
        }

        fn url(&self) -> String {
            format!("redis+unix://{}", self.dir.join("r.sock").display())
        }

        async fn connect(&self) -> ConnectionManager {
            let client = redis::Client::open(self.url()).unwrap();
            for _ in 0..2000 {
                if let Ok(con) = client.get_connection_manager().await {
                    return con;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            panic!("redis-server does not answer");
        }

        fn restart(mut self) -> Self {
            let _ = self.child.kill();
            let _ = self.child.wait();
            let dir = std::mem::take(&mut self.dir);
            std::mem::forget(self);
            Self::start(dir)
        }
    }

    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn common(proof: Option<Arc<ServerProof>>) -> Common {
        Common {
            proof,
            lease: Duration::from_millis(100),
            quarantine: true,
            capacity: 1,
            strict: false,
        }
    }

    async fn try_acquire(
        con: &mut ConnectionManager,
        keys: &Keys,
        c: Common,
        id: &str,
    ) -> AcquireReply {
        let args = AcquireArgs {
            id,
            n: 1,
            wait: false,
            fresh: false,
            liveness: Duration::from_millis(100),
            host: "test",
            pid: 1,
            channel: "permits:wake:test",
        };
        acquire(con, keys, c, &args).await.unwrap()
    }

    /// A proof names the `run_id` its channel was subscribed under. The
    /// control shows why the channel must be checked on the server: a
    /// stale `run_id` that the script trusted would match the `boot` the
    /// restarted server loaded from disk, and grants would resume at once.
    #[tokio::test]
    async fn a_stale_server_proof_is_not_trusted_after_a_restart() {
        let dir = std::env::temp_dir().join(format!("permits-redis-proof-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let server = Server::start(dir);
        let keys = Keys::new("proof");
        let mut con = server.connect().await;
        // First use: boot recorded, one lease of quarantine; wait it out.
        for attempt in 0.. {
            assert!(attempt < 2000, "hang guard");
            if let AcquireReply::Granted(_) =
                try_acquire(&mut con, &keys, common(None), "warm").await
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(release(&mut con, &keys, common(None), "warm")
            .await
            .unwrap());
        let old_run_id: String = {
            let info: String = redis::cmd("INFO")
                .arg("server")
                .query_async(&mut con)
                .await
                .unwrap();
            crate::client::tests_run_id_of(&info).unwrap()
        };
        let stale = |channel: &str| {
            Some(Arc::new(ServerProof {
                run_id: old_run_id.clone(),
                channel: channel.to_owned(),
            }))
        };

        // Control: restarted with its state; the stale run_id comes with a
        // channel that *is* subscribed on the new process, so the script
        // trusts it, sees the stored boot, and grants with no quarantine.
        let server = server.restart();
        let mut con = server.connect().await;
        let redis = redis::Client::open(server.url()).unwrap();
        let mut pubsub = redis.get_async_pubsub().await.unwrap();
        pubsub.subscribe("permits:boot:forged").await.unwrap();
        let reply = try_acquire(
            &mut con,
            &keys,
            common(stale("permits:boot:forged")),
            "control",
        )
        .await;
        assert!(
            matches!(reply, AcquireReply::Granted(_)),
            "control: a trusted stale run_id skips the quarantine: {reply:?}"
        );
        drop(pubsub);
        assert!(release(&mut con, &keys, common(None), "control")
            .await
            .unwrap());

        // The real case: the proof's channel died with the old process, so
        // the script reads INFO, sees a new run_id and quarantines.
        let server = server.restart();
        let mut con = server.connect().await;
        let reply = try_acquire(&mut con, &keys, common(stale("permits:boot:gone")), "real").await;
        assert!(
            matches!(
                reply,
                AcquireReply::Busy {
                    quarantined: true,
                    ..
                }
            ),
            "a stale proof must not skip the quarantine: {reply:?}"
        );
    }
}
