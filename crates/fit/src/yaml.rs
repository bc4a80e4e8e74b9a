//! The subset of YAML that PEtab problem files use: block mappings, block
//! sequences (also at the indentation of their key), flow sequences
//! `[a, b]`, plain and quoted scalars, comments.
//!
//! A full YAML library would be a large dependency for a file of ten lines;
//! anything outside the subset (anchors, multi-line scalars, flow mappings,
//! tabs in indentation) is an error naming the line, never a guess.

use std::path::Path;

use crate::FitError;

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Yaml {
    Scalar { value: String, line: usize },
    List { items: Vec<Yaml>, line: usize },
    Map { entries: Vec<(String, Yaml)>, line: usize },
}

impl Yaml {
    pub fn line(&self) -> usize {
        match self {
            Yaml::Scalar { line, .. } | Yaml::List { line, .. } | Yaml::Map { line, .. } => *line,
        }
    }
    pub fn get(&self, key: &str) -> Option<&Yaml> {
        match self {
            Yaml::Map { entries, .. } => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
}

struct Line {
    indent: usize,
    text: String,
    no: usize,
}

pub(crate) fn parse(src: &str, file: &Path) -> Result<Yaml, FitError> {
    let err = |line: usize, problem: String| FitError::Yaml { file: file.to_path_buf(), line, problem };
    let mut lines = Vec::new();
    for (i, raw) in src.lines().enumerate() {
        let no = i + 1;
        let body = strip_comment(raw);
        if body.trim().is_empty() || body.trim() == "---" {
            continue;
        }
        let indent = body.len() - body.trim_start_matches(' ').len();
        if body[indent..].starts_with('\t') {
            return Err(err(no, "tab in indentation".into()));
        }
        if ["&", "*", "|", ">", "{", "!", "%"].iter().any(|c| body[indent..].starts_with(c)) {
            return Err(err(no, format!("unsupported YAML construct '{}'", body.trim())));
        }
        lines.push(Line { indent, text: body[indent..].trim_end().to_string(), no });
    }
    if lines.is_empty() {
        return Err(err(1, "empty document".into()));
    }
    let mut i = 0;
    let indent = lines[0].indent;
    let v = block(&mut lines, &mut i, indent, file)?;
    if let Some(l) = lines.get(i) {
        return Err(err(l.no, format!("unexpected indentation of '{}'", l.text)));
    }
    Ok(v)
}

/// Drops a `#` comment that is not inside quotes.
fn strip_comment(s: &str) -> &str {
    let mut quote = None;
    let mut prev_space = true;
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '#') if prev_space => return &s[..i],
            _ => {}
        }
        prev_space = c == ' ' || c == '\t';
    }
    s
}

fn block(lines: &mut [Line], i: &mut usize, indent: usize, file: &Path) -> Result<Yaml, FitError> {
    let err = |line: usize, problem: String| FitError::Yaml { file: file.to_path_buf(), line, problem };
    let first = &lines[*i];
    let start_line = first.no;
    if is_item(&first.text) {
        let mut items = Vec::new();
        while *i < lines.len() && lines[*i].indent == indent && is_item(&lines[*i].text) {
            let no = lines[*i].no;
            let rest = lines[*i].text[1..].trim_start().to_string();
            if rest.is_empty() {
                *i += 1;
                match lines.get(*i) {
                    Some(next) if next.indent > indent => {
                        let ni = next.indent;
                        items.push(block(lines, i, ni, file)?);
                    }
                    _ => items.push(Yaml::Scalar { value: String::new(), line: no }),
                }
            } else if split_key(&rest).is_some() {
                // "- key: value": a mapping whose first line shares the dash;
                // its keys line up with the text after "- ".
                let offset = lines[*i].text.len() - rest.len();
                lines[*i].indent = indent + offset;
                lines[*i].text = rest;
                let ni = indent + offset;
                items.push(block(lines, i, ni, file)?);
            } else {
                items.push(scalar_or_flow(&rest, no, file)?);
                *i += 1;
            }
        }
        return Ok(Yaml::List { items, line: start_line });
    }
    let mut entries: Vec<(String, Yaml)> = Vec::new();
    while *i < lines.len() && lines[*i].indent == indent {
        let no = lines[*i].no;
        if is_item(&lines[*i].text) {
            return Err(err(no, "a list item where a 'key: value' line was expected".into()));
        }
        let Some((key, rest)) = split_key(&lines[*i].text) else {
            return Err(err(no, format!("expected 'key: value', found '{}'", lines[*i].text)));
        };
        if entries.iter().any(|(k, _)| *k == key) {
            return Err(err(no, format!("key '{key}' appears twice")));
        }
        *i += 1;
        let value = if rest.is_empty() {
            match lines.get(*i) {
                Some(next) if next.indent > indent => {
                    let ni = next.indent;
                    block(lines, i, ni, file)?
                }
                // A sequence may sit at its key's own indentation.
                Some(next) if next.indent == indent && is_item(&next.text) => block(lines, i, indent, file)?,
                _ => Yaml::Scalar { value: String::new(), line: no },
            }
        } else {
            scalar_or_flow(&rest, no, file)?
        };
        entries.push((key, value));
    }
    if let Some(l) = lines.get(*i) {
        if l.indent > indent {
            return Err(err(l.no, format!("unexpected indentation of '{}'", l.text)));
        }
    }
    Ok(Yaml::Map { entries, line: start_line })
}

fn is_item(text: &str) -> bool {
    text == "-" || text.starts_with("- ")
}

/// `key: rest` (rest possibly empty), with the key unquoted.
fn split_key(text: &str) -> Option<(String, String)> {
    let (key, rest) = if let Some(k) = text.strip_suffix(':') {
        (k, "")
    } else {
        let pos = text.find(": ")?;
        (&text[..pos], &text[pos + 2..])
    };
    if key.starts_with('[') || key.starts_with('"') && !key.ends_with('"') {
        return None;
    }
    Some((unquote(key.trim()), rest.trim().to_string()))
}

fn unquote(s: &str) -> String {
    let b = s.as_bytes();
    if b.len() >= 2 && (b[0] == b'"' || b[0] == b'\'') && b[b.len() - 1] == b[0] {
        s[1..s.len() - 1].to_string()
    } else {
        s.to_string()
    }
}

fn scalar_or_flow(text: &str, line: usize, file: &Path) -> Result<Yaml, FitError> {
    if ["&", "*", "|", ">", "{", "!", "%"].iter().any(|c| text.starts_with(c)) {
        return Err(FitError::Yaml {
            file: file.to_path_buf(),
            line,
            problem: format!("unsupported YAML construct '{text}'"),
        });
    }
    if let Some(inner) = text.strip_prefix('[') {
        let Some(inner) = inner.strip_suffix(']') else {
            return Err(FitError::Yaml {
                file: file.to_path_buf(),
                line,
                problem: "a flow sequence must close on its line".into(),
            });
        };
        let items = inner
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| Yaml::Scalar { value: unquote(s), line })
            .collect();
        return Ok(Yaml::List { items, line });
    }
    Ok(Yaml::Scalar { value: unquote(text), line })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn show(y: &Yaml) -> String {
        match y {
            Yaml::Scalar { value, .. } => format!("{value:?}"),
            Yaml::List { items, .. } => format!("[{}]", items.iter().map(show).collect::<Vec<_>>().join(", ")),
            Yaml::Map { entries, .. } => {
                format!(
                    "{{{}}}",
                    entries.iter().map(|(k, v)| format!("{k}: {}", show(v))).collect::<Vec<_>>().join(", ")
                )
            }
        }
    }

    #[test]
    fn petab_problem_file() {
        let src = "format_version: 1  # v1\nparameter_file: p.tsv\nproblems:\n- condition_files:\n  - c.tsv\n  measurement_files: [m1.tsv, 'm2.tsv']\n  sbml_files:\n    - model.xml\n";
        let y = parse(src, Path::new("x.yaml")).unwrap();
        expect_test::expect![[r#"{format_version: "1", parameter_file: "p.tsv", problems: [{condition_files: ["c.tsv"], measurement_files: ["m1.tsv", "m2.tsv"], sbml_files: ["model.xml"]}]}"#]]
            .assert_eq(&show(&y));
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse("a: 1\nb: 2\n  c: 3\n", Path::new("x.yaml")).unwrap_err();
        assert_eq!(e.to_string(), "x.yaml:3: unexpected indentation of 'c: 3'");
        let e = parse("a: 1\nb: &anchor 2\n", Path::new("x.yaml")).unwrap_err();
        assert_eq!(e.to_string(), "x.yaml:2: unsupported YAML construct '&anchor 2'");
        let e = parse("a: 1\na: 2\n", Path::new("x.yaml")).unwrap_err();
        assert_eq!(e.to_string(), "x.yaml:2: key 'a' appears twice");
    }
}
