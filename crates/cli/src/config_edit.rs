//! Writing recommended settings into a heapscape YAML config, changing only their values:
//! comments, order, other keys and other pools stay as written, so a hot reload applies exactly
//! the recommendation and a review sees exactly what changed.
//!
//! YAML libraries drop comments and reorder keys when they write, so the file is edited as
//! text: the `pools:` block, each pool's entry (block style, or a one-line flow mapping), and
//! each key's value. The result is parsed again and compared with the original: anything but
//! the intended values differing is an error, and nothing is written.

use serde_json::Value;

use crate::fleet::Settings;

/// The keys written, in the order they are added when missing.
const KEYS: [&str; 4] = [
    "max_buffer_size",
    "initial_capacity",
    "max_idle_buffers",
    "max_idle_bytes",
];

/// A size as the config reads it: whole `MiB` or `KiB` when exact, else bytes.
fn size_value(bytes: u64) -> String {
    match bytes {
        b if b > 0 && b % (1 << 20) == 0 => format!("{}MiB", b >> 20),
        b if b > 0 && b % (1 << 10) == 0 => format!("{}KiB", b >> 10),
        b => b.to_string(),
    }
}

/// The values to write for `settings`, by key.
fn values(settings: &Settings) -> [(&'static str, String); 4] {
    [
        (KEYS[0], size_value(settings.max_buffer_size)),
        (KEYS[1], size_value(settings.initial_capacity)),
        (KEYS[2], settings.max_idle_buffers.to_string()),
        (KEYS[3], size_value(settings.max_idle_bytes)),
    ]
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

/// Whether a line holds YAML content (not blank, not only a comment).
fn is_content(line: &str) -> bool {
    let trimmed = line.trim();
    !trimmed.is_empty() && !trimmed.starts_with('#')
}

/// Splits `value  # comment` into the value and what follows it (the comment with its
/// spacing), for a value that holds no `#` itself.
fn split_comment(rest: &str) -> (&str, &str) {
    match rest.find(" #") {
        Some(at) => {
            let value = rest[..at].trim_end();
            (value, &rest[value.len()..])
        }
        None => (rest, ""),
    }
}

/// `text` with each `(pool, settings)` written; errors say what to change by hand.
pub(crate) fn apply(text: &str, changes: &[(String, Settings)]) -> Result<String, String> {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    for (pool, settings) in changes {
        write_pool(&mut lines, pool, settings)?;
    }
    let mut edited = lines.join("\n");
    if text.ends_with('\n') {
        edited.push('\n');
    }
    check(text, &edited, changes)?;
    Ok(edited)
}

fn write_pool(lines: &mut Vec<String>, pool: &str, settings: &Settings) -> Result<(), String> {
    let pools_at = lines
        .iter()
        .position(|line| {
            indent(line) == 0 && line.split('#').next().unwrap_or("").trim() == "pools:"
        })
        .ok_or("no `pools:` block in block style: write `pools:` on a line of its own")?;
    let block_end = (pools_at + 1..lines.len())
        .find(|&i| is_content(&lines[i]) && indent(&lines[i]) == 0)
        .unwrap_or(lines.len());
    let child_indent = (pools_at + 1..block_end)
        .find(|&i| is_content(&lines[i]))
        .map(|i| indent(&lines[i]))
        .ok_or("the `pools:` block is empty")?;
    let entry = (pools_at + 1..block_end)
        .find(|&i| {
            let line = &lines[i];
            indent(line) == child_indent
                && is_content(line)
                && line
                    .trim_start()
                    .strip_prefix(pool)
                    .is_some_and(|rest| rest.starts_with(':') || rest.trim_start().starts_with(':'))
        })
        .ok_or_else(|| format!("pool `{pool}` is not in the file: add it under `pools:` first"))?;
    let (_, after_colon) = lines[entry]
        .split_once(':')
        .expect("an entry line has a colon");
    let (inline, comment) = split_comment(after_colon);
    let inline = inline.trim();
    if inline.starts_with('{') {
        let edited = write_flow(inline, settings).ok_or_else(|| {
            format!(
                "pool `{pool}` is a flow mapping with nested values: rewrite it in block style \
                 (one key per line) to let this tool edit it"
            )
        })?;
        lines[entry] = format!("{}{pool}: {edited}{comment}", " ".repeat(child_indent));
        return Ok(());
    }
    if !inline.is_empty() {
        return Err(format!(
            "pool `{pool}` has the value `{inline}`, not a mapping"
        ));
    }
    let entry_end = (entry + 1..block_end)
        .find(|&i| is_content(&lines[i]) && indent(&lines[i]) <= child_indent)
        .unwrap_or(block_end);
    let key_indent = (entry + 1..entry_end)
        .find(|&i| is_content(&lines[i]))
        .map_or(child_indent + 2, |i| indent(&lines[i]));
    let mut insert_at = entry + 1;
    for (key, value) in values(settings) {
        let found = (entry + 1..entry_end).find(|&i| {
            indent(&lines[i]) == key_indent
                && lines[i]
                    .trim_start()
                    .strip_prefix(key)
                    .is_some_and(|r| r.starts_with(':'))
        });
        match found {
            Some(i) => {
                let (_, rest) = lines[i].split_once(':').expect("a key line has a colon");
                let (_, comment) = split_comment(rest);
                lines[i] = format!("{}{key}: {value}{comment}", " ".repeat(key_indent));
            }
            None => {
                lines.insert(
                    insert_at,
                    format!("{}{key}: {value}", " ".repeat(key_indent)),
                );
                insert_at += 1;
            }
        }
    }
    Ok(())
}

/// A one-line flow mapping `{ k: v, ... }` with the settings written, or `None` when it nests.
fn write_flow(inline: &str, settings: &Settings) -> Option<String> {
    let inner = inline.strip_prefix('{')?.strip_suffix('}')?;
    if inner.contains(['{', '[', '"', '\'']) {
        return None;
    }
    let mut entries: Vec<(String, String)> = inner
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            let (key, value) = entry.split_once(':')?;
            Some((key.trim().to_owned(), value.trim().to_owned()))
        })
        .collect::<Option<_>>()?;
    for (key, value) in values(settings) {
        match entries.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value,
            None => entries.push((key.to_owned(), value)),
        }
    }
    let body: Vec<String> = entries.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    Some(format!("{{ {} }}", body.join(", ")))
}

/// Both texts parsed: the edited one must equal the original with exactly the intended values.
fn check(original: &str, edited: &str, changes: &[(String, Settings)]) -> Result<(), String> {
    let parse = |text: &str, what: &str| -> Result<Value, String> {
        serde_saphyr::from_str(text).map_err(|e| format!("{what} is not valid YAML: {e}"))
    };
    let mut expected = parse(original, "the file")?;
    let got = parse(edited, "the edited file (nothing was written)")?;
    for (pool, settings) in changes {
        let entry = &mut expected["pools"][pool.as_str()];
        if !entry.is_object() {
            *entry = Value::Object(Default::default());
        }
        for (key, value) in values(settings) {
            // Written as the YAML reader reads it back: a plain number or a string.
            entry[key] = value
                .parse::<u64>()
                .map_or(Value::String(value.clone()), Value::from);
        }
    }
    if got != expected {
        return Err(
            "editing the file would change more than the pool settings (an unusual layout?): \
             nothing was written; edit it by hand"
                .to_owned(),
        );
    }
    Ok(())
}

/// The lines that differ between `before` and `after`, as `-`/`+` pairs with line numbers.
pub(crate) fn diff(path: &str, before: &str, after: &str) -> String {
    let (old, new): (Vec<&str>, Vec<&str>) = (before.lines().collect(), after.lines().collect());
    let mut out = format!("--- {path}\n+++ {path} (recommended)\n");
    let (mut i, mut j) = (0, 0);
    while i < old.len() || j < new.len() {
        match (old.get(i), new.get(j)) {
            (Some(a), Some(b)) if a == b => {
                i += 1;
                j += 1;
            }
            // Inserted lines: the next old line appears further on in the new text.
            (Some(a), Some(b)) if new[j..].contains(a) && !old[i..].contains(b) => {
                out.push_str(&format!("+{:>5} {b}\n", j + 1));
                j += 1;
            }
            (Some(a), Some(b)) => {
                out.push_str(&format!("-{:>5} {a}\n+{:>5} {b}\n", i + 1, j + 1));
                i += 1;
                j += 1;
            }
            (Some(a), None) => {
                out.push_str(&format!("-{:>5} {a}\n", i + 1));
                i += 1;
            }
            (None, Some(b)) => {
                out.push_str(&format!("+{:>5} {b}\n", j + 1));
                j += 1;
            }
            (None, None) => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SETTINGS: Settings = Settings {
        max_buffer_size: 1_490_944,
        initial_capacity: 256 << 10,
        max_idle_buffers: 6,
        max_idle_bytes: 8_945_664,
    };

    #[test]
    fn block_style_keeps_comments_order_and_other_pools() {
        let text = "# the demo\nservice: tts\npools:\n  pcm:\n    # the stream buffers\n    \
                    max_buffer_size: 4MiB   # was a guess\n    idle_timeout: 60s\n  json: \
                    { max_buffer_size: 64KiB }\nheartbeat: { interval: 5s }\n";
        let edited = apply(text, &[("pcm".to_owned(), SETTINGS)]).unwrap();
        assert_eq!(
            edited,
            "# the demo\nservice: tts\npools:\n  pcm:\n    initial_capacity: 256KiB\n    \
             max_idle_buffers: 6\n    max_idle_bytes: 8736KiB\n    # the stream buffers\n    \
             max_buffer_size: 1456KiB   # was a guess\n    idle_timeout: 60s\n  json: \
             { max_buffer_size: 64KiB }\nheartbeat: { interval: 5s }\n"
        );
    }

    #[test]
    fn one_line_flow_mappings_are_edited_in_place() {
        let text = "pools:\n  bodies: { initial_capacity: 1KiB, max_buffer_size: 64KiB } # web\n";
        let edited = apply(text, &[("bodies".to_owned(), SETTINGS)]).unwrap();
        assert_eq!(
            edited,
            "pools:\n  bodies: { initial_capacity: 256KiB, max_buffer_size: 1456KiB, \
             max_idle_buffers: 6, max_idle_bytes: 8736KiB } # web\n"
        );
    }

    #[test]
    fn what_it_cannot_edit_safely_is_refused_with_the_fix() {
        for (text, error) in [
            (
                "pools:\n  pcm: { auto_tune: { enabled: true } }\n",
                "rewrite it in block style",
            ),
            (
                "pools:\n  pcm:\n    max_buffer_size: 4MiB\n",
                "pool `json` is not in the file",
            ),
            ("service: x\n", "no `pools:` block"),
            ("pools: { pcm: {} }\n", "no `pools:` block"),
        ] {
            let pool = if error.contains("json") {
                "json"
            } else {
                "pcm"
            };
            let refused = apply(text, &[(pool.to_owned(), SETTINGS)]).unwrap_err();
            assert!(refused.contains(error), "{text:?}: {refused}");
        }
    }

    #[test]
    fn the_diff_shows_changed_and_added_lines() {
        let diff = diff("c.yaml", "a\nb\nc\n", "a\nB\nnew\nc\n");
        assert_eq!(
            diff,
            "--- c.yaml\n+++ c.yaml (recommended)\n-    2 b\n+    2 B\n+    3 new\n"
        );
    }
}
