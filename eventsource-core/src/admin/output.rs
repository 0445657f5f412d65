//! How the admin CLI writes: tables for a person at a terminal (coloured only there, and not
//! with `NO_COLOR`), one JSON object per line for scripts (`--json`).

use std::io::{IsTerminal, Write};

use serde::Serialize;

use super::{AdminError, Outcome};

/// Where and how a command writes its results.
#[derive(Debug, Clone, Copy)]
pub(super) struct Output {
    /// One JSON object per line instead of tables.
    pub(super) json: bool,
    /// Whether stdout is a terminal that gets colours.
    color: bool,
}

impl Output {
    /// Output to stdout; colours only when stdout is a terminal and `NO_COLOR` is unset.
    pub(super) fn stdout(json: bool) -> Self {
        let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        Self { json, color }
    }

    /// Writes one line and flushes it (a follower's reader sees it at once).
    pub(super) fn line(&self, text: &str) -> Outcome {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{text}")
            .and_then(|()| out.flush())
            .map_err(AdminError::io("writing to stdout"))
    }

    /// Writes `value` as one JSON line.
    pub(super) fn json_line(&self, value: &impl Serialize) -> Outcome {
        let text = serde_json::to_string(value)
            .map_err(|e| AdminError::Refused(format!("cannot show the result as JSON: {e}")))?;
        self.line(&text)
    }

    /// Writes a table: a header row, then the rows, columns padded to their widest cell (the
    /// last one not padded).
    pub(super) fn table(&self, headers: &[&str], rows: &[Vec<String>]) -> Outcome {
        let mut widths: Vec<usize> = headers.iter().map(|h| visible_len(h)).collect();
        for row in rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(visible_len(cell));
            }
        }
        let render = |cells: &mut dyn Iterator<Item = &str>| {
            let mut line = String::new();
            for (i, cell) in cells.enumerate() {
                if i + 1 < widths.len() {
                    let pad = widths[i].saturating_sub(visible_len(cell));
                    line.push_str(cell);
                    line.extend(std::iter::repeat_n(' ', pad + 2));
                } else {
                    line.push_str(cell);
                }
            }
            line.trim_end().to_owned()
        };
        let header = render(&mut headers.iter().copied());
        self.line(&self.bold(&header))?;
        for row in rows {
            self.line(&render(&mut row.iter().map(String::as_str)))?;
        }
        Ok(())
    }

    /// `text` in bold, on a terminal.
    pub(super) fn bold(&self, text: &str) -> String {
        self.paint("1", text)
    }

    /// `text` in a colour that sets names apart, on a terminal.
    pub(super) fn accent(&self, text: &str) -> String {
        self.paint("36", text)
    }

    /// `text` dimmed, on a terminal.
    pub(super) fn dim(&self, text: &str) -> String {
        self.paint("2", text)
    }

    /// `text` in red, on a terminal.
    pub(super) fn alarm(&self, text: &str) -> String {
        self.paint("31", text)
    }

    /// `text` in green, on a terminal.
    pub(super) fn good(&self, text: &str) -> String {
        self.paint("32", text)
    }

    fn paint(&self, code: &str, text: &str) -> String {
        match self.color {
            true => format!("\x1b[{code}m{text}\x1b[0m"),
            false => text.to_owned(),
        }
    }
}

/// How many characters of `text` show on a terminal: colour codes (`ESC [ … m`) take none.
fn visible_len(text: &str) -> usize {
    let mut count = 0;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            count += 1;
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_codes_take_no_width() {
        let out = Output {
            json: false,
            color: true,
        };
        assert_eq!(visible_len(&out.accent("BankAccount")), 11);
        assert_eq!(visible_len("Überweisung"), 11);
    }
}
