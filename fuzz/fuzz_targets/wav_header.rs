//! WAV headers: `header()` of an arbitrary format and length either fails or round-trips through
//! `parse_header()`; `parse_header()` of arbitrary bytes never panics, and what it accepts is
//! exactly what `header()` writes back.

#![no_main]

use heapscape_demo::wav::{HEADER_LEN, MAX_DATA_LEN, PcmFormat, WavError, header, parse_header};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    check_parse(data);
    if let Some(input) = data.get(..17) {
        check_write(input);
    }
});

/// Any bytes: never panics; an accepted header is canonical (re-written byte for byte).
fn check_parse(bytes: &[u8]) {
    match parse_header(bytes) {
        Ok((format, data_len)) => {
            let written = header(format, u64::from(data_len)).expect("parse accepts only writable");
            assert_eq!(&written[..], &bytes[..HEADER_LEN]);
        }
        Err(error) => {
            assert!(!error.to_string().is_empty());
            if bytes.len() < HEADER_LEN {
                assert_eq!(error, WavError::Malformed("shorter than 44 bytes"));
            }
        }
    }
}

/// 17 bytes: rate (u32), channels (u16), bits (u16), length (u64), mode (u8).
fn check_write(input: &[u8]) {
    let u16_at = |at: usize| u16::from_le_bytes([input[at], input[at + 1]]);
    let mode = input[16];
    let mut format = PcmFormat {
        sample_rate: u32::from_le_bytes(input[0..4].try_into().unwrap()),
        channels: u16_at(4),
        bits_per_sample: u16_at(6),
    };
    let mut data_len = u64::from_le_bytes(input[8..16].try_into().unwrap());
    // Steer part of the inputs towards valid formats and whole frames so the Ok path is covered.
    if mode & 1 != 0 {
        format.bits_per_sample = [8, 16, 24, 32][usize::from(mode >> 1 & 3)];
    }
    if mode & 8 != 0 {
        format.channels = format.channels.clamp(1, 8);
    }
    if mode & 16 != 0 {
        data_len %= MAX_DATA_LEN + 1;
    }
    if mode & 32 != 0 {
        data_len %= 1 << 24;
    }
    let block_align = u64::from(format.channels) * u64::from(format.bits_per_sample / 8);
    if mode & 64 != 0 && block_align > 0 {
        data_len -= data_len % block_align;
    }

    match header(format, data_len) {
        Ok(bytes) => {
            assert_eq!(bytes.len(), HEADER_LEN);
            assert!(data_len <= MAX_DATA_LEN);
            assert_eq!(data_len % block_align, 0);
            assert_eq!(parse_header(&bytes), Ok((format, data_len as u32)));
            // Trailing bytes (the PCM) do not change what is parsed.
            let mut file = bytes.to_vec();
            file.extend_from_slice(&input[..]);
            assert_eq!(parse_header(&file), Ok((format, data_len as u32)));
            let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
            assert_eq!(u64::from(u32_at(4)), data_len + 36);
            assert_eq!(u32_at(24), format.sample_rate);
            assert_eq!(Some(u32_at(28)), format.byte_rate());
            assert_eq!(u64::from(u32_at(40)), data_len);
        }
        Err(WavError::DataTooLong { data_len: reported }) => {
            assert_eq!(reported, data_len);
            assert!(data_len > MAX_DATA_LEN);
        }
        Err(WavError::PartialFrame {
            data_len: reported,
            block_align: reported_align,
        }) => {
            assert_eq!(reported, data_len);
            assert_eq!(u64::from(reported_align), block_align);
            assert_ne!(data_len % block_align, 0);
        }
        Err(WavError::InvalidFormat(reason)) => {
            assert!(!reason.is_empty());
            let valid = format.sample_rate > 0
                && format.channels > 0
                && matches!(format.bits_per_sample, 8 | 16 | 24 | 32)
                && u64::from(format.sample_rate) * block_align <= u64::from(u32::MAX)
                && block_align <= u64::from(u16::MAX);
            assert!(!valid, "{format:?} is valid but refused: {reason}");
        }
        Err(error @ WavError::Malformed(_)) => panic!("header() never reports {error:?}"),
    }
}
