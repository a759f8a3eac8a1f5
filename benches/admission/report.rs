//! Report

use super::*;

#[derive(Default)]
pub(crate) struct Report {
    /// /proc/loadavg (1, 5, 15 min) when the benchmark started: others' work skews figures.
    pub(crate) load_before: String,
    pub(crate) warm: Option<Warm>,
    pub(crate) cold: Option<Cold>,
    pub(crate) coalescing: Option<Coalesced>,
    pub(crate) memory: Option<Memory>,
    pub(crate) versus: Option<Versus>,
}

impl Report {
    pub(crate) fn print(&self, total: Duration) {
        let mut out = String::new();
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|c| {
                c.lines()
                    .find(|l| l.starts_with("model name"))
                    .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
            })
            .unwrap_or_default();
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        out.push_str(&format!(
            "\n## pullcheck benchmark ({cores} cores, {cpu}; load generator on the same machine; load average at start: {})\n",
            self.load_before
        ));
        if let Some(w) = &self.warm {
            out.push_str(
                "\n### Warm path: Deployment CREATE, 2 images, pull secret via ServiceAccount, HTTP/2 + TLS\n\n\
                 | server | load | reviews/s | p50 | p99 | max | CPU per review | errors |\n|---|---|---|---|---|---|---|---|\n",
            );
            for (name, s, load) in [
                (
                    "minimal responder",
                    &w.minimal_closed,
                    format!("closed, {CLOSED_CONNECTIONS} conns × {CLOSED_STREAMS} streams, {CLOSED_ROUNDS} × {}s", CLOSED_FOR.as_secs()),
                ),
                (
                    "pullcheck serve",
                    &w.pullcheck_closed,
                    format!("closed, {CLOSED_CONNECTIONS} conns × {CLOSED_STREAMS} streams, {CLOSED_ROUNDS} × {}s", CLOSED_FOR.as_secs()),
                ),
                (
                    "minimal responder",
                    &w.minimal_open,
                    format!("open, {OPEN_RATE}/s"),
                ),
                (
                    "pullcheck serve",
                    &w.pullcheck_open,
                    format!("open, {OPEN_RATE}/s"),
                ),
            ] {
                out.push_str(&format!(
                    "| {name} | {load} | {:.0} | {} | {} | {} | {:.0} µs | {} |\n",
                    s.rate(),
                    ms(s.quantile(0.5)),
                    ms(s.quantile(0.99)),
                    ms(s.latencies
                        .last()
                        .map_or(Duration::ZERO, |&m| Duration::from_micros(m))),
                    s.cpu_per_review().as_secs_f64() * 1e6,
                    s.errors
                ));
            }
            let ratio = w.pullcheck_closed.rate() / w.minimal_closed.rate();
            out.push_str(&format!(
                "\npullcheck / minimal responder throughput: **{:.0}%** (rounds: {}; aim ≥ 90%); \
                 server CPU per review: {:.1}× the minimal responder's; p99 at {OPEN_RATE}/s: **{}** (aim < 5 ms). \
                 Registry requests during the warm runs: {}. pullcheck RSS after: {:.1} MiB.\n",
                ratio * 100.0,
                w.round_ratios
                    .iter()
                    .map(|r| format!("{:.0}%", r * 100.0))
                    .collect::<Vec<_>>()
                    .join(", "),
                w.pullcheck_closed.cpu_per_review().as_secs_f64()
                    / w.minimal_closed.cpu_per_review().as_secs_f64(),
                ms(w.pullcheck_open.quantile(0.99)),
                w.registry_requests,
                w.rss_kib as f64 / 1024.0
            ));
        }
        if let Some(c) = &self.cold {
            let (one, ten) = (median(&c.one), median(&c.ten));
            out.push_str(&format!(
                "\n### Cold path: registry and token service behind a proxy adding {} ms per request\n\n\
                 | review | latency (median of {}) | registry requests (last trial) |\n|---|---|---|\n\
                 | 1 image | {} | {} |\n| 10 distinct images | {} | {} |\n\n\
                 10 images / 1 image: **{:.2}×** (aim ≤ 1.5×).\n",
                PROXY_DELAY.as_millis(),
                c.one.len(),
                ms(one),
                c.one_counts.describe(),
                ms(ten),
                c.ten_counts.describe(),
                ten.as_secs_f64() / one.as_secs_f64()
            ));
        }
        if let Some(c) = &self.coalescing {
            out.push_str(&format!(
                "\n### Coalescing: {} concurrent reviews of one new image (+{} ms proxy)\n\n\
                 answered in {}; registry requests: **{}**; result cache: {}; API-server reads (Secret, ServiceAccount): {}; pullcheck RSS after: {:.1} MiB.\n",
                c.reviews,
                PROXY_DELAY.as_millis(),
                ms(c.wall),
                c.counts.describe(),
                c.cache_events,
                c.api_reads,
                c.rss_kib as f64 / 1024.0
            ));
        }
        if let Some(m) = &self.memory {
            out.push_str("\n### Memory: results cache + last-good cache (pullcheck::registry::cache::CachedRegistry), 100,000 distinct lookups, 3 credential sets\n\n| configuration | entries kept | RSS before | RSS after | growth | per entry |\n|---|---|---|---|---|---|\n");
            for (label, _, _, before, after, entries) in &m.rows {
                let growth = after.saturating_sub(*before);
                out.push_str(&format!(
                    "| {label} | {entries} | {:.1} MiB | {:.1} MiB | {:.1} MiB | {} |\n",
                    *before as f64 / 1024.0,
                    *after as f64 / 1024.0,
                    growth as f64 / 1024.0,
                    if *entries > 0 {
                        format!("{:.0} B", growth as f64 * 1024.0 / *entries as f64)
                    } else {
                        "–".into()
                    }
                ));
            }
        }
        if let Some(v) = &self.versus {
            out.push_str(&format!(
                "\n### Against a script: {} images (multi-platform, token auth, TLS) on the same local registry ({})\n\n\
                 | what | wall time | registry requests | all ok |\n|---|---|---|---|\n",
                v.images, v.skopeo_version
            ));
            for (what, wall, c, ok) in &v.rows {
                out.push_str(&format!(
                    "| {what} | {} | {} | {} |\n",
                    ms(*wall),
                    c.describe(),
                    if *ok { "yes" } else { "NO" }
                ));
            }
        }
        out.push_str(&format!(
            "\n(benchmark took {:.0} s)\n",
            total.as_secs_f64()
        ));
        println!("{out}");
    }
}
