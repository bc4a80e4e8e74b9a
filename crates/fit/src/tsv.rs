//! Tab-separated PEtab tables, with the line of every row kept for messages.

use std::path::{Path, PathBuf};

use crate::{At, FitError};

pub(crate) struct Table {
    pub file: PathBuf,
    pub header: Vec<String>,
    pub rows: Vec<Row>,
}

pub(crate) struct Row {
    /// 1-based line in the file.
    pub line: usize,
    pub fields: Vec<String>,
}

impl Table {
    pub fn read(path: &Path) -> Result<Table, FitError> {
        let text = std::fs::read_to_string(path).map_err(|error| FitError::Io { path: path.to_path_buf(), error })?;
        Ok(Table::parse(&text, path))
    }

    pub fn parse(text: &str, path: &Path) -> Table {
        let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
        let header = match lines.next() {
            Some((_, h)) => h.trim_start_matches('\u{feff}').split('\t').map(|s| clean(s).to_string()).collect(),
            None => Vec::new(),
        };
        let rows = lines
            .map(|(i, l)| Row { line: i + 1, fields: l.split('\t').map(|s| clean(s).to_string()).collect() })
            .collect();
        Table { file: path.to_path_buf(), header, rows }
    }

    pub fn column(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|h| h == name)
    }

    pub fn at(&self, line: usize, column: &str) -> At {
        At { file: self.file.clone(), line, column: column.to_string() }
    }

    /// The index of a column the table must have.
    pub fn required(&self, name: &str) -> Result<usize, FitError> {
        self.column(name).ok_or_else(|| FitError::MissingColumn { at: self.at(1, name) })
    }

    /// The field of `row` in column `col` (if the table has it), `None` when empty.
    pub fn get<'a>(&self, row: &'a Row, col: Option<usize>) -> Option<&'a str> {
        let s = row.fields.get(col?)?.as_str();
        (!s.is_empty()).then_some(s)
    }

    /// A required number in a row.
    pub fn number(&self, row: &Row, col: usize) -> Result<f64, FitError> {
        let s = self.get(row, Some(col)).unwrap_or("");
        parse_number(s).ok_or_else(|| FitError::Value {
            at: self.at(row.line, &self.header[col]),
            expected: "a number",
            found: s.to_string(),
        })
    }
}

/// Surrounding spaces and quotes are not part of a value (spreadsheets add them).
fn clean(s: &str) -> &str {
    let s = s.trim();
    let b = s.as_bytes();
    if b.len() >= 2 && b[0] == b'"' && b[b.len() - 1] == b'"' {
        &s[1..s.len() - 1]
    } else {
        s
    }
}

/// A PEtab number: decimal, `inf`, `-inf`, `nan` in any case.
pub(crate) fn parse_number(s: &str) -> Option<f64> {
    s.trim().parse::<f64>().ok()
}
