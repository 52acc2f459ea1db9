//! A machine-readable wall-clock time code burnt into video frames, for the glass-to-glass
//! latency probe (bench/latency.rs): the publisher writes the time into each frame it makes,
//! a viewer decodes the output and reads it back.
//!
//! The code is a row of 40 blocks of 16×16 pixels on the luma plane: 32 bits of the
//! milliseconds of the Unix time (modulo 2³²) and an 8-bit check, most significant first,
//! white for 1 and black for 0. Blocks the size of a macroblock survive H.264 at ordinary
//! bitrates; the reader samples each block's centre and rejects a row whose check fails.

use std::time::{SystemTime, UNIX_EPOCH};

/// Side of one block, in pixels.
pub const BLOCK: usize = 16;
/// Blocks in the row: 32 bits of time, 8 of check.
pub const BLOCKS: usize = 40;

/// Where the row sits in a 1280×720 picture: right of centre, clear of the default scene's
/// layers (counters and countdown at the top, toast at the left, card at the bottom left).
pub const ORIGIN_720P: (usize, usize) = (576, 384);

/// Milliseconds of the Unix time, modulo 2³²: what the time code carries.
pub fn now_ms() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u32)
        .unwrap_or(0)
}

fn check(value: u32) -> u8 {
    let b = value.to_be_bytes();
    (b[0] ^ b[1].rotate_left(1) ^ b[2].rotate_left(2) ^ b[3].rotate_left(3)) ^ 0xA5
}

/// Writes `value` into the luma plane `y` (row stride `stride`) at `origin`.
pub fn write(y: &mut [u8], stride: usize, origin: (usize, usize), value: u32) {
    let bits = ((value as u64) << 8) | check(value) as u64;
    for block in 0..BLOCKS {
        let on = (bits >> (BLOCKS - 1 - block)) & 1 == 1;
        let level = if on { 235 } else { 16 };
        for row in 0..BLOCK {
            let start = (origin.1 + row) * stride + origin.0 + block * BLOCK;
            if let Some(line) = y.get_mut(start..start + BLOCK) {
                line.fill(level);
            }
        }
    }
}

/// Reads a time code back from the luma plane; `None` when there is none or it is damaged.
pub fn read(y: &[u8], stride: usize, origin: (usize, usize)) -> Option<u32> {
    let mut bits = 0u64;
    for block in 0..BLOCKS {
        let mut sum = 0u32;
        for row in BLOCK / 4..BLOCK * 3 / 4 {
            let start = (origin.1 + row) * stride + origin.0 + block * BLOCK + BLOCK / 4;
            let line = y.get(start..start + BLOCK / 2)?;
            sum += line.iter().map(|&v| v as u32).sum::<u32>();
        }
        let mean = sum / (BLOCK as u32 / 2).pow(2);
        bits = (bits << 1) | u64::from(mean >= 126);
    }
    let value = (bits >> 8) as u32;
    (check(value) == bits as u8).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_reads_back_and_rejects_damage() {
        let (w, h) = (1280, 720);
        let mut y = vec![128u8; w * h];
        assert_eq!(read(&y, w, ORIGIN_720P), None);
        write(&mut y, w, ORIGIN_720P, 0xDEAD_BEEF);
        assert_eq!(read(&y, w, ORIGIN_720P), Some(0xDEAD_BEEF));
        // Compression noise of ±40 on every pixel still reads.
        let mut noisy = y.clone();
        for (i, v) in noisy.iter_mut().enumerate() {
            *v = v.saturating_add_signed(if i % 3 == 0 { 40 } else { -40 });
        }
        assert_eq!(read(&noisy, w, ORIGIN_720P), Some(0xDEAD_BEEF));
        // One flipped block fails the check.
        let (x0, y0) = ORIGIN_720P;
        for row in 0..BLOCK {
            let s = (y0 + row) * w + x0 + 5 * BLOCK;
            let v = 251 - y[s];
            y[s..s + BLOCK].fill(v);
        }
        assert_eq!(read(&y, w, ORIGIN_720P), None);
        // Out of the picture: none, no panic.
        assert_eq!(read(&y[..1000], w, ORIGIN_720P), None);
    }
}
