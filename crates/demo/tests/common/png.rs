//! Just enough of PNG to tell whether a browser's screenshot shows something: 8-bit RGB or
//! RGBA, non-interlaced (what Chromium writes), decoded to pixels.

use std::io::Read;

/// A decoded image: `width * height` pixels, RGB.
pub struct Image {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<[u8; 3]>,
}

impl Image {
    /// The share (0..=1) of pixels that differ from the top-left one (the page's background).
    pub fn share_off_background(&self) -> f64 {
        let background = self.pixels[0];
        let off = self.pixels.iter().filter(|p| **p != background).count();
        off as f64 / self.pixels.len() as f64
    }
}

/// Decodes `bytes`.
///
/// # Panics
///
/// On anything but an 8-bit RGB or RGBA, non-interlaced PNG.
pub fn decode(bytes: &[u8]) -> Image {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    let (mut header, mut data) = (None, Vec::new());
    let mut at = 8;
    while at + 8 <= bytes.len() {
        let length = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        let kind = &bytes[at + 4..at + 8];
        let body = &bytes[at + 8..at + 8 + length];
        match kind {
            b"IHDR" => header = Some(body.to_vec()),
            b"IDAT" => data.extend_from_slice(body),
            b"IEND" => break,
            _ => {}
        }
        at += 12 + length; // length, kind, body, CRC
    }
    let header = header.expect("no IHDR");
    let number = |range: std::ops::Range<usize>| {
        u32::from_be_bytes(header[range].try_into().unwrap()) as usize
    };
    let (width, height) = (number(0..4), number(4..8));
    let (depth, colour_type, interlace) = (header[8], header[9], header[12]);
    assert_eq!((depth, interlace), (8, 0), "8-bit, non-interlaced only");
    let channels = match colour_type {
        2 => 3,
        6 => 4,
        other => panic!("colour type {other} not supported"),
    };
    let mut raw = Vec::new();
    flate2::read::ZlibDecoder::new(&data[..])
        .read_to_end(&mut raw)
        .expect("IDAT inflates");
    let stride = width * channels;
    assert_eq!(raw.len(), height * (stride + 1), "one filter byte per row");
    let mut rows: Vec<Vec<u8>> = Vec::with_capacity(height);
    for y in 0..height {
        let line = &raw[y * (stride + 1)..(y + 1) * (stride + 1)];
        let (filter, line) = (line[0], &line[1..]);
        let above = rows.last().cloned().unwrap_or_else(|| vec![0; stride]);
        let mut row = vec![0u8; stride];
        for x in 0..stride {
            let left = if x >= channels { row[x - channels] } else { 0 };
            let up = above[x];
            let up_left = if x >= channels {
                above[x - channels]
            } else {
                0
            };
            let predicted = match filter {
                0 => 0,
                1 => left,
                2 => up,
                3 => ((u16::from(left) + u16::from(up)) / 2) as u8,
                4 => paeth(left, up, up_left),
                other => panic!("filter {other}"),
            };
            row[x] = line[x].wrapping_add(predicted);
        }
        rows.push(row);
    }
    let pixels = rows
        .iter()
        .flat_map(|row| row.chunks(channels).map(|p| [p[0], p[1], p[2]]))
        .collect();
    Image {
        width,
        height,
        pixels,
    }
}

fn paeth(a: u8, b: u8, c: u8) -> u8 {
    let p = i16::from(a) + i16::from(b) - i16::from(c);
    let (pa, pb, pc) = (
        (p - i16::from(a)).abs(),
        (p - i16::from(b)).abs(),
        (p - i16::from(c)).abs(),
    );
    if pa <= pb && pa <= pc {
        a
    } else if pb <= pc {
        b
    } else {
        c
    }
}
