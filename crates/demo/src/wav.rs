//! RIFF/WAVE headers for integer PCM.
//!
//! A WAV file is a RIFF container with two chunks: `fmt ` (the sample format) and `data` (the
//! samples). Both chunk sizes are 32-bit, which is why the service must know the whole PCM length
//! before it can send the first byte, and why a WAV file cannot hold more than 4 GiB of audio.
//!
//! [`header`] writes the canonical 44-byte header; [`parse_header`] reads one back (the load
//! generator checks every response with it). Both are pure functions: no I/O, no panics on any
//! input.

/// Length in bytes of the canonical PCM header that [`header`] writes.
pub const HEADER_LEN: usize = 44;

/// Largest PCM payload a WAV file can describe: the RIFF chunk size (`36 + data_len`) is a `u32`.
pub const MAX_DATA_LEN: u64 = u32::MAX as u64 - (HEADER_LEN as u64 - 8);

/// `WAVE_FORMAT_PCM` in the `fmt ` chunk's `wFormatTag`.
const FORMAT_PCM: u16 = 1;

/// Size of the `fmt ` chunk body for plain PCM.
const FMT_CHUNK_LEN: u32 = 16;

/// The sample format of interleaved little-endian integer PCM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PcmFormat {
    /// Frames per second (Hz).
    pub sample_rate: u32,
    /// Interleaved channels per frame; 1 is mono.
    pub channels: u16,
    /// Bits per sample: 8, 16, 24 or 32.
    pub bits_per_sample: u16,
}

impl PcmFormat {
    /// 16-bit little-endian mono at `sample_rate`, what the speech engine produces.
    pub const fn mono16(sample_rate: u32) -> Self {
        Self {
            sample_rate,
            channels: 1,
            bits_per_sample: 16,
        }
    }

    /// Bytes per frame (`nBlockAlign`): one sample of every channel.
    pub fn block_align(&self) -> u32 {
        u32::from(self.channels) * u32::from(self.bits_per_sample / 8)
    }

    /// Bytes per second (`nAvgBytesPerSec`), or `None` if it does not fit the header's `u32`.
    pub fn byte_rate(&self) -> Option<u32> {
        self.sample_rate.checked_mul(self.block_align())
    }

    fn validate(&self) -> Result<(), WavError> {
        if self.sample_rate == 0 {
            return Err(WavError::InvalidFormat("sample rate must be above 0 Hz"));
        }
        if self.channels == 0 {
            return Err(WavError::InvalidFormat(
                "there must be at least one channel",
            ));
        }
        if !matches!(self.bits_per_sample, 8 | 16 | 24 | 32) {
            return Err(WavError::InvalidFormat(
                "bits per sample must be 8, 16, 24 or 32",
            ));
        }
        if self.byte_rate().is_none() || self.block_align() > u32::from(u16::MAX) {
            return Err(WavError::InvalidFormat(
                "sample rate x channels x bytes per sample must fit in 32 bits",
            ));
        }
        Ok(())
    }
}

/// Why a WAV header could not be written or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WavError {
    /// The PCM payload is larger than a WAV file can describe.
    #[error(
        "the audio is {data_len} bytes but a WAV file holds at most {MAX_DATA_LEN} bytes (4 GiB); \
         shorten the text or lower the sample rate"
    )]
    DataTooLong {
        /// Length of the PCM payload in bytes.
        data_len: u64,
    },
    /// The PCM payload does not consist of whole frames.
    #[error("the audio is {data_len} bytes, not a whole number of {block_align}-byte frames")]
    PartialFrame {
        /// Length of the PCM payload in bytes.
        data_len: u64,
        /// Bytes per frame of the format.
        block_align: u32,
    },
    /// The sample format cannot be written as PCM WAV.
    #[error("invalid PCM format: {0}")]
    InvalidFormat(&'static str),
    /// The bytes are not a canonical 44-byte PCM WAV header.
    #[error("not a canonical PCM WAV header: {0}")]
    Malformed(&'static str),
}

/// Writes the canonical 44-byte RIFF/WAVE header for `data_len` bytes of PCM in `format`.
///
/// The header is `RIFF <36 + data_len> WAVE`, a 16-byte `fmt ` chunk (format tag 1 = PCM,
/// channels, sample rate, byte rate, block align, bits per sample) and the `data` chunk header
/// `data <data_len>`; all integers little-endian. The PCM bytes follow it unchanged.
///
/// # Errors
///
/// [`WavError::DataTooLong`] if `data_len` exceeds [`MAX_DATA_LEN`],
/// [`WavError::PartialFrame`] if it is not a multiple of the block align, and
/// [`WavError::InvalidFormat`] for a format that PCM WAV cannot express.
///
/// # Examples
///
/// ```
/// use heapscape_demo::wav::{header, PcmFormat};
///
/// let bytes = header(PcmFormat::mono16(16_000), 32_000).unwrap();
/// assert_eq!(&bytes[0..4], b"RIFF");
/// assert_eq!(u32::from_le_bytes(bytes[4..8].try_into().unwrap()), 36 + 32_000);
/// assert_eq!(u32::from_le_bytes(bytes[28..32].try_into().unwrap()), 32_000); // bytes per second
/// assert_eq!(u32::from_le_bytes(bytes[40..44].try_into().unwrap()), 32_000); // data length
/// ```
pub fn header(format: PcmFormat, data_len: u64) -> Result<[u8; HEADER_LEN], WavError> {
    format.validate()?;
    if data_len > MAX_DATA_LEN {
        return Err(WavError::DataTooLong { data_len });
    }
    let block_align = format.block_align();
    if !data_len.is_multiple_of(u64::from(block_align)) {
        return Err(WavError::PartialFrame {
            data_len,
            block_align,
        });
    }
    // Both casts are lossless: validate() bounded block_align and byte_rate, and
    // data_len <= MAX_DATA_LEN < u32::MAX.
    let data_len = data_len as u32;
    let byte_rate = format.sample_rate * block_align;

    let mut out = [0u8; HEADER_LEN];
    let fields: [&[u8]; 13] = [
        b"RIFF",
        &(data_len + (HEADER_LEN as u32 - 8)).to_le_bytes(),
        b"WAVE",
        b"fmt ",
        &FMT_CHUNK_LEN.to_le_bytes(),
        &FORMAT_PCM.to_le_bytes(),
        &format.channels.to_le_bytes(),
        &format.sample_rate.to_le_bytes(),
        &byte_rate.to_le_bytes(),
        &(block_align as u16).to_le_bytes(),
        &format.bits_per_sample.to_le_bytes(),
        b"data",
        &data_len.to_le_bytes(),
    ];
    let mut at = 0;
    for field in fields {
        out[at..at + field.len()].copy_from_slice(field);
        at += field.len();
    }
    debug_assert_eq!(at, HEADER_LEN);
    Ok(out)
}

/// Reads a canonical 44-byte PCM header (as [`header`] writes it) from the start of `bytes`.
///
/// Returns the format and the `data` chunk length. Only the canonical layout is accepted
/// (`fmt ` first, 16 bytes long, `data` right after it), which is all this service produces.
///
/// # Errors
///
/// [`WavError::Malformed`] naming the first field that is wrong, or the error [`header`] would
/// give for the same format and length (so a header that parses could have been written).
pub fn parse_header(bytes: &[u8]) -> Result<(PcmFormat, u32), WavError> {
    let Some(bytes) = bytes.get(..HEADER_LEN) else {
        return Err(WavError::Malformed("shorter than 44 bytes"));
    };
    let u16_at = |at: usize| u16::from_le_bytes([bytes[at], bytes[at + 1]]);
    let u32_at =
        |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    let checks: [(bool, &'static str); 7] = [
        (&bytes[0..4] == b"RIFF", "no RIFF tag"),
        (&bytes[8..12] == b"WAVE", "no WAVE tag"),
        (&bytes[12..16] == b"fmt ", "no fmt chunk at byte 12"),
        (u32_at(16) == FMT_CHUNK_LEN, "fmt chunk is not 16 bytes"),
        (u16_at(20) == FORMAT_PCM, "format tag is not PCM"),
        (&bytes[36..40] == b"data", "no data chunk at byte 36"),
        (
            u64::from(u32_at(4)) == u64::from(u32_at(40)) + (HEADER_LEN as u64 - 8),
            "RIFF size is not data size + 36",
        ),
    ];
    if let Some((_, reason)) = checks.iter().find(|(ok, _)| !ok) {
        return Err(WavError::Malformed(reason));
    }
    let format = PcmFormat {
        channels: u16_at(22),
        sample_rate: u32_at(24),
        bits_per_sample: u16_at(34),
    };
    let data_len = u32_at(40);
    format.validate()?;
    if format.byte_rate() != Some(u32_at(28)) {
        return Err(WavError::Malformed("byte rate is not rate x block align"));
    }
    if format.block_align() != u32::from(u16_at(32)) {
        return Err(WavError::Malformed(
            "block align is not channels x bytes per sample",
        ));
    }
    // Rejects what header() would reject, so parse(write(x)) and write(parse(y)) agree.
    header(format, u64::from(data_len))?;
    Ok((format, data_len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_supported_rate() {
        for rate in [8_000, 16_000, 22_050, 24_000, 44_100, 48_000] {
            let format = PcmFormat::mono16(rate);
            let bytes = header(format, u64::from(rate) * 2).unwrap();
            assert_eq!(parse_header(&bytes), Ok((format, rate * 2)));
        }
    }

    #[test]
    fn empty_audio_is_a_valid_file() {
        let bytes = header(PcmFormat::mono16(8_000), 0).unwrap();
        assert_eq!(u32::from_le_bytes(bytes[4..8].try_into().unwrap()), 36);
        assert_eq!(parse_header(&bytes).unwrap().1, 0);
    }

    #[test]
    fn the_4_gib_limit_is_exact() {
        let format = PcmFormat {
            sample_rate: 8_000,
            channels: 1,
            bits_per_sample: 8,
        };
        let bytes = header(format, MAX_DATA_LEN).unwrap();
        assert_eq!(&bytes[4..8], &u32::MAX.to_le_bytes());
        assert_eq!(
            header(format, MAX_DATA_LEN + 1),
            Err(WavError::DataTooLong {
                data_len: MAX_DATA_LEN + 1
            })
        );
        assert!(matches!(
            header(PcmFormat::mono16(8_000), u64::MAX),
            Err(WavError::DataTooLong { .. })
        ));
    }

    #[test]
    fn rejects_partial_frames_and_bad_formats() {
        assert!(matches!(
            header(PcmFormat::mono16(16_000), 3),
            Err(WavError::PartialFrame { block_align: 2, .. })
        ));
        for format in [
            PcmFormat::mono16(0),
            PcmFormat {
                channels: 0,
                ..PcmFormat::mono16(8_000)
            },
            PcmFormat {
                bits_per_sample: 12,
                ..PcmFormat::mono16(8_000)
            },
            PcmFormat {
                sample_rate: u32::MAX,
                channels: 2,
                bits_per_sample: 32,
            },
        ] {
            assert!(
                matches!(header(format, 0), Err(WavError::InvalidFormat(_))),
                "{format:?}"
            );
        }
    }

    #[test]
    fn parse_rejects_garbage_without_panicking() {
        let good = header(PcmFormat::mono16(16_000), 64).unwrap();
        assert!(parse_header(&good[..43]).is_err());
        for at in 0..HEADER_LEN {
            let mut bad = good;
            bad[at] ^= 0x5a;
            assert!(
                parse_header(&bad).is_err(),
                "flipping byte {at} went unnoticed"
            );
        }
    }
}
