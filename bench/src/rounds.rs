//! Ratios a shared host can be trusted with: `bench transfers --rounds N` runs every
//! configuration once per round, the rounds one after another, and reports each ratio
//! (the 1→2 thread speedup, the 10M / 1M throughput) per round and its median. A host whose
//! speed drifts by tens of percent within minutes moves the two runs of a round together;
//! two runs far apart in time (all 1-thread runs, then all 2-thread runs) it does not.

use serde_json::{json, Value};

/// One run's figure: its round, accounts, threads and transfers per second.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Run {
    pub round: usize,
    pub accounts: u64,
    pub threads: usize,
    pub ops_per_sec: f64,
}

/// The middle value (the mean of the two middle ones for an even count); `None` if empty.
pub(crate) fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    })
}

/// `num / den` of the same round, for every round that ran both.
fn per_round(runs: &[Run], rounds: usize, num: (u64, usize), den: (u64, usize)) -> Vec<f64> {
    let find = |round: usize, (accounts, threads): (u64, usize)| {
        runs.iter()
            .find(|r| r.round == round && r.accounts == accounts && r.threads == threads)
            .map(|r| r.ops_per_sec)
    };
    (0..rounds)
        .filter_map(|round| Some(find(round, num)? / find(round, den)?))
        .filter(|x| x.is_finite())
        .collect()
}

fn ratio(per_round: Vec<f64>, fields: Value) -> Value {
    let mut v = fields;
    v["median"] = json!(median(&per_round));
    v["per_round"] = json!(per_round);
    v
}

/// The summary of interleaved rounds: for each account count, the speedup from the fewest
/// to the most threads; for each thread count, each account count's throughput relative to
/// the smallest one's. Per round and the median.
pub(crate) fn summary(runs: &[Run], rounds: usize, accounts: &[u64], threads: &[usize]) -> Value {
    let (Some(&t_lo), Some(&t_hi)) = (threads.iter().min(), threads.iter().max()) else {
        return json!({"name": "transfers-rounds", "rounds": rounds});
    };
    let a_lo = accounts.iter().copied().min().unwrap_or(0);
    let speedups: Vec<Value> = if t_hi > t_lo {
        accounts
            .iter()
            .map(|&a| {
                ratio(
                    per_round(runs, rounds, (a, t_hi), (a, t_lo)),
                    json!({"accounts": a, "threads": [t_lo, t_hi]}),
                )
            })
            .collect()
    } else {
        Vec::new()
    };
    let scaling: Vec<Value> = threads
        .iter()
        .flat_map(|&th| {
            accounts.iter().filter(|&&a| a != a_lo).map(move |&a| {
                ratio(
                    per_round(runs, rounds, (a, th), (a_lo, th)),
                    json!({"threads": th, "accounts": a, "relative_to": a_lo}),
                )
            })
        })
        .collect();
    json!({
        "name": "transfers-rounds",
        "rounds": rounds,
        "speedups": speedups,
        "scaling": scaling,
    })
}

/// The summary in words (`bench` without `--json`).
pub(crate) fn describe(summary: &Value) -> String {
    let list = |v: &Value| -> String {
        v["per_round"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_f64)
                    .map(|x| format!("{x:.2}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default()
    };
    let median = |v: &Value| {
        v["median"]
            .as_f64()
            .map_or("-".into(), |m| format!("{m:.2}"))
    };
    let mut out = format!("{} interleaved rounds", summary["rounds"]);
    for s in summary["speedups"].as_array().into_iter().flatten() {
        out += &format!(
            "\n  {} accounts, {} → {} threads: speedup median {}x (rounds: {})",
            s["accounts"],
            s["threads"][0],
            s["threads"][1],
            median(s),
            list(s)
        );
    }
    for s in summary["scaling"].as_array().into_iter().flatten() {
        out += &format!(
            "\n  {} threads, {} / {} accounts: median {} (rounds: {})",
            s["threads"],
            s["accounts"],
            s["relative_to"],
            median(s),
            list(s)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_of_odd_even_and_empty_lists() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[f64::NAN, 5.0]), Some(5.0));
    }

    /// Ratios are taken within a round, never across rounds, and a round missing one side
    /// of a ratio gives no value for it.
    #[test]
    fn ratios_pair_runs_of_the_same_round() {
        let run = |round, accounts, threads, ops_per_sec| Run {
            round,
            accounts,
            threads,
            ops_per_sec,
        };
        let runs = [
            // Round 0: a slow host.
            run(0, 1_000, 1, 100.0),
            run(0, 1_000, 2, 170.0),
            run(0, 10_000, 1, 50.0),
            run(0, 10_000, 2, 90.0),
            // Round 1: the host twice as fast.
            run(1, 1_000, 1, 200.0),
            run(1, 1_000, 2, 360.0),
            run(1, 10_000, 1, 120.0),
            run(1, 10_000, 2, 180.0),
            // Round 2: the 10,000-account 2-thread run is missing.
            run(2, 1_000, 1, 100.0),
            run(2, 1_000, 2, 190.0),
            run(2, 10_000, 1, 60.0),
        ];
        let s = summary(&runs, 3, &[1_000, 10_000], &[1, 2]);
        let at = |v: &Value, i: usize| v["per_round"][i].as_f64().unwrap();
        let sp = &s["speedups"][0];
        assert_eq!(sp["accounts"], 1_000);
        assert_eq!((at(sp, 0), at(sp, 1), at(sp, 2)), (1.7, 1.8, 1.9));
        assert_eq!(sp["median"].as_f64(), Some(1.8));
        let sp = &s["speedups"][1];
        assert_eq!(sp["per_round"].as_array().unwrap().len(), 2);
        assert_eq!(sp["median"].as_f64(), Some((1.8 + 1.5) / 2.0));
        let sc = &s["scaling"];
        assert_eq!(sc.as_array().unwrap().len(), 2);
        assert_eq!(sc[0]["threads"], 1);
        assert_eq!(
            (at(&sc[0], 0), at(&sc[0], 1), at(&sc[0], 2)),
            (0.5, 0.6, 0.6)
        );
        assert_eq!(sc[1]["per_round"].as_array().unwrap().len(), 2);
        assert!(describe(&s).contains("speedup median 1.80x"));
    }
}
