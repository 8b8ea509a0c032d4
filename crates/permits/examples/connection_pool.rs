//! A connection pool bounded by a semaphore: 8 client threads share 3
//! connections. A client takes a permit before it takes a connection, so
//! there is always an idle connection for a permit holder, and the pool
//! asserts that no more than 3 are ever in use at once. Clients that
//! cannot wait use `try_get` or a timeout instead. Queries are simulated
//! with a short sleep. Run with `cargo run -p permits --example connection_pool`.

use permits::{AcquireTimeoutError, Permit, Semaphore, TryAcquireError};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::Duration;

const CONNECTIONS: usize = 3;
const CLIENTS: usize = 8;
const QUERIES_PER_CLIENT: usize = 5;

/// A pretend database connection.
struct Connection {
    id: usize,
    queries: usize,
}

impl Connection {
    fn query(&mut self, sql: &str) -> usize {
        assert!(!sql.is_empty());
        thread::sleep(Duration::from_millis(2)); // simulated work
        self.queries += 1;
        self.queries
    }
}

struct Pool {
    permits: Semaphore,
    idle: Mutex<Vec<Connection>>,
    in_use: AtomicUsize,
    peak: AtomicUsize,
}

/// A connection on loan: it goes back to the pool, then its permit is
/// released, when this is dropped.
struct Pooled<'a> {
    pool: &'a Pool,
    conn: Option<Connection>,
    // Dropped after `Drop::drop` has put the connection back.
    _permit: Permit<'a>,
}

impl Pool {
    fn new(size: usize) -> Self {
        Pool {
            permits: Semaphore::new(size),
            idle: Mutex::new((0..size).map(|id| Connection { id, queries: 0 }).collect()),
            in_use: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        }
    }

    /// Blocks until a connection is free.
    fn get(&self) -> Pooled<'_> {
        let permit = self
            .permits
            .acquire_blocking()
            .expect("the pool is never closed");
        self.lend(permit)
    }

    /// A connection if one is free right now.
    fn try_get(&self) -> Result<Pooled<'_>, TryAcquireError> {
        self.permits.try_acquire().map(|permit| self.lend(permit))
    }

    /// A connection if one frees up within `timeout`.
    fn get_timeout(&self, timeout: Duration) -> Result<Pooled<'_>, AcquireTimeoutError> {
        self.permits
            .acquire_timeout(timeout)
            .map(|permit| self.lend(permit))
    }

    fn lend<'a>(&'a self, permit: Permit<'a>) -> Pooled<'a> {
        let conn = self
            .idle
            .lock()
            .unwrap()
            .pop()
            .expect("a permit holder always finds an idle connection");
        let now = self.in_use.fetch_add(1, Ordering::SeqCst) + 1;
        assert!(now <= CONNECTIONS, "{now} connections in use at once");
        self.peak.fetch_max(now, Ordering::SeqCst);
        Pooled {
            pool: self,
            conn: Some(conn),
            _permit: permit,
        }
    }
}

impl Pooled<'_> {
    fn conn(&mut self) -> &mut Connection {
        self.conn.as_mut().unwrap()
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        self.pool.in_use.fetch_sub(1, Ordering::SeqCst);
        let conn = self.conn.take().unwrap();
        self.pool.idle.lock().unwrap().push(conn);
    }
}

fn main() {
    let pool = Pool::new(CONNECTIONS);
    println!(
        "A pool of {CONNECTIONS} connections serves {CLIENTS} client threads, \
         {QUERIES_PER_CLIENT} queries each."
    );

    let answered = AtomicUsize::new(0);
    thread::scope(|s| {
        for client in 0..CLIENTS {
            let (pool, answered) = (&pool, &answered);
            s.spawn(move || {
                for q in 0..QUERIES_PER_CLIENT {
                    let mut conn = pool.get();
                    conn.conn().query(&format!("SELECT {q} -- client {client}"));
                    answered.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
    });

    let total = answered.load(Ordering::SeqCst);
    let peak = pool.peak.load(Ordering::SeqCst);
    println!(
        "All {total} queries were answered; at most {peak} connections were in use at once \
         (limit {CONNECTIONS})."
    );
    assert_eq!(total, CLIENTS * QUERIES_PER_CLIENT);
    assert!((1..=CONNECTIONS).contains(&peak));

    let mut idle = pool.idle.lock().unwrap();
    idle.sort_by_key(|c| c.id);
    let served: Vec<usize> = idle.iter().map(|c| c.queries).collect();
    println!(
        "Every connection is back in the pool; they served {} queries.",
        served
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(" + ")
    );
    assert_eq!(idle.len(), CONNECTIONS);
    assert_eq!(served.iter().sum::<usize>(), total);
    drop(idle);
    assert_eq!(pool.permits.available_permits(), CONNECTIONS);
    assert_eq!(pool.in_use.load(Ordering::SeqCst), 0);

    // Clients that cannot wait.
    let busy: Vec<_> = (0..CONNECTIONS).map(|_| pool.get()).collect();
    let err = pool.try_get().err().expect("all connections are busy");
    println!("With all {CONNECTIONS} connections busy, try_get fails at once: \"{err}\".");
    assert_eq!(err, TryAcquireError::NoPermits);
    let err = pool
        .get_timeout(Duration::from_millis(5))
        .err()
        .expect("nobody returns a connection");
    println!("and get_timeout(5 ms) gives up: \"{err}\".");
    assert_eq!(err, AcquireTimeoutError::TimedOut);
    drop(busy);
    let mut conn = pool.try_get().expect("connections are free again");
    let n = conn.conn().query("SELECT 1");
    println!(
        "Once they are returned, try_get succeeds (connection {} has now served {n} queries).",
        conn.conn().id
    );
    drop(conn);
    assert_eq!(pool.permits.available_permits(), CONNECTIONS);
}
