//! `pullcheck scan`'s settings ([`ScanConfig`]): the webhook's engine settings (`--config`,
//! the registry flags) in enforce mode, and the cluster view's ([`ScanSettings`], shared
//! with the background scan of `serve`).

use std::time::Duration;

use super::args::{AdviceArgs, ScanArgs};
use super::file::FileConfig;
use super::resolved::{
    resolve_engine, ClusterConfig, EngineConfig, Flags, ScanSettings, SERVE_DEFAULTS,
};
use crate::engine::scan;
use crate::engine::{Mode, OwnedPods};

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
    use crate::config::args::ScanLimitArgs;
    use crate::config::resolved::DEFAULT_SCAN_INTERVAL;
    use crate::engine::scan::Limits;

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
