//! The WAV header the speech simulators write (16-bit mono PCM).

use bytes::{BufMut as _, BytesMut};

/// The canonical 44-byte header, 16-bit mono at `rate`; `None`: sizes unknown (streamed).
pub(crate) fn header(out: &mut BytesMut, rate: u32, data: Option<u32>) {
    let data = data.unwrap_or(u32::MAX);
    out.put_slice(b"RIFF");
    out.put_u32_le(data.saturating_add(36));
    out.put_slice(b"WAVEfmt ");
    out.put_u32_le(16);
    out.put_u16_le(1);
    out.put_u16_le(1);
    out.put_u32_le(rate);
    out.put_u32_le(rate.saturating_mul(2));
    out.put_u16_le(2);
    out.put_u16_le(16);
    out.put_slice(b"data");
    out.put_u32_le(data);
}
