//! Plain-text log fields that always stay on one line: whatever a model, a client or the
//! network put into a logged value (a tool name, an error message from a provider, a field
//! name echoed in a protocol error), line breaks, ANSI escape sequences and other control or
//! bidirectional characters are written as escapes, so no value can end a log line, forge
//! another one, or drive the terminal reading it. JSON logs need none of this: JSON escapes.

use std::fmt::{self, Write};

use tracing::field::Field;
use tracing_subscriber::field::MakeExt;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::{Writer, debug_fn};

/// The field formatter for plain-text logs: `name=value` pairs separated by spaces, the
/// message bare, as tracing-subscriber's default, with every value escaped.
pub fn plain_fields() -> impl for<'w> FormatFields<'w> + Send + Sync + 'static {
    debug_fn(write_field).delimited(" ")
}

fn write_field(w: &mut Writer<'_>, field: &Field, value: &dyn fmt::Debug) -> fmt::Result {
    let name = field.name();
    if name.starts_with("log.") {
        return Ok(()); // metadata of events from the `log` crate, shown elsewhere
    }
    if name != "message" {
        write!(w, "{}=", name.strip_prefix("r#").unwrap_or(name))?;
    }
    write!(Escaping(w), "{value:?}")
}

/// Characters that may not reach a log line as they are.
fn must_escape(c: char) -> bool {
    c.is_control()
        || matches!(c,
            // line and paragraph separators
            '\u{2028}' | '\u{2029}'
            // bidirectional marks, embeddings, overrides and isolates
            | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Writes through to `W`, escaping what [`must_escape`] names.
struct Escaping<'a, W: Write>(&'a mut W);

impl<W: Write> Write for Escaping<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut rest = s;
        while let Some(i) = rest.find(must_escape) {
            self.0.write_str(&rest[..i])?;
            let c = rest[i..].chars().next().unwrap_or_default();
            match c {
                '\n' => self.0.write_str("\\n")?,
                '\r' => self.0.write_str("\\r")?,
                '\t' => self.0.write_str("\\t")?,
                c => write!(self.0, "\\u{{{:x}}}", c as u32)?,
            }
            rest = &rest[i + c.len_utf8()..];
        }
        self.0.write_str(rest)
    }
}

/// `s` as it would appear in a plain-text log value.
pub fn escaped(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let _ = Escaping(&mut out).write_str(s);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_breaks_terminal_escapes_and_bidi_controls_are_escaped() {
        assert_eq!(escaped("plain text, 👍 ü"), "plain text, 👍 ü");
        assert_eq!(
            escaped("add\n2026-12-01T00:00:00Z  INFO forged\r\x1b[31mred\x1b[0m\t"),
            "add\\n2026-12-01T00:00:00Z  INFO forged\\r\\u{1b}[31mred\\u{1b}[0m\\t"
        );
        assert_eq!(
            escaped("a\u{2028}b\u{202e}c\u{2066}d\u{85}e\u{7f}"),
            "a\\u{2028}b\\u{202e}c\\u{2066}d\\u{85}e\\u{7f}"
        );
    }
}
