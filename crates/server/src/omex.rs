//! COMBINE archives (OMEX): reading the master SBML and the metadata of an
//! uploaded archive, writing a model version as an archive with its metadata.

use std::io::{Cursor, Read, Write};

use crate::error::ImportError;
use crate::meta::{self, Metadata};

const MAX_ENTRY: u64 = 64 << 20;

/// The master SBML file of an archive and its metadata (from the SBML,
/// completed by `metadata.rdf`).
pub struct OmexContent {
    pub sbml_path: String,
    pub sbml: String,
    pub metadata: Metadata,
}

fn read_entry(zip: &mut zip::ZipArchive<Cursor<&[u8]>>, name: &str, file: &str) -> Result<Vec<u8>, ImportError> {
    let entry = zip
        .by_name(name)
        .map_err(|e| ImportError::BadArchive { file: file.into(), message: format!("{name}: {e}") })?;
    if entry.size() > MAX_ENTRY {
        return Err(ImportError::BadArchive {
            file: file.into(),
            message: format!("{name}: {} bytes is more than the limit of {MAX_ENTRY}", entry.size()),
        });
    }
    let mut buf = Vec::new();
    entry
        .take(MAX_ENTRY)
        .read_to_end(&mut buf)
        .map_err(|e| ImportError::BadArchive { file: file.into(), message: format!("{name}: {e}") })?;
    Ok(buf)
}

/// Reads an OMEX archive: `manifest.xml` names the master file (or the first
/// SBML entry), `metadata.rdf` (if listed or present) adds metadata.
pub fn read(bytes: &[u8], file: &str) -> Result<OmexContent, ImportError> {
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| ImportError::BadZip { file: file.into(), message: e.to_string() })?;
    let manifest = read_entry(&mut zip, "manifest.xml", file)?;
    let manifest = String::from_utf8(manifest)
        .map_err(|_| ImportError::BadArchive { file: file.into(), message: "manifest.xml is not UTF-8".into() })?;
    let doc = roxmltree::Document::parse(&manifest)
        .map_err(|e| ImportError::BadArchive { file: file.into(), message: format!("manifest.xml: {e}") })?;
    let mut sbml_entries = Vec::new();
    let mut master = None;
    let mut rdf_entries = Vec::new();
    for c in doc.descendants().filter(|n| n.tag_name().name() == "content") {
        let Some(loc) = c.attribute("location") else { continue };
        let loc = loc.trim_start_matches("./").to_string();
        let format = c.attribute("format").unwrap_or("");
        if format.contains("sbml") {
            if c.attribute("master") == Some("true") {
                master = Some(loc.clone());
            }
            sbml_entries.push(loc);
        } else if format.contains("omex-metadata") || loc.ends_with(".rdf") {
            rdf_entries.push(loc);
        }
    }
    let Some(sbml_path) = master.or_else(|| sbml_entries.first().cloned()) else {
        return Err(ImportError::BadArchive {
            file: file.into(),
            message: "manifest.xml lists no SBML file (format containing 'sbml')".into(),
        });
    };
    let sbml = String::from_utf8(read_entry(&mut zip, &sbml_path, file)?)
        .map_err(|_| ImportError::BadArchive { file: file.into(), message: format!("{sbml_path} is not UTF-8") })?;
    let mut metadata = meta::read_sbml(&sbml)
        .map_err(|message| ImportError::NotSbml { file: format!("{file}:{sbml_path}"), message })?;
    if rdf_entries.is_empty() && zip.by_name("metadata.rdf").is_ok() {
        rdf_entries.push("metadata.rdf".into());
    }
    for r in rdf_entries {
        let text = String::from_utf8_lossy(&read_entry(&mut zip, &r, file)?).into_owned();
        meta::read_omex_rdf(&text, &mut metadata)
            .map_err(|message| ImportError::BadArchive { file: file.into(), message: format!("{r}: {message}") })?;
    }
    Ok(OmexContent { sbml_path, sbml, metadata })
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// What an exported archive says about its model.
pub struct ExportInfo<'a> {
    pub model_id: &'a str,
    pub version: &'a str,
    pub name: &'a str,
    pub description: &'a str,
    pub authors: &'a [meta::Author],
    pub annotations: &'a [meta::Annotation],
    pub license: Option<&'a str>,
    pub created: &'a str,
}

/// An OMEX archive with `manifest.xml`, `model.xml` and an OMEX-metadata
/// `metadata.rdf` (title, description, creators, licence, annotations,
/// the catalogue identifier and content hash).
pub fn write(sbml: &str, info: &ExportInfo) -> Result<Vec<u8>, zip::result::ZipError> {
    let manifest = r#"<?xml version="1.0" encoding="UTF-8"?>
<omexManifest xmlns="http://identifiers.org/combine.specifications/omex-manifest">
  <content location="." format="http://identifiers.org/combine.specifications/omex"/>
  <content location="./manifest.xml" format="http://identifiers.org/combine.specifications/omex-manifest"/>
  <content location="./model.xml" format="http://identifiers.org/combine.specifications/sbml" master="true"/>
  <content location="./metadata.rdf" format="http://identifiers.org/combine.specifications/omex-metadata"/>
</omexManifest>
"#;
    let mut rdf = String::from(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:dcterms="http://purl.org/dc/terms/" xmlns:vCard="http://www.w3.org/2006/vcard/ns#" xmlns:bqmodel="http://biomodels.net/model-qualifiers/" xmlns:bqbiol="http://biomodels.net/biology-qualifiers/">
"#,
    );
    rdf.push_str("  <rdf:Description rdf:about=\"./model.xml\">\n");
    rdf.push_str(&format!("    <dc:title>{}</dc:title>\n", esc(info.name)));
    rdf.push_str(&format!("    <dc:description>{}</dc:description>\n", esc(info.description)));
    rdf.push_str(&format!("    <dc:identifier>{}@{}</dc:identifier>\n", esc(info.model_id), esc(info.version)));
    rdf.push_str(&format!("    <dcterms:created>{}</dcterms:created>\n", esc(info.created)));
    if let Some(l) = info.license {
        rdf.push_str(&format!("    <dcterms:license rdf:resource=\"{}\"/>\n", esc(l)));
    }
    for a in info.authors {
        rdf.push_str("    <dc:creator rdf:parseType=\"Resource\">\n      <vCard:hasName rdf:parseType=\"Resource\">\n");
        if let Some(f) = &a.family {
            rdf.push_str(&format!("        <vCard:family-name>{}</vCard:family-name>\n", esc(f)));
        }
        if let Some(g) = &a.given {
            rdf.push_str(&format!("        <vCard:given-name>{}</vCard:given-name>\n", esc(g)));
        }
        if a.family.is_none() && a.given.is_none() {
            rdf.push_str(&format!("        <vCard:fn>{}</vCard:fn>\n", esc(&a.name)));
        }
        rdf.push_str("      </vCard:hasName>\n    </dc:creator>\n");
    }
    for an in info.annotations {
        let (prefix, local) = an.qualifier.split_once(':').unwrap_or(("bqbiol", &an.qualifier));
        let prefix = if prefix == "bqmodel" { "bqmodel" } else { "bqbiol" };
        rdf.push_str(&format!("    <{prefix}:{local} rdf:resource=\"{}\"/>\n", esc(&an.uri)));
    }
    rdf.push_str("  </rdf:Description>\n</rdf:RDF>\n");

    let mut out = Cursor::new(Vec::new());
    {
        let mut zip = zip::ZipWriter::new(&mut out);
        let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        zip.start_file("manifest.xml", opts)?;
        zip.write_all(manifest.as_bytes())?;
        zip.start_file("model.xml", opts)?;
        zip.write_all(sbml.as_bytes())?;
        zip.start_file("metadata.rdf", opts)?;
        zip.write_all(rdf.as_bytes())?;
        zip.finish()?;
    }
    Ok(out.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exported_archive_reads_back_with_its_metadata() {
        let sbml = include_str!("../../../examples/models/repressilator.xml");
        let m = meta::read_sbml(sbml).unwrap();
        let info = ExportInfo {
            model_id: "repressilator",
            version: "abc",
            name: "Repressilator & friends",
            description: "three repressors",
            authors: &m.authors,
            annotations: &m.annotations,
            license: m.license.as_deref(),
            created: "2026-01-01T00:00:00.000Z",
        };
        let bytes = write(sbml, &info).unwrap();
        let back = read(&bytes, "x.omex").unwrap();
        assert_eq!(back.sbml_path, "model.xml");
        assert_eq!(back.sbml, sbml);
        assert_eq!(back.metadata.authors.len(), m.authors.len());
        assert_eq!(back.metadata.annotations, m.annotations);
    }

    #[test]
    fn an_archive_without_sbml_is_refused_by_name() {
        let mut out = Cursor::new(Vec::new());
        {
            let mut zip = zip::ZipWriter::new(&mut out);
            zip.start_file("manifest.xml", zip::write::SimpleFileOptions::default()).unwrap();
            zip.write_all(b"<omexManifest><content location=\"./a.txt\" format=\"text/plain\"/></omexManifest>")
                .unwrap();
            zip.finish().unwrap();
        }
        let e = read(&out.into_inner(), "up.omex").err().unwrap();
        assert!(e.to_string().starts_with("up.omex: manifest.xml lists no SBML"), "{e}");
    }
}
