//! Child processes killed and reaped on drop.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A child process that is killed and reaped when dropped, so a failing test leaves nothing
/// running.
#[derive(Debug)]
pub struct ChildGuard {
    name: String,
    child: Child,
}

impl ChildGuard {
    /// Starts `command` with stdin closed (stdout and stderr as `command` sets them); panics
    /// naming `name` if it cannot start.
    pub fn spawn(name: &str, command: &mut Command) -> Self {
        let child = command
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {name}: {error}"));
        Self {
            name: name.to_owned(),
            child,
        }
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The child, e.g. to take its piped stdout.
    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Kills and reaps the child (nothing happens if it has already exited).
    pub fn kill(&mut self) {
        // Ignored: the child may already have exited; the wait reaps it either way.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Panics if the process has exited (it should be serving).
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("{} exited early: {status}", self.name);
        }
    }

    /// Waits up to `limit` for the child to exit; panics (and the drop kills it) if it does not.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the child") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not finish within {limit:?}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits up to `limit` for the child to exit and collects its piped stdout and stderr
    /// (read while it runs, so a chatty child cannot fill the pipe and stall).
    pub fn wait_with_output(mut self, limit: Duration) -> Output {
        let stdout = self.child.stdout.take().map(read_in_background);
        let stderr = self.child.stderr.take().map(read_in_background);
        let status = self.wait_exit(limit);
        let collect = |reader: Option<std::thread::JoinHandle<Vec<u8>>>| {
            reader.map_or_else(Vec::new, |reader| reader.join().unwrap_or_default())
        };
        Output {
            status,
            stdout: collect(stdout),
            stderr: collect(stderr),
        }
    }

    /// Reads lines of the child's piped stdout until one starts with `prefix`, within
    /// `timeout`; returns that line.
    pub fn wait_for_line(&mut self, prefix: &str, timeout: Duration) -> String {
        let stdout = self
            .child
            .stdout
            .take()
            .unwrap_or_else(|| panic!("{}: stdout is not piped", self.name));
        let (sender, receiver) = mpsc::channel();
        let wanted = prefix.to_owned();
        // The reader thread ends when the child's stdout closes (at the latest, when it is killed).
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.starts_with(&wanted) {
                    let _ = sender.send(line);
                    return;
                }
            }
        });
        receiver.recv_timeout(timeout).unwrap_or_else(|_| {
            panic!(
                "{} did not print a line starting with {prefix:?} within {timeout:?}",
                self.name
            )
        })
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

fn read_in_background(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        // A read error ends the output early; the test sees what arrived.
        let _ = pipe.read_to_end(&mut bytes);
        bytes
    })
}
