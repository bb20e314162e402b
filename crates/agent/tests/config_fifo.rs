//! A FIFO in the config file's place: refused like an unreadable file, never waited on, by
//! the reload watcher and by shutdown. Its own test binary: the reload counters are global.

// The Prometheus listener (or mode b's recorder) needs the `tokio` feature.
#![cfg(feature = "tokio")]

use std::mem::ManuallyDrop;
use std::path::Path;
use std::sync::mpsc;

use heapscape::Agent;
use heapscape_testkit::{CapturedLogs, ConfigFile, WAIT, wait_for, write_atomically};

fn config(max_buffer_size: &str) -> String {
    format!(
        "exporter: {{ prometheus: {{ listen: 127.0.0.1:0 }} }}\n\
         pools:\n  pcm: {{ initial_capacity: 4KiB, max_buffer_size: {max_buffer_size} }}\n"
    )
}

/// Makes a FIFO (named pipe) at `path`.
fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("run mkfifo");
    assert!(status.success(), "mkfifo {}: {status}", path.display());
}

/// Issue 25: a config path replaced by a FIFO with no writer blocked the watcher forever: later
/// reloads never applied and shutdown (SIGTERM in a service) never finished. The FIFO is now
/// refused like an unreadable file, and the next good file applies.
#[test]
fn a_fifo_in_place_of_the_file_is_refused_and_never_waited_on() {
    let captured = CapturedLogs::install(tracing::Level::INFO);
    let file = ConfigFile::new("heapscape.yaml", &config("4MiB"));
    let path = file.path().to_owned();
    // Not dropped on a failed assertion: a watcher stuck on the FIFO would make the drop wait
    // forever, and the test must fail, not hang.
    let agent = ManuallyDrop::new(Agent::builder().config_file(&path).start().expect("start"));
    let pcm = agent.pool("pcm").expect("pool");

    let fifo = file.dir().join("fifo");
    mkfifo(&fifo);
    std::fs::rename(&fifo, &path).expect("rename the FIFO over the file");
    wait_for(WAIT, "the FIFO to be refused", || {
        (agent.stats().config_reload_failures == 1).then_some(())
    });
    let rejected = wait_for(WAIT, "the rejection's log line", || {
        captured.lines_with("config reload rejected").pop()
    });
    assert!(
        rejected.contains("a FIFO (named pipe), not a regular file"),
        "{rejected}"
    );

    write_atomically(&path, &config("1MiB"));
    wait_for(WAIT, "the file written after the FIFO to apply", || {
        (pcm.config().max_buffer_size == 1 << 20).then_some(())
    });

    // A FIFO in place again, seen by the watcher, and shutdown returns.
    mkfifo(&fifo);
    std::fs::rename(&fifo, &path).expect("rename the FIFO over the file");
    wait_for(WAIT, "the second FIFO to be refused", || {
        (agent.stats().config_reload_failures == 2).then_some(())
    });
    let agent = ManuallyDrop::into_inner(agent);
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        agent.shutdown();
        let _ = done.send(());
    });
    finished
        .recv_timeout(WAIT)
        .expect("shutdown returns with a FIFO in place of the file");
}
