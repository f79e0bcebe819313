//! The processes under test: `threatflow run` (this binary re-executed in its engine role,
//! which is the engine's own CLI linked in) or the raw relay, each a real child process so
//! that its CPU time and memory are read from `/proc` apart from the load generator's.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Environment variable that selects the role of a re-executed `threatflow-loadtest`.
pub const ROLE_VARIABLE: &str = "THREATFLOW_LOADTEST_ROLE";

/// One child process under test.
pub struct UnderTest {
    child: Child,
    /// HTTP address of an engine (its `/ready`); `None` for the relay.
    http: Option<String>,
    /// CPU seconds at the start of measurement.
    cpu_at_start: f64,
    /// Highest resident set seen, bytes.
    pub peak_rss_bytes: u64,
}

impl UnderTest {
    /// Starts `threatflow run --config <config>` with its log in `log`.
    pub fn engine(
        config: &Path,
        http: String,
        log: &Path,
        log_level: &str,
    ) -> anyhow::Result<Self> {
        let mut command = Command::new(std::env::current_exe()?);
        command
            .env(ROLE_VARIABLE, "engine")
            .env("RUST_LOG", log_level)
            .args(["run", "--config"])
            .arg(config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log)?);
        Ok(Self::new(command.spawn()?, Some(http)))
    }

    /// Starts the raw relay from `pairs` (input → output topic) in `group`.
    pub fn relay(
        brokers: &str,
        group: &str,
        pairs: &[(String, String)],
        log: &Path,
    ) -> anyhow::Result<Self> {
        let mut command = Command::new(std::env::current_exe()?);
        command
            .env(ROLE_VARIABLE, "relay")
            .arg(brokers)
            .arg(group)
            .args(
                pairs
                    .iter()
                    .map(|(input, output)| format!("{input}={output}")),
            )
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log)?);
        Ok(Self::new(command.spawn()?, None))
    }

    fn new(child: Child, http: Option<String>) -> Self {
        Self {
            child,
            http,
            cpu_at_start: 0.0,
            peak_rss_bytes: 0,
        }
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until the process holds its partitions: an engine's `/ready` answers 200, the
    /// relay prints `ready`. Fails when it exits or `timeout` passes.
    pub fn wait_ready(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        match &self.http {
            Some(http) => loop {
                if ready_status(http) == Some(200) {
                    return Ok(());
                }
                if let Some(status) = self.child.try_wait()? {
                    anyhow::bail!("the engine exited before it was ready: {status}");
                }
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "the engine was not ready in time"
                );
                std::thread::sleep(Duration::from_millis(50));
            },
            None => {
                let stdout = self
                    .child
                    .stdout
                    .take()
                    .ok_or_else(|| anyhow::anyhow!("the relay has no stdout"))?;
                let mut line = String::new();
                BufReader::new(stdout).read_line(&mut line)?;
                anyhow::ensure!(line.trim() == "ready", "the relay did not start: {line:?}");
                Ok(())
            }
        }
    }

    /// Marks the start of measurement for CPU time.
    pub fn start_measuring(&mut self) {
        self.cpu_at_start = cpu_seconds(self.pid()).unwrap_or(0.0);
        self.peak_rss_bytes = rss_bytes(self.pid()).unwrap_or(0);
    }

    /// CPU seconds since `start_measuring`; refreshes the peak resident set.
    pub fn sample(&mut self) -> f64 {
        if let Some(rss) = rss_bytes(self.pid()) {
            self.peak_rss_bytes = self.peak_rss_bytes.max(rss);
        }
        cpu_seconds(self.pid()).unwrap_or(self.cpu_at_start) - self.cpu_at_start
    }

    /// SIGTERM, then waits for a graceful exit (its last commits); SIGKILL after `grace`.
    pub fn stop(mut self, grace: Duration) -> anyhow::Result<()> {
        // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
        unsafe {
            libc::kill(self.pid() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.child.kill()?;
        self.child.wait()?;
        anyhow::bail!("process {} did not stop within {grace:?}", self.pid())
    }
}

impl Drop for UnderTest {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The status code of `GET /ready`, if the engine answers.
fn ready_status(http: &str) -> Option<u16> {
    let mut stream =
        TcpStream::connect_timeout(&http.parse().ok()?, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        stream,
        "GET /ready HTTP/1.1\r\nHost: {http}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// A free local TCP port (bound and released: another process may race for it, which the
/// engine's start would report).
pub fn free_local_address() -> anyhow::Result<String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.to_string())
}

/// User + system CPU seconds of `pid` (`/proc/<pid>/stat` fields 14 and 15).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; fields after its closing ')' are fixed.
    let after_name = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Some((utime + stime) / ticks)
}

/// Resident set of `pid` in bytes (`VmRSS` of `/proc/<pid>/status`).
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kilobytes: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kilobytes * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_cpu_time_and_a_resident_set() {
        let pid = std::process::id();
        let busy_until = Instant::now() + Duration::from_millis(50);
        let mut spin = 0u64;
        while Instant::now() < busy_until {
            spin = spin.wrapping_add(1);
        }
        assert!(spin > 0);
        assert!(cpu_seconds(pid).unwrap() > 0.0);
        assert!(rss_bytes(pid).unwrap() > 1024 * 1024);
    }
}
