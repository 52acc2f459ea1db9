//! The overlay scene model and renderer (not built yet; the output pipeline has the `overlaycomposition` hook).
