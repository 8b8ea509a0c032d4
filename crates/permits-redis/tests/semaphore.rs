//! In-process tests of `RedisSemaphore` against a private real Redis per
//! test: grants and tokens, FIFO, no barging, weighted head-of-line,
//! capacity agreement, eviction checks, `SCRIPT FLUSH`, cancellation,
//! timeouts, ambiguous replies, a paused server, and the blocking wrapper.
//! Assertions use server timestamps and tokens returned by the scripts,
//! never stopwatches.

mod common;

use std::time::Duration;

use common::{wait_until_async, Redis};
use permits_redis::{
    AcquireError, AcquireRequest, Client, ClientOptions, ConnectError, EvictionCheck, Options,
    PermitId, RedisSemaphore, Released, TryAcquireError, Warning,
};
use rustix::process::Signal;

const LEASE: Duration = Duration::from_secs(1);
const GUARD: Duration = Duration::from_secs(20);

fn options() -> Options {
    Options::default().lease(LEASE)
}

async fn client(redis: &Redis) -> Client {
    Client::open(&redis.url()).await.expect("connect")
}

async fn semaphore(redis: &Redis, name: &str, capacity: u32) -> RedisSemaphore {
    RedisSemaphore::connect(&client(redis).await, name, capacity, options())
        .await
        .expect("open")
}

/// Acquires and releases once, so the first-use quarantine is over.
async fn warm(sem: &RedisSemaphore) {
    let permit = tokio::time::timeout(GUARD, sem.acquire())
        .await
        .expect("hang guard")
        .expect("acquire");
    permit.release().await.expect("release");
}

#[tokio::test]
async fn grant_carries_tokens_status_and_release_empties_redis() {
    let redis = Redis::start();
    let sem = semaphore(&redis, "basic", 2).await;
    let first = sem.acquire().await.unwrap();
    let second = sem.acquire().await.unwrap();
    let mut slots = vec![first.token().slot, second.token().slot];
    slots.sort_unstable();
    assert_eq!(slots, [0, 1], "each permit owns a distinct slot");
    assert!(
        second.token().seq > first.token().seq,
        "seq grows with every grant"
    );
    assert!(first.lease_deadline() > first.since());

    let status = sem.status().await.unwrap();
    assert_eq!(status.capacity, 2);
    assert_eq!(status.holders.len(), 2);
    assert!(status.waiters.is_empty());
    let holder = status
        .holders
        .iter()
        .find(|h| &h.id == first.id())
        .expect("listed");
    assert_eq!(holder.pid, std::process::id());
    assert!(!holder.host.is_empty());
    assert_eq!(holder.tokens, first.tokens());
    assert_eq!(holder.since, first.since());
    assert!(
        holder.lease_deadline > status.server_time,
        "a listed lease is live"
    );

    assert_eq!(first.release().await.unwrap(), Released::Released);
    drop(second); // best-effort release in the background
    wait_until_async("the dropped permit is released", GUARD, || async {
        redis.zcard("basic", "holders") == 0
    })
    .await;
    assert_eq!(redis.zcard("basic", "queue"), 0);
    let ttl: i64 = redis.cmd(redis::cmd("TTL").arg("permits:{basic}:meta"));
    assert_eq!(ttl, -1, "the semaphore's keys never expire on their own");
}

#[tokio::test]
async fn no_key_has_a_ttl_while_permits_are_held_and_waited_for() {
    let redis = Redis::start();
    let sem = semaphore(&redis, "ttl", 1).await;
    warm(&sem).await;
    let _held = sem.acquire().await.unwrap();
    let waiter_sem = sem.clone();
    let _waiter = tokio::spawn(async move { waiter_sem.acquire().await });
    wait_until_async("the waiter is queued", GUARD, || async {
        redis.zcard("ttl", "queue") == 1
    })
    .await;
    let keys: Vec<String> = redis.cmd(redis::cmd("KEYS").arg("permits:{ttl}:*"));
    assert_eq!(
        keys.len(),
        7,
        "meta, holders, pinfo, used, queue, qdl, winfo: {keys:?}"
    );
    for key in keys {
        let ttl: i64 = redis.cmd(redis::cmd("TTL").arg(&key));
        assert_eq!(ttl, -1, "{key} has a TTL");
    }
}

#[tokio::test]
async fn first_use_is_quarantined_for_one_lease() {
    let redis = Redis::start();
    let sem = semaphore(&redis, "fresh", 1).await;
    match sem.try_acquire().await {
        Err(TryAcquireError::Quarantined { until }) => {
            let status = sem.status().await.unwrap();
            assert_eq!(status.quarantined_until, Some(until));
            assert!(until.since(status.server_time) <= LEASE);
        }
        other => panic!("expected the first-use quarantine, got {other:?}"),
    }
    let permit = sem.acquire().await.unwrap();
    let quarantine_end = sem.status().await.unwrap().quarantined_until;
    assert_eq!(quarantine_end, None);
    assert!(permit.since().as_millis() > 0);
}

#[tokio::test]
async fn waiters_are_granted_in_enqueue_order() {
    let redis = Redis::start();
    let holder_sem = semaphore(&redis, "fifo", 1).await;
    warm(&holder_sem).await;
    let holder = holder_sem.acquire().await.unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut tasks = Vec::new();
    for i in 0..5 {
        // A client per waiter, as if each were another process.
        let sem = semaphore(&redis, "fifo", 1).await;
        let tx = tx.clone();
        tasks.push(tokio::spawn(async move {
            let permit = sem.acquire().await.unwrap();
            tx.send((i, permit.token().seq)).unwrap();
            permit.release().await.unwrap();
        }));
        wait_until_async("the waiter is queued", GUARD, || async {
            holder_sem.status().await.unwrap().waiters.len() == i + 1
        })
        .await;
    }
    holder.release().await.unwrap();
    let mut order = Vec::new();
    for _ in 0..5 {
        order.push(
            tokio::time::timeout(GUARD, rx.recv())
                .await
                .expect("hang guard")
                .unwrap(),
        );
    }
    let ids: Vec<_> = order.iter().map(|(i, _)| *i).collect();
    assert_eq!(ids, [0, 1, 2, 3, 4], "grant order is enqueue order");
    assert!(
        order.windows(2).all(|w| w[0].1 < w[1].1),
        "tokens grow in grant order"
    );
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(redis.zcard("fifo", "holders"), 0);
    assert_eq!(redis.zcard("fifo", "queue"), 0);
}

#[tokio::test]
async fn try_acquire_never_barges_past_a_queued_waiter() {
    let redis = Redis::start();
    let sem = semaphore(&redis, "nobarge", 1).await;
    warm(&sem).await;
    let holder = sem.acquire().await.unwrap();
    // A waiter that stops polling (as if its process froze): its acquire
    // future is leaked, so it neither re-checks nor cancels.
    let other = semaphore(&redis, "nobarge", 1).await;
    let mut frozen = Box::pin(other.acquire());
    tokio::select! {
        _ = &mut frozen => panic!("granted while held"),
        () = wait_until_async("the waiter is queued", GUARD, || async {
            sem.status().await.unwrap().waiters.len() == 1
        }) => {}
    }
    std::mem::forget(frozen);
    holder.release().await.unwrap();
    // The freed permit went to the waiter queued ahead (handed over by the
    // release itself), not to a try that came later: no barging. (With a
    // permit left free because the head does not fit, see the weighted
    // test below.)
    let status = sem.status().await.unwrap();
    assert!(status.waiters.is_empty());
    assert_eq!(status.holders.len(), 1);
    assert!(matches!(
        sem.try_acquire().await,
        Err(TryAcquireError::NoPermits)
    ));
    // The release handed the permit to the frozen waiter (the head of the
    // queue); once that lease lapses (server time) unrenewed, the permit is
    // free for others.
    let permit = tokio::time::timeout(GUARD, sem.acquire())
        .await
        .expect("hang guard")
        .unwrap();
    assert!(sem.status().await.unwrap().waiters.is_empty());
    permit.release().await.unwrap();
}

#[tokio::test]
async fn a_large_request_at_the_head_holds_back_smaller_ones() {
    let redis = Redis::start();
    let sem = semaphore(&redis, "weighted", 3).await;
    warm(&sem).await;
    let two = sem.acquire_many(2).await.unwrap();
    assert_eq!(two.num_permits(), 2);
    assert_eq!(two.tokens()[0].seq, two.tokens()[1].seq);
    let big_sem = sem.clone();
    let big = tokio::spawn(async move { big_sem.acquire_many(2).await.unwrap() });
    wait_until_async("the large request is queued", GUARD, || async {
        sem.status().await.unwrap().waiters.len() == 1
    })
    .await;
    // One permit is free, but the head wants two: a single one must wait.
    assert!(matches!(
        sem.try_acquire().await,
        Err(TryAcquireError::NoPermits)
    ));
    two.release().await.unwrap();
    let big = tokio::time::timeout(GUARD, big)
        .await
        .expect("hang guard")
        .unwrap();
    assert_eq!(big.num_permits(), 2);
    let one = sem
        .try_acquire()
        .await
        .expect("the third permit is free and nobody waits");
    assert!(one.token().seq > big.token().seq);
    assert!(matches!(
        sem.try_acquire().await,
        Err(TryAcquireError::NoPermits)
    ));
}

#[tokio::test]
async fn requests_above_capacity_fail_at_once() {
    let redis = Redis::start();
    let sem = semaphore(&redis, "toolarge", 3).await;
    for n in [0, 4] {
        match sem.acquire_many(n).await {
            Err(AcquireError::InvalidCount {
                requested,
                capacity: 3,
            }) => assert_eq!(requested, n),
            other => panic!("expected InvalidCount, got {other:?}"),
        }
        assert!(matches!(
            sem.try_acquire_many(n).await,
            Err(TryAcquireError::InvalidCount { .. })
        ));
    }
    assert_eq!(redis.zcard("toolarge", "queue"), 0);
}

#[tokio::test]
async fn a_different_capacity_is_refused_naming_the_stored_one() {
    let redis = Redis::start();
    let _first = semaphore(&redis, "cap", 3).await;
    let err = RedisSemaphore::connect(&client(&redis).await, "cap", 4, options())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ConnectError::CapacityConflict {
                stored: 3,
                requested: 4
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("capacity 3"), "{err}");
    // Negative control: the same capacity is accepted.
    semaphore(&redis, "cap", 3).await;
}

#[tokio::test]
async fn an_evicting_memory_policy_is_refused_or_warned_about() {
    let redis = Redis::start_with(&["--maxmemory-policy", "allkeys-lru"]);
    let client = client(&redis).await;
    let err = RedisSemaphore::connect(&client, "evict", 1, options())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ConnectError::Evictable { policy } if policy == "allkeys-lru"),
        "{err:?}"
    );
    let warned =
        RedisSemaphore::connect(&client, "evict", 1, options().eviction(EvictionCheck::Warn))
            .await
            .unwrap();
    assert_eq!(
        warned.warnings(),
        [Warning::Evictable {
            policy: "allkeys-lru".into()
        }]
    );
    // Negative control: volatile-* cannot touch keys without a TTL.
    let _: () = redis.cmd(
        redis::cmd("CONFIG")
            .arg("SET")
            .arg("maxmemory-policy")
            .arg("volatile-lru"),
    );
    let fine = RedisSemaphore::connect(&client, "evict", 1, options())
        .await
        .unwrap();
    assert!(fine.warnings().is_empty());
}

fn noscript_errors(redis: &Redis) -> u64 {
    let info: String = redis.cmd(redis::cmd("INFO").arg("errorstats"));
    info.lines()
        .find_map(|l| l.strip_prefix("errorstat_NOSCRIPT:count="))
        .map_or(0, |n| n.trim().parse().unwrap())
}

#[tokio::test]
async fn script_flush_is_recovered_from() {
    let redis = Redis::start();
    let sem = semaphore(&redis, "flush", 1).await;
    warm(&sem).await;
    let loaded = noscript_errors(&redis); // each script's first use loads it
    warm(&sem).await;
    assert_eq!(
        noscript_errors(&redis),
        loaded,
        "control: a loaded script is not reloaded"
    );
    let _: () = redis.cmd(redis::cmd("SCRIPT").arg("FLUSH"));
    let permit = sem.acquire().await.expect("acquire after SCRIPT FLUSH");
    assert!(
        noscript_errors(&redis) > loaded,
        "the flush was noticed (EVALSHA answered NOSCRIPT)"
    );
    let _: () = redis.cmd(redis::cmd("SCRIPT").arg("FLUSH"));
    assert_eq!(permit.release().await.unwrap(), Released::Released);
    assert_eq!(redis.zcard("flush", "holders"), 0);
}

#[tokio::test]
async fn cancelled_and_timed_out_waiters_leave_the_queue() {
    let redis = Redis::start();
    let sem = semaphore(&redis, "cancel", 1).await;
    warm(&sem).await;
    let holder = sem.acquire().await.unwrap();

    // Timeout: the queue entry is removed before the error is returned.
    let err = sem
        .acquire_timeout(Duration::from_millis(200))
        .await
        .unwrap_err();
    assert!(matches!(err, AcquireError::TimedOut));
    assert_eq!(redis.zcard("cancel", "queue"), 0);

    // Cancellation: a dropped acquire leaves the queue, and the waiter
    // behind it gets the permit.
    let first_sem = sem.clone();
    let first = tokio::spawn(async move { first_sem.acquire().await });
    wait_until_async("the first waiter is queued", GUARD, || async {
        redis.zcard("cancel", "queue") == 1
    })
    .await;
    let second_sem = sem.clone();
    let second = tokio::spawn(async move { second_sem.acquire().await });
    wait_until_async("the second waiter is queued", GUARD, || async {
        redis.zcard("cancel", "queue") == 2
    })
    .await;
    first.abort();
    assert!(first.await.unwrap_err().is_cancelled());
    wait_until_async("the cancelled waiter left the queue", GUARD, || async {
        redis.zcard("cancel", "queue") == 1
    })
    .await;
    holder.release().await.unwrap();
    let permit = tokio::time::timeout(GUARD, second)
        .await
        .expect("hang guard")
        .unwrap()
        .unwrap();
    assert_eq!(redis.zcard("cancel", "queue"), 0);
    assert_eq!(redis.zcard("cancel", "holders"), 1);
    permit.release().await.unwrap();
}

#[tokio::test]
async fn an_ambiguous_acquire_retried_with_its_id_returns_the_same_grant() {
    let redis = Redis::start();
    let short = ClientOptions::default().response_timeout(Duration::from_millis(300));
    let client = Client::with_options(redis::Client::open(redis.url()).unwrap(), short)
        .await
        .unwrap();
    let sem = RedisSemaphore::connect(&client, "ambiguous", 1, options())
        .await
        .unwrap();
    warm(&sem).await;

    // A try whose reply times out while the server is paused: ambiguous.
    let request = AcquireRequest::new().id(PermitId::new("job-42").unwrap());
    redis.signal(Signal::STOP);
    let err = sem.try_acquire_with(request.clone()).await.unwrap_err();
    redis.signal(Signal::CONT);
    assert!(
        matches!(err, TryAcquireError::Redis(_)),
        "the reply timed out: {err:?}"
    );
    // The timed-out call's script still runs once the server resumes.
    wait_until_async("the timed-out call's grant lands", GUARD, || async {
        redis.zcard("ambiguous", "holders") == 1
    })
    .await;
    let landed = sem.status().await.unwrap().holders[0].clone();
    assert_eq!(landed.id.as_str(), "job-42");
    let permit = sem.acquire_with(request).await.expect("the retry");
    assert_eq!(permit.id().as_str(), "job-42");
    assert_eq!(
        permit.since(),
        landed.since,
        "the retry returns the grant that landed"
    );
    assert_eq!(permit.tokens(), landed.tokens);
    assert_eq!(redis.zcard("ambiguous", "holders"), 1, "one grant, not two");
    permit.release().await.unwrap();

    // A waiting acquire rides out the same pause: its requests time out
    // (300 ms) while it is driven for 700 ms, and it re-sends them with its
    // id, so the grant comes once and only once.
    redis.signal(Signal::STOP);
    let mut waiting = Box::pin(sem.acquire());
    let early = tokio::time::timeout(Duration::from_millis(700), &mut waiting).await;
    assert!(
        early.is_err(),
        "while redis is paused the wait neither ends nor fails: {early:?}"
    );
    redis.signal(Signal::CONT);
    let permit = tokio::time::timeout(GUARD, waiting)
        .await
        .expect("hang guard")
        .unwrap();
    assert_eq!(redis.zcard("ambiguous", "holders"), 1, "one grant, not two");
    assert_eq!(&sem.status().await.unwrap().holders[0].id, permit.id());
    permit.release().await.unwrap();

    // Control: with a random id nobody can retry, so an ambiguous grant is
    // undone in the background.
    redis.signal(Signal::STOP);
    let err = sem.try_acquire().await.unwrap_err();
    redis.signal(Signal::CONT);
    assert!(matches!(err, TryAcquireError::Redis(_)));
    wait_until_async("the ambiguous grant is undone", GUARD, || async {
        redis.zcard("ambiguous", "holders") == 0 && redis.zcard("ambiguous", "queue") == 0
    })
    .await;
}

#[tokio::test]
async fn holders_report_lost_while_redis_is_paused_past_the_lease() {
    let redis = Redis::start();
    let sem = semaphore(&redis, "paused", 1).await;
    warm(&sem).await;
    let permit = sem.acquire().await.unwrap();
    let old = permit.token();
    redis.signal(Signal::STOP);
    // Redis stays paused: the loss must come from the local deadline alone.
    tokio::time::timeout(GUARD, permit.lost())
        .await
        .expect("lost() fires while redis is paused");
    assert!(permit.is_lost());
    redis.signal(Signal::CONT);
    let next = tokio::time::timeout(GUARD, sem.acquire())
        .await
        .expect("hang guard")
        .unwrap();
    assert!(next.token().seq > old.seq);
    let status = sem.status().await.unwrap();
    assert_eq!(status.holders.len(), 1, "occupancy stays within capacity");
    assert_eq!(&status.holders[0].id, next.id());
    assert!(
        next.since() >= permit.lease_deadline(),
        "re-granted only after the old lease ran out"
    );
}

#[test]
fn the_blocking_wrapper_acquires_renews_and_releases() {
    let redis = Redis::start();
    let sem =
        permits_redis::blocking::Semaphore::open(&redis.url(), "blocking", 1, options()).unwrap();
    let permit = sem.acquire_timeout(GUARD).unwrap();
    let first_deadline = permit.lease_deadline();
    // Held across several renewals while this thread does nothing async.
    assert!(
        !permit.wait_lost_timeout(LEASE * 2),
        "the keepalive renews in the background"
    );
    assert!(matches!(sem.try_acquire(), Err(TryAcquireError::NoPermits)));
    let other = permits_redis::blocking::Semaphore::with_client(
        redis::Client::open(redis.url()).unwrap(),
        ClientOptions::default().host("elsewhere"),
        "blocking",
        1,
        options(),
    )
    .unwrap();
    assert!(matches!(
        other.try_acquire(),
        Err(TryAcquireError::NoPermits)
    ));

    assert!(
        sem.status().unwrap().holders[0].lease_deadline > first_deadline,
        "renewed"
    );
    assert_eq!(permit.release().unwrap(), Released::Released);
    let theirs = other.acquire_timeout(GUARD).unwrap();
    assert_eq!(sem.status().unwrap().holders[0].host, "elsewhere");
    assert_eq!(theirs.release().unwrap(), Released::Released);
    assert_eq!(redis.zcard("blocking", "holders"), 0);
}

fn evalsha_calls(redis: &Redis) -> u64 {
    let info: String = redis.cmd(redis::cmd("INFO").arg("commandstats"));
    info.lines()
        .find_map(|l| l.strip_prefix("cmdstat_evalsha:calls="))
        .map_or(0, |rest| rest.split(',').next().unwrap().parse().unwrap())
}

#[tokio::test]
async fn a_release_wakes_the_next_waiter_by_hint_not_by_polling() {
    let redis = Redis::start();
    // Long lease and liveness: the waiter's own timer would fire only after
    // 20 s, well past the hang guard, so a grant inside it came by the hint.
    let options = Options::default()
        .lease(Duration::from_secs(30))
        .waiter_liveness(Duration::from_secs(60))
        .quarantine(false); // not about restarts; a 30 s first-use pause would only slow this test
    let holder_sem = RedisSemaphore::connect(&client(&redis).await, "hint", 1, options.clone())
        .await
        .unwrap();
    let waiter_sem = RedisSemaphore::connect(&client(&redis).await, "hint", 1, options)
        .await
        .unwrap();
    let holder = holder_sem.acquire().await.unwrap();
    let waiter = tokio::spawn(async move { waiter_sem.acquire().await.unwrap() });
    wait_until_async("the waiter is queued", GUARD, || async {
        redis.zcard("hint", "queue") == 1
    })
    .await;
    let before = evalsha_calls(&redis);
    holder.release().await.unwrap();
    let permit = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("the waiter was woken by the release's hint")
        .unwrap();
    let calls = evalsha_calls(&redis) - before;
    assert!(
        calls <= 3,
        "{calls} script calls for one hand-off: the waiter polled"
    );
    drop(permit);
}

#[tokio::test]
async fn a_queued_waiter_survives_a_redis_restart() {
    let mut redis = Redis::start();
    let sem = semaphore(&redis, "survive", 1).await;
    warm(&sem).await;
    let holder = sem.acquire().await.unwrap();
    let waiter_sem = semaphore(&redis, "survive", 1).await;
    let waiter = tokio::spawn(async move { waiter_sem.acquire().await.unwrap() });
    wait_until_async("the waiter is queued", GUARD, || async {
        redis.zcard("survive", "queue") == 1
    })
    .await;
    let old_seq = holder.token().seq;
    redis.restart(); // the queue and the lease are gone with the state
    tokio::time::timeout(GUARD, holder.lost())
        .await
        .expect("the holder learns it lost");
    let permit = tokio::time::timeout(GUARD, waiter)
        .await
        .expect("hang guard")
        .unwrap();
    assert!(
        permit.token().seq > old_seq,
        "tokens keep growing across the restart"
    );
    let status = sem.status().await.unwrap();
    assert_eq!(status.holders.len(), 1);
    assert_eq!(status.capacity, 1, "the capacity is stored again");
}

#[test]
fn public_types_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<RedisSemaphore>();
    send_sync::<permits_redis::RedisPermit>();
    send_sync::<Client>();
    send_sync::<permits_redis::blocking::Semaphore>();
    send_sync::<permits_redis::blocking::Permit>();
    send::<permits_redis::Acquire>();
    send::<permits_redis::TryAcquire>();
    send::<permits_redis::Lost>();
}

#[tokio::test]
async fn resize_grows_at_once_and_shrinks_with_a_debt() {
    use std::num::NonZeroU32;
    let redis = Redis::start();
    let sem = semaphore(&redis, "resize", 2).await;
    warm(&sem).await;
    let a = sem.acquire().await.unwrap();
    let b = sem.acquire().await.unwrap();
    // Shrink below what is held: both keep their permits (a debt of one).
    assert_eq!(sem.resize(NonZeroU32::new(1).unwrap()).await.unwrap(), 2);
    assert_eq!(sem.status().await.unwrap().capacity, 1);
    a.release().await.unwrap();
    assert!(
        matches!(sem.try_acquire().await, Err(TryAcquireError::NoPermits)),
        "the first release pays the debt"
    );
    b.release().await.unwrap();
    let one = sem.try_acquire().await.expect("held 0 of 1");
    assert!(matches!(
        sem.try_acquire().await,
        Err(TryAcquireError::NoPermits)
    ));
    // Grow: a queued waiter is granted without a release, by the hint.
    let waiter_sem = sem.clone();
    let waiter = tokio::spawn(async move { waiter_sem.acquire().await });
    wait_until_async("the waiter is queued", GUARD, || async {
        redis.zcard("resize", "queue") == 1
    })
    .await;
    assert_eq!(sem.resize(NonZeroU32::new(3).unwrap()).await.unwrap(), 1);
    let two = tokio::time::timeout(GUARD, waiter)
        .await
        .expect("hang guard")
        .unwrap()
        .unwrap();
    assert_eq!(
        two.token().slot,
        1,
        "a slot that exists only after the growth"
    );
    // A handle opened with the old capacity keeps working with the new one;
    // a new connect must ask for the stored capacity.
    assert!(matches!(
        RedisSemaphore::connect(&client(&redis).await, "resize", 2, options()).await,
        Err(ConnectError::CapacityConflict {
            stored: 3,
            requested: 2
        })
    ));
    assert!(matches!(
        sem.acquire_many(4).await,
        Err(AcquireError::InvalidCount {
            requested: 4,
            capacity: 3
        })
    ));
    drop((one, two));
}

#[tokio::test]
async fn dropping_an_acquire_whose_grant_is_in_flight_undoes_the_grant() {
    let redis = Redis::start();
    let sem = semaphore(&redis, "inflight", 1).await;
    warm(&sem).await;
    let seq = |redis: &Redis| -> u64 {
        let seq: String = redis.cmd(redis::cmd("HGET").arg("permits:{inflight}:meta").arg("seq"));
        seq.parse().unwrap()
    };
    let before = seq(&redis);
    redis.signal(Signal::STOP);
    // Cancelled while its request waits in the paused server's socket.
    let cancelled = tokio::time::timeout(Duration::from_millis(200), sem.acquire()).await;
    assert!(
        cancelled.is_err(),
        "nothing can be granted while redis is paused"
    );
    redis.signal(Signal::CONT);
    wait_until_async("the in-flight grant lands and is undone", GUARD, || async {
        seq(&redis) > before && redis.zcard("inflight", "holders") == 0
    })
    .await;
    assert_eq!(redis.zcard("inflight", "queue"), 0);
    // Control: the permit is free for the next caller at once.
    let permit = sem
        .try_acquire()
        .await
        .expect("the undone grant freed the permit");
    drop(permit);
}

/// `(EVALSHA calls, INFO calls)` so far; the `INFO commandstats` that reads
/// them counts from the next reading on.
fn script_and_info_calls(redis: &Redis) -> (u64, u64) {
    let info: String = redis.cmd(redis::cmd("INFO").arg("commandstats"));
    let calls = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(&format!("cmdstat_{name}:calls=")))
            .map_or(0, |rest| rest.split(',').next().unwrap().parse().unwrap())
    };
    (calls("evalsha"), calls("info"))
}

#[tokio::test]
async fn a_free_permit_is_one_call_to_acquire_and_one_to_release_without_info() {
    let redis = Redis::start();
    let sem = semaphore(&redis, "onecall", 1).await;
    warm(&sem).await;
    // The client proves which server it talks to on a second connection, in
    // the background; from then on a grant reads no INFO (a count, polled
    // until it holds, with a hang guard).
    wait_until_async("a grant reads no INFO", GUARD, || async {
        let (scripts, infos) = script_and_info_calls(&redis);
        let permit = sem.try_acquire().await.unwrap();
        permit.release().await.unwrap();
        let (scripts_after, infos_after) = script_and_info_calls(&redis);
        assert_eq!(scripts_after - scripts, 2, "one call each way");
        infos_after - infos == 1 // the reading above, no script's
    })
    .await;
}

/// Calls per command name from `INFO commandstats`, read on a harness
/// connection of its own (opened once, so no connection set-up lands
/// between two readings). A reading shows up as one `info` in the next.
struct CommandStats(redis::Connection);

impl CommandStats {
    fn open(redis: &Redis) -> Self {
        let client = redis::Client::open(redis.url()).unwrap();
        Self(client.get_connection().unwrap())
    }

    fn read(&mut self) -> std::collections::BTreeMap<String, u64> {
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query(&mut self.0)
            .unwrap();
        info.lines()
            .filter_map(|l| l.strip_prefix("cmdstat_"))
            .filter_map(|l| {
                let (name, rest) = l.split_once(":calls=")?;
                Some((name.to_owned(), rest.split(',').next()?.parse().ok()?))
            })
            .collect()
    }
}

/// What one uncontended acquire + release costs Redis, command by command:
/// one round trip each way (an `EVALSHA`; no `SCRIPT LOAD`, `INFO`, `TIME`,
/// confirmation or other call from the client), and the 10 + 9 commands
/// the acquire and release scripts run inside (the restart check through
/// `PUBSUB NUMSUB`, no `INFO server`; no idempotency look-up on a random
/// id's first call, which cannot have a grant). Pinned exactly, so a call
/// that creeps back on either side fails here: `fleet_uncontended` in the
/// benchmarks times this pair, and each command inside a script costs
/// over a microsecond of server time (Redis 7.0), about a fifth of a
/// `PING` round trip on a unix socket (docs/benchmarks.md).
const ONE_ACQUIRE_AND_RELEASE: &[(&str, u64)] = &[
    // the client's round trips
    ("evalsha", 2),
    // the previous reading (harness)
    ("info", 1),
    // inside the scripts: the prelude of each (server time, settings,
    // queue check, lease reclaim) ...
    ("time", 2),
    ("hmget", 2),
    ("exists", 2),
    ("zrangebyscore", 2),
    // ... acquire: the free count, the restart check, the slot, seq, the
    // grant and its lease; release: the grant, the slot's owner, freeing
    // both and the lease
    ("hget", 2),
    ("hlen", 1),
    ("pubsub|numsub", 1),
    ("hsetnx", 1),
    ("hset", 2),
    ("zadd", 1),
    ("hdel", 2),
    ("zrem", 1),
];

#[tokio::test]
async fn an_uncontended_acquire_and_release_is_one_script_call_each_and_nothing_else() {
    let redis = Redis::start();
    let sem = semaphore(&redis, "calls", 3).await;
    warm(&sem).await;
    let mut stats = CommandStats::open(&redis);
    let expected: std::collections::BTreeMap<String, u64> = ONE_ACQUIRE_AND_RELEASE
        .iter()
        .map(|&(name, n)| (name.to_owned(), n))
        .collect();
    // The waiting `acquire` (what the benchmark times) and `try_acquire`.
    for waiting in [true, false] {
        // Until the client holds its server proof (made in the background),
        // a grant reads `INFO server`, and the proof connection's `PING`
        // every few seconds may land in a window: such a window is measured
        // again (within the hang guard); any other difference fails.
        let start = std::time::Instant::now();
        loop {
            let before = stats.read();
            let permit = if waiting {
                sem.acquire().await.unwrap()
            } else {
                sem.try_acquire().await.unwrap()
            };
            assert_eq!(permit.release().await.unwrap(), Released::Released);
            let after = stats.read();
            let spent: std::collections::BTreeMap<String, u64> = after
                .iter()
                .map(|(name, &n)| (name.clone(), n - before.get(name).copied().unwrap_or(0)))
                .filter(|&(_, n)| n > 0)
                .collect();
            // What the proof connection sends (set-up, `INFO`, `PING`), and
            // an `INFO server` in a script that had no proof yet.
            let background = ["ping", "hello", "subscribe", "client|setinfo"]
                .iter()
                .any(|c| spent.contains_key(*c))
                || spent.get("info").is_some_and(|&n| n > 1);
            if spent == expected {
                break;
            }
            assert!(
                background && start.elapsed() < GUARD,
                "one uncontended acquire (waiting: {waiting}) + release: {spent:?}, want {expected:?}"
            );
        }
    }
}
