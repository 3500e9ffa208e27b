//! Prometheus text exposition (format 0.0.4) for the `/metrics` endpoints of the L2 node,
//! the mining proxy and the share tap, through the `prometheus` crate: names, label
//! escaping and number formats are its, not hand-written text.
//!
//! rexe's figures live in its own structures (the chain's statistics, the harvester's and
//! the tap's counters), so a scrape reads them at that moment into a fresh registry
//! ([`Scrape`]) and renders it; nothing is registered globally. A family with no samples
//! (a labelled counter nothing has counted yet) is left out, as the crate does.

use prometheus::core::{Collector, MetricVec, MetricVecBuilder};
use prometheus::{Counter, CounterVec, Encoder as _, Gauge, GaugeVec, Opts, Registry};

/// The `Content-Type` of the rendered text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// One scrape: metrics added with their current values, then [`Scrape::render`]ed.
pub struct Scrape {
    registry: Registry,
}

impl Default for Scrape {
    fn default() -> Self {
        Scrape::new()
    }
}

impl Scrape {
    /// An empty scrape.
    pub fn new() -> Self {
        Scrape {
            registry: Registry::new(),
        }
    }

    fn register(&self, c: impl Collector + 'static) {
        // Names are constants of the code; a bad or repeated one is a bug worth a log line,
        // not a failed scrape.
        if let Err(e) = self.registry.register(Box::new(c)) {
            tracing::error!(error = %e, "metric not exported");
        }
    }

    /// A gauge: a value that goes up and down.
    pub fn gauge(&mut self, name: &str, help: &str, value: f64) -> &mut Self {
        if let Ok(g) = Gauge::with_opts(Opts::new(name, help)) {
            g.set(value);
            self.register(g);
        }
        self
    }

    /// A counter: a total since start (never negative; a negative value counts as 0).
    pub fn counter(&mut self, name: &str, help: &str, value: f64) -> &mut Self {
        if let Ok(c) = Counter::with_opts(Opts::new(name, help)) {
            c.inc_by(value.max(0.0));
            self.register(c);
        }
        self
    }

    /// A gauge per label set: `rows` pairs the values of `labels` (in that order) with a
    /// value.
    pub fn gauges<'a>(
        &mut self,
        name: &str,
        help: &str,
        labels: &[&str],
        rows: impl IntoIterator<Item = (Vec<&'a str>, f64)>,
    ) -> &mut Self {
        self.family(
            GaugeVec::new(Opts::new(name, help), labels),
            rows,
            |g, v| g.set(v),
        )
    }

    /// A counter per label set, as [`Scrape::gauges`].
    pub fn counters<'a>(
        &mut self,
        name: &str,
        help: &str,
        labels: &[&str],
        rows: impl IntoIterator<Item = (Vec<&'a str>, f64)>,
    ) -> &mut Self {
        self.family(
            CounterVec::new(Opts::new(name, help), labels),
            rows,
            |c, v| c.inc_by(v.max(0.0)),
        )
    }

    /// Fills a labelled family row by row with `set`, then registers it.
    fn family<'a, P: MetricVecBuilder + 'static>(
        &mut self,
        family: prometheus::Result<MetricVec<P>>,
        rows: impl IntoIterator<Item = (Vec<&'a str>, f64)>,
        set: impl Fn(&P::M, f64),
    ) -> &mut Self {
        if let Ok(f) = family {
            for (values, v) in rows {
                if let Ok(m) = f.get_metric_with_label_values(&values) {
                    set(&m, v);
                }
            }
            self.register(f);
        }
        self
    }

    /// The exposition text, families sorted by name.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        if let Err(e) = prometheus::TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "rendering metrics");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_help_type_samples_and_escaped_labels() {
        let mut s = Scrape::new();
        s.gauge("rexe_tip_height", "Height of the tip.", 42.0)
            .counter("rexe_blocks_total", "Blocks.", 7.0)
            .counter("rexe_negative_total", "Clamped.", -3.0)
            .gauges(
                "rexe_shard_fee",
                "Fee per shard.",
                &["shard"],
                [(vec!["0"], 1.5), (vec!["1"], 2.0)],
            )
            .counters(
                "rexe_rejected_total",
                "Refusals.",
                &["reason"],
                [(vec!["bad \"pow\"\nx\\y"], 3.0)],
            )
            .counters("rexe_empty_total", "Nothing yet.", &["reason"], []);
        let t = s.render();
        assert!(t.contains("# HELP rexe_tip_height Height of the tip.\n# TYPE rexe_tip_height gauge\nrexe_tip_height 42\n"), "{t}");
        assert!(
            t.contains("# TYPE rexe_blocks_total counter\nrexe_blocks_total 7\n"),
            "{t}"
        );
        assert!(t.contains("rexe_negative_total 0\n"), "{t}");
        assert!(t.contains("rexe_shard_fee{shard=\"0\"} 1.5\n"), "{t}");
        assert!(t.contains("rexe_shard_fee{shard=\"1\"} 2\n"), "{t}");
        assert!(
            t.contains(r#"rexe_rejected_total{reason="bad \"pow\"\nx\\y"} 3"#),
            "{t}"
        );
        assert!(!t.contains("rexe_empty_total"), "{t}");
    }

    #[test]
    fn a_bad_name_is_left_out_not_a_panic() {
        let mut s = Scrape::new();
        s.gauge("bad name", "x", 1.0)
            .gauge("rexe_ok", "x", 1.0)
            .gauge("rexe_ok", "twice", 2.0)
            .gauges("rexe_labels", "x", &["a"], [(vec!["1", "2"], 1.0)]);
        let t = s.render();
        assert!(t.contains("rexe_ok 1\n"), "{t}");
        assert!(!t.contains("bad name") && !t.contains("twice"), "{t}");
    }
}
