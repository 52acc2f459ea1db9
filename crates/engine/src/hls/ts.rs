//! An MPEG-TS writer for the HLS packager: one program, H.264 (with the PCR) and AAC (ADTS),
//! one PES per access unit or audio frame. Every part begins with the tables (PAT, PMT), so
//! a player can start at any part that begins with a keyframe.
//!
//! Timestamps are 90 kHz, taken from the studio's running time plus [`TIMESTAMP_OFFSET`],
//! so the PCR (which runs [`PCR_LEAD`] behind the video) never goes below zero.

/// Bytes in one transport packet.
pub const PACKET: usize = 188;
const PAYLOAD: usize = PACKET - 4;
const PID_PAT: u16 = 0x0000;
const PID_PMT: u16 = 0x1000;
pub const PID_VIDEO: u16 = 0x0100;
pub const PID_AUDIO: u16 = 0x0101;
const STREAM_TYPE_H264: u8 = 0x1B;
const STREAM_TYPE_AAC_ADTS: u8 = 0x0F;
/// One second, so early audio and the PCR stay positive.
pub const TIMESTAMP_OFFSET: u64 = 90_000;
/// The PCR runs this far behind the video's timestamps (the decoder's buffering room).
const PCR_LEAD: u64 = 27_000;
const WRAP: u64 = 1 << 33;

/// 90 kHz timestamp of a running time in nanoseconds, offset and wrapped to 33 bits.
pub fn timestamp_90k(running_ns: u64) -> u64 {
    ((running_ns as u128 * 9 / 100_000) as u64 + TIMESTAMP_OFFSET) % WRAP
}

/// Continuity counters: the only state a transport stream carries between packets.
#[derive(Debug, Default)]
pub struct TsWriter {
    pat: u8,
    pmt: u8,
    video: u8,
    audio: u8,
}

impl TsWriter {
    fn counter(&mut self, pid: u16) -> u8 {
        let c = match pid {
            PID_PAT => &mut self.pat,
            PID_PMT => &mut self.pmt,
            PID_VIDEO => &mut self.video,
            _ => &mut self.audio,
        };
        let now = *c;
        *c = (*c + 1) & 0x0F;
        now
    }

    /// Writes the PAT and the PMT (two packets).
    pub fn tables(&mut self, out: &mut Vec<u8>) {
        // PAT: program 1 → PMT.
        let mut pat = vec![0x00, 0xB0, 0, 0x00, 0x01, 0xC1, 0x00, 0x00];
        pat.extend_from_slice(&[0x00, 0x01, 0xE0 | (PID_PMT >> 8) as u8, PID_PMT as u8]);
        self.section(out, PID_PAT, pat);
        // PMT: PCR on the video; H.264 and AAC (ADTS).
        let mut pmt = vec![0x02, 0xB0, 0, 0x00, 0x01, 0xC1, 0x00, 0x00];
        pmt.extend_from_slice(&[0xE0 | (PID_VIDEO >> 8) as u8, PID_VIDEO as u8, 0xF0, 0x00]);
        for (stream_type, pid) in [
            (STREAM_TYPE_H264, PID_VIDEO),
            (STREAM_TYPE_AAC_ADTS, PID_AUDIO),
        ] {
            pmt.extend_from_slice(&[stream_type, 0xE0 | (pid >> 8) as u8, pid as u8, 0xF0, 0x00]);
        }
        self.section(out, PID_PMT, pmt);
    }

    /// One PSI section in one packet: fills in its length, appends its CRC.
    fn section(&mut self, out: &mut Vec<u8>, pid: u16, mut section: Vec<u8>) {
        // section_length counts from after the length field to the end of the CRC.
        let length = section.len() - 3 + 4;
        section[1] = 0xB0 | ((length >> 8) as u8 & 0x0F);
        section[2] = length as u8;
        let crc = crc32_mpeg(&section);
        section.extend_from_slice(&crc.to_be_bytes());
        let start = out.len();
        out.extend_from_slice(&[
            0x47,
            0x40 | (pid >> 8) as u8,
            pid as u8,
            0x10 | self.counter(pid),
            0x00, // pointer field
        ]);
        out.extend_from_slice(&section);
        out.resize(start + PACKET, 0xFF);
    }

    /// One H.264 access unit (Annex B byte stream) at `pts` (90 kHz).
    pub fn video(&mut self, out: &mut Vec<u8>, access_unit: &[u8], pts: u64, keyframe: bool) {
        let pcr = (pts + WRAP - PCR_LEAD) % WRAP;
        // Video PES packets may leave their length open (0).
        self.pes(out, PID_VIDEO, 0xE0, access_unit, pts, Some(pcr), keyframe);
    }

    /// One ADTS frame at `pts` (90 kHz).
    pub fn audio(&mut self, out: &mut Vec<u8>, adts: &[u8], pts: u64) {
        self.pes(out, PID_AUDIO, 0xC0, adts, pts, None, false);
    }

    #[allow(clippy::too_many_arguments)]
    fn pes(
        &mut self,
        out: &mut Vec<u8>,
        pid: u16,
        stream_id: u8,
        payload: &[u8],
        pts: u64,
        pcr: Option<u64>,
        random_access: bool,
    ) {
        let mut header = [0u8; 14];
        header[..4].copy_from_slice(&[0x00, 0x00, 0x01, stream_id]);
        let length = 8 + payload.len();
        let length = if stream_id == 0xE0 || length > 0xFFFF {
            0
        } else {
            length
        };
        header[4..6].copy_from_slice(&(length as u16).to_be_bytes());
        header[6] = 0x80; // '10', not scrambled, no priority, not aligned, no copyright
        header[7] = 0x80; // PTS only
        header[8] = 5;
        header[9] = 0x21 | ((pts >> 29) as u8 & 0x0E);
        header[10] = (pts >> 22) as u8;
        header[11] = ((pts >> 14) as u8 & 0xFE) | 1;
        header[12] = (pts >> 7) as u8;
        header[13] = ((pts << 1) as u8 & 0xFE) | 1;

        let total = header.len() + payload.len();
        let mut written = 0;
        let mut first = true;
        while written < total {
            let remaining = total - written;
            // The adaptation field: the PCR and random-access flag on the first packet,
            // stuffing on the last.
            let mut fields: Vec<u8> = Vec::new();
            if first && (pcr.is_some() || random_access) {
                let mut flags = 0u8;
                if random_access {
                    flags |= 0x40;
                }
                fields.push(flags);
                if let Some(pcr) = pcr {
                    fields[0] |= 0x10;
                    fields.extend_from_slice(&[
                        (pcr >> 25) as u8,
                        (pcr >> 17) as u8,
                        (pcr >> 9) as u8,
                        (pcr >> 1) as u8,
                        ((pcr & 1) as u8) << 7 | 0x7E,
                        0x00,
                    ]);
                }
            }
            let mut adaptation = if fields.is_empty() {
                None
            } else {
                Some(fields)
            };
            let room = PAYLOAD - adaptation.as_ref().map_or(0, |f| 1 + f.len());
            if remaining < room {
                let stuffing = room - remaining;
                match &mut adaptation {
                    Some(fields) => fields.resize(fields.len() + stuffing, 0xFF),
                    None if stuffing == 1 => adaptation = Some(Vec::new()),
                    None => {
                        let mut fields = vec![0x00];
                        fields.resize(stuffing - 1, 0xFF);
                        adaptation = Some(fields);
                    }
                }
            }
            let take = remaining.min(PAYLOAD - adaptation.as_ref().map_or(0, |f| 1 + f.len()));
            let control = if adaptation.is_some() { 0x30 } else { 0x10 };
            out.extend_from_slice(&[
                0x47,
                (if first { 0x40 } else { 0x00 }) | (pid >> 8) as u8,
                pid as u8,
                control | self.counter(pid),
            ]);
            if let Some(fields) = adaptation {
                out.push(fields.len() as u8);
                out.extend_from_slice(&fields);
            }
            let mut left = take;
            if written < header.len() {
                let from_header = (header.len() - written).min(left);
                out.extend_from_slice(&header[written..written + from_header]);
                written += from_header;
                left -= from_header;
            }
            if left > 0 {
                let at = written - header.len();
                out.extend_from_slice(&payload[at..at + left]);
                written += left;
            }
            first = false;
        }
    }
}

/// The CRC of MPEG-2 sections (polynomial 0x04C11DB7, not reflected, initial all ones).
fn crc32_mpeg(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in data {
        crc ^= (byte as u32) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04C1_1DB7
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_section_crc_is_mpeg2s() {
        // A PAT as every muxer writes it for program 1 at PID 0x1000: CRC from the standard
        // generator, and a section followed by its own CRC checks to zero.
        let mut out = Vec::new();
        TsWriter::default().tables(&mut out);
        let section = &out[5..5 + 3 + 13];
        assert_eq!(crc32_mpeg(section), 0);
        assert_eq!(crc32_mpeg(b"123456789"), 0x0376_E6E7);
    }

    #[test]
    fn every_packet_is_188_bytes_with_a_sync_byte_and_running_counters() {
        let mut ts = TsWriter::default();
        let mut out = Vec::new();
        ts.tables(&mut out);
        // Sizes around the packet boundaries: the adaptation field stuffs 0, 1, 2 and many.
        for size in [
            1usize, 150, 169, 170, 171, 176, 177, 178, 183, 184, 185, 1000, 70_000,
        ] {
            ts.video(&mut out, &vec![0xAB; size], 90_000, size % 2 == 0);
            ts.audio(&mut out, &vec![0xCD; size], 90_000);
        }
        assert_eq!(out.len() % PACKET, 0);
        let mut counters = std::collections::HashMap::new();
        let mut video_bytes = 0;
        for packet in out.chunks(PACKET) {
            assert_eq!(packet[0], 0x47);
            let pid = u16::from_be_bytes([packet[1] & 0x1F, packet[2]]);
            let cc = packet[3] & 0x0F;
            if let Some(last) = counters.insert(pid, cc) {
                assert_eq!(cc, (last + 1) & 0x0F, "pid {pid:#x}");
            }
            let payload_at = if packet[3] & 0x20 != 0 {
                5 + packet[4] as usize
            } else {
                4
            };
            assert!(payload_at <= PACKET);
            if pid == PID_VIDEO {
                video_bytes += PACKET - payload_at;
            }
        }
        let expected: usize = [
            1usize, 150, 169, 170, 171, 176, 177, 178, 183, 184, 185, 1000, 70_000,
        ]
        .iter()
        .map(|s| s + 14)
        .sum();
        assert_eq!(video_bytes, expected, "every byte of every PES, no more");
    }

    #[test]
    fn timestamps_are_90_khz_from_the_running_time() {
        assert_eq!(timestamp_90k(0), TIMESTAMP_OFFSET);
        assert_eq!(timestamp_90k(1_000_000_000), TIMESTAMP_OFFSET + 90_000);
        assert!(timestamp_90k(u64::MAX / 2) < WRAP);
    }
}
