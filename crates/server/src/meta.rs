//! Catalogue metadata read from an SBML document (model name, notes,
//! RDF creators, MIRIAM annotations, licence) and from an OMEX archive's
//! `metadata.rdf`. Only the model element's own annotation counts: species
//! annotations describe species, not the model.

use serde::{Deserialize, Serialize};

const RDF: &str = "http://www.w3.org/1999/02/22-rdf-syntax-ns#";
const BQBIOL: &str = "http://biomodels.net/biology-qualifiers/";
const BQMODEL: &str = "http://biomodels.net/model-qualifiers/";
const DC: &str = "http://purl.org/dc/elements/1.1/";
const DCTERMS: &str = "http://purl.org/dc/terms/";

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Author {
    pub given: Option<String>,
    pub family: Option<String>,
    pub name: String,
    pub email: Option<String>,
    pub organisation: Option<String>,
}

/// One MIRIAM annotation: `bqbiol:is` -> `http://identifiers.org/...`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Annotation {
    pub qualifier: String,
    pub uri: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    /// The SBML model id (a suggestion for the catalogue id).
    pub sbml_id: Option<String>,
    pub name: Option<String>,
    pub description: String,
    pub authors: Vec<Author>,
    pub annotations: Vec<Annotation>,
    pub license: Option<String>,
    pub level: Option<u32>,
    pub version: Option<u32>,
}

impl Metadata {
    /// Short tags from the annotations: `taxonomy:9606`, `GO:0061178`, ...
    pub fn tags(&self) -> Vec<String> {
        let mut tags: Vec<String> = Vec::new();
        for a in &self.annotations {
            if let Some(t) = short_identifier(&a.uri) {
                if !tags.contains(&t) {
                    tags.push(t);
                }
            }
        }
        if let (Some(l), Some(v)) = (self.level, self.version) {
            tags.push(format!("sbml-l{l}v{v}"));
        }
        tags
    }
}

/// `http://identifiers.org/go/GO:0061178` -> `GO:0061178`,
/// `http://identifiers.org/taxonomy/9606` -> `taxonomy:9606`,
/// `urn:miriam:pubmed:123` -> `pubmed:123`.
pub fn short_identifier(uri: &str) -> Option<String> {
    let rest = uri
        .strip_prefix("http://identifiers.org/")
        .or_else(|| uri.strip_prefix("https://identifiers.org/"))
        .map(|r| r.replacen('/', ":", 1))
        .or_else(|| uri.strip_prefix("urn:miriam:").map(str::to_string))?;
    // `go:GO:0061178` already carries its prefix.
    match rest.split_once(':') {
        Some((_, local)) if local.contains(':') => Some(local.to_string()),
        _ => Some(rest),
    }
}

/// Reads the catalogue metadata of an SBML text; the error is the XML
/// parser's message with its position.
pub fn read_sbml(text: &str) -> Result<Metadata, String> {
    let doc = roxmltree::Document::parse(text).map_err(|e| e.to_string())?;
    let root = doc.root_element();
    if root.tag_name().name() != "sbml" {
        return Err(format!("the root element is <{}>, not <sbml>", root.tag_name().name()));
    }
    let mut m = Metadata {
        level: root.attribute("level").and_then(|v| v.parse().ok()),
        version: root.attribute("version").and_then(|v| v.parse().ok()),
        ..Metadata::default()
    };
    let Some(model) = root.children().find(|n| n.has_tag_name("model") || n.tag_name().name() == "model") else {
        return Err("the document has no <model> element".into());
    };
    m.sbml_id = model.attribute("id").map(str::to_string);
    m.name = model.attribute("name").map(str::to_string).filter(|s| !s.trim().is_empty());
    if let Some(notes) = model.children().find(|n| n.tag_name().name() == "notes") {
        m.description = notes_text(notes);
        m.license = notes_license(notes);
    }
    if let Some(ann) = model.children().find(|n| n.tag_name().name() == "annotation") {
        read_rdf(ann, &mut m);
    }
    Ok(m)
}

/// Metadata from an OMEX `metadata.rdf` (the description of the archive or
/// of its master file); fields found there fill the gaps of `m`.
pub fn read_omex_rdf(text: &str, m: &mut Metadata) -> Result<(), String> {
    let doc = roxmltree::Document::parse(text).map_err(|e| e.to_string())?;
    let mut found = Metadata::default();
    read_rdf(doc.root_element(), &mut found);
    for d in doc.descendants().filter(|n| n.has_tag_name((DC, "title")) || n.has_tag_name((DCTERMS, "title"))) {
        if found.name.is_none() {
            found.name = Some(collapse(&text_of(d)));
        }
    }
    for d in
        doc.descendants().filter(|n| n.has_tag_name((DC, "description")) || n.has_tag_name((DCTERMS, "description")))
    {
        if found.description.is_empty() {
            found.description = collapse(&text_of(d));
        }
    }
    if m.name.is_none() {
        m.name = found.name;
    }
    if m.description.is_empty() {
        m.description = found.description;
    }
    if m.authors.is_empty() {
        m.authors = found.authors;
    }
    if m.license.is_none() {
        m.license = found.license;
    }
    for a in found.annotations {
        if !m.annotations.contains(&a) {
            m.annotations.push(a);
        }
    }
    Ok(())
}

fn read_rdf(scope: roxmltree::Node, m: &mut Metadata) {
    for n in scope.descendants() {
        let ns = n.tag_name().namespace().unwrap_or("");
        if ns == BQBIOL || ns == BQMODEL {
            let prefix = if ns == BQBIOL { "bqbiol" } else { "bqmodel" };
            for li in n.descendants().filter(|x| x.has_tag_name((RDF, "li"))) {
                if let Some(uri) = li.attribute((RDF, "resource")) {
                    m.annotations.push(Annotation {
                        qualifier: format!("{prefix}:{}", n.tag_name().name()),
                        uri: uri.to_string(),
                    });
                }
            }
        } else if n.has_tag_name((DC, "creator")) || n.has_tag_name((DCTERMS, "creator")) {
            let people: Vec<_> = n.descendants().filter(|x| x.has_tag_name((RDF, "li"))).collect();
            if people.is_empty() {
                if let Some(a) = author(n) {
                    m.authors.push(a);
                }
            }
            for li in people {
                if let Some(a) = author(li) {
                    m.authors.push(a);
                }
            }
        } else if n.has_tag_name((DCTERMS, "license")) || n.has_tag_name((DC, "rights")) {
            let v = n.attribute((RDF, "resource")).map(str::to_string).unwrap_or_else(|| collapse(&text_of(n)));
            if !v.is_empty() && m.license.is_none() {
                m.license = Some(v);
            }
        }
    }
}

/// A vCard (3.0 `N/Family/Given` or 4 `hasName/family-name/given-name`), or a plain name.
fn author(n: roxmltree::Node) -> Option<Author> {
    let find = |names: &[&str]| {
        n.descendants().find(|x| names.contains(&x.tag_name().name()) && x.is_element()).map(|x| collapse(&text_of(x)))
    };
    let family = find(&["Family", "family-name"]).filter(|s| !s.is_empty());
    let given = find(&["Given", "given-name"]).filter(|s| !s.is_empty());
    let email = find(&["EMAIL", "hasEmail"]).filter(|s| !s.is_empty());
    let organisation = find(&["Orgname", "organization-name"]).filter(|s| !s.is_empty());
    let name = match (&given, &family) {
        (Some(g), Some(f)) => format!("{g} {f}"),
        (None, Some(f)) => f.clone(),
        (Some(g), None) => g.clone(),
        (None, None) => find(&["FN", "fn"]).unwrap_or_else(|| collapse(&text_of(n))),
    };
    if name.is_empty() {
        return None;
    }
    Some(Author { given, family, name, email, organisation })
}

fn text_of(n: roxmltree::Node) -> String {
    let mut s = String::new();
    for d in n.descendants().filter(|d| d.is_text()) {
        s.push_str(d.text().unwrap_or(""));
        s.push(' ');
    }
    s
}

fn collapse(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The notes as plain text: XHTML tags dropped, one space between words,
/// paragraphs kept apart by blank lines.
fn notes_text(notes: roxmltree::Node) -> String {
    let mut paragraphs = Vec::new();
    let mut current = String::new();
    for d in notes.descendants() {
        if d.is_element() && matches!(d.tag_name().name(), "p" | "div" | "li" | "br" | "h1" | "h2" | "h3" | "tr") {
            let c = collapse(&current);
            if !c.is_empty() {
                paragraphs.push(c);
            }
            current.clear();
        }
        if d.is_text() {
            current.push_str(d.text().unwrap_or(""));
            current.push(' ');
        }
    }
    let c = collapse(&current);
    if !c.is_empty() {
        paragraphs.push(c);
    }
    paragraphs.join("\n\n")
}

/// BioModels puts the licence in the notes (`<div class="dc:license">` with
/// a Creative Commons link).
fn notes_license(notes: roxmltree::Node) -> Option<String> {
    let div = notes.descendants().find(|d| d.attribute("class").is_some_and(|c| c.contains("license")))?;
    div.descendants()
        .filter_map(|d| d.attribute("href"))
        .find(|h| h.contains("creativecommons.org") || h.contains("opensource.org"))
        .map(str::to_string)
        .or_else(|| Some(collapse(&text_of(div))).filter(|s| !s.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repressilator_metadata() {
        let text = include_str!("../../../examples/models/repressilator.xml");
        let m = read_sbml(text).unwrap();
        assert_eq!(m.sbml_id.as_deref(), Some("BIOMD0000000012"));
        assert_eq!(m.name.as_deref(), Some("Elowitz2000 - Repressilator"));
        assert!(m.authors.iter().any(|a| a.name == "Nicolas Le Novère"), "{:?}", m.authors);
        assert!(!m.description.contains('<'), "notes are plain text");
        assert!(m.description.len() > 100);
        assert_eq!(m.license.as_deref(), Some("http://creativecommons.org/publicdomain/zero/1.0/"));
        assert!(m.annotations.iter().all(|a| a.qualifier.starts_with("bq")));
        assert!(m.tags().contains(&"sbml-l2v3".to_string()));
    }

    #[test]
    fn identifiers_shorten() {
        assert_eq!(short_identifier("http://identifiers.org/go/GO:0061178").as_deref(), Some("GO:0061178"));
        assert_eq!(short_identifier("http://identifiers.org/taxonomy/9606").as_deref(), Some("taxonomy:9606"));
        assert_eq!(short_identifier("urn:miriam:pubmed:123").as_deref(), Some("pubmed:123"));
        assert_eq!(short_identifier("https://example.org/x"), None);
    }

    #[test]
    fn not_sbml_is_an_error_with_the_reason() {
        assert!(read_sbml("<html/>").unwrap_err().contains("<html>"));
        assert!(read_sbml("<sbml").is_err());
    }
}
