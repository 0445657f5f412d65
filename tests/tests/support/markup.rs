//! Well-formedness checks of the event catalog's output, kept simple but strict enough to fail
//! on what breaks a page: an unclosed or stray tag, a `<` that isn't a tag (an unescaped name),
//! an unbalanced quote in a tag, a duplicate id, a link to an id that doesn't exist; in
//! Markdown, a table row with the wrong number of cells, an unclosed code span, a link to a
//! missing anchor.
#![allow(dead_code)]

use std::collections::BTreeSet;

/// Elements that have no closing tag.
const VOID: [&str; 7] = ["meta", "br", "hr", "img", "input", "link", "wbr"];

/// Checks an HTML page; returns every problem found.
pub(crate) fn check_html(html: &str) -> Result<(), Vec<String>> {
    let mut problems = Vec::new();
    let mut open: Vec<String> = Vec::new();
    let mut ids = BTreeSet::new();
    let mut links = Vec::new();
    let mut rest = html;
    let mut offset = 0;
    while let Some(at) = rest.find('<') {
        let here = offset + at;
        let tag_text = &rest[at..];
        let Some(end) = tag_text.find('>') else {
            problems.push(format!("a `<` at byte {here} never closes"));
            break;
        };
        let inner = &tag_text[1..end];
        let advance = at + end + 1;
        rest = &rest[advance..];
        offset += advance;
        if inner.starts_with("!DOCTYPE") {
            continue;
        }
        if !inner.matches('"').count().is_multiple_of(2) {
            problems.push(format!("unbalanced quotes in `<{inner}>` at byte {here}"));
        }
        let (closing, body) = match inner.strip_prefix('/') {
            Some(body) => (true, body),
            None => (false, inner),
        };
        let name: String = body
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        if name.is_empty() || !name.starts_with(|c: char| c.is_ascii_lowercase()) {
            problems.push(format!(
                "`<` at byte {here} does not start a tag: `<{}`",
                inner.chars().take(40).collect::<String>()
            ));
            continue;
        }
        if closing {
            match open.pop() {
                Some(top) if top == name => {}
                Some(top) => problems.push(format!("`</{name}>` at byte {here} closes `<{top}>`")),
                None => problems.push(format!("`</{name}>` at byte {here} closes nothing")),
            }
            continue;
        }
        if let Some(id) = attribute(inner, "id=\"")
            && !ids.insert(id.to_owned())
        {
            problems.push(format!("id `{id}` is used twice"));
        }
        if let Some(target) = attribute(inner, "href=\"#") {
            links.push(target.to_owned());
        }
        if VOID.contains(&name.as_str()) {
            continue;
        }
        if name == "style" {
            // Raw text up to its end tag.
            match rest.find("</style>") {
                Some(close) => {
                    rest = &rest[close + "</style>".len()..];
                    offset += close + "</style>".len();
                }
                None => problems.push("`<style>` never closes".to_owned()),
            }
            continue;
        }
        open.push(name);
    }
    if !open.is_empty() {
        problems.push(format!("tags never closed: {open:?}"));
    }
    for link in links {
        if !ids.contains(&link) {
            problems.push(format!(
                "a link to `#{link}`, which no element has as its id"
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

fn attribute<'a>(tag: &'a str, start: &str) -> Option<&'a str> {
    let at = tag.find(start)? + start.len();
    let len = tag[at..].find('"')?;
    Some(&tag[at..at + len])
}

/// Checks a Markdown document; returns every problem found.
pub(crate) fn check_markdown(md: &str) -> Result<(), Vec<String>> {
    let mut problems = Vec::new();
    let mut anchors = BTreeSet::new();
    let mut links = Vec::new();
    let mut table_cells: Option<usize> = None;
    for (index, line) in md.lines().enumerate() {
        let n = index + 1;
        if let Some(anchor) = line
            .strip_prefix("<a id=\"")
            .and_then(|r| r.strip_suffix("\"></a>"))
            && !anchors.insert(anchor.to_owned())
        {
            problems.push(format!("line {n}: anchor `{anchor}` is defined twice"));
        }
        if let Err(problem) = inline_syntax(line) {
            problems.push(format!("line {n}: {problem}: {line}"));
        }
        let mut rest = line;
        while let Some(at) = rest.find("](#") {
            let target = &rest[at + 3..];
            let end = target.find(')').unwrap_or(target.len());
            links.push((n, target[..end].to_owned()));
            rest = &target[end..];
        }
        if line.starts_with('|') {
            let cells = unescaped_pipes(line);
            if !line.ends_with('|') {
                problems.push(format!("line {n}: a table row that does not end with `|`"));
            }
            match table_cells {
                None => table_cells = Some(cells),
                Some(expected) if expected != cells => problems.push(format!(
                    "line {n}: {} cells, the table's header has {}: {line}",
                    cells.saturating_sub(1),
                    expected.saturating_sub(1)
                )),
                Some(_) => {}
            }
        } else {
            table_cells = None;
        }
    }
    for (n, link) in links {
        if !anchors.contains(&link) {
            problems.push(format!(
                "line {n}: a link to `#{link}`, which no anchor defines"
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// Every code span opened with a run of N backticks closes with a run of N on the same line,
/// and outside code spans no `<` starts an HTML tag but our own anchors (`<a id="…"></a>`
/// alone on a line): a name that reached the document unescaped would. Backslash-escaped
/// characters are text.
fn inline_syntax(line: &str) -> Result<(), String> {
    if line.starts_with("<a id=\"") && line.ends_with("\"></a>") {
        return Ok(());
    }
    let chars: Vec<char> = line.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' => {
                i += 2;
                continue;
            }
            '<' if chars
                .get(i + 1)
                .is_some_and(|c| c.is_ascii_alphabetic() || *c == '/' || *c == '!') =>
            {
                return Err(format!("raw HTML at column {}", i + 1));
            }
            '`' => {}
            _ => {
                i += 1;
                continue;
            }
        }
        let run = chars[i..].iter().take_while(|c| **c == '`').count();
        let mut j = i + run;
        let mut closed = false;
        while j < chars.len() {
            if chars[j] == '`' {
                let other = chars[j..].iter().take_while(|c| **c == '`').count();
                j += other;
                if other == run {
                    closed = true;
                    break;
                }
            } else {
                j += 1;
            }
        }
        if !closed {
            return Err(format!(
                "a code span opened at column {} never closes",
                i + 1
            ));
        }
        i = j;
    }
    Ok(())
}

/// The `|` that separate cells (GitHub splits at every unescaped one, even in code spans).
pub(crate) fn unescaped_pipes(line: &str) -> usize {
    let mut count = 0;
    let mut escaped = false;
    for c in line.chars() {
        match c {
            '\\' if !escaped => escaped = true,
            '|' if !escaped => count += 1,
            _ => escaped = false,
        }
    }
    count
}
