//! The operating-system facts the harness reads: per-thread and
//! per-process context switches and CPU time (`getrusage`), system-wide
//! CPU use (`/proc/stat`, to tell how busy *other* processes kept the
//! machine while a workload ran), and a description of the machine. Linux
//! only; elsewhere the numbers read as zero and the description as
//! "unknown".
#![allow(unsafe_code)]

use std::time::{Duration, Instant};

/// What `getrusage` reports that the harness uses.
#[derive(Clone, Copy, Debug, Default)]
pub struct Usage {
    /// Voluntary context switches (the thread went to sleep).
    pub voluntary: u64,
    /// Involuntary context switches (preemptions).
    pub involuntary: u64,
    /// User plus system CPU time.
    pub cpu: Duration,
}

impl Usage {
    /// The change from `earlier` to `self`.
    pub fn since(self, earlier: Usage) -> Usage {
        Usage {
            voluntary: self.voluntary.saturating_sub(earlier.voluntary),
            involuntary: self.involuntary.saturating_sub(earlier.involuntary),
            cpu: self.cpu.saturating_sub(earlier.cpu),
        }
    }
}

#[cfg(target_os = "linux")]
fn rusage(who: libc::c_int) -> Usage {
    let mut raw = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `raw` is a valid, writable `rusage` (zeroed, so every field
    // is initialised even if the call wrote nothing), and `who` is one of
    // the RUSAGE_* constants below.
    let rc = unsafe { libc::getrusage(who, raw.as_mut_ptr()) };
    if rc != 0 {
        return Usage::default();
    }
    // SAFETY: zero-initialised above and possibly overwritten by the call;
    // `rusage` is plain integers, valid for any bit pattern.
    let raw = unsafe { raw.assume_init() };
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    Usage {
        voluntary: raw.ru_nvcsw as u64,
        involuntary: raw.ru_nivcsw as u64,
        cpu: tv(raw.ru_utime) + tv(raw.ru_stime),
    }
}

/// The calling thread's usage so far.
pub fn thread_usage() -> Usage {
    #[cfg(target_os = "linux")]
    {
        rusage(libc::RUSAGE_THREAD)
    }
    #[cfg(not(target_os = "linux"))]
    {
        Usage::default()
    }
}

/// The whole process's usage so far.
pub fn process_usage() -> Usage {
    #[cfg(target_os = "linux")]
    {
        rusage(libc::RUSAGE_SELF)
    }
    #[cfg(not(target_os = "linux"))]
    {
        Usage::default()
    }
}

/// Kernel clock ticks per second (the unit of `/proc/stat`).
fn clock_ticks() -> f64 {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: `sysconf` only reads a configuration value.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        if ticks > 0 {
            return ticks as f64;
        }
    }
    100.0
}

/// System-wide CPU time from the first line of `/proc/stat`, seconds.
#[derive(Clone, Copy, Debug, Default)]
struct SystemCpu {
    busy: f64,
    steal: f64,
}

fn system_cpu() -> Option<SystemCpu> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?;
    let fields: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap_or(0.0))
        .collect();
    // user nice system idle iowait irq softirq steal (guest is in user).
    let get = |i: usize| fields.get(i).copied().unwrap_or(0.0);
    let ticks = clock_ticks();
    Some(SystemCpu {
        busy: (get(0) + get(1) + get(2) + get(5) + get(6)) / ticks,
        steal: get(7) / ticks,
    })
}

/// How busy the rest of the machine was while a workload ran.
#[derive(Clone, Debug)]
pub struct Noise {
    /// Which workload family.
    pub family: String,
    /// Wall time of the family, seconds.
    pub seconds: f64,
    /// CPU used by other processes, in cores (all CPU minus ours).
    pub other_cores: Option<f64>,
    /// Hypervisor steal, in cores.
    pub steal_cores: Option<f64>,
}

/// Above this many cores of other processes' CPU a section counts as noisy.
pub const NOISY_CORES: f64 = 0.2;

/// Measures [`Noise`] around a workload family.
pub struct NoiseMeter {
    family: String,
    start: Instant,
    system: Option<SystemCpu>,
    own: Usage,
}

impl NoiseMeter {
    /// Starts measuring.
    pub fn start(family: &str) -> Self {
        NoiseMeter {
            family: family.to_owned(),
            start: Instant::now(),
            system: system_cpu(),
            own: process_usage(),
        }
    }

    /// Stops and reports.
    pub fn stop(self) -> Noise {
        let seconds = self.start.elapsed().as_secs_f64();
        let own = process_usage().since(self.own).cpu.as_secs_f64();
        let (other, steal) = match (self.system, system_cpu()) {
            (Some(a), Some(b)) if seconds > 0.0 => (
                Some(((b.busy - a.busy - own) / seconds).max(0.0)),
                Some(((b.steal - a.steal) / seconds).max(0.0)),
            ),
            _ => (None, None),
        };
        Noise {
            family: self.family,
            seconds,
            other_cores: other,
            steal_cores: steal,
        }
    }
}

/// The machine a run happened on.
#[derive(Clone, Debug)]
pub struct Machine {
    /// CPU model name.
    pub cpu: String,
    /// Logical CPUs available to this process.
    pub cpus: usize,
    /// Total memory, GiB.
    pub memory_gib: Option<f64>,
    /// Kernel release.
    pub kernel: String,
    /// `rustc --version`, if rustc is on the PATH.
    pub rustc: String,
    /// Target triple-ish description.
    pub arch: String,
}

fn first_line_with(path: &str, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
}

/// Describes this machine.
pub fn machine() -> Machine {
    let cpu = first_line_with("/proc/cpuinfo", "model name").unwrap_or_else(|| "unknown".into());
    let memory_gib = first_line_with("/proc/meminfo", "MemTotal")
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map(|kib| kib / (1024.0 * 1024.0));
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into());
    let rustc =
        std::process::Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
            .arg("--version")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "unknown".into());
    Machine {
        cpu,
        cpus: std::thread::available_parallelism().map_or(1, usize::from),
        memory_gib,
        kernel,
        rustc,
        arch: format!("{}-{}", std::env::consts::ARCH, std::env::consts::OS),
    }
}
