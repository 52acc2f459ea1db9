//! Encoded, packetized media as it leaves the studio: one RTP payload shared by all viewers.

use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketKind {
    Video,
    Audio,
}

/// Which of the studio's two encodes a video packet is from. Both are encoded from the same
/// composited frames, so the overlays are in both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Rendition {
    /// The studio's output size and bitrate (1280×720, 2.5 Mb/s by default).
    #[default]
    Main,
    /// About 640×360 (360×640 upright) at [`LIGHT_BITRATE_KBPS`], for weak networks. It is
    /// encoded only while someone watches it.
    Light,
}

/// The light rendition's video bitrate.
pub const LIGHT_BITRATE_KBPS: u32 = 500;
/// The light rendition's short side, in pixels.
pub const LIGHT_SHORT_SIDE: u32 = 360;

impl Rendition {
    pub const ALL: [Rendition; 2] = [Rendition::Main, Rendition::Light];

    /// The name the API, `/metrics` and the watch page's debug view use.
    pub fn name(self) -> &'static str {
        match self {
            Rendition::Main => "main",
            Rendition::Light => "light",
        }
    }
}

/// One RTP packet from the studio's payloaders, without its header: each viewer's session
/// writes its own sequence number, SSRC and payload type around the shared payload.
#[derive(Debug, Clone)]
pub struct EncodedPacket {
    pub kind: PacketKind,
    /// The encode a video packet is from (audio is shared, and says `Main`).
    pub rendition: Rendition,
    pub timestamp: u32,
    pub marker: bool,
    /// The packet starts a keyframe (carries the SPS that precedes every IDR); a viewer's
    /// video starts, or resumes after drops, here.
    pub keyframe_start: bool,
    pub payload: Arc<[u8]>,
    /// When the payloader handed it over (monotonic); str0m's RTCP wallclock mapping.
    pub packetized_at: std::time::Instant,
    /// On the first packet of a publisher's frame: when its RTMP message arrived.
    pub arrived_at: Option<std::time::Instant>,
}

#[derive(Debug, PartialEq)]
pub struct RtpFields<'a> {
    pub timestamp: u32,
    pub marker: bool,
    pub payload: &'a [u8],
}

/// Splits an RTP packet into the fields we forward. `None` for anything malformed.
pub fn parse_rtp(packet: &[u8]) -> Option<RtpFields<'_>> {
    if packet.len() < 12 || packet[0] >> 6 != 2 {
        return None;
    }
    let csrc = (packet[0] & 0x0F) as usize;
    let mut offset = 12 + 4 * csrc;
    if packet[0] & 0x10 != 0 {
        let ext = packet.get(offset + 2..offset + 4)?;
        offset += 4 + 4 * u16::from_be_bytes([ext[0], ext[1]]) as usize;
    }
    let mut end = packet.len();
    if packet[0] & 0x20 != 0 {
        let pad = *packet.last()? as usize;
        end = end.checked_sub(pad)?;
    }
    let payload = packet.get(offset..end)?;
    Some(RtpFields {
        timestamp: u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]),
        marker: packet[1] & 0x80 != 0,
        payload,
    })
}

/// Whether an H.264 RTP payload (RFC 6184) carries an SPS: the start of a decodable picture.
pub fn h264_starts_keyframe(payload: &[u8]) -> bool {
    let Some(&first) = payload.first() else {
        return false;
    };
    match first & 0x1F {
        7 => true,
        // STAP-A: [hdr] ([size16] [nal])*
        24 => {
            let mut rest = &payload[1..];
            while rest.len() > 2 {
                let size = u16::from_be_bytes([rest[0], rest[1]]) as usize;
                if let Some(&nal) = rest.get(2)
                    && nal & 0x1F == 7
                {
                    return true;
                }
                rest = rest.get(2 + size..).unwrap_or(&[]);
            }
            false
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtp_fields_and_keyframe_detection() {
        let mut pkt = vec![0x80, 0xE0, 0, 1, 0, 0, 0x10, 0, 1, 2, 3, 4];
        pkt.extend_from_slice(&[24, 0, 2, 0x67, 0x42, 0, 2, 0x68, 0xCE]);
        let f = parse_rtp(&pkt).unwrap();
        assert!(f.marker);
        assert_eq!(f.timestamp, 0x1000);
        assert!(h264_starts_keyframe(f.payload));
        assert!(!h264_starts_keyframe(&[0x41, 0x9a]));
        assert!(!h264_starts_keyframe(&[24, 0, 9, 0x68]));
        assert_eq!(parse_rtp(&[0x80, 0]), None);
        assert_eq!(
            parse_rtp(&[0x90, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF]),
            None
        );
    }
}
