//! The Lua scripts (one per operation, each prefixed by the shared prelude in
//! `lua/prelude.lua`) and the typed calls and replies around them. Every
//! decision about permits happens inside these scripts, atomically and on
//! Redis server time; the Rust side only sends, parses and waits.
//!
//! `redis::Script` sends `EVALSHA` and, on `NOSCRIPT` (after a restart,
//! failover or `SCRIPT FLUSH`), loads the script and retries once.

use std::sync::LazyLock;
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::{RedisResult, Script};

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
#[derive(Debug, Clone, Copy)]
pub(crate) struct Common {
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
        .arg(args.channel);
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
}
