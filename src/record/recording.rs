//! Recording: while a show is live, the HLS segments its main rendition already makes are
//! written to `DATA/recordings/{id}/`, with a playlist that grows as an `EVENT` playlist and
//! becomes one `VOD` playlist when the show ends.
//!
//! A recording holds its studio's HLS running ([`HlsStream::hold`]); it reads the published
//! windows on a task of its own and writes with async file calls, so the streaming threads
//! never wait on the disk. Every segment first takes its room from the disk budget: the oldest
//! recordings (never one being written) are deleted to make it, and when nothing is left to
//! delete the recording stops with that reason, before anything is written. Recordings older
//! than the retention are deleted too. Each deletion is logged.
//!
//! With an object store ([`Archive`], `recording_store`), each segment is uploaded once it is
//! written, off the recording's own loop, and deleted from the disk once the store has it; the
//! finished playlist follows. The disk then only holds what is still on its way, and whatever
//! the store refused: that stays on disk, in the budget, and is served from there.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use super::archive::Archive;
use crate::store::Store;
use crate::store::recordings::{IN_OBJECT_STORE, RecordingRow};
use fieldcast_core::ids::random_hex;
use fieldcast_core::time::now_ms;
use fieldcast_engine::hls::playlist::{self, RecordedSegment};
use fieldcast_engine::media::Rendition;
use fieldcast_engine::studio::StudioHandle;

/// A recording's playlist, in its folder.
pub const PLAYLIST: &str = "index.m3u8";
/// `EXT-X-TARGETDURATION` while a recording grows: segments are cut each second on the
/// encoder's grid; one that missed the grid (a publisher's change) is a little longer.
const GROWING_TARGET: u64 = 4;
/// How often recordings past the retention are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(3600);
/// Uploads that fail in a row before a recording stops trying the object store (what is left
/// stays on disk).
const UPLOAD_FAILURES_TO_GIVE_UP: u32 = 3;

/// A segment's file name in its recording's folder.
pub fn segment_file(n: usize) -> String {
    format!("seg{n:06}.ts")
}

/// Whether `name` is a file a recording's folder holds (the only names served).
pub fn is_recording_file(name: &str) -> bool {
    name == PLAYLIST
        || (name.len() == 12
            && name.starts_with("seg")
            && name.ends_with(".ts")
            && name[3..9].bytes().all(|b| b.is_ascii_digit()))
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct RecorderCounters {
    pub segments: AtomicU64,
    pub bytes: AtomicU64,
    /// Recordings deleted to keep to the disk budget, and past the retention.
    pub deleted_for_budget: AtomicU64,
    pub deleted_for_age: AtomicU64,
    /// Recordings stopped because the budget had no room left, or a write failed.
    pub stopped: AtomicU64,
    /// Files uploaded to the object store, and uploads that failed (their files stay on disk).
    pub uploaded: AtomicU64,
    pub upload_failures: AtomicU64,
}

struct Budget {
    /// Bytes of every recording whose files exist.
    used: u64,
    /// Recordings being written now, with their progress: never deleted to make room.
    active: HashMap<String, Progress>,
}

/// A recording's segments, bytes and duration so far. Kept in memory while it grows and
/// written to the database once, when it ends: a write per segment would compete with the
/// ledger for the database's one writer, which a slow disk turns into refused orders.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    pub segments: i64,
    pub bytes: i64,
    pub duration_ms: i64,
}

pub struct Recorder {
    dir: PathBuf,
    store: Arc<Store>,
    budget_bytes: u64,
    retention: Duration,
    budget: Mutex<Budget>,
    archive: Option<Arc<Archive>>,
    pub counters: RecorderCounters,
}

/// What a recording's files on disk take, in bytes (none when it has no folder).
fn size_on_disk(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

impl Recorder {
    /// Opens `dir`: recordings a stopped server left growing are closed where their files
    /// end, and what the kept ones take on disk is counted.
    pub fn open(
        dir: PathBuf,
        store: Arc<Store>,
        budget_bytes: u64,
        retention: Duration,
        archive: Option<Archive>,
    ) -> anyhow::Result<Arc<Self>> {
        std::fs::create_dir_all(&dir)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
        for id in store.close_interrupted_recordings()? {
            let path = dir.join(&id).join(PLAYLIST);
            if let Ok(mut file) = std::fs::OpenOptions::new().append(true).open(&path) {
                use std::io::Write;
                let _ = file.write_all(playlist::ENDLIST.as_bytes());
            }
            let mut p = progress_of(&std::fs::read_to_string(&path).unwrap_or_default());
            p.bytes = size_on_disk(&dir.join(&id)) as i64;
            store.update_recording_progress(&id, p.segments, p.bytes, p.duration_ms)?;
            tracing::warn!(recording.id = %id, "a recording was cut short by a server stop; it ends where its files end");
        }
        let used = store
            .kept_recordings()?
            .iter()
            .map(|r| size_on_disk(&dir.join(&r.id)))
            .sum();
        Ok(Arc::new(Self {
            dir,
            store,
            budget_bytes,
            retention,
            budget: Mutex::new(Budget {
                used,
                active: HashMap::new(),
            }),
            archive: archive.map(Arc::new),
            counters: RecorderCounters::default(),
        }))
    }

    /// The object store recordings move to, if one is configured.
    pub fn archive(&self) -> Option<&Arc<Archive>> {
        self.archive.as_ref()
    }

    /// Logs whether the object store answers (once, at start).
    pub fn spawn_archive_check(&self) {
        let Some(archive) = self.archive.clone() else {
            return;
        };
        tokio::spawn(async move {
            match archive.check().await {
                Ok(()) => {
                    tracing::info!(store = archive.url(), "recordings move to the object store")
                }
                Err(e) => {
                    tracing::error!(error = %e, "the object store does not answer; while it fails, recordings stay on disk")
                }
            }
        });
    }

    fn budget(&self) -> std::sync::MutexGuard<'_, Budget> {
        self.budget.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A growing recording's progress (the database has it once the recording ends).
    pub fn progress(&self, recording_id: &str) -> Option<Progress> {
        self.budget().active.get(recording_id).copied()
    }

    /// Bytes all kept recordings take.
    pub fn used(&self) -> u64 {
        self.budget().used
    }

    pub fn budget_bytes(&self) -> u64 {
        self.budget_bytes
    }

    /// A file of a recording, if `name` is one a recording holds.
    pub fn file(&self, recording_id: &str, name: &str) -> Option<PathBuf> {
        let id_ok = !recording_id.is_empty()
            && recording_id.len() <= 32
            && recording_id.bytes().all(|b| b.is_ascii_hexdigit());
        (id_ok && is_recording_file(name)).then(|| self.dir.join(recording_id).join(name))
    }

    /// Records a show from now until its studio stops.
    pub fn start(self: &Arc<Self>, session_id: &str, studio: StudioHandle) {
        let recorder = self.clone();
        let session_id = session_id.to_string();
        tokio::spawn(async move {
            if let Err(e) = recorder.record(&session_id, studio).await {
                tracing::error!(session.id = %session_id, error = %e, "the recording failed");
            }
        });
    }

    /// Deletes recordings past the retention now, then every hour.
    pub fn spawn_sweeper(self: &Arc<Self>) {
        let recorder = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SWEEP_EVERY);
            loop {
                tick.tick().await;
                recorder.sweep().await;
            }
        });
    }

    /// Deletes the recordings that ended longer than the retention ago, on disk and in the
    /// object store.
    pub async fn sweep(&self) {
        let oldest = now_ms() - self.retention.as_millis() as i64;
        let Ok(kept) = self.store.kept_recordings() else {
            return;
        };
        for r in kept {
            let ended = r.ended_at.unwrap_or(r.started_at);
            if ended < oldest && !self.budget().active.contains_key(&r.id) {
                self.delete(&r, "older than the retention").await;
                self.counters
                    .deleted_for_age
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    async fn delete(&self, r: &RecordingRow, why: &str) {
        let dir = self.dir.join(&r.id);
        let on_disk = {
            let dir = dir.clone();
            tokio::task::spawn_blocking(move || size_on_disk(&dir))
                .await
                .unwrap_or(0)
        };
        if let Err(e) = tokio::fs::remove_dir_all(&dir).await
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::error!(recording.id = %r.id, error = %e, "could not delete a recording's files");
            return;
        }
        if let Some(archive) = &self.archive {
            // What was uploaded goes too; if the store refuses, the row still says deleted
            // (the disk's room is what the budget needs), and the log names what is left.
            if let Err(e) = archive.delete(&r.id).await {
                tracing::error!(recording.id = %r.id, error = %e, "could not delete a recording's files in the object store; they are left there");
            }
        }
        if let Err(e) = self
            .store
            .set_recording_state(&r.id, "deleted", Some(why), None)
        {
            tracing::error!(recording.id = %r.id, error = %e, "could not mark a recording deleted");
        }
        let mut budget = self.budget();
        budget.used = budget.used.saturating_sub(on_disk);
        tracing::warn!(recording.id = %r.id, session.id = %r.session_id, bytes = r.bytes, bytes_on_disk = on_disk, used = budget.used, "recording deleted: {why}");
    }

    /// Gives back room on disk that a recording no longer takes.
    fn release(&self, bytes: u64) {
        let mut budget = self.budget();
        budget.used = budget.used.saturating_sub(bytes);
    }

    /// Takes room for `bytes` more of a recording, deleting the oldest other recordings on
    /// disk as needed. False when even that leaves no room.
    async fn make_room(&self, bytes: u64) -> bool {
        loop {
            let oldest = {
                let budget = self.budget();
                if budget.used + bytes <= self.budget_bytes {
                    drop(budget);
                    self.budget().used += bytes;
                    return true;
                }
                let Ok(kept) = self.store.kept_recordings() else {
                    return false;
                };
                let on_disk = |r: &RecordingRow| {
                    r.place != IN_OBJECT_STORE && !budget.active.contains_key(&r.id)
                };
                match kept.into_iter().find(on_disk) {
                    Some(r) => r,
                    None => return false,
                }
            };
            self.delete(&oldest, "the disk budget needed its room")
                .await;
            self.counters
                .deleted_for_budget
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    async fn record(
        self: &Arc<Self>,
        session_id: &str,
        studio: StudioHandle,
    ) -> anyhow::Result<()> {
        let hold = studio.hls.hold();
        let mut windows = hold.stream().track(Rendition::Main).subscribe();
        let id = random_hex(8);
        let dir = self.dir.join(&id);
        tokio::fs::create_dir_all(&dir).await?;
        let mut row = RecordingRow {
            id: id.clone(),
            session_id: session_id.to_string(),
            started_at: now_ms(),
            ended_at: None,
            segments: 0,
            bytes: 0,
            duration_ms: 0,
            state: "recording".into(),
            reason: None,
            place: "disk".into(),
        };
        {
            let (store, row) = (self.store.clone(), row.clone());
            tokio::task::spawn_blocking(move || store.insert_recording(&row)).await??;
        }
        self.budget().active.insert(id.clone(), Progress::default());
        tracing::info!(session.id = %session_id, recording.id = %id, "recording starts");
        let uploads = self.archive.clone().map(|archive| {
            let (to_upload, queue) = tokio::sync::mpsc::unbounded_channel();
            let uploader = tokio::spawn(self.clone().upload(archive, id.clone(), queue));
            (to_upload, uploader)
        });

        let mut grown = tokio::fs::File::create(dir.join(PLAYLIST)).await?;
        grown
            .write_all(playlist::recording_head(GROWING_TARGET, false).as_bytes())
            .await?;
        let mut segments: Vec<RecordedSegment> = Vec::new();
        // The last segment written: its run and media sequence number.
        let mut last: Option<(u64, u64)> = None;
        let mut duration = Duration::ZERO;
        let stop: Option<String> = 'show: loop {
            tokio::select! {
                changed = windows.changed() => {
                    if changed.is_err() {
                        break 'show None;
                    }
                }
                _ = studio.stopped() => break 'show None,
            }
            let window = windows.borrow_and_update().clone();
            for s in &window.segments {
                let Some(whole) = &s.whole else { continue };
                let new = match last {
                    Some((epoch, msn)) => window.epoch != epoch || s.msn > msn,
                    None => true,
                };
                if !new {
                    continue;
                }
                let follows =
                    last.is_some_and(|(epoch, msn)| epoch == window.epoch && s.msn == msn + 1);
                if last.is_some() && !follows {
                    tracing::warn!(recording.id = %id, "the recording skips: HLS restarted or the writer fell behind");
                }
                last = Some((window.epoch, s.msn));
                let bytes = whole.bytes.len() as u64;
                if !self.make_room(bytes).await {
                    break 'show Some(format!(
                        "the disk budget ({} MB) is full of recordings being written",
                        self.budget_bytes >> 20
                    ));
                }
                let segment = RecordedSegment {
                    uri: segment_file(segments.len()),
                    duration: whole.duration,
                    started: s.started,
                    discontinuity: !segments.is_empty() && !follows,
                };
                if let Err(e) = tokio::fs::write(dir.join(&segment.uri), &whole.bytes).await {
                    let mut budget = self.budget();
                    budget.used = budget.used.saturating_sub(bytes);
                    drop(budget);
                    break 'show Some(format!("writing {}: {e}", segment.uri));
                }
                let mut line = String::new();
                playlist::recorded_segment(&mut line, &segment);
                if let Err(e) = grown.write_all(line.as_bytes()).await {
                    break 'show Some(format!("writing the playlist: {e}"));
                }
                duration += whole.duration;
                row.segments += 1;
                row.bytes += bytes as i64;
                row.duration_ms = duration.as_millis() as i64;
                if let Some((to_upload, _)) = &uploads {
                    let _ = to_upload.send((segment.uri.clone(), bytes));
                }
                segments.push(segment);
                self.counters.segments.fetch_add(1, Ordering::Relaxed);
                self.counters.bytes.fetch_add(bytes, Ordering::Relaxed);
                if let Some(p) = self.budget().active.get_mut(&id) {
                    *p = Progress {
                        segments: row.segments,
                        bytes: row.bytes,
                        duration_ms: row.duration_ms,
                    };
                }
            }
        };
        drop(hold);
        drop(grown);
        // The finished playlist replaces the growing one in one rename.
        let finished = dir.join("index.m3u8.new");
        let written = async {
            tokio::fs::write(&finished, playlist::recording(&segments)).await?;
            tokio::fs::rename(&finished, dir.join(PLAYLIST)).await
        }
        .await;
        let playlist_written = written.is_ok();
        if let Err(e) = written {
            tracing::error!(recording.id = %id, error = %e, "could not write the finished playlist");
        }
        let mut place = "disk";
        if let Some((to_upload, uploader)) = uploads {
            if playlist_written {
                let _ = to_upload.send((PLAYLIST.to_string(), 0));
            }
            drop(to_upload);
            let all_uploaded = uploader.await.unwrap_or(false) && playlist_written;
            if all_uploaded {
                // Only the empty folder is left.
                let _ = tokio::fs::remove_dir(&dir).await;
                place = IN_OBJECT_STORE;
            }
        }
        let (state, reason) = match &stop {
            None => ("complete", None),
            Some(why) => {
                self.counters.stopped.fetch_add(1, Ordering::Relaxed);
                tracing::error!(session.id = %session_id, recording.id = %id, reason = %why, "recording stopped");
                ("stopped", Some(why.clone()))
            }
        };
        // Its one write after the start, off the async workers (a slow disk holds it).
        let ended = {
            let (store, id, row) = (self.store.clone(), id.clone(), row.clone());
            tokio::task::spawn_blocking(move || {
                store.update_recording_progress(&id, row.segments, row.bytes, row.duration_ms)?;
                store.set_recording_place(&id, place)?;
                store.set_recording_state(&id, state, reason.as_deref(), Some(now_ms()))
            })
            .await
        };
        self.budget().active.remove(&id);
        ended??;
        tracing::info!(session.id = %session_id, recording.id = %id, segments = row.segments, bytes = row.bytes, seconds = duration.as_secs(), state, "recording ends");
        Ok(())
    }
}

impl Recorder {
    /// Uploads a recording's files as they come (`(name, bytes it takes in the budget)`),
    /// deleting each from the disk once the store has it. True when every file went.
    async fn upload(
        self: Arc<Self>,
        archive: Arc<Archive>,
        recording_id: String,
        mut queue: tokio::sync::mpsc::UnboundedReceiver<(String, u64)>,
    ) -> bool {
        let dir = self.dir.join(&recording_id);
        let mut failures_in_a_row = 0;
        let mut all = true;
        while let Some((name, budgeted)) = queue.recv().await {
            if failures_in_a_row >= UPLOAD_FAILURES_TO_GIVE_UP {
                all = false;
                continue;
            }
            let path = dir.join(&name);
            let sent = match tokio::fs::read(&path).await {
                Ok(bytes) => archive
                    .put(&recording_id, &name, bytes.into())
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(format!("reading {name}: {e}")),
            };
            match sent {
                Ok(()) => {
                    failures_in_a_row = 0;
                    self.counters.uploaded.fetch_add(1, Ordering::Relaxed);
                    match tokio::fs::remove_file(&path).await {
                        Ok(()) => self.release(budgeted),
                        Err(e) => {
                            tracing::warn!(recording.id = %recording_id, file = %name, error = %e, "uploaded, but could not delete the file on disk")
                        }
                    }
                }
                Err(e) => {
                    all = false;
                    failures_in_a_row += 1;
                    self.counters
                        .upload_failures
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(recording.id = %recording_id, file = %name, error = %e, "an upload to the object store failed; the file stays on disk");
                    if failures_in_a_row == UPLOAD_FAILURES_TO_GIVE_UP {
                        tracing::error!(recording.id = %recording_id, store = archive.url(), "the object store fails every upload: the rest of this recording stays on disk");
                    }
                }
            }
        }
        all
    }
}

/// What a recording's playlist lists: its segments and their duration.
fn progress_of(playlist: &str) -> Progress {
    let mut p = Progress::default();
    let mut seconds = 0.0;
    for line in playlist.lines() {
        if let Some(d) = line.strip_prefix("#EXTINF:") {
            p.segments += 1;
            seconds += d
                .split(',')
                .next()
                .and_then(|d| d.parse::<f64>().ok())
                .unwrap_or(0.0);
        }
    }
    p.duration_ms = (seconds * 1000.0).round() as i64;
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interrupted_recordings_progress_is_read_from_its_playlist() {
        let p =
            progress_of("#EXTM3U\n#EXTINF:1.001,\nseg000000.ts\n#EXTINF:0.999,\nseg000001.ts\n");
        assert_eq!((p.segments, p.duration_ms), (2, 2000));
        assert_eq!(progress_of(""), Progress::default());
    }

    #[test]
    fn only_a_recordings_own_file_names_are_served() {
        assert!(is_recording_file("index.m3u8"));
        assert!(is_recording_file(&segment_file(0)));
        assert!(is_recording_file(&segment_file(999_999)));
        for bad in [
            "",
            "seg.ts",
            "seg00000a.ts",
            "../index.m3u8",
            "seg000001.ts/..",
            "index.m3u8.new",
        ] {
            assert!(!is_recording_file(bad), "{bad:?}");
        }
    }
}
