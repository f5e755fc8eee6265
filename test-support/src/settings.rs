//! Reading the settings references both binaries are checked against: `.env.example` and
//! the `--help` text clap writes.

use std::collections::BTreeMap;

/// `NAME=VALUE` lines of the workspace's `.env.example` (the settings reference people copy
/// to `.env`), in order.
pub fn env_example() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../.env.example"))
        .expect("the workspace's .env.example");
    text.lines()
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| {
            !k.is_empty()
                && k.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        })
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}

/// The settings a `--help` text lists: variable name → the text of its entry.
pub fn help_entries(help: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut entry = String::new();
    let mut flush = |entry: &mut String| {
        if let Some(i) = entry.find("[env: ") {
            let name: String = entry[i + 6..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            out.insert(name, std::mem::take(entry));
        }
        entry.clear();
    };
    for line in help.lines() {
        if line.trim_start().starts_with('-') {
            flush(&mut entry);
        }
        entry.push_str(line);
        entry.push('\n');
    }
    flush(&mut entry);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_entries_are_keyed_by_their_variable_and_keep_their_text() {
        let help = "Options:\n      --bind <BIND>\n          Where to listen [env: BIND_ADDR=] [default: 127.0.0.1:8000]\n  -h, --help\n          Print help\n";
        let e = help_entries(help);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e["BIND_ADDR"].contains("[default: 127.0.0.1:8000]"));
        assert!(!env_example().is_empty());
    }
}
