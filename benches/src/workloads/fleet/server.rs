//! The fleet family's private `redis-server`: a unix socket in a fresh
//! temporary directory (no TCP port, nothing saved), started once for the
//! family and stopped by pid when dropped. The harness's own commands
//! (`PING` while starting, `CONFIG RESETSTAT`, `INFO commandstats`) go
//! through short-lived synchronous connections, apart from the clients
//! under test.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running private server; dropping it kills it (by pid), reaps it and
/// removes its directory.
pub struct Server {
    dir: PathBuf,
    child: Child,
}

/// Why the server could not be started.
#[derive(Debug)]
pub enum StartError {
    /// `redis-server` is not installed: the family is skipped.
    Missing,
    /// Anything else, with a sentence.
    Failed(String),
}

impl Server {
    /// Starts `redis-server` and waits (at most 10 s) until it answers
    /// `PING`.
    pub fn start() -> Result<Server, StartError> {
        let dir = std::env::temp_dir().join(format!("permits-bench-fleet-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .map_err(|e| StartError::Failed(format!("cannot create {}: {e}", dir.display())))?;
        let child = Command::new("redis-server")
            .args(["--port", "0", "--unixsocket"])
            .arg(dir.join("r.sock"))
            .arg("--dir")
            .arg(&dir)
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .args(["--loglevel", "warning"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match child {
            Ok(child) => child,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(if e.kind() == std::io::ErrorKind::NotFound {
                    StartError::Missing
                } else {
                    StartError::Failed(format!("cannot start redis-server: {e}"))
                });
            }
        };
        let server = Server { dir, child };
        let give_up = Instant::now() + Duration::from_secs(10);
        loop {
            match server.command::<String>(&mut redis::cmd("PING")) {
                Ok(_) => return Ok(server),
                Err(e) if Instant::now() >= give_up => {
                    return Err(StartError::Failed(format!(
                        "redis-server did not answer PING within 10 s: {e}"
                    )))
                }
                // Polling a starting server is the only way to know it is
                // up; this is set-up, not a measurement.
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    /// The `redis+unix://` URL of the socket.
    pub fn url(&self) -> String {
        format!("redis+unix://{}", self.dir.join("r.sock").display())
    }

    /// Runs one command on a fresh synchronous connection.
    pub fn command<T: redis::FromRedisValue>(&self, cmd: &mut redis::Cmd) -> Result<T, String> {
        let client = redis::Client::open(self.url()).map_err(|e| e.to_string())?;
        let mut con = client
            .get_connection_with_timeout(Duration::from_secs(2))
            .map_err(|e| e.to_string())?;
        cmd.query(&mut con).map_err(|e| e.to_string())
    }

    /// Zeroes the server's command counters (`CONFIG RESETSTAT`).
    pub fn reset_stats(&self) -> Result<(), String> {
        self.command::<()>(redis::cmd("CONFIG").arg("RESETSTAT"))
    }

    /// `INFO commandstats` as `(command, calls)` pairs.
    pub fn command_stats(&self) -> Result<Vec<(String, u64)>, String> {
        let text: String = self.command(redis::cmd("INFO").arg("commandstats"))?;
        Ok(parse_command_stats(&text))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // `Child::kill` signals this child's pid (SIGKILL); nothing else.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Parses `INFO commandstats` lines such as
/// `cmdstat_evalsha:calls=12,usec=…` (and `cmdstat_config|resetstat:…`).
pub fn parse_command_stats(text: &str) -> Vec<(String, u64)> {
    text.lines()
        .filter_map(|line| {
            let (name, rest) = line.trim().strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = rest
                .split(',')
                .find_map(|kv| kv.strip_prefix("calls="))?
                .parse()
                .ok()?;
            Some((name.to_owned(), calls))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_stats_parse() {
        let text = "# Commandstats\r\ncmdstat_evalsha:calls=12,usec=300,usec_per_call=25.00,rejected_calls=0,failed_calls=0\r\ncmdstat_config|resetstat:calls=1,usec=28,usec_per_call=28.00,rejected_calls=0,failed_calls=0\r\n";
        assert_eq!(
            parse_command_stats(text),
            [
                ("evalsha".to_owned(), 12),
                ("config|resetstat".to_owned(), 1)
            ]
        );
    }
}
