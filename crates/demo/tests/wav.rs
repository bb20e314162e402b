//! The service's WAV output: header fields read back by hand, and the file read by Python's
//! `wave` module.

mod common;

use std::process::Command;

use common::{spawn_server, speak, test_pool};
use heapscape_demo::engine::{SAMPLE_RATES, pcm_len};
use heapscape_demo::server::{Buffers, ServiceConfig};
use serde_json::json;

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(bytes[at..at + 2].try_into().unwrap())
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_fields_match_the_pcm_at_every_rate() {
    for buffers in [Buffers::Pooled(test_pool()), Buffers::Fresh] {
        let addr = spawn_server(buffers, ServiceConfig::default()).await;
        for rate in SAMPLE_RATES {
            let text = "Speech arrives as raw audio of unknown length.";
            let reply = speak(
                addr,
                json!({ "text": text, "voice": "tenor", "sample_rate": rate }),
            )
            .await;
            assert_eq!(reply.status, 200, "{rate} Hz");
            assert_eq!(reply.headers["content-type"], "audio/wav");
            let wav = &reply.body;
            let data_len = pcm_len(text.chars().count() as u64, rate) as u32;
            assert_eq!(reply.headers["content-length"], (44 + data_len).to_string());
            assert_eq!(wav.len(), 44 + data_len as usize);
            assert_eq!(&wav[0..4], b"RIFF");
            assert_eq!(u32_at(wav, 4), 36 + data_len, "RIFF chunk size");
            assert_eq!(&wav[8..16], b"WAVEfmt ");
            assert_eq!(u32_at(wav, 16), 16, "fmt chunk size");
            assert_eq!(u16_at(wav, 20), 1, "PCM format tag");
            assert_eq!(u16_at(wav, 22), 1, "mono");
            assert_eq!(u32_at(wav, 24), rate, "sample rate");
            assert_eq!(u32_at(wav, 28), rate * 2, "byte rate");
            assert_eq!(u16_at(wav, 32), 2, "block align");
            assert_eq!(u16_at(wav, 34), 16, "bits per sample");
            assert_eq!(&wav[36..40], b"data");
            assert_eq!(u32_at(wav, 40), data_len, "data chunk size");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_wave_module_reads_the_file() {
    let addr = spawn_server(Buffers::Pooled(test_pool()), ServiceConfig::default()).await;
    let text = "The heap looked like a city scape.";
    let reply = speak(
        addr,
        json!({ "text": text, "voice": "soprano", "sample_rate": 22050 }),
    )
    .await;
    assert_eq!(reply.status, 200);
    let path = std::env::temp_dir().join(format!("heapscape-demo-{}.wav", std::process::id()));
    std::fs::write(&path, &reply.body).unwrap();

    let script = "import sys, wave\n\
                  w = wave.open(sys.argv[1], 'rb')\n\
                  frames = w.readframes(w.getnframes())\n\
                  print(w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes(), len(frames))";
    let output = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&path)
        .output();
    std::fs::remove_file(&path).unwrap();
    let output = output.expect("python3 runs (it is part of the test environment)");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let frames = pcm_len(text.chars().count() as u64, 22050) / 2;
    assert_eq!(
        String::from_utf8(output.stdout).unwrap().trim(),
        format!("1 2 22050 {frames} {}", frames * 2)
    );
}
