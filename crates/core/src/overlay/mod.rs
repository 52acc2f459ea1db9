//! The overlay model, sans-IO: a session's scene of layers (product card, counters,
//! countdown, toasts, text, image, QR) with its templates and validation (`scene`), and where
//! each layer lands on a frame of either orientation (`layout`). Drawing is the engine's.

pub mod layout;
pub mod scene;
