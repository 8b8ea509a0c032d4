//! Runs the chosen workload families in order, each under a noise meter,
//! and assembles the [`Report`].

use crate::cli::{Config, Family};
use crate::report::{Report, Settings};
use crate::section::calibrate;
use crate::stats::Summary;
use crate::sys::{machine, NoiseMeter};
use crate::workloads::{
    async_tasks, contended, events, fleet, jobserver, memory, processes, starvation, uncontended,
    Plan,
};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The repetition counts and sizes of one mode.
struct Mode {
    name: &'static str,
    reps: fn(Family) -> usize,
    loop_time: Duration,
    window: Duration,
    async_rounds: Vec<(usize, usize)>,
    cap: Duration,
}

fn mode(quick: bool) -> Mode {
    if quick {
        Mode {
            name: "quick",
            reps: |_| 5,
            loop_time: Duration::from_millis(8),
            window: Duration::from_millis(60),
            async_rounds: vec![(1_000, 20), (10_000, 2)],
            cap: Duration::from_millis(50),
        }
    } else {
        Mode {
            name: "full",
            reps: |f| match f {
                Family::Contended | Family::Async => 9,
                Family::Uncontended | Family::Jobserver | Family::Events => 7,
                Family::Starvation => 7,
                Family::Memory | Family::Processes | Family::Fleet => 5,
            },
            loop_time: Duration::from_millis(20),
            window: Duration::from_millis(100),
            async_rounds: vec![(1_000, 50), (10_000, 5)],
            cap: Duration::from_millis(200),
        }
    }
}

/// Runs everything `config` asks for.
pub fn run(config: &Config) -> Report {
    let began = Instant::now();
    let started = utc_now();
    let mode = mode(config.quick);
    let reps = |f: Family| config.reps.unwrap_or((mode.reps)(f));
    eprintln!(
        "permits-bench: {} run, families: {:?}",
        mode.name, config.families
    );
    let section = calibrate(100.0);
    let hold = calibrate(500.0);
    eprintln!(
        "  critical section: {} adds ≈ {:.0} ns; starvation hold: {} adds ≈ {:.0} ns",
        section.adds, section.ns, hold.adds, hold.ns
    );
    let plan = |f: Family| Plan {
        reps: reps(f),
        section,
        hold,
        loop_time: mode.loop_time,
        window: mode.window,
        async_rounds: mode.async_rounds.clone(),
        cap: mode.cap,
    };

    let mut report = Report {
        settings: Settings {
            mode: mode.name,
            reps: config
                .families
                .iter()
                .map(|f| (f.name(), reps(*f)))
                .collect(),
            window_ms: mode.window.as_millis() as u64,
            loop_ms: mode.loop_time.as_millis() as u64,
            async_rounds: mode.async_rounds.clone(),
            cap_ms: mode.cap.as_millis() as u64,
        },
        started,
        seconds: 0.0,
        machine: machine(),
        floor: Summary {
            median: None,
            min: None,
            max: None,
        },
        floor_samples: Vec::new(),
        section,
        hold,
        noise: Vec::new(),
        workloads: Vec::new(),
    };
    for &family in &config.families {
        let meter = NoiseMeter::start(family.name());
        let t = Instant::now();
        eprintln!("{} ...", family.name());
        let plan = plan(family);
        match family {
            Family::Uncontended => {
                let (floor, samples, workloads) = uncontended::run(&plan);
                report.floor = floor;
                report.floor_samples = samples;
                report.workloads.extend(workloads);
            }
            Family::Contended => report.workloads.extend(contended::run(&plan)),
            Family::Async => report.workloads.extend(async_tasks::run(&plan)),
            Family::Starvation => report.workloads.extend(starvation::run(&plan)),
            Family::Memory => report.workloads.extend(memory::run(&plan)),
            Family::Processes => report.workloads.extend(processes::run(&plan)),
            Family::Jobserver => report.workloads.extend(jobserver::run(&plan)),
            Family::Events => report.workloads.extend(events::run(&plan)),
            Family::Fleet => report.workloads.extend(fleet::run(&plan)),
        }
        let noise = meter.stop();
        eprintln!(
            "{} done in {:.1} s (other processes: {} cores)",
            family.name(),
            t.elapsed().as_secs_f64(),
            noise
                .other_cores
                .map_or_else(|| "n/a".into(), |c| format!("{c:.2}"))
        );
        report.noise.push(noise);
    }
    report.seconds = began.elapsed().as_secs_f64();
    report
}

/// Now, as `YYYY-MM-DDTHH:MM:SSZ`.
fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    iso8601(secs)
}

/// Formats seconds since the Unix epoch (days to civil date after Howard
/// Hinnant's `civil_from_days`).
fn iso8601(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::iso8601;

    #[test]
    fn formats_utc_dates() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(iso8601(1_795_600_000), "2026-11-25T09:46:40Z");
    }
}
