//! On-disk cache for `pullcheck check --cache-dir`: good resolutions (reused for the
//! positive TTL), digest platforms and platform-manifest sizes (content-addressed: kept),
//! so repeated CI runs do not ask the registries again. Only good answers are stored: a failure is always re-checked.
//!
//! Entries are keyed by a keyed hash of canonical reference and credentials (the key is a
//! random secret in the cache directory, mode 0600): the file never holds credentials or
//! anything they could be guessed from without that key, and answers obtained with one set
//! of credentials are never served to another.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Context as _};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::kubelet::credentials::Credential;
use crate::kubelet::reference::ImageRef;
use crate::registry::{ImagePlatforms, Registry, RegistryError, Resolved};

const FILE: &str = "pullcheck-cache.json";
const KEY_FILE: &str = "pullcheck-cache.key";
/// 2: platforms carry their entries' manifest digests and sizes (version 1 files are
/// dropped once: their indexes would never learn sizes).
const VERSION: u32 = 2;
/// Most results kept; the oldest go first.
const MAX_RESULTS: usize = 100_000;
/// Largest cache file read (100,000 results and their platforms fit many times over).
const MAX_FILE_BYTES: u64 = 256 << 20;

#[derive(Default, Serialize, Deserialize)]
struct State {
    version: u32,
    /// keyed hash → (digest, unix seconds stored)
    results: BTreeMap<String, (String, u64)>,
    /// digest → platforms
    platforms: BTreeMap<String, ImagePlatforms>,
    /// platform manifest digest → compressed size (`None`: not one image)
    #[serde(default)]
    sizes: BTreeMap<String, Option<u64>>,
}

/// A [`Registry`] that answers from the disk first.
pub struct DiskCache {
    inner: Arc<dyn Registry>,
    dir: PathBuf,
    secret: [u8; 32],
    ttl: Duration,
    state: Mutex<State>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl DiskCache {
    /// Opens (or creates) the cache in `dir`. A missing, corrupt or older file is an empty
    /// cache, not an error; an unusable directory is.
    pub fn open(dir: &Path, inner: Arc<dyn Registry>, ttl: Duration) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create cache directory {}", dir.display()))?;
        let secret = load_or_create_key(&dir.join(KEY_FILE))?;
        let state = crate::files::read_small(&dir.join(FILE), MAX_FILE_BYTES)
            .and_then(|b| serde_json::from_slice::<State>(&b).ok())
            .filter(|s| s.version == VERSION)
            .unwrap_or_default();
        Ok(Self {
            inner,
            dir: dir.to_path_buf(),
            secret,
            ttl,
            state: Mutex::new(state),
        })
    }

    /// Digest platforms known on disk (to preload the registry client's cache).
    pub fn known_platforms(&self) -> Vec<(String, Arc<ImagePlatforms>)> {
        self.state
            .lock()
            .map(|s| {
                s.platforms
                    .iter()
                    .map(|(d, p)| (d.clone(), Arc::new(p.clone())))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Writes the cache (expired results dropped), atomically.
    pub fn save(&self) -> Result<(), String> {
        let json = {
            let mut state = self.state.lock().map_err(|_| "cache state poisoned")?;
            let oldest = now().saturating_sub(self.ttl.as_secs());
            state.results.retain(|_, (_, at)| *at >= oldest);
            if state.results.len() > MAX_RESULTS {
                let mut ages: Vec<u64> = state.results.values().map(|(_, at)| *at).collect();
                ages.sort_unstable();
                let cut = ages[state.results.len() - MAX_RESULTS];
                state.results.retain(|_, (_, at)| *at >= cut);
            }
            state.version = VERSION;
            serde_json::to_vec(&*state).map_err(|e| e.to_string())?
        };
        write_private(&self.dir.join(FILE), &json)
            .map_err(|e| format!("cannot write cache in {}: {e}", self.dir.display()))
    }

    fn key(&self, image: &ImageRef, credential: Option<&Credential>) -> String {
        let mut h = Sha256::new();
        h.update(self.secret);
        h.update(image.canonical().as_bytes());
        h.update([0]);
        match credential {
            None => h.update(b"anonymous"),
            Some(c) => {
                for part in [c.username(), c.password()] {
                    h.update((part.len() as u64).to_be_bytes());
                    h.update(part.as_bytes());
                }
            }
        }
        crate::text::hex(&h.finalize())
    }
}

fn load_or_create_key(path: &Path) -> anyhow::Result<[u8; 32]> {
    if let Some(bytes) = crate::files::read_small(path, 64) {
        if let Ok(key) = <[u8; 32]>::try_from(bytes.as_slice()) {
            return Ok(key);
        }
    }
    let mut key = [0u8; 32];
    // getrandom::Error is not a std error without its "std" feature.
    getrandom::fill(&mut key).map_err(|e| anyhow!("no randomness for the cache key: {e}"))?;
    write_private(path, &key).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(key)
}

/// Writes `path` atomically through a new file (never through a link planted at either
/// name: `create_new` refuses to open an existing name, `rename` replaces a link itself).
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}.tmp", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
        .open(&tmp)?
        .write_all(bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
}

#[async_trait]
impl Registry for DiskCache {
    async fn resolve(
        &self,
        image: &ImageRef,
        credential: Option<&Credential>,
    ) -> Result<Resolved, RegistryError> {
        let key = self.key(image, credential);
        let cached = self.state.lock().ok().and_then(|s| {
            let (digest, at) = s.results.get(&key)?;
            if now().saturating_sub(*at) > self.ttl.as_secs() {
                return None;
            }
            let platforms = s.platforms.get(digest)?;
            Some(Resolved {
                digest: digest.clone(),
                platforms: Arc::new(platforms.clone()),
            })
        });
        if let Some(r) = cached {
            return Ok(r);
        }
        let resolved = self.inner.resolve(image, credential).await?;
        if let Ok(mut s) = self.state.lock() {
            s.results.insert(key, (resolved.digest.clone(), now()));
            s.platforms
                .insert(resolved.digest.clone(), (*resolved.platforms).clone());
        }
        Ok(resolved)
    }

    async fn image_size(
        &self,
        image: &ImageRef,
        credential: Option<&Credential>,
        digest: &str,
    ) -> Result<Option<u64>, RegistryError> {
        let known = self
            .state
            .lock()
            .ok()
            .and_then(|s| s.sizes.get(digest).copied());
        if let Some(size) = known {
            return Ok(size);
        }
        let size = self.inner.image_size(image, credential, digest).await?;
        if let Ok(mut s) = self.state.lock() {
            s.sizes.insert(digest.to_owned(), size);
        }
        Ok(size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kubelet::platform::Platform;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Counting(AtomicUsize);

    #[async_trait]
    impl Registry for Counting {
        async fn resolve(
            &self,
            _: &ImageRef,
            _: Option<&Credential>,
        ) -> Result<Resolved, RegistryError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(Resolved {
                digest: format!("sha256:{}", "1".repeat(64)),
                platforms: Arc::new(ImagePlatforms {
                    is_index: false,
                    platforms: vec![Platform::new("linux", "amd64", None)],
                    ..ImagePlatforms::default()
                }),
            })
        }

        async fn image_size(
            &self,
            _: &ImageRef,
            _: Option<&Credential>,
            digest: &str,
        ) -> Result<Option<u64>, RegistryError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(Some(digest.len() as u64))
        }
    }

    #[tokio::test]
    async fn sizes_are_kept_on_disk_by_digest() {
        let dir = tempfile::tempdir().unwrap();
        let img = ImageRef::parse("r.example/a:1").unwrap();
        let digest = format!("sha256:{}", "2".repeat(64));
        let inner = Arc::new(Counting(AtomicUsize::new(0)));
        let c = DiskCache::open(dir.path(), inner.clone(), Duration::from_secs(300)).unwrap();
        assert_eq!(c.image_size(&img, None, &digest).await, Ok(Some(71)));
        c.save().unwrap();
        let c2 = DiskCache::open(dir.path(), inner.clone(), Duration::from_secs(300)).unwrap();
        let alice = Credential::new("alice", "pw");
        assert_eq!(
            c2.image_size(&img, Some(&alice), &digest).await,
            Ok(Some(71))
        );
        assert_eq!(
            inner.0.load(Ordering::SeqCst),
            1,
            "content-addressed: asked once"
        );
    }

    #[tokio::test]
    async fn second_run_answers_from_disk_per_credential() {
        let dir = tempfile::tempdir().unwrap();
        let img = ImageRef::parse("r.example/a:1").unwrap();
        let alice = Credential::new("alice", "s3cret-pw");
        let inner = Arc::new(Counting(AtomicUsize::new(0)));
        let c = DiskCache::open(dir.path(), inner.clone(), Duration::from_secs(300)).unwrap();
        c.resolve(&img, Some(&alice)).await.unwrap();
        c.save().unwrap();
        let file = std::fs::read_to_string(dir.path().join(FILE)).unwrap();
        assert!(
            !file.contains("alice") && !file.contains("s3cret"),
            "{file}"
        );

        let inner2 = Arc::new(Counting(AtomicUsize::new(0)));
        let c2 = DiskCache::open(dir.path(), inner2.clone(), Duration::from_secs(300)).unwrap();
        c2.resolve(&img, Some(&alice)).await.unwrap();
        assert_eq!(inner2.0.load(Ordering::SeqCst), 0, "served from disk");
        c2.resolve(&img, None).await.unwrap();
        assert_eq!(
            inner2.0.load(Ordering::SeqCst),
            1,
            "other credentials: asked again"
        );
        assert_eq!(c2.known_platforms().len(), 1);
    }

    #[tokio::test]
    async fn planted_links_and_fifos_are_neither_followed_nor_waited_for() {
        use std::os::unix::fs::symlink;
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        let cache = dir.path().join("cache");
        std::fs::create_dir(&cache).unwrap();
        symlink(&victim, cache.join(KEY_FILE)).unwrap();
        symlink(&victim, cache.join(FILE)).unwrap();
        let fifo = std::process::Command::new("mkfifo")
            .arg(cache.join(format!("{FILE}.{}.tmp", std::process::id())))
            .status()
            .expect("mkfifo runs");
        assert!(fifo.success());
        let inner = Arc::new(Counting(AtomicUsize::new(0)));
        let c = DiskCache::open(&cache, inner, Duration::from_secs(60)).unwrap();
        c.save().unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert!(std::fs::symlink_metadata(cache.join(KEY_FILE))
            .unwrap()
            .is_file());
        assert!(std::fs::symlink_metadata(cache.join(FILE))
            .unwrap()
            .is_file());

        // A FIFO or a device as the cache file is an empty cache, at once.
        std::fs::remove_file(cache.join(FILE)).unwrap();
        symlink("/dev/zero", cache.join(FILE)).unwrap();
        let inner = Arc::new(Counting(AtomicUsize::new(0)));
        DiskCache::open(&cache, inner, Duration::from_secs(60)).unwrap();
    }

    #[tokio::test]
    async fn expired_and_corrupt_entries_are_not_used() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE), b"{garbage").unwrap();
        let img = ImageRef::parse("r.example/a:1").unwrap();
        let inner = Arc::new(Counting(AtomicUsize::new(0)));
        let c = DiskCache::open(dir.path(), inner.clone(), Duration::ZERO).unwrap();
        c.resolve(&img, None).await.unwrap();
        c.save().unwrap();
        let c2 = DiskCache::open(dir.path(), inner.clone(), Duration::ZERO).unwrap();
        tokio::time::sleep(Duration::from_millis(1100)).await;
        c2.resolve(&img, None).await.unwrap();
        assert_eq!(inner.0.load(Ordering::SeqCst), 2);
    }
}
