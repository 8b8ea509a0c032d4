//! The JSON form of a report (`report.json`): the documented shape
//! (`floor_ns`, `workloads[].rows[]` with `impl`, `median`, `min`, `max`,
//! `fairness`) plus everything else the run knows.

use super::targets::targets;
use super::{Report, Workload};
use crate::adapters;
use crate::sys::NOISY_CORES;
use serde_json::{json, Map, Value};

fn num(x: Option<f64>) -> Value {
    x.filter(|x| x.is_finite()).map_or(Value::Null, Value::from)
}

/// The JSON form of a report (`report.json`).
pub fn to_json(report: &Report) -> Value {
    let workloads: Vec<Value> = report.workloads.iter().map(workload_json).collect();
    let targets: Vec<Value> = targets(report)
        .iter()
        .map(|t| json!({"goal": t.goal, "measured": t.measured, "met": t.met}))
        .collect();
    let noise: Vec<Value> = report
        .noise
        .iter()
        .map(|n| {
            json!({
                "family": n.family,
                "seconds": n.seconds,
                "other_cpu_cores": num(n.other_cores),
                "steal_cores": num(n.steal_cores),
                "noisy": n.other_cores.map(|c| c > NOISY_CORES),
            })
        })
        .collect();
    let m = &report.machine;
    let s = &report.settings;
    json!({
        "floor_ns": num(report.floor.median),
        "floor": {
            "what": "compare_exchange + fetch_add pair on one AtomicUsize, one thread",
            "median": num(report.floor.median),
            "min": num(report.floor.min),
            "max": num(report.floor.max),
            "samples": report.floor_samples.iter().map(|x| num(*x)).collect::<Vec<_>>(),
        },
        "mode": s.mode,
        "started": report.started,
        "seconds": report.seconds,
        "settings": {
            "reps": s.reps.iter().map(|(f, n)| (f.to_string(), Value::from(*n))).collect::<Map<_, _>>(),
            "contended_window_ms": s.window_ms,
            "uncontended_rep_ms": s.loop_ms,
            "async_acquisitions": s.async_rounds.iter().map(|(t, r)| (t.to_string(), Value::from(t * r))).collect::<Map<_, _>>(),
            "starvation_cap_ms": s.cap_ms,
        },
        "machine": {
            "cpu": m.cpu,
            "cpus": m.cpus,
            "memory_gib": num(m.memory_gib),
            "kernel": m.kernel,
            "rustc": m.rustc,
            "arch": m.arch,
        },
        "versions": adapters::COMPETITORS.iter().map(|(c, v)| (c.to_string(), Value::from(*v))).collect::<Map<_, _>>(),
        "section": {"adds": report.section.adds, "ns": report.section.ns},
        "starvation_hold": {"adds": report.hold.adds, "ns": report.hold.ns},
        "rows_how": adapters::descriptions().iter().map(|(id, w, how)| {
            (id.to_string(), json!({"weighted": w.label(), "how": how}))
        }).collect::<Map<_, _>>(),
        "noise": noise,
        "targets": targets,
        "violations": report.violations(),
        "workloads": workloads,
    })
}

fn workload_json(w: &Workload) -> Value {
    let rows: Vec<Value> = w
        .rows
        .iter()
        .map(|r| {
            let mut o = Map::new();
            o.insert("impl".into(), r.id.into());
            o.insert("median".into(), num(r.summary.median));
            o.insert("min".into(), num(r.summary.min));
            o.insert("max".into(), num(r.summary.max));
            o.insert("fairness".into(), num(r.fairness));
            o.insert("ratio_to_reference".into(), num(w.ratio(r)));
            o.insert("reps".into(), r.samples.len().into());
            o.insert(
                "samples".into(),
                r.samples.iter().map(|x| num(*x)).collect::<Vec<_>>().into(),
            );
            if let Some(limit) = r.limit {
                o.insert("permit_limit".into(), limit.into());
                o.insert("max_in_section".into(), r.max_in_section.into());
                o.insert("violations".into(), r.violations.into());
            }
            for (k, v) in &r.extra {
                o.insert((*k).into(), v.clone());
            }
            Value::Object(o)
        })
        .collect();
    json!({
        "name": w.name,
        "unit": w.unit.id(),
        "higher_is_better": w.unit.higher_is_better(),
        "reference": w.reference,
        "description": w.description,
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::sample_report;

    #[test]
    fn json_has_the_documented_shape() {
        let v = to_json(&sample_report());
        assert_eq!(v["floor_ns"].as_f64(), Some(20.0));
        let workloads = v["workloads"].as_array().expect("workloads is an array");
        assert_eq!(workloads.len(), 2);
        for w in workloads {
            assert!(w["name"].is_string());
            assert!(
                ["ns", "ops_per_s", "us", "bytes", "allocs"].contains(&w["unit"].as_str().unwrap())
            );
            for r in w["rows"].as_array().expect("rows is an array") {
                for key in ["impl", "median", "min", "max", "fairness"] {
                    assert!(r.get(key).is_some(), "row without `{key}`: {r}");
                }
                assert!(r["median"].is_number() || r["median"].is_null());
                assert!(r["fairness"].is_number() || r["fairness"].is_null());
            }
        }
        let contended = &workloads[0];
        assert_eq!(contended["name"], "contended_p1_t16");
        assert_eq!(contended["unit"], "ops_per_s");
        let ours = &contended["rows"][0];
        assert_eq!(ours["impl"], "permits");
        assert_eq!(ours["median"].as_f64(), Some(4e6));
        assert_eq!(ours["min"].as_f64(), Some(4e6 - 1.0));
        assert_eq!(ours["max"].as_f64(), Some(4e6 + 2.0));
        assert_eq!(ours["fairness"].as_f64(), Some(0.9));
        assert_eq!(ours["ratio_to_reference"].as_f64(), Some(2.0));
        assert_eq!(ours["p99_us"].as_f64(), Some(12.5));
        let starved = &workloads[1]["rows"][1];
        assert!(
            starved["median"].is_null(),
            "a median that never got through is null"
        );
        assert!(starved["max"].is_null());
        assert_eq!(starved["min"].as_f64(), Some(3.0));
        assert!(starved["fairness"].is_null());
        // Round-trips through text.
        let text = serde_json::to_string_pretty(&v).expect("serialises");
        let back: Value = serde_json::from_str(&text).expect("parses");
        assert_eq!(back, v);
    }
}
