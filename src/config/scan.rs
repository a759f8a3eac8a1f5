//! The cluster view's settings: `pullcheck scan`'s ([`ScanConfig`]) and the background
//! scan's of `serve` ([`ScanSettings`]), flags over the YAML file's `scan:` over defaults.

use std::time::Duration;

use anyhow::bail;

use super::args::{AdviceArgs, ScanArgs, ScanLimitArgs};
use super::file::FileConfig;
use super::resolved::{resolve_engine, ClusterConfig, EngineConfig, Flags, SERVE_DEFAULTS};
use crate::engine::scan::metrics::DEFAULT_MAX_SERIES;
use crate::engine::scan::{self, Limits};
use crate::engine::{Mode, OwnedPods};

/// Default time between background scans.
pub const DEFAULT_SCAN_INTERVAL: Duration = Duration::from_secs(600);

/// How the cluster is scanned.
#[derive(Clone, Debug, PartialEq)]
pub struct ScanSettings {
    /// Between background scans of `serve`; zero: none.
    pub interval: Duration,
    /// Per registry host.
    pub registry: Limits,
    /// Most series of `pullcheck_workload_images`.
    pub max_series: usize,
}

impl ScanSettings {
    /// Flags over `scan:` over defaults, each checked.
    pub fn resolve(
        file: &FileConfig,
        limits: &ScanLimitArgs,
        interval: Option<Duration>,
        max_series: Option<usize>,
    ) -> anyhow::Result<Self> {
        let d = Limits::default();
        let concurrency = limits
            .scan_registry_concurrency
            .or(file.scan.registry_concurrency)
            .unwrap_or(d.concurrency);
        let rate = limits
            .scan_registry_rate
            .or(file.scan.registry_rate)
            .unwrap_or(d.rate);
        if concurrency == 0 {
            bail!("--scan-registry-concurrency (scan.registryConcurrency) must be at least 1");
        }
        if !(rate.is_finite() && rate > 0.0) {
            bail!("--scan-registry-rate (scan.registryRate) must be a positive number of resolutions per second, not {rate}");
        }
        Ok(Self {
            interval: interval
                .or(file.scan.interval)
                .unwrap_or(DEFAULT_SCAN_INTERVAL),
            registry: Limits { concurrency, rate },
            max_series: max_series
                .or(file.scan.max_series)
                .unwrap_or(DEFAULT_MAX_SERIES),
        })
    }
}

/// Everything `pullcheck scan` needs, resolved.
#[derive(Debug)]
pub struct ScanConfig {
    pub engine: EngineConfig,
    pub cluster: ClusterConfig,
    pub scan: ScanSettings,
    pub run: scan::Settings,
}

impl ScanConfig {
    /// The webhook's settings (`--config`: exemptions, actions, registries), enforce mode:
    /// a finding the webhook would deny fails the scan.
    pub fn resolve(args: &ScanArgs) -> anyhow::Result<Self> {
        let file = match &args.config {
            Some(p) => FileConfig::load(p)?,
            None => FileConfig::default(),
        };
        let flags = Flags {
            config: args.config.as_deref(),
            registry: &args.registry,
            default_mode: Some(Mode::Enforce),
            owned_pods: Some(OwnedPods::Check),
            concurrency: None,
            // Advice is admission's and check's; a scan reports findings and stuck Pods.
            advice: &AdviceArgs::default(),
        };
        let engine = resolve_engine(&file, &flags, SERVE_DEFAULTS)?;
        let scan = ScanSettings::resolve(&file, &args.scan, None, None)?;
        Ok(Self {
            engine,
            cluster: ClusterConfig::Discover {
                secret_ttl: file.cluster.secret_ttl.unwrap_or(Duration::from_secs(10)),
                negative_ttl: file.cluster.negative_ttl.unwrap_or(Duration::from_secs(1)),
            },
            scan,
            run: scan::Settings {
                namespaces: args.namespaces.clone(),
                concurrency: args.concurrency.max(1),
                timeout: args.timeout,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_file_and_bad_limits_are_refused() {
        let file = FileConfig::parse("scan:\n  interval: 1m\n  registryRate: 2\n  maxSeries: 5\n")
            .unwrap();
        let s = ScanSettings::resolve(&file, &ScanLimitArgs::default(), None, None).unwrap();
        assert_eq!(s.interval, Duration::from_secs(60));
        assert_eq!(
            s.registry,
            Limits {
                concurrency: 4,
                rate: 2.0
            }
        );
        assert_eq!(s.max_series, 5);
        let flags = ScanLimitArgs {
            scan_registry_concurrency: Some(1),
            scan_registry_rate: Some(0.5),
        };
        let s = ScanSettings::resolve(&file, &flags, Some(Duration::ZERO), Some(7)).unwrap();
        assert_eq!(
            (
                s.interval,
                s.registry.concurrency,
                s.registry.rate,
                s.max_series
            ),
            (Duration::ZERO, 1, 0.5, 7)
        );
        let d = ScanSettings::resolve(
            &FileConfig::default(),
            &ScanLimitArgs::default(),
            None,
            None,
        )
        .unwrap();
        assert_eq!(d.interval, DEFAULT_SCAN_INTERVAL);
        for bad in [
            ScanLimitArgs {
                scan_registry_concurrency: Some(0),
                scan_registry_rate: None,
            },
            ScanLimitArgs {
                scan_registry_concurrency: None,
                scan_registry_rate: Some(0.0),
            },
            ScanLimitArgs {
                scan_registry_concurrency: None,
                scan_registry_rate: Some(f64::NAN),
            },
        ] {
            assert!(
                ScanSettings::resolve(&file, &bad, None, None).is_err(),
                "{bad:?}"
            );
        }
        assert!(FileConfig::parse("scan: {intervl: 1m}").is_err());
    }
}
