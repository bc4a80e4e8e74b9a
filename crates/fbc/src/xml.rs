//! roxmltree helpers: namespaces, attributes and line numbers for errors.

use roxmltree::Node;

use crate::error::FbcError;
use crate::math::parse_number;

/// Every fbc version's namespace starts with this (v1, v2 and v3 share the L3V1 prefix,
/// also when the package is used inside an L3V2 document).
const FBC_NS_PREFIX: &str = "http://www.sbml.org/sbml/level3/version1/fbc/";

pub(crate) fn is_fbc_ns(uri: &str) -> bool {
    uri.starts_with(FBC_NS_PREFIX)
}

/// The 1-based line an element starts on.
pub(crate) fn line(node: Node) -> u32 {
    node.document().text_pos_at(node.range().start).row
}

pub(crate) fn name<'a>(node: Node<'a, '_>) -> &'a str {
    node.tag_name().name()
}

/// Child elements with this local name in the same namespace as `parent`
/// (so SBML core children of a core element, fbc children of an fbc element).
pub(crate) fn children_named<'a, 'input: 'a>(
    parent: Node<'a, 'input>,
    local: &'a str,
) -> impl Iterator<Item = Node<'a, 'input>> + 'a {
    let ns = parent.tag_name().namespace();
    parent.children().filter(move |c| c.is_element() && name(*c) == local && c.tag_name().namespace() == ns)
}

/// The fbc child elements of a core element (e.g. `fbc:listOfObjectives` of `model`).
pub(crate) fn fbc_children<'a, 'input: 'a>(
    parent: Node<'a, 'input>,
    local: &'a str,
) -> impl Iterator<Item = Node<'a, 'input>> + 'a {
    parent
        .children()
        .filter(move |c| c.is_element() && name(*c) == local && c.tag_name().namespace().is_some_and(is_fbc_ns))
}

/// An fbc attribute. fbc v1 and v2 put them in the fbc namespace (`fbc:id`); some
/// writers leave them unprefixed on fbc elements, which is accepted too.
pub(crate) fn fbc_attr<'a>(node: Node<'a, '_>, local: &str) -> Option<&'a str> {
    node.attributes()
        .find(|a| a.name() == local && a.namespace().is_some_and(is_fbc_ns))
        .or_else(|| {
            let on_fbc_element = node.tag_name().namespace().is_some_and(is_fbc_ns);
            node.attributes().find(|a| on_fbc_element && a.name() == local && a.namespace().is_none())
        })
        .map(|a| a.value())
}

pub(crate) fn require<'a>(
    node: Node<'a, '_>,
    attribute: &'static str,
    value: Option<&'a str>,
) -> Result<&'a str, FbcError> {
    value.ok_or_else(|| FbcError::MissingAttribute { element: name(node).into(), attribute, line: line(node) })
}

/// Parses a numeric attribute value (`found` is the raw text, for the message).
pub(crate) fn number(node: Node, attribute: &'static str, found: &str) -> Result<f64, FbcError> {
    parse_number(found).ok_or_else(|| FbcError::InvalidValue {
        element: name(node).into(),
        attribute,
        expected: "a number",
        found: found.into(),
        line: line(node),
    })
}

/// Parses an SBML boolean attribute.
pub(crate) fn boolean(node: Node, attribute: &'static str) -> Result<Option<bool>, FbcError> {
    match node.attribute(attribute) {
        None => Ok(None),
        Some("true" | "1") => Ok(Some(true)),
        Some("false" | "0") => Ok(Some(false)),
        Some(other) => Err(FbcError::InvalidValue {
            element: name(node).into(),
            attribute,
            expected: "true or false",
            found: other.into(),
            line: line(node),
        }),
    }
}
