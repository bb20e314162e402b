//! Reading the config file: a regular file of at most [`MAX_FILE_SIZE`] bytes, opened without
//! blocking, so that a path pointing elsewhere (a wrong symlink to `/dev/zero`, a FIFO nobody
//! writes to) is refused at once instead of being read forever or waited on.

use std::fs::{Metadata, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// The largest config file: 1 MiB. A config with the most pools allowed (1024), every key of
/// every pool written out and 128-byte names is 0.54 MB; a file larger than that is not a
/// config. `/dev/zero` behind the path took 2.7 GB in 4.5 s before reading was bounded.
pub(crate) const MAX_FILE_SIZE: u64 = 1 << 20;

/// Why the file could not be read.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// Opening or reading failed.
    Io(std::io::Error),
    /// The path leads to something other than a regular file: what it is.
    NotRegular(&'static str),
    /// The file holds more than [`MAX_FILE_SIZE`] bytes: at least this many.
    TooLarge(u64),
}

impl From<std::io::Error> for ReadError {
    fn from(error: std::io::Error) -> Self {
        Self::Io(error)
    }
}

/// The file's metadata and content.
///
/// # Errors
///
/// [`ReadError`] when the file cannot be opened or read, is not a regular file, or is larger
/// than [`MAX_FILE_SIZE`].
pub(crate) fn read(path: &Path) -> Result<(Metadata, Vec<u8>), ReadError> {
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer, forever if
    // none comes. On a regular file the flag changes nothing.
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    // The type of what was opened, not of what the path names now: a file swapped in between
    // cannot slip past.
    let metadata = file.metadata()?;
    if !metadata.is_file() {
        return Err(ReadError::NotRegular(kind(&metadata)));
    }
    if metadata.len() > MAX_FILE_SIZE {
        return Err(ReadError::TooLarge(metadata.len()));
    }
    // The length is at most MAX_FILE_SIZE, so the capacity fits; one byte more than the limit
    // is read to see a file that grew since its metadata was taken.
    let mut bytes = Vec::with_capacity(metadata.len() as usize);
    file.take(MAX_FILE_SIZE + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_FILE_SIZE {
        return Err(ReadError::TooLarge(bytes.len() as u64));
    }
    Ok((metadata, bytes))
}

/// What a file that is not a regular file is, in the words of `ls -l`'s manual.
fn kind(metadata: &Metadata) -> &'static str {
    let file_type = metadata.file_type();
    if file_type.is_dir() {
        "a directory"
    } else if file_type.is_fifo() {
        "a FIFO (named pipe)"
    } else if file_type.is_char_device() {
        "a character device"
    } else if file_type.is_block_device() {
        "a block device"
    } else if file_type.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_and_directories_are_refused_without_reading() {
        for (path, expected) in [
            ("/dev/zero", "a character device"),
            ("/dev/null", "a character device"),
            ("/", "a directory"),
        ] {
            match read(Path::new(path)) {
                Err(ReadError::NotRegular(kind)) => assert_eq!(kind, expected, "{path}"),
                other => panic!("{path}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_file_over_the_limit_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("large.yaml");
        let file = std::fs::File::create(&path).unwrap();
        // Sparse: no disk space is used.
        file.set_len(MAX_FILE_SIZE + 1).unwrap();
        match read(&path) {
            Err(ReadError::TooLarge(len)) => assert_eq!(len, MAX_FILE_SIZE + 1),
            other => panic!("{other:?}"),
        }
        file.set_len(MAX_FILE_SIZE).unwrap();
        let (_, bytes) = read(&path).expect("a file of exactly the limit");
        assert_eq!(bytes.len() as u64, MAX_FILE_SIZE);
    }
}
