//! The whole RTMP server session: handshake, commands and media, the publish accepted.
#![no_main]

use fieldcast::ingest::rtmp::session::{ServerSession, SessionEvent};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut session = ServerSession::new();
    for piece in data.chunks(512) {
        let result = session.handle_input(piece);
        while let Some(event) = session.poll_event() {
            if matches!(event, SessionEvent::PublishRequested { .. }) {
                session.accept_publish();
            }
        }
        let _ = session.take_output();
        if result.is_err() {
            return;
        }
    }
});
