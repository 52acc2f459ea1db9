//! Studios: one owner task per live session. Ingest connections, WHEP sessions and HTTP
//! handlers hold a [`StudioHandle`] and send typed requests; only the owner changes the
//! studio's state.

mod handle;
mod owner;

pub use handle::{
    Filler, IdleHook, OverlayFactory, PublisherLink, PublisherPresence, STUDIO_REQUESTS,
    StudioError, StudioHandle, StudioStats,
};

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use crate::media::Rendition;
use crate::media::output::PacketSink;
use crate::media::{Orientation, OutputFormat};

/// The registry of running studios, keyed by session id.
pub struct Studios {
    running: Mutex<HashMap<String, (StudioHandle, owner::Stopper)>>,
    format: OutputFormat,
    /// How long a studio's HLS runs after its last request.
    hls_idle: std::time::Duration,
}

impl Studios {
    pub fn new(format: OutputFormat, hls_idle: std::time::Duration) -> Self {
        Self {
            running: Mutex::new(HashMap::new()),
            format,
            hls_idle,
        }
    }

    fn running(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, (StudioHandle, owner::Stopper)>> {
        // Poisoning needs a panic while holding this short lock; the map is still consistent.
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get(&self, session_id: &str) -> Option<StudioHandle> {
        self.running()
            .get(session_id)
            .map(|(h, _)| h.clone())
            .filter(StudioHandle::is_running)
    }

    /// Starts the session's studio unless it runs already. `sink` receives its packets. With
    /// `idle`, the show ends by itself (the hook is called) once a publisher has left and none
    /// came back within the grace period.
    pub fn start(
        &self,
        session_id: &str,
        orientation: Orientation,
        filler: Filler,
        sink: PacketSink,
        overlay: OverlayFactory,
        idle: Option<(std::time::Duration, IdleHook)>,
    ) -> Result<StudioHandle, StudioError> {
        let mut running = self.running();
        if let Some((handle, _)) = running.get(session_id)
            && handle.is_running()
        {
            return Ok(handle.clone());
        }
        let (handle, stopper) = owner::spawn(
            session_id,
            (self.format, self.hls_idle),
            orientation,
            filler,
            sink,
            overlay,
            idle,
        )?;
        running.insert(session_id.to_string(), (handle.clone(), stopper));
        Ok(handle)
    }

    /// Stops the session's studio; its viewers stop receiving media.
    pub fn stop(&self, session_id: &str) {
        if let Some((_, stopper)) = self.running().remove(session_id) {
            stopper.stop();
        }
    }

    pub fn format(&self) -> OutputFormat {
        self.format
    }

    /// Every running studio's session id and counters (for `/metrics`).
    pub fn all_stats(&self) -> Vec<(String, Arc<StudioStats>)> {
        self.running()
            .iter()
            .filter(|(_, (h, _))| h.is_running())
            .map(|(id, (h, _))| (id.clone(), h.stats.clone()))
            .collect()
    }

    /// Every running studio's session id and HLS (for `/metrics`).
    pub fn all_hls(&self) -> Vec<(String, Arc<crate::hls::HlsStream>)> {
        self.running()
            .iter()
            .filter(|(_, (h, _))| h.is_running())
            .map(|(id, (h, _))| (id.clone(), h.hls.clone()))
            .collect()
    }

    /// WebRTC viewers per rendition (main, light): of one session, or of all (`None`).
    pub fn viewers_by_rendition(&self, session_id: Option<&str>) -> [(Rendition, usize); 2] {
        let stats: Vec<Arc<StudioStats>> = match session_id {
            Some(id) => self.get(id).map(|h| h.stats.clone()).into_iter().collect(),
            None => self.all_stats().into_iter().map(|(_, s)| s).collect(),
        };
        let (mut main, mut light) = (0, 0);
        for s in stats {
            let all = s.viewers.load(Ordering::Relaxed);
            let on_light = s.light_viewers.load(Ordering::Relaxed).min(all);
            main += all - on_light;
            light += on_light;
        }
        [(Rendition::Main, main), (Rendition::Light, light)]
    }

    pub fn viewers(&self, session_id: &str) -> usize {
        self.get(session_id)
            .map(|h| h.stats.viewers.load(Ordering::Relaxed))
            .unwrap_or(0)
    }
}
