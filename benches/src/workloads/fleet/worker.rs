//! The fleet family's worker processes: this binary re-executed with
//! `PERMITS_BENCH_FLEET` set (see [`worker_main`]). A worker connects,
//! says `ready`, waits for `go <end>` on stdin, then repeats request →
//! grant → hold → release → think until the wall-clock time `end`, and
//! prints one line per grant (`g <requested> <started> <released>`, ns on
//! the system clock, which all processes of one machine share) and `done`.
//!
//! [`Under`] is the semaphore under test, the same for workers and for the
//! in-process uncontended rows.

use super::dlr::DlrSemaphore;
use super::zset::ZsetSemaphore;
use distributed_lock_redis::RedisSemaphoreHandle;
use permits_redis::{Client, Options, RedisPermit, RedisSemaphore};
use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What the worker is to do: `<impl> <name> <capacity> <hold µs> <think
/// µs> <limit ms>`.
pub const ENV: &str = "PERMITS_BENCH_FLEET";
/// The server's URL.
pub const URL_ENV: &str = "PERMITS_BENCH_FLEET_URL";

/// Our row.
pub const OURS: &str = "permits_redis";
/// The polling reference's row.
pub const ZSET: &str = "zset_poll_10ms";
/// The crate row: `distributed-lock-redis`.
pub const DLR: &str = "distributed_lock_redis";

/// Now on the system clock, ns since the Unix epoch.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// A semaphore under test.
pub enum Under {
    /// `permits_redis::RedisSemaphore` (its `Client` kept for `PING`).
    Ours(Client, RedisSemaphore),
    /// The 10 ms-polling sorted set.
    Zset(ZsetSemaphore),
    /// `distributed_lock_redis::RedisDistributedSemaphore`.
    Dlr(DlrSemaphore),
}

/// A grant of [`Under`].
pub enum Held {
    /// Ours.
    Ours(RedisPermit),
    /// The sorted set's member id.
    Zset(String),
    /// `distributed-lock-redis`'s ticket.
    Dlr(RedisSemaphoreHandle),
}

impl Under {
    /// Connects row `id` to the semaphore `name` of `capacity` on `url`.
    /// Ours runs without the restart quarantine, which would otherwise
    /// pause grants for one lease on a fresh server.
    pub async fn connect(id: &str, url: &str, name: &str, capacity: u32) -> Result<Under, String> {
        match id {
            OURS => {
                let client = Client::open(url)
                    .await
                    .map_err(|e| format!("Client::open: {e}"))?;
                let options = Options::default().quarantine(false);
                let sem = RedisSemaphore::connect(&client, name, capacity, options)
                    .await
                    .map_err(|e| format!("RedisSemaphore::connect: {e}"))?;
                Ok(Under::Ours(client, sem))
            }
            ZSET => ZsetSemaphore::connect(url, name, u64::from(capacity))
                .await
                .map(Under::Zset)
                .map_err(|e| format!("zset connect: {e}")),
            DLR => DlrSemaphore::connect(url, name, capacity)
                .await
                .map(Under::Dlr),
            _ => Err(format!("unknown row {id}")),
        }
    }

    /// Waits for one permit.
    pub async fn acquire(&mut self) -> Result<Held, String> {
        match self {
            Under::Ours(_, sem) => sem
                .acquire()
                .await
                .map(Held::Ours)
                .map_err(|e| format!("acquire: {e}")),
            Under::Zset(sem) => sem
                .acquire()
                .await
                .map(Held::Zset)
                .map_err(|e| format!("zset acquire: {e}")),
            Under::Dlr(sem) => sem.acquire().await.map(Held::Dlr),
        }
    }

    /// Gives `held` back, waiting for Redis to confirm.
    pub async fn release(&mut self, held: Held) -> Result<(), String> {
        match (self, held) {
            (Under::Ours(..), Held::Ours(permit)) => permit
                .release()
                .await
                .map(drop)
                .map_err(|e| format!("release: {e}")),
            (Under::Zset(sem), Held::Zset(id)) => sem
                .release(&id)
                .await
                .map_err(|e| format!("zset release: {e}")),
            (Under::Dlr(_), Held::Dlr(handle)) => DlrSemaphore::release(handle).await,
            _ => Err("a grant of another semaphore".into()),
        }
    }
}

/// The worker's side, when this process was started as one: runs it and
/// returns the exit code. `None` for a normal start. `main` calls it first.
pub fn worker_main() -> Option<ExitCode> {
    let spec = std::env::var(ENV).ok()?;
    Some(match worker(&spec) {
        Ok(()) => ExitCode::SUCCESS,
        Err(why) => {
            eprintln!("permits-bench fleet worker: {why}");
            ExitCode::FAILURE
        }
    })
}

/// A parsed worker spec.
#[derive(Debug, PartialEq, Eq)]
pub struct Spec {
    /// Row id.
    pub id: String,
    /// Semaphore name.
    pub name: String,
    /// Capacity.
    pub capacity: u32,
    /// Hold per grant.
    pub hold: Duration,
    /// Pause between a release and the next request.
    pub think: Duration,
    /// The worker exits by itself after this long.
    pub limit: Duration,
}

impl Spec {
    /// The value of [`ENV`].
    pub fn to_env(&self) -> String {
        format!(
            "{} {} {} {} {} {}",
            self.id,
            self.name,
            self.capacity,
            self.hold.as_micros(),
            self.think.as_micros(),
            self.limit.as_millis()
        )
    }

    /// Parses the value of [`ENV`].
    pub fn parse(spec: &str) -> Result<Spec, String> {
        let bad = || format!("bad {ENV}: {spec:?}");
        let parts: Vec<&str> = spec.split(' ').collect();
        let [id, name, capacity, hold, think, limit] = parts[..] else {
            return Err(bad());
        };
        let num = |s: &str| s.parse::<u64>().map_err(|_| bad());
        Ok(Spec {
            id: id.to_owned(),
            name: name.to_owned(),
            capacity: capacity.parse().map_err(|_| bad())?,
            hold: Duration::from_micros(num(hold)?),
            think: Duration::from_micros(num(think)?),
            limit: Duration::from_millis(num(limit)?),
        })
    }
}

fn worker(spec: &str) -> Result<(), String> {
    let spec = Spec::parse(spec)?;
    let url = std::env::var(URL_ENV).map_err(|_| format!("{URL_ENV} is not set"))?;
    // A lost parent or a stuck semaphore must not leave this process
    // behind.
    let limit = spec.limit;
    std::thread::spawn(move || {
        std::thread::sleep(limit);
        eprintln!("permits-bench fleet worker: time limit passed");
        std::process::exit(4);
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    rt.block_on(async {
        let mut sem = Under::connect(&spec.id, &url, &spec.name, spec.capacity).await?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "ready")
            .and_then(|()| out.flush())
            .map_err(|e| format!("writing to the parent: {e}"))?;
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| format!("reading the parent: {e}"))?;
        let end: u64 = line
            .trim_end()
            .strip_prefix("go ")
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("expected `go <end>`, got {line:?}"))?;
        let mut grants = Vec::new();
        while now_ns() < end {
            let requested = now_ns();
            let held = sem.acquire().await?;
            let started = now_ns();
            // The hold blocks this thread on purpose: nothing else of this
            // process needs to run while it holds the permit (the keepalive
            // is due only after a third of a 15 s lease; the extension
            // task of distributed-lock-redis is aborted, never polled, by
            // the release).
            if !spec.hold.is_zero() {
                std::thread::sleep(spec.hold);
            }
            let released = now_ns();
            sem.release(held).await?;
            grants.push((requested, started, released));
            if !spec.think.is_zero() {
                std::thread::sleep(spec.think);
            }
        }
        for (requested, started, released) in grants {
            writeln!(out, "g {requested} {started} {released}")
                .map_err(|e| format!("writing to the parent: {e}"))?;
        }
        writeln!(out, "done")
            .and_then(|()| out.flush())
            .map_err(|e| format!("writing to the parent: {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_round_trip_and_bad_ones_fail() {
        let spec = Spec {
            id: OURS.into(),
            name: "fleet-1".into(),
            capacity: 3,
            hold: Duration::from_micros(1_000),
            think: Duration::ZERO,
            limit: Duration::from_secs(20),
        };
        assert_eq!(Spec::parse(&spec.to_env()), Ok(spec));
        for bad in ["", "permits_redis x 3 1 0", "permits_redis x three 1 0 1"] {
            assert!(Spec::parse(bad).is_err(), "{bad:?}");
        }
    }
}
