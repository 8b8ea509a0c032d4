//! Hand-off: the script that frees a permit (a release, or any script that
//! reclaims an expired lease) grants it to the head of the queue at once and
//! publishes the grant, so the waiter needs no call of its own. Tests, each
//! against a private real Redis: FIFO order with grants made at release
//! time, a lost message (the waiter finds the same grant by its id; the
//! control shows a delivered message costs the waiter no call), waiters that
//! give up after being handed a permit, no hand-off inside a restart
//! quarantine (its control without the quarantine hands over), and Redis
//! calls per grant under contention counted with `INFO commandstats` (a
//! count, not a timing).

mod common;

use std::time::Duration;

use common::{wait_until_async, Redis};
use permits_redis::{AcquireError, AcquireRequest, Client, Options, PermitId, RedisSemaphore};

const GUARD: Duration = Duration::from_secs(20);

/// A lease far longer than any test: no renewal, expiry or waiter timer
/// runs by itself while calls are counted.
fn quiet() -> Options {
    Options::default()
        .lease(Duration::from_secs(30))
        .waiter_liveness(Duration::from_secs(60))
        // Not about restarts; a 30 s first-use pause would only slow this.
        .quarantine(false)
}

/// A separate client (connection and wake channel) per handle, as if each
/// were another process.
async fn semaphore(redis: &Redis, name: &str, capacity: u32, options: Options) -> RedisSemaphore {
    let client = Client::open(&redis.url()).await.expect("connect");
    RedisSemaphore::connect(&client, name, capacity, options)
        .await
        .expect("open")
}

fn id(s: &str) -> AcquireRequest {
    AcquireRequest::new().id(PermitId::new(s).unwrap())
}

fn evalsha_calls(redis: &Redis) -> u64 {
    let info: String = redis.cmd(redis::cmd("INFO").arg("commandstats"));
    info.lines()
        .find_map(|l| l.strip_prefix("cmdstat_evalsha:calls="))
        .map_or(0, |rest| rest.split(',').next().unwrap().parse().unwrap())
}

/// The ids of the current holders, as Redis lists them.
async fn holder_ids(sem: &RedisSemaphore) -> Vec<String> {
    let status = sem.status().await.unwrap();
    status
        .holders
        .iter()
        .map(|h| h.id.as_str().to_owned())
        .collect()
}

/// Redirects a queued waiter's wake channel to one nobody listens on, so
/// the hand-off message to it is lost (as on a dropped connection).
fn lose_messages_to(redis: &Redis, name: &str, waiter: &str) {
    let key = format!("permits:{{{name}}}:winfo");
    let info: String = redis.cmd(redis::cmd("HGET").arg(&key).arg(waiter));
    let mut fields: Vec<&str> = info.splitn(3, '|').collect();
    fields[1] = "permits:wake:nobody";
    let _: () = redis.cmd(
        redis::cmd("HSET")
            .arg(&key)
            .arg(waiter)
            .arg(fields.join("|")),
    );
}

#[tokio::test]
async fn a_release_grants_the_head_of_the_queue_in_fifo_order() {
    const N: usize = 4;
    let redis = Redis::start();
    let sem = semaphore(&redis, "handfifo", 1, quiet()).await;
    let holder = sem.acquire().await.unwrap();
    let (granted_tx, mut granted) = tokio::sync::mpsc::unbounded_channel();
    let (released_tx, mut released) = tokio::sync::mpsc::unbounded_channel();
    let mut go = Vec::new();
    for i in 0..N {
        let waiter = semaphore(&redis, "handfifo", 1, quiet()).await;
        let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
        go.push(go_tx);
        let (granted_tx, released_tx) = (granted_tx.clone(), released_tx.clone());
        tokio::spawn(async move {
            let permit = waiter.acquire_with(id(&format!("w{i}"))).await.unwrap();
            granted_tx.send((i, permit.token().seq)).unwrap();
            go_rx.await.unwrap();
            permit.release().await.unwrap();
            released_tx.send(i).unwrap();
        });
        wait_until_async("the waiter is queued", GUARD, || async {
            redis.zcard("handfifo", "queue") == i as u64 + 1
        })
        .await;
    }
    holder.release().await.unwrap();
    // The release itself granted the head: Redis lists it as the holder
    // before the waiter has done anything.
    assert_eq!(holder_ids(&sem).await, ["w0"]);
    let mut order = Vec::new();
    for (i, go) in go.into_iter().enumerate() {
        let (who, seq) = tokio::time::timeout(GUARD, granted.recv())
            .await
            .expect("hang guard")
            .unwrap();
        order.push((who, seq));
        go.send(()).unwrap();
        let done = tokio::time::timeout(GUARD, released.recv())
            .await
            .expect("hang guard")
            .unwrap();
        assert_eq!(done, i);
        // When that release returned, the next waiter already held it.
        let next: Vec<String> = (i + 1..N).take(1).map(|j| format!("w{j}")).collect();
        assert_eq!(holder_ids(&sem).await, next, "granted in the release");
        assert_eq!(
            redis.zcard("handfifo", "queue"),
            N.saturating_sub(i + 2) as u64
        );
    }
    let who: Vec<usize> = order.iter().map(|(i, _)| *i).collect();
    assert_eq!(
        who,
        (0..N).collect::<Vec<_>>(),
        "grant order is queue order"
    );
    assert!(
        order.windows(2).all(|w| w[0].1 < w[1].1),
        "tokens grow in grant order"
    );
    assert_eq!(redis.zcard("handfifo", "holders"), 0);
}

/// A waiter queued behind a holder; the holder releases. Returns the Redis
/// script calls from the release until the waiter had its permit, and
/// checks that the permit is the grant the release made.
async fn handoff_calls(lose_message: bool) -> u64 {
    let redis = Redis::start();
    let name = "handlost";
    let sem = semaphore(&redis, name, 1, quiet()).await;
    // With the message lost, the waiter's timer (every 100 ms here) is what
    // finds the grant. With it delivered, the waiter's timer (10 s) cannot
    // add calls while they are counted.
    let liveness = if lose_message { 300 } else { 60_000 };
    let waiter_sem = semaphore(
        &redis,
        name,
        1,
        quiet().waiter_liveness(Duration::from_millis(liveness)),
    )
    .await;
    // Every script loaded first (the first call of each answers NOSCRIPT).
    let warm = sem.acquire().await.unwrap();
    warm.release().await.unwrap();
    let holder = sem.acquire().await.unwrap();
    let waiter = tokio::spawn(async move { waiter_sem.acquire_with(id("waiter")).await });
    wait_until_async("the waiter is queued", GUARD, || async {
        redis.zcard(name, "queue") == 1
    })
    .await;
    if lose_message {
        lose_messages_to(&redis, name, "waiter");
    }
    let before = evalsha_calls(&redis);
    holder.release().await.unwrap();
    // Granted by the release, before the waiter knows.
    let granted = sem.status().await.unwrap().holders;
    assert_eq!(granted.len(), 1);
    assert_eq!(granted[0].id.as_str(), "waiter");
    let permit = tokio::time::timeout(GUARD, waiter)
        .await
        .expect("the waiter gets its permit")
        .unwrap()
        .unwrap();
    // The release and the status call above.
    let calls = evalsha_calls(&redis) - before - 2;
    assert_eq!(
        permit.since(),
        granted[0].since,
        "the grant the release made"
    );
    assert_eq!(permit.tokens(), granted[0].tokens);
    assert_eq!(redis.zcard(name, "holders"), 1, "one grant, not two");
    permit.release().await.unwrap();
    assert_eq!(redis.zcard(name, "holders"), 0);
    calls
}

#[tokio::test]
async fn a_lost_handoff_message_costs_the_waiter_one_call_not_its_grant() {
    let calls = handoff_calls(true).await;
    assert!(
        calls >= 1,
        "{calls} calls: the waiter found its grant without asking"
    );
}

#[tokio::test]
async fn control_a_delivered_handoff_message_costs_the_waiter_no_call() {
    assert_eq!(
        handoff_calls(false).await,
        0,
        "the message carried the grant"
    );
}

#[tokio::test]
async fn a_waiter_dropped_after_a_handoff_releases_it_to_the_next_one() {
    let redis = Redis::start();
    let name = "handdrop";
    let sem = semaphore(&redis, name, 1, quiet()).await;
    let holder = sem.acquire().await.unwrap();
    // The first waiter is polled until it is queued, then never again: it
    // stands for a caller that gives up while its grant is on the way.
    let first_sem = semaphore(&redis, name, 1, quiet()).await;
    let mut first = Box::pin(first_sem.acquire_with(id("first")));
    tokio::select! {
        r = &mut first => panic!("granted while held: {r:?}"),
        () = wait_until_async("the first waiter is queued", GUARD, || async {
            redis.zcard(name, "queue") == 1
        }) => {}
    }
    let second_sem = semaphore(&redis, name, 1, quiet()).await;
    let second = tokio::spawn(async move { second_sem.acquire_with(id("second")).await });
    wait_until_async("the second waiter is queued", GUARD, || async {
        redis.zcard(name, "queue") == 2
    })
    .await;
    holder.release().await.unwrap();
    assert_eq!(holder_ids(&sem).await, ["first"], "handed to the head");
    drop(first);
    // The drop releases the grant by id, which hands it on in turn.
    let permit = tokio::time::timeout(GUARD, second)
        .await
        .expect("hang guard")
        .unwrap()
        .unwrap();
    assert_eq!(permit.id().as_str(), "second");
    assert_eq!(holder_ids(&sem).await, ["second"]);
    assert_eq!(redis.zcard(name, "queue"), 0);
    permit.release().await.unwrap();
    assert_eq!(redis.zcard(name, "holders"), 0, "nothing left held");
}

#[tokio::test]
async fn a_waiter_timing_out_after_an_unseen_handoff_leaves_nothing_held() {
    let redis = Redis::start();
    let name = "handtimeout";
    let sem = semaphore(&redis, name, 1, quiet()).await;
    let holder = sem.acquire().await.unwrap();
    let waiter_sem = semaphore(&redis, name, 1, quiet()).await;
    let waiter = tokio::spawn(async move {
        waiter_sem
            .acquire_with(id("late").timeout(Duration::from_secs(2)))
            .await
    });
    wait_until_async("the waiter is queued", GUARD, || async {
        redis.zcard(name, "queue") == 1
    })
    .await;
    // Its message is lost and its timer (10 s) comes after its deadline:
    // it gives up holding a grant it never saw.
    lose_messages_to(&redis, name, "late");
    holder.release().await.unwrap();
    assert_eq!(holder_ids(&sem).await, ["late"], "handed over");
    let result = tokio::time::timeout(GUARD, waiter)
        .await
        .expect("hang guard")
        .unwrap();
    assert!(matches!(result, Err(AcquireError::TimedOut)), "{result:?}");
    assert_eq!(redis.zcard(name, "holders"), 0, "the unseen grant is freed");
    assert_eq!(redis.zcard(name, "queue"), 0);
    let again = sem.try_acquire().await.expect("the permit is free again");
    again.release().await.unwrap();
}

#[tokio::test]
async fn an_expired_lease_is_handed_to_the_queue_by_the_script_that_reclaims_it() {
    let redis = Redis::start();
    let name = "handexpire";
    let short = Options::default()
        .lease(Duration::from_millis(300))
        .waiter_liveness(Duration::from_secs(60))
        .quarantine(false);
    // A holder whose process stops without releasing: its runtime (and
    // with it the keepalive) shuts down with the permit still granted.
    let (url, stale_options) = (redis.url(), short.clone());
    let deadline = tokio::task::spawn_blocking(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let permit = rt.block_on(async {
            let client = Client::open(&url).await.unwrap();
            let sem = RedisSemaphore::connect(&client, name, 1, stale_options)
                .await
                .unwrap();
            sem.acquire().await.unwrap()
        });
        let deadline = permit.lease_deadline();
        std::mem::forget(permit);
        rt.shutdown_background();
        deadline
    })
    .await
    .unwrap();
    let sem = semaphore(&redis, name, 1, short.clone()).await;
    let waiter_sem = semaphore(&redis, name, 1, short).await;
    let waiter = tokio::spawn(async move { waiter_sem.acquire_with(id("next")).await });
    let permit = tokio::time::timeout(GUARD, waiter)
        .await
        .expect("hang guard")
        .unwrap()
        .unwrap();
    assert!(
        permit.since() >= deadline,
        "re-granted only once the old lease ran out (server time)"
    );
    assert_eq!(holder_ids(&sem).await, ["next"]);
}

#[tokio::test]
async fn calls_per_grant_under_contention_are_at_most_one_and_a_half() {
    const TASKS: usize = 12;
    const ITERS: usize = 8;
    let redis = Redis::start();
    let name = "handcount";
    let mut sems = Vec::new();
    for _ in 0..TASKS {
        sems.push(semaphore(&redis, name, 3, quiet()).await);
    }
    // Every script loaded (the first call of each answers NOSCRIPT).
    let warm = sems[0].acquire().await.unwrap();
    warm.release().await.unwrap();
    let before = evalsha_calls(&redis);
    let (start_tx, start) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    for sem in sems {
        let mut start = start.clone();
        tasks.push(tokio::spawn(async move {
            start.wait_for(|go| *go).await.unwrap();
            for _ in 0..ITERS {
                let permit = sem.acquire().await.unwrap();
                tokio::time::sleep(Duration::from_millis(2)).await; // the work
                permit.release().await.unwrap();
            }
        }));
    }
    start_tx.send(true).unwrap();
    for task in tasks {
        tokio::time::timeout(GUARD, task)
            .await
            .expect("hang guard")
            .unwrap();
    }
    let grants = (TASKS * ITERS) as u64;
    let calls = evalsha_calls(&redis) - before;
    let acquire_side = calls - grants; // one release call per grant
    println!(
        "{grants} grants, {calls} script calls, {:.2} acquire-side calls per grant",
        acquire_side as f64 / grants as f64
    );
    assert!(
        acquire_side * 2 <= grants * 3,
        "{acquire_side} acquire-side calls for {grants} grants (> 1.5 per grant)"
    );
    assert_eq!(redis.zcard(name, "holders"), 0);
    assert_eq!(redis.zcard(name, "queue"), 0);
}

/// Redis restarts with its state on disk while a holder and a waiter are
/// in it; then the holder releases. Returns whether that release handed the
/// permit over, and checks that the waiter's grant, whenever it came, came
/// after any quarantine.
async fn release_after_a_restart(quarantine: bool) -> bool {
    let mut redis = Redis::start_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    let name = "handrestart";
    let options = Options::default()
        .lease(Duration::from_secs(1))
        .quarantine(quarantine);
    let sem = semaphore(&redis, name, 1, options.clone()).await;
    let holder = tokio::time::timeout(GUARD, sem.acquire())
        .await
        .expect("hang guard (first-use quarantine)")
        .unwrap();
    let waiter_sem = semaphore(&redis, name, 1, options).await;
    let waiter = tokio::spawn(async move { waiter_sem.acquire_with(id("after")).await });
    wait_until_async("the waiter is queued", GUARD, || async {
        redis.zcard(name, "queue") == 1
    })
    .await;
    redis.restart(); // a new run_id, the same state
                     // The holder's connection notices the restart on its next call (which
                     // fails) and reconnects.
    wait_until_async("the holder's client has reconnected", GUARD, || async {
        sem.status().await.is_ok()
    })
    .await;
    holder.release().await.unwrap();
    let status = sem.status().await.unwrap();
    let handed_over = status.holders.iter().any(|h| h.id.as_str() == "after");
    if quarantine {
        assert!(
            status.quarantined_until.is_some(),
            "the restart was noticed"
        );
    }
    let permit = tokio::time::timeout(GUARD, waiter)
        .await
        .expect("hang guard")
        .unwrap()
        .unwrap();
    if let Some(until) = status.quarantined_until.filter(|_| quarantine) {
        assert!(permit.since() >= until, "no grant inside the quarantine");
    }
    handed_over
}

#[tokio::test]
async fn a_release_after_a_restart_hands_nothing_over_inside_the_quarantine() {
    assert!(!release_after_a_restart(true).await);
}

#[tokio::test]
async fn control_without_quarantine_the_release_after_a_restart_hands_over() {
    assert!(release_after_a_restart(false).await);
}
