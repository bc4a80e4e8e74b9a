//! Line numbers of byte offsets, for messages.
//!
//! `roxmltree::Document::text_pos_at` rescans the text from the start on
//! every call, which made reading a model with thousands of elements
//! quadratic (most of the load time of a 500-species model). This index is
//! built once per document; a lookup is a binary search.

/// The byte offsets at which lines start.
pub(crate) struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    pub(crate) fn new(text: &str) -> LineIndex {
        let mut starts = vec![0];
        starts.extend(text.bytes().enumerate().filter(|&(_, b)| b == b'\n').map(|(i, _)| i + 1));
        LineIndex { starts }
    }

    /// The 1-based line of a byte offset.
    pub(crate) fn line(&self, offset: usize) -> u32 {
        self.starts.partition_point(|&s| s <= offset) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agrees_with_roxmltree() {
        let text = "<a>\n  <b/>\n\n<c>x</c></a>";
        let doc = roxmltree::Document::parse(text).unwrap();
        let index = LineIndex::new(text);
        for n in doc.descendants() {
            assert_eq!(index.line(n.range().start), doc.text_pos_at(n.range().start).row);
        }
    }
}
