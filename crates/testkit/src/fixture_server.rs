//! A loopback HTTP server that serves text expositions for Prometheus to scrape: the stand-in
//! for an exporter that cannot run here (statsd_exporter), serving what it would serve.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

/// What a path serves on its `n`th scrape (counting from 1), or `None` for 404.
pub type Render = dyn Fn(&str, u64) -> Option<String> + Send + Sync;

/// Serves `GET <path>` on a free port of 127.0.0.1 from a background thread until dropped.
pub struct FixtureServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FixtureServer {
    /// Starts serving `render`'s answer for each request's path.
    pub fn start(render: Box<Render>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
        let addr = listener.local_addr().expect("the bound address");
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut scrapes = 0;
            for stream in listener.incoming() {
                // Relaxed: the flag only ends the loop; the wake-up connection orders nothing.
                if stopping.load(Ordering::Relaxed) {
                    break;
                }
                if let Ok(stream) = stream {
                    scrapes += 1;
                    let _ = answer(stream, &*render, scrapes);
                }
            }
        });
        Self {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    /// `127.0.0.1:<port>`, a scrape target.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

fn answer(stream: TcpStream, render: &Render, scrape: u64) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    // Read the headers up to the blank line, so the client sees a complete exchange.
    let mut header = String::new();
    while reader.read_line(&mut header)? > 2 {
        header.clear();
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or("/");
    let path = path.split('?').next().unwrap_or(path);
    let (status, body) = match render(path, scrape) {
        Some(body) => ("200 OK", body),
        None => ("404 Not Found", String::new()),
    };
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}

impl Drop for FixtureServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wakes the accept loop so that it sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
