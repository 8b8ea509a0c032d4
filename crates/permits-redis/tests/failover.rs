//! Failover to a replica that missed the latest grants: the promoted
//! replica has another `run_id`, so the first script on it starts a
//! quarantine and no new grant lands while a holder from the old primary can
//! still believe in its lease. The control turns the quarantine off and
//! shows the over-admission it prevents.
//!
//! Replication needs TCP (Redis does not replicate over unix sockets), so
//! the primary also listens on a loopback port the kernel picked.

mod common;

use std::time::Duration;

use common::{free_port, wait_until_async, Redis};
use permits_redis::{Client, Options, RedisPermit, RedisSemaphore, TryAcquireError};
use tokio::time::Instant;

const LEASE: Duration = Duration::from_secs(1);
const GUARD: Duration = Duration::from_secs(20);

fn info_field(redis: &Redis, section: &str, field: &str) -> Option<String> {
    let info: String = redis.cmd(redis::cmd("INFO").arg(section));
    info.lines().find_map(|l| {
        l.strip_prefix(&format!("{field}:"))
            .map(|v| v.trim().to_owned())
    })
}

/// Returns how many of the new grants landed while an old holder's lease
/// was still valid by its own clock.
async fn failover(quarantine: bool) -> usize {
    let port = free_port();
    let mut primary = Redis::start_with(&[
        "--port",
        &port,
        "--bind",
        "127.0.0.1",
        "--repl-diskless-sync-delay", // the initial sync waits 5 s by default
        "0",
    ]);
    let replica = Redis::start_with(&["--replicaof", "127.0.0.1", &port]);
    wait_until_async("the replica is in sync", GUARD, || async {
        info_field(&replica, "replication", "master_link_status").as_deref() == Some("up")
    })
    .await;

    let options = Options::default().lease(LEASE).quarantine(quarantine);
    let old_client = Client::open(&primary.url()).await.unwrap();
    let old_sem = RedisSemaphore::connect(&old_client, "failover", 2, options.clone())
        .await
        .unwrap();
    // The semaphore itself (capacity, boot run_id) reaches the replica...
    let acked: i64 = primary.cmd(redis::cmd("WAIT").arg(1).arg(5000));
    assert_eq!(acked, 1);
    // ...but the grants do not: the replica stops following, as one that
    // lagged behind when the primary died.
    let _: () = replica.cmd(redis::cmd("REPLICAOF").arg("NO").arg("ONE"));
    let old: Vec<RedisPermit> = vec![
        tokio::time::timeout(GUARD, old_sem.acquire())
            .await
            .unwrap()
            .unwrap(),
        tokio::time::timeout(GUARD, old_sem.acquire())
            .await
            .unwrap()
            .unwrap(),
    ];
    assert_eq!(
        replica.zcard("failover", "holders"),
        0,
        "the replica missed the grants"
    );
    primary.kill9();

    let new_client = Client::open(&replica.url()).await.unwrap();
    let new_sem = RedisSemaphore::connect(&new_client, "failover", 2, options)
        .await
        .unwrap();
    let status = new_sem.status().await.unwrap();
    assert!(
        status.quarantined_until.is_some(),
        "the new run_id was noticed"
    );
    let mut new = Vec::new();
    let mut overlapping = 0;
    let start = Instant::now();
    while new.len() < 2 {
        assert!(start.elapsed() < GUARD, "hang guard");
        let sent = Instant::now();
        match new_sem.try_acquire().await {
            Ok(permit) => {
                let done = Instant::now();
                if old.iter().any(|p| p.valid_until() > done) {
                    overlapping += 1;
                } else {
                    assert!(
                        old.iter().all(|p| p.valid_until() <= sent),
                        "every old holder's lease had lapsed before the grant was asked for"
                    );
                }
                assert!(
                    old.iter().all(|p| permit.token().seq > p.token().seq),
                    "tokens keep growing"
                );
                new.push(permit);
            }
            Err(TryAcquireError::Quarantined { .. }) => {
                tokio::time::sleep(Duration::from_millis(10)).await
            }
            Err(e) => panic!("{e}"),
        }
    }
    if quarantine {
        let until = status.quarantined_until.unwrap();
        assert!(
            new.iter().all(|p| p.since() >= until),
            "no grant inside the quarantine (server time)"
        );
    }
    overlapping
}

#[tokio::test]
async fn a_promoted_replica_that_missed_grants_quarantines_them() {
    assert_eq!(failover(true).await, 0);
}

#[tokio::test]
async fn control_without_quarantine_a_promoted_replica_over_admits() {
    assert!(
        failover(false).await > 0,
        "control: a new grant while an old holder was valid"
    );
}
