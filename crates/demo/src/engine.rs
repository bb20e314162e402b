//! A synthetic speech engine standing in for a cloud text-to-speech service.
//!
//! Like the service in the story it answers with a stream of raw 16-bit little-endian mono PCM
//! in chunks, and nothing tells the caller the total length up front. The audio is deterministic
//! (the same text and voice give the same bytes) and audible: every character is a short tone with
//! a couple of harmonics, its pitch drawn from the character and the voice, faded in and out so the
//! joins do not click; whitespace and punctuation are pauses. Speech runs at
//! [`CHARS_PER_SECOND`], so the PCM length is proportional to the text.

use std::f64::consts::TAU;
use std::task::{Context, Poll};

/// Characters spoken per second of audio.
pub const CHARS_PER_SECOND: u64 = 15;

/// Sample rates the engine can produce, in Hz.
pub const SAMPLE_RATES: [u32; 6] = [8_000, 16_000, 22_050, 24_000, 44_100, 48_000];

/// Bytes of PCM per chunk the engine emits (the last chunk of a stream may be shorter).
pub const CHUNK_LEN: usize = 4096;

/// Bytes per sample: 16-bit mono.
const BYTES_PER_SAMPLE: u64 = 2;

/// Samples per full chunk.
const SAMPLES_PER_CHUNK: u64 = CHUNK_LEN as u64 / BYTES_PER_SAMPLE;

/// Chunks emitted in a row before the stream yields to the runtime, so a long synthesis does
/// not hold an async worker thread for tens of milliseconds.
const CHUNKS_PER_POLL: u32 = 16;

/// Length of the fade in and out of every character's tone (5 ms).
const FADE_SECONDS: f64 = 0.005;

/// Peak amplitude of a tone, as a fraction of full scale.
const AMPLITUDE: f64 = 0.3 * i16::MAX as f64;

/// A text marker that makes the engine fail half-way through the stream, but only when the
/// engine was built with fault injection on (`serve --fault-injection`); otherwise it is
/// spoken like any other text.
pub const FAULT_MARKER: &str = "#fault";

/// A named voice: a base pitch the per-character tones are built on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Voice {
    /// The name clients ask for.
    pub name: &'static str,
    /// Base pitch in Hz.
    pub base_hz: f64,
}

/// The voices the engine knows, lowest first.
pub const VOICES: [Voice; 4] = [
    Voice {
        name: "baritone",
        base_hz: 110.0,
    },
    Voice {
        name: "tenor",
        base_hz: 147.0,
    },
    Voice {
        name: "alto",
        base_hz: 196.0,
    },
    Voice {
        name: "soprano",
        base_hz: 262.0,
    },
];

impl Voice {
    /// Looks a voice up by name (exact, lower case).
    pub fn by_name(name: &str) -> Option<Voice> {
        VOICES.iter().copied().find(|voice| voice.name == name)
    }
}

/// Number of samples the engine produces for `chars` characters at `sample_rate`.
pub fn sample_count(chars: u64, sample_rate: u32) -> u64 {
    // Character i covers samples [i * rate / 15, (i + 1) * rate / 15); saturating so absurd
    // inputs give a huge length (rejected by the WAV limit) instead of overflowing.
    chars.saturating_mul(u64::from(sample_rate)) / CHARS_PER_SECOND
}

/// Number of PCM bytes the engine produces for `chars` characters at `sample_rate`.
///
/// ```
/// use heapscape_demo::engine::pcm_len;
/// // 123 characters at 16 kHz is 8.2 s of speech, about 256 KiB.
/// assert_eq!(pcm_len(123, 16_000), 262_400);
/// ```
pub fn pcm_len(chars: u64, sample_rate: u32) -> u64 {
    sample_count(chars, sample_rate).saturating_mul(BYTES_PER_SAMPLE)
}

/// Number of characters whose speech is about `pcm_len` bytes at `sample_rate` (at least 1).
pub fn chars_for_pcm_len(pcm_len: u64, sample_rate: u32) -> u64 {
    let bytes_per_second = u64::from(sample_rate) * BYTES_PER_SAMPLE;
    ((pcm_len * CHARS_PER_SECOND + bytes_per_second / 2) / bytes_per_second.max(1)).max(1)
}

/// A failure of the engine in the middle of a stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// The stream broke off (injected with [`FAULT_MARKER`]).
    #[error("the speech engine stream broke off after {after_bytes} bytes")]
    Interrupted {
        /// PCM bytes delivered before the failure.
        after_bytes: u64,
    },
}

/// The speech engine. Cheap to copy; holds only its settings.
#[derive(Debug, Clone, Copy, Default)]
pub struct Engine {
    fault_injection: bool,
}

impl Engine {
    /// An engine; with `fault_injection`, texts containing [`FAULT_MARKER`] fail mid-stream.
    pub fn new(fault_injection: bool) -> Self {
        Self { fault_injection }
    }

    /// Starts speaking `text` in `voice` at `sample_rate` Hz.
    ///
    /// The stream is read like a network body: [`PcmStream::read_into`] appends the next chunk
    /// of at most [`CHUNK_LEN`] bytes of 16-bit little-endian mono PCM to the caller's buffer,
    /// [`pcm_len`] bytes in all, until it returns 0, or an [`EngineError`] (after which the
    /// stream is over). The stream keeps `text` (a `String` is moved in, not copied) and
    /// allocates nothing while it runs.
    pub fn speak(&self, text: impl Into<String>, voice: Voice, sample_rate: u32) -> PcmStream {
        let text = text.into();
        let chars = text.chars().count() as u64;
        let total_samples = sample_count(chars, sample_rate);
        let fail_at_sample = (self.fault_injection && text.contains(FAULT_MARKER))
            .then_some(total_samples / 2 / SAMPLES_PER_CHUNK * SAMPLES_PER_CHUNK);
        PcmStream {
            text,
            voice,
            sample_rate,
            total_samples,
            next_sample: 0,
            fail_at_sample,
            chunks_since_yield: 0,
            tone: None,
        }
    }
}

/// The PCM of one utterance, produced lazily chunk by chunk. See [`Engine::speak`].
#[derive(Debug)]
pub struct PcmStream {
    text: String,
    voice: Voice,
    sample_rate: u32,
    total_samples: u64,
    /// Index of the next sample to produce; `total_samples` once finished.
    next_sample: u64,
    /// Sample index at which an injected failure happens (a chunk boundary).
    fail_at_sample: Option<u64>,
    chunks_since_yield: u32,
    /// The tone of the character being spoken, if any.
    tone: Option<Tone>,
}

/// One character's tone: samples [start, end) of a sum of three harmonics.
#[derive(Debug, Clone, Copy)]
struct Tone {
    index: u64,
    /// Byte offset of the character in the text.
    offset: usize,
    /// The character.
    ch: char,
    start: u64,
    end: u64,
    /// Phase increment per sample, radians.
    step: f64,
    /// Weights of the 2nd and 3rd harmonic (the "formant" colour of the character).
    second: f64,
    third: f64,
    fade_samples: f64,
    silent: bool,
}

impl PcmStream {
    /// Total PCM bytes this stream produces if it does not fail.
    pub fn pcm_len(&self) -> u64 {
        self.total_samples * BYTES_PER_SAMPLE
    }

    /// Bytes the next chunk appends if the engine does not fail (0 once the stream is over):
    /// the room a writer may make before [`PcmStream::read_into`], as a reader of a network
    /// body knows the length of the data that arrived, never more than the stream holds.
    pub fn next_chunk_len(&self) -> usize {
        let samples =
            (self.total_samples - self.next_sample.min(self.total_samples)).min(SAMPLES_PER_CHUNK);
        (samples * BYTES_PER_SAMPLE) as usize
    }

    /// Appends the next chunk (at most [`CHUNK_LEN`] bytes) to `buf` and returns its length;
    /// 0 once the stream is over. Every 16 chunks it yields to the runtime first, so a
    /// long synthesis does not hold an async worker.
    ///
    /// # Errors
    ///
    /// [`EngineError::Interrupted`] when the engine fails mid-stream; the stream is over then.
    pub async fn read_into(&mut self, buf: &mut Vec<u8>) -> Result<usize, EngineError> {
        std::future::poll_fn(|cx| self.poll_read_into(cx, buf)).await
    }

    /// The poll form of [`PcmStream::read_into`].
    ///
    /// # Errors
    ///
    /// [`EngineError::Interrupted`] when the engine fails mid-stream; the stream is over then.
    pub fn poll_read_into(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut Vec<u8>,
    ) -> Poll<Result<usize, EngineError>> {
        if self.next_sample >= self.total_samples {
            return Poll::Ready(Ok(0));
        }
        if self.fail_at_sample == Some(self.next_sample) {
            let after_bytes = self.next_sample * BYTES_PER_SAMPLE;
            // End the stream after the error, as a broken connection would.
            self.next_sample = self.total_samples;
            return Poll::Ready(Err(EngineError::Interrupted { after_bytes }));
        }
        if self.chunks_since_yield == CHUNKS_PER_POLL {
            self.chunks_since_yield = 0;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        self.chunks_since_yield += 1;
        Poll::Ready(Ok(self.append_chunk(buf)))
    }

    /// Synthesizes the next chunk straight into `buf`; returns its length in bytes.
    fn append_chunk(&mut self, buf: &mut Vec<u8>) -> usize {
        let end = (self.next_sample + SAMPLES_PER_CHUNK).min(self.total_samples);
        let len = ((end - self.next_sample) * BYTES_PER_SAMPLE) as usize;
        // Grows like `extend_from_slice` would (doubling), once per chunk at most.
        let from = buf.len();
        buf.resize(from + len, 0);
        let mut out = &mut buf[from..];
        let mut at = self.next_sample;
        while at < end {
            let tone = self.tone_for(at);
            let run_end = tone.end.min(end);
            let (run, rest) = out.split_at_mut(((run_end - at) * BYTES_PER_SAMPLE) as usize);
            tone.render(at, run);
            out = rest;
            at = run_end;
        }
        self.next_sample = end;
        len
    }

    /// The tone of the character sample `at` belongs to, which becomes the current one.
    fn tone_for(&mut self, at: u64) -> Tone {
        // Samples are produced in order, so the tone moves forward one character at a time
        // (integer rounding of the boundaries can also need a step back).
        match self.tone {
            Some(tone) if (tone.start..tone.end).contains(&at) => tone,
            previous => {
                let mut tone = previous.unwrap_or_else(|| self.tone_at(0, 0));
                while at >= tone.end {
                    tone = self.tone_at(tone.index + 1, tone.offset + tone.ch.len_utf8());
                }
                while at < tone.start && tone.index > 0 {
                    let before = self.text[..tone.offset].chars().next_back().unwrap_or(' ');
                    tone = self.tone_at(tone.index - 1, tone.offset - before.len_utf8());
                }
                self.tone = Some(tone);
                tone
            }
        }
    }

    /// The tone of the character at byte `offset` (the `index`th character).
    fn tone_at(&self, index: u64, offset: usize) -> Tone {
        let rate = u64::from(self.sample_rate);
        let start = index * rate / CHARS_PER_SECOND;
        let end = (index + 1) * rate / CHARS_PER_SECOND;
        // Every sample < total_samples lies in a character of the text; a space if not.
        let ch = self.text[offset..].chars().next().unwrap_or(' ');
        let code = u32::from(ch.to_ascii_lowercase());
        // A pentatonic step keeps the "melody" pleasant; the code decides which.
        const PENTATONIC: [f64; 5] = [0.0, 2.0, 4.0, 7.0, 9.0];
        let semitones = PENTATONIC[(code % 5) as usize] + 12.0 * f64::from(code / 5 % 2);
        let hz = self.voice.base_hz * (semitones / 12.0).exp2();
        let vowel = matches!(ch.to_ascii_lowercase(), 'a' | 'e' | 'i' | 'o' | 'u' | 'y');
        Tone {
            index,
            offset,
            ch,
            start,
            end,
            step: TAU * hz / f64::from(self.sample_rate),
            second: if vowel { 0.5 } else { 0.2 },
            third: f64::from(code % 7) / 20.0,
            fade_samples: (FADE_SECONDS * f64::from(self.sample_rate)).max(1.0),
            silent: !ch.is_alphanumeric(),
        }
    }
}

impl Tone {
    /// Writes the tone's samples from `from` on into `out` (16-bit little-endian, as many as
    /// it holds, all within the tone).
    fn render(&self, from: u64, out: &mut [u8]) {
        if self.silent {
            out.fill(0);
            return;
        }
        // The fundamental as a unit phasor (sin, cos) turned by `step` every sample, and the
        // harmonics from the double- and triple-angle identities: a few multiplications a
        // sample instead of three sines, which made the synthesis most of the demo's CPU time
        // (and so of how many requests a `compare` slice holds). The phasor starts from the
        // exact phase on every call, at most a chunk's 2,048 samples, so rounding cannot
        // build up.
        let (mut sin, mut cos) = (self.step * (from - self.start) as f64).sin_cos();
        let (turn_sin, turn_cos) = self.step.sin_cos();
        let scale = AMPLITUDE / (1.0 + self.second + self.third);
        let per_fade = 1.0 / self.fade_samples;
        for (at, sample) in (from..).zip(out.chunks_exact_mut(2)) {
            let t = (at - self.start) as f64;
            let left = (self.end - at) as f64;
            let envelope = (t * per_fade).min(left * per_fade).min(1.0);
            let value =
                sin + self.second * 2.0 * sin * cos + self.third * sin * (3.0 - 4.0 * sin * sin);
            sample.copy_from_slice(&((scale * envelope * value) as i16).to_le_bytes());
            (sin, cos) = (
                sin * turn_cos + cos * turn_sin,
                cos * turn_cos - sin * turn_sin,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(mut stream: PcmStream) -> Result<Vec<u8>, EngineError> {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(async move {
                let mut pcm = Vec::new();
                loop {
                    let before = pcm.len();
                    let len = stream.read_into(&mut pcm).await?;
                    assert_eq!(pcm.len() - before, len);
                    if len == 0 {
                        // Over: it stays over.
                        assert_eq!(stream.read_into(&mut pcm).await, Ok(0));
                        return Ok(pcm);
                    }
                    assert!(len <= CHUNK_LEN);
                }
            })
    }

    #[test]
    fn length_is_proportional_to_text_at_every_rate() {
        let alto = Voice::by_name("alto").unwrap();
        for rate in SAMPLE_RATES {
            for text in ["a", "Hello, world.", &"x".repeat(500)] {
                let stream = Engine::default().speak(text, alto, rate);
                let expected = pcm_len(text.chars().count() as u64, rate);
                assert_eq!(stream.pcm_len(), expected);
                assert_eq!(
                    collect(stream).unwrap().len() as u64,
                    expected,
                    "{rate} Hz {text:?}"
                );
            }
        }
    }

    #[test]
    fn output_is_deterministic_audible_and_voice_dependent() {
        let engine = Engine::default();
        let text = "The quick brown fox jumps over the lazy dog.";
        let alto = collect(engine.speak(text, Voice::by_name("alto").unwrap(), 16_000)).unwrap();
        let again = collect(engine.speak(text, Voice::by_name("alto").unwrap(), 16_000)).unwrap();
        let bass =
            collect(engine.speak(text, Voice::by_name("baritone").unwrap(), 16_000)).unwrap();
        assert_eq!(alto, again);
        assert_ne!(alto, bass);
        let peak = alto
            .chunks_exact(2)
            .map(|s| i16::from_le_bytes([s[0], s[1]]).unsigned_abs())
            .max()
            .unwrap();
        assert!(peak > 5_000, "peak {peak} is too quiet to hear");
    }

    #[test]
    fn the_phasor_gives_the_three_harmonics_sample_by_sample() {
        let text = "Hello, wörld";
        let speak = || Engine::default().speak(text, VOICES[2], 48_000);
        let pcm = collect(speak()).unwrap();
        let reference = speak();
        let mut offset = 0;
        let mut checked = 0;
        for (index, ch) in text.chars().enumerate() {
            let tone = reference.tone_at(index as u64, offset);
            offset += ch.len_utf8();
            for at in tone.start..tone.end {
                let got = i16::from_le_bytes([pcm[2 * at as usize], pcm[2 * at as usize + 1]]);
                let expected = if tone.silent {
                    0.0
                } else {
                    // The tone as its definition reads: three sines, faded in and out.
                    let t = (at - tone.start) as f64;
                    let envelope = (t / tone.fade_samples)
                        .min((tone.end - at) as f64 / tone.fade_samples)
                        .min(1.0);
                    let phase = tone.step * t;
                    let value = phase.sin()
                        + tone.second * (2.0 * phase).sin()
                        + tone.third * (3.0 * phase).sin();
                    AMPLITUDE * envelope * value / (1.0 + tone.second + tone.third)
                };
                assert!(
                    (f64::from(got) - expected).abs() <= 1.0,
                    "{ch:?} sample {at}: {got} against {expected:.2}"
                );
                checked += 1;
            }
        }
        assert_eq!(checked, pcm.len() / 2);
    }

    #[test]
    fn tones_start_and_end_near_silence() {
        let pcm = collect(Engine::default().speak("ab", VOICES[3], 16_000)).unwrap();
        let sample = |i: usize| i16::from_le_bytes([pcm[2 * i], pcm[2 * i + 1]]).unsigned_abs();
        let boundary = (16_000 / CHARS_PER_SECOND) as usize;
        for at in [0, boundary - 1, boundary, 2 * boundary - 1] {
            assert!(sample(at) < 500, "click at sample {at}: {}", sample(at));
        }
    }

    #[test]
    fn fault_marker_fails_mid_stream_only_when_enabled() {
        let text = format!("{} {FAULT_MARKER}", "a".repeat(200));
        let voice = VOICES[0];
        assert!(collect(Engine::new(false).speak(&text, voice, 16_000)).is_ok());
        let err = collect(Engine::new(true).speak(&text, voice, 16_000)).unwrap_err();
        let EngineError::Interrupted { after_bytes } = err;
        let total = pcm_len(text.len() as u64, 16_000);
        assert!(
            after_bytes > 0 && after_bytes < total,
            "{after_bytes} of {total}"
        );
    }

    #[test]
    fn a_buffer_with_room_is_filled_in_place() {
        let text = "a".repeat(300);
        let stream = Engine::default().speak(text, VOICES[1], 48_000);
        let len = stream.pcm_len() as usize;
        let mut pcm = Vec::with_capacity(len);
        let at = pcm.as_ptr();
        let mut stream = stream;
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(async { while stream.read_into(&mut pcm).await.unwrap() > 0 {} });
        assert_eq!((pcm.len(), pcm.capacity(), pcm.as_ptr()), (len, len, at));
    }

    #[test]
    fn multi_byte_characters_are_spoken_like_others() {
        let voice = VOICES[2];
        let text = "héllo wörld ñ 語";
        let pcm = collect(Engine::default().speak(text, voice, 8_000)).unwrap();
        assert_eq!(
            pcm.len() as u64,
            pcm_len(text.chars().count() as u64, 8_000)
        );
    }

    #[test]
    fn size_conversions_agree() {
        assert_eq!(chars_for_pcm_len(256 << 10, 16_000), 123);
        assert_eq!(chars_for_pcm_len(0, 8_000), 1);
        for rate in SAMPLE_RATES {
            let chars = chars_for_pcm_len(1 << 20, rate);
            let len = pcm_len(chars, rate);
            assert!(
                len.abs_diff(1 << 20) <= u64::from(rate) * 2 / CHARS_PER_SECOND,
                "{rate}"
            );
        }
        assert!(pcm_len(u64::MAX, 48_000) > crate::wav::MAX_DATA_LEN);
    }
}
