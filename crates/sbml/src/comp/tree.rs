//! A small owned XML tree: roxmltree documents are read-only and borrow their
//! text, while flattening clones, renames and splices elements across several
//! documents (the main file and its external model files).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::rc::Rc;

pub(crate) const MATHML_NS: &str = "http://www.w3.org/1998/Math/MathML";

/// An attribute; `ns` is its namespace URI (`None` for unqualified attributes,
/// which is how SBML core attributes are written).
#[derive(Clone, Debug)]
pub(crate) struct Attr {
    pub ns: Option<Rc<str>>,
    pub name: String,
    pub value: String,
}

#[derive(Clone, Debug)]
pub(crate) enum Node {
    Elem(Elem),
    Text(String),
}

/// An element. `uid` identifies one element of one instantiation: references
/// (ports, replacements, deletions) are resolved to uids before ids are
/// renamed, so they stay valid while names change.
#[derive(Clone, Debug)]
pub(crate) struct Elem {
    pub uid: u32,
    pub ns: Option<Rc<str>>,
    pub name: String,
    pub attrs: Vec<Attr>,
    pub children: Vec<Node>,
    /// Where the element came from, for error messages.
    pub file: Rc<str>,
    pub line: u32,
}

impl Elem {
    pub fn new(ns: Option<Rc<str>>, name: &str, file: Rc<str>, line: u32) -> Elem {
        Elem { uid: 0, ns, name: name.to_string(), attrs: Vec::new(), children: Vec::new(), file, line }
    }

    /// A MathML element (used when flattening builds new math).
    pub fn math(name: &str, like: &Elem) -> Elem {
        Elem::new(Some(Rc::from(MATHML_NS)), name, like.file.clone(), like.line)
    }

    pub fn ns_is(&self, pred: impl Fn(&str) -> bool) -> bool {
        self.ns.as_deref().is_some_and(pred)
    }

    /// Unqualified attribute (SBML core style).
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.iter().find(|a| a.ns.is_none() && a.name == name).map(|a| a.value.as_str())
    }

    /// Attribute by local name in no namespace or in a namespace accepted by
    /// `ns_ok`: comp attributes are normally prefixed (`comp:idRef`), but some
    /// writers leave them unqualified on comp elements.
    pub fn attr_in(&self, name: &str, ns_ok: impl Fn(&str) -> bool) -> Option<&str> {
        self.attrs.iter().find(|a| a.name == name && a.ns.as_deref().is_none_or(&ns_ok)).map(|a| a.value.as_str())
    }

    pub fn set_attr(&mut self, name: &str, value: &str) {
        match self.attrs.iter_mut().find(|a| a.ns.is_none() && a.name == name) {
            Some(a) => a.value = value.to_string(),
            None => self.attrs.push(Attr { ns: None, name: name.to_string(), value: value.to_string() }),
        }
    }

    pub fn elems(&self) -> impl Iterator<Item = &Elem> {
        self.children.iter().filter_map(|c| match c {
            Node::Elem(e) => Some(e),
            Node::Text(_) => None,
        })
    }

    pub fn elems_mut(&mut self) -> impl Iterator<Item = &mut Elem> {
        self.children.iter_mut().filter_map(|c| match c {
            Node::Elem(e) => Some(e),
            Node::Text(_) => None,
        })
    }

    pub fn text(&self) -> String {
        let mut s = String::new();
        for c in &self.children {
            if let Node::Text(t) = c {
                s.push_str(t);
            }
        }
        s
    }

    pub fn set_text(&mut self, t: &str) {
        self.children = vec![Node::Text(t.to_string())];
    }

    /// Depth-first search by uid.
    pub fn find(&self, uid: u32) -> Option<&Elem> {
        if self.uid == uid {
            return Some(self);
        }
        self.elems().find_map(|c| c.find(uid))
    }

    pub fn find_mut(&mut self, uid: u32) -> Option<&mut Elem> {
        if self.uid == uid {
            return Some(self);
        }
        self.elems_mut().find_map(|c| c.find_mut(uid))
    }

    /// Gives this element and all descendants fresh uids from `next`.
    pub fn renumber(&mut self, next: &mut u32) {
        *next += 1;
        self.uid = *next;
        for c in self.elems_mut() {
            c.renumber(next);
        }
    }
}

/// Copies a roxmltree element. Whitespace-only text is dropped (SBML gives it
/// no meaning, and it would otherwise be kept around spliced elements).
pub(crate) fn from_roxml(node: roxmltree::Node<'_, '_>, lines: &crate::lines::LineIndex, file: &Rc<str>) -> Elem {
    let line = lines.line(node.range().start);
    let mut e = Elem::new(node.tag_name().namespace().map(Rc::from), node.tag_name().name(), file.clone(), line);
    for a in node.attributes() {
        e.attrs.push(Attr {
            ns: a.namespace().map(Rc::from),
            name: a.name().to_string(),
            value: a.value().to_string(),
        });
    }
    for c in node.children() {
        if c.is_element() {
            e.children.push(Node::Elem(from_roxml(c, lines, file)));
        } else if c.is_text() {
            let t = c.text().unwrap_or("");
            if !t.trim().is_empty() {
                e.children.push(Node::Text(t.to_string()));
            }
        }
    }
    e
}

/// Serialises `root` as a standalone document. Element namespaces are written
/// as default-namespace declarations where they change; attribute namespaces
/// get generated prefixes declared once on the root.
pub(crate) fn write_document(root: &Elem) -> String {
    let mut attr_ns: BTreeMap<String, String> = BTreeMap::new();
    collect_attr_ns(root, &mut attr_ns);
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    write_elem(root, None, Some(&attr_ns), &attr_ns, 0, &mut out);
    out
}

fn collect_attr_ns(e: &Elem, map: &mut BTreeMap<String, String>) {
    for a in &e.attrs {
        if let Some(ns) = &a.ns {
            if !map.contains_key(&**ns) {
                // SBML core attributes on MathML (`sbml:units`) read best with the usual prefix.
                let prefix = if ns.starts_with("http://www.sbml.org/sbml/level") && ns.ends_with("/core") {
                    "sbml".to_string()
                } else {
                    format!("ns{}", map.len())
                };
                map.insert(ns.to_string(), prefix);
            }
        }
    }
    for c in e.elems() {
        collect_attr_ns(c, map);
    }
}

fn write_elem(
    e: &Elem,
    parent_ns: Option<&str>,
    declare: Option<&BTreeMap<String, String>>,
    attr_ns: &BTreeMap<String, String>,
    depth: usize,
    out: &mut String,
) {
    let indent = "  ".repeat(depth);
    out.push_str(&indent);
    out.push('<');
    out.push_str(&e.name);
    let ns = e.ns.as_deref();
    if ns != parent_ns || depth == 0 {
        let _ = write!(out, " xmlns=\"{}\"", escape(ns.unwrap_or("")));
    }
    if let Some(decl) = declare {
        for (uri, prefix) in decl {
            let _ = write!(out, " xmlns:{}=\"{}\"", prefix, escape(uri));
        }
    }
    for a in &e.attrs {
        out.push(' ');
        if let Some(p) = a.ns.as_deref().and_then(|n| attr_ns.get(n)) {
            out.push_str(p);
            out.push(':');
        }
        let _ = write!(out, "{}=\"{}\"", a.name, escape(&a.value));
    }
    if e.children.is_empty() {
        out.push_str("/>\n");
        return;
    }
    let only_text = e.children.iter().all(|c| matches!(c, Node::Text(_)));
    out.push('>');
    if only_text {
        out.push_str(&escape(&e.text()));
    } else {
        out.push('\n');
        for c in &e.children {
            match c {
                Node::Elem(c) => write_elem(c, ns, None, attr_ns, depth + 1, out),
                Node::Text(t) => {
                    out.push_str(&escape(t));
                    out.push('\n');
                }
            }
        }
        out.push_str(&indent);
    }
    let _ = writeln!(out, "</{}>", e.name);
}

fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            _ => o.push(ch),
        }
    }
    o
}
