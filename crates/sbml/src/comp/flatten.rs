//! The flattening algorithm (see the module docs for the steps).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::tree::{from_roxml, write_document, Attr, Elem, Node, MATHML_NS};
use super::CompError;

const TIME_URL: &str = "http://www.sbml.org/sbml/symbols/time";
const DELAY_URL: &str = "http://www.sbml.org/sbml/symbols/delay";

/// Core attributes holding an SId reference (SBML L3 core, plus `outside`
/// from L2 for good measure).
const SIDREF_ATTRS: &[&str] = &["compartment", "species", "variable", "symbol", "conversionFactor", "outside"];
/// Core attributes holding a UnitSId reference.
const UNITREF_ATTRS: &[&str] =
    &["units", "substanceUnits", "timeUnits", "volumeUnits", "areaUnits", "lengthUnits", "extentUnits"];
/// comp attributes holding an SId of the model they appear in.
const COMP_SIDREF_ATTRS: &[&str] = &["conversionFactor", "timeConversionFactor", "extentConversionFactor"];
const COMP_ELEMENTS: &[&str] = &[
    "listOfModelDefinitions",
    "modelDefinition",
    "listOfExternalModelDefinitions",
    "externalModelDefinition",
    "listOfSubmodels",
    "submodel",
    "listOfDeletions",
    "deletion",
    "listOfPorts",
    "port",
    "listOfReplacedElements",
    "replacedElement",
    "replacedBy",
    "sBaseRef",
];
/// The order SBML L3 core requires for a model's lists.
const LIST_ORDER: &[&str] = &[
    "listOfFunctionDefinitions",
    "listOfUnitDefinitions",
    "listOfCompartments",
    "listOfSpecies",
    "listOfParameters",
    "listOfInitialAssignments",
    "listOfRules",
    "listOfConstraints",
    "listOfReactions",
    "listOfEvents",
];

fn is_comp_ns(ns: &str) -> bool {
    ns.starts_with("http://www.sbml.org/sbml/level3/") && ns.contains("/comp/")
}

fn is_core_ns(ns: &str) -> bool {
    ns.starts_with("http://www.sbml.org/sbml/level") && ns.ends_with("/core")
}

fn is_comp(e: &Elem, name: &str) -> bool {
    e.name == name && e.ns_is(is_comp_ns)
}

fn is_core(e: &Elem) -> bool {
    e.ns_is(is_core_ns)
}

fn is_math(e: &Elem) -> bool {
    e.ns.as_deref() == Some(MATHML_NS)
}

/// Elements whose content is opaque to flattening.
fn is_opaque(e: &Elem) -> bool {
    is_core(e) && (e.name == "annotation" || e.name == "notes")
}

fn comp_attr<'a>(e: &'a Elem, name: &str) -> Option<&'a str> {
    e.attr_in(name, is_comp_ns)
}

/// Flattens a comp document into a core SBML L3 document (same level and
/// version), as libSBML's CompFlatteningConverter does. `base_dir` resolves
/// the relative `source` of ExternalModelDefinitions; external files resolve
/// their own references relative to their own directory.
///
/// A document without comp constructs comes back as an equivalent core
/// document, so callers may flatten unconditionally.
pub fn flatten(xml: &str, base_dir: Option<&Path>) -> Result<String, CompError> {
    let mut loader = Loader { docs: HashMap::new(), next_uid: 0 };
    let main = Rc::new(parse_doc(xml, Rc::from("<input>"), base_dir.map(Path::to_path_buf), "<input>".into())?);
    let model = main
        .root
        .elems()
        .find(|e| e.name == "model" && is_core(e))
        .cloned()
        .ok_or_else(|| CompError::NoModel { file: main.file.to_string() })?;
    let mut stack = vec![format!("{}::{}", main.key, model.attr("id").unwrap_or(""))];
    let root = loader.instantiate(main.clone(), &model, String::new(), &mut stack)?;
    let core_ns = main.root.ns.clone().unwrap_or_else(|| Rc::from("http://www.sbml.org/sbml/level3/version1/core"));
    let mut f = Flattener { root, core_ns, removed: HashSet::new() };
    f.resolve_all(&[])?;
    // As in libSBML, deleted local parameters go before renaming, so that
    // their kinetic law's math then refers to the global id they shadowed.
    drop_local_parameters(&mut f.root, &f.removed);
    f.rename_all(&[]);
    f.process(&[])?;
    let out_model = f.merge()?;

    let mut sbml = Elem::new(main.root.ns.clone(), "sbml", main.file.clone(), main.root.line);
    sbml.attrs = main.root.attrs.iter().filter(|a| !a.ns.as_deref().is_some_and(is_comp_ns)).cloned().collect();
    for c in main.root.elems() {
        if c.name == "model" && is_core(c) {
            sbml.children.push(Node::Elem(out_model.clone()));
        } else if !c.ns_is(is_comp_ns) {
            sbml.children.push(Node::Elem(c.clone()));
        }
    }
    Ok(write_document(&sbml))
}

/// One parsed file.
struct Doc {
    root: Elem,
    file: Rc<str>,
    /// Directory against which this file's external sources resolve.
    dir: Option<PathBuf>,
    /// Identity for cycle detection.
    key: String,
}

fn parse_doc(xml: &str, file: Rc<str>, dir: Option<PathBuf>, key: String) -> Result<Doc, CompError> {
    let doc = roxmltree::Document::parse(xml).map_err(|source| CompError::Xml { file: file.to_string(), source })?;
    let root = from_roxml(doc.root_element(), &crate::lines::LineIndex::new(doc.input_text()), &file);
    Ok(Doc { root, file, dir, key })
}

struct Loader {
    docs: HashMap<PathBuf, Rc<Doc>>,
    next_uid: u32,
}

/// A model reference resolved to a concrete model element and its document.
struct ModelSource {
    doc: Rc<Doc>,
    model: Elem,
}

impl Loader {
    fn load(&mut self, from: &Doc, at: &Elem, source: &str) -> Result<Rc<Doc>, CompError> {
        // Sources are URIs; only local files are supported, which covers the
        // relative names used in practice.
        let rel = source.strip_prefix("file://").or_else(|| source.strip_prefix("file:")).unwrap_or(source);
        let path = if Path::new(rel).is_absolute() {
            PathBuf::from(rel)
        } else {
            let dir = from.dir.as_ref().ok_or_else(|| CompError::NoBaseDir {
                file: at.file.to_string(),
                line: at.line,
                source_uri: source.to_string(),
            })?;
            dir.join(rel)
        };
        if let Some(d) = self.docs.get(&path) {
            return Ok(d.clone());
        }
        let text = std::fs::read_to_string(&path).map_err(|source| CompError::ExternalIo {
            file: at.file.to_string(),
            line: at.line,
            path: path.clone(),
            source,
        })?;
        let file: Rc<str> = Rc::from(path.display().to_string());
        let dir = path.parent().map(Path::to_path_buf);
        let doc = Rc::new(parse_doc(&text, file, dir, path.display().to_string())?);
        self.docs.insert(path, doc.clone());
        Ok(doc)
    }

    /// Finds the model `model_ref` names in `doc`, following external model
    /// definitions into other files.
    fn resolve_model(
        &mut self,
        doc: &Rc<Doc>,
        model_ref: &str,
        at: &Elem,
        submodel: &str,
    ) -> Result<ModelSource, CompError> {
        let unknown = || CompError::UnknownModel {
            file: at.file.to_string(),
            line: at.line,
            submodel: submodel.to_string(),
            model_ref: model_ref.to_string(),
        };
        for top in doc.root.elems() {
            if top.name == "model" && is_core(top) && top.attr("id") == Some(model_ref) {
                return Ok(ModelSource { doc: doc.clone(), model: top.clone() });
            }
            if is_comp(top, "listOfModelDefinitions") {
                for md in top.elems() {
                    if is_comp(md, "modelDefinition") && md.attr_in("id", is_comp_ns) == Some(model_ref) {
                        return Ok(ModelSource { doc: doc.clone(), model: md.clone() });
                    }
                }
            }
            if is_comp(top, "listOfExternalModelDefinitions") {
                for ext in top.elems() {
                    if is_comp(ext, "externalModelDefinition") && comp_attr(ext, "id") == Some(model_ref) {
                        let source = comp_attr(ext, "source").ok_or_else(|| missing(ext, "source"))?;
                        let ext_doc = self.load(doc, ext, source)?;
                        return match comp_attr(ext, "modelRef") {
                            Some(inner) => self.resolve_model(&ext_doc, inner, ext, submodel),
                            None => {
                                let model = ext_doc
                                    .root
                                    .elems()
                                    .find(|e| e.name == "model" && is_core(e))
                                    .cloned()
                                    .ok_or_else(|| CompError::NoModel { file: ext_doc.file.to_string() })?;
                                Ok(ModelSource { doc: ext_doc, model })
                            }
                        };
                    }
                }
            }
        }
        Err(unknown())
    }

    fn instantiate(
        &mut self,
        doc: Rc<Doc>,
        model: &Elem,
        prefix: String,
        stack: &mut Vec<String>,
    ) -> Result<Instance, CompError> {
        let mut m = model.clone();
        m.renumber(&mut self.next_uid);
        check_elements(&m, !prefix.is_empty())?;
        let mut subs = Vec::new();
        let submodels: Vec<Elem> = m
            .elems()
            .filter(|e| is_comp(e, "listOfSubmodels"))
            .flat_map(|l| l.elems().filter(|e| is_comp(e, "submodel")).cloned().collect::<Vec<_>>())
            .collect();
        for sub in submodels {
            let id = comp_attr(&sub, "id").ok_or_else(|| missing(&sub, "id"))?.to_string();
            let model_ref = comp_attr(&sub, "modelRef").ok_or_else(|| missing(&sub, "modelRef"))?;
            let src = self.resolve_model(&doc, model_ref, &sub, &id)?;
            let key = format!("{}::{}", src.doc.key, src.model.attr_in("id", is_comp_ns).unwrap_or(""));
            if stack.contains(&key) {
                return Err(CompError::Cycle {
                    file: sub.file.to_string(),
                    line: sub.line,
                    submodel: id,
                    model_ref: model_ref.to_string(),
                });
            }
            stack.push(key);
            let inst = self.instantiate(src.doc, &src.model, format!("{prefix}{id}__"), stack)?;
            stack.pop();
            subs.push(Sub { id, uid: sub.uid, inst });
        }
        Ok(Instance { prefix, model: m, subs, replaced: Vec::new(), replaced_by: Vec::new() })
    }
}

fn missing(e: &Elem, attribute: &str) -> CompError {
    CompError::MissingAttribute {
        file: e.file.to_string(),
        line: e.line,
        element: e.name.clone(),
        attribute: attribute.to_string(),
    }
}

/// Rejects comp elements this flattener does not know, and (inside submodel
/// instances, whose ids must all be renamed) elements of other packages.
fn check_elements(e: &Elem, in_instance: bool) -> Result<(), CompError> {
    if is_opaque(e) || is_math(e) {
        return Ok(());
    }
    if e.ns_is(is_comp_ns) && !COMP_ELEMENTS.contains(&e.name.as_str()) {
        return Err(CompError::UnknownElement { file: e.file.to_string(), line: e.line, element: e.name.clone() });
    }
    if in_instance && !is_core(e) && !e.ns_is(is_comp_ns) {
        return Err(CompError::UnsupportedPackage { file: e.file.to_string(), line: e.line, element: e.name.clone() });
    }
    e.elems().try_for_each(|c| check_elements(c, in_instance))
}

/// An instantiated model: its own copy of the model element plus its
/// instantiated submodels, kept apart until the final merge so that
/// references through nested submodels can still be followed.
struct Instance {
    /// Prefix of every id of this instance (`A__B__`; empty for the main model).
    prefix: String,
    model: Elem,
    subs: Vec<Sub>,
    /// `replacedElement`s found on elements of this model.
    replaced: Vec<Replacing>,
    /// `replacedBy`s found on elements of this model.
    replaced_by: Vec<Replacing>,
}

struct Sub {
    /// The submodel's id (unprefixed), as SBaseRefs name it.
    id: String,
    /// uid of the `comp:submodel` element in the parent's model.
    uid: u32,
    inst: Instance,
}

/// Where a resolved reference points: an element (by uid) of the instance at
/// `path` (submodel indices from the main model).
#[derive(Clone, Debug)]
struct Target {
    path: Vec<usize>,
    uid: u32,
}

#[derive(Clone, Debug)]
struct Replacing {
    /// The element of this model that carries the replacedElement/replacedBy.
    carrier: u32,
    /// The replacedElement/replacedBy element itself (its conversionFactor is
    /// read after renaming).
    node: u32,
    /// `None` for a replacedElement that names a deletion: the deletion does the work.
    target: Option<Target>,
}

struct Flattener {
    root: Instance,
    /// The main document's core namespace, for elements flattening creates.
    core_ns: Rc<str>,
    /// Elements deleted or replaced; they are left out of the merged model.
    removed: HashSet<u32>,
}

fn inst_at<'a>(root: &'a Instance, path: &[usize]) -> &'a Instance {
    path.iter().fold(root, |i, &k| &i.subs[k].inst)
}

fn inst_at_mut<'a>(root: &'a mut Instance, path: &[usize]) -> &'a mut Instance {
    path.iter().fold(root, |i, &k| &mut i.subs[k].inst)
}

/// Finds the element an SId names in a model: core elements and submodels.
/// Local parameters come last because their ids live in their kinetic law's
/// scope and may shadow a global id.
fn find_by_id<'a>(model: &'a Elem, id: &str) -> Option<&'a Elem> {
    fn walk<'a>(e: &'a Elem, id: &str, local: &mut Option<&'a Elem>) -> Option<&'a Elem> {
        for c in e.elems() {
            if is_opaque(c) || is_math(c) {
                continue;
            }
            if c.ns_is(is_comp_ns) {
                if c.name == "listOfSubmodels" {
                    if let Some(s) = c.elems().find(|s| is_comp(s, "submodel") && comp_attr(s, "id") == Some(id)) {
                        return Some(s);
                    }
                }
                continue;
            }
            if is_core(c) && c.attr("id") == Some(id) {
                if c.name == "localParameter" {
                    local.get_or_insert(c);
                } else {
                    return Some(c);
                }
            }
            if let Some(f) = walk(c, id, local) {
                return Some(f);
            }
        }
        None
    }
    let mut local = None;
    walk(model, id, &mut local).or(local)
}

fn find_by<'a>(e: &'a Elem, pred: &dyn Fn(&Elem) -> bool) -> Option<&'a Elem> {
    for c in e.elems() {
        if is_opaque(c) || is_math(c) || c.ns_is(is_comp_ns) {
            continue;
        }
        if pred(c) {
            return Some(c);
        }
        if let Some(f) = find_by(c, pred) {
            return Some(f);
        }
    }
    None
}

/// Resolves an SBaseRef-like element (port, deletion, replacedElement,
/// replacedBy, sBaseRef) against the instance `inst` found at `path`.
fn resolve_ref(inst: &Instance, path: &[usize], r: &Elem) -> Result<Target, CompError> {
    let unresolved = |kind: &'static str, target: &str| CompError::Unresolved {
        file: r.file.to_string(),
        line: r.line,
        element: r.name.clone(),
        kind,
        target: target.to_string(),
    };
    // Ports cannot point at ports (the spec gives them no portRef); ignoring
    // one there also rules out reference cycles, since every other step of a
    // reference goes one submodel deeper.
    let port_ref = if is_comp(r, "port") { None } else { comp_attr(r, "portRef") };
    let target = if let Some(port_id) = port_ref {
        let port = inst
            .model
            .elems()
            .filter(|l| is_comp(l, "listOfPorts"))
            .flat_map(|l| l.elems())
            .find(|p| is_comp(p, "port") && comp_attr(p, "id") == Some(port_id))
            .ok_or_else(|| unresolved("port", port_id))?;
        resolve_ref(inst, path, port)?
    } else if let Some(id) = comp_attr(r, "idRef") {
        let e = find_by_id(&inst.model, id).ok_or_else(|| unresolved("id", id))?;
        Target { path: path.to_vec(), uid: e.uid }
    } else if let Some(meta) = comp_attr(r, "metaIdRef") {
        let e = find_by(&inst.model, &|e| e.attr("metaid") == Some(meta)).ok_or_else(|| unresolved("metaid", meta))?;
        Target { path: path.to_vec(), uid: e.uid }
    } else if let Some(unit) = comp_attr(r, "unitRef") {
        let e = find_by(&inst.model, &|e| e.name == "unitDefinition" && e.attr("id") == Some(unit))
            .ok_or_else(|| unresolved("unit definition", unit))?;
        Target { path: path.to_vec(), uid: e.uid }
    } else {
        return Err(missing(r, "idRef"));
    };
    let Some(child) = r.elems().find(|c| is_comp(c, "sBaseRef")) else {
        return Ok(target);
    };
    // A nested sBaseRef continues inside the submodel just found.
    let owner = inst_at(inst, &target.path[path.len()..]);
    let found = owner.model.find(target.uid);
    let k = owner.subs.iter().position(|s| s.uid == target.uid).ok_or_else(|| CompError::NotASubmodel {
        file: r.file.to_string(),
        line: r.line,
        element: r.name.clone(),
        target: found.and_then(|f| f.attr("id").or(comp_attr(f, "id"))).unwrap_or("?").to_string(),
    })?;
    let mut sub_path = target.path.clone();
    sub_path.push(k);
    resolve_ref(&owner.subs[k].inst, &sub_path, child)
}

impl Flattener {
    /// Step 2: resolves every replacement and deletion of the instance at
    /// `path` and below; deletions are recorded as removed at once.
    fn resolve_all(&mut self, path: &[usize]) -> Result<(), CompError> {
        let inst = inst_at(&self.root, path);
        let mut replaced = Vec::new();
        let mut replaced_by = Vec::new();
        let mut deleted = Vec::new();
        let sub_index = |e: &Elem, sref: Option<&str>| -> Result<usize, CompError> {
            let sref = sref.ok_or_else(|| missing(e, "submodelRef"))?;
            inst.subs.iter().position(|s| s.id == sref).ok_or_else(|| CompError::UnknownSubmodel {
                file: e.file.to_string(),
                line: e.line,
                element: e.name.clone(),
                submodel: sref.to_string(),
            })
        };
        let mut carriers = Vec::new();
        collect_carriers(&inst.model, &mut carriers);
        for (carrier, node) in carriers {
            let k = sub_index(node, comp_attr(node, "submodelRef"))?;
            let mut sub_path = path.to_vec();
            sub_path.push(k);
            let target = if node.name == "replacedElement" && comp_attr(node, "deletion").is_some() {
                None
            } else {
                Some(resolve_ref(&inst.subs[k].inst, &sub_path, node)?)
            };
            let rec = Replacing { carrier: carrier.uid, node: node.uid, target };
            if node.name == "replacedBy" {
                replaced_by.push(rec);
            } else {
                replaced.push(rec);
            }
        }
        for (k, sub) in inst.subs.iter().enumerate() {
            let Some(sub_el) = inst.model.find(sub.uid) else { continue };
            let mut sub_path = path.to_vec();
            sub_path.push(k);
            for list in sub_el.elems().filter(|l| is_comp(l, "listOfDeletions")) {
                for del in list.elems().filter(|d| is_comp(d, "deletion")) {
                    deleted.push(resolve_ref(&sub.inst, &sub_path, del)?.uid);
                }
            }
        }
        let n = inst.subs.len();
        let inst = inst_at_mut(&mut self.root, path);
        inst.replaced = replaced;
        inst.replaced_by = replaced_by;
        self.removed.extend(deleted);
        for k in 0..n {
            let mut sub_path = path.to_vec();
            sub_path.push(k);
            self.resolve_all(&sub_path)?;
        }
        Ok(())
    }

    /// Step 3: prefixes every id of every instance, and references to them.
    fn rename_all(&mut self, path: &[usize]) {
        let inst = inst_at_mut(&mut self.root, path);
        if !inst.prefix.is_empty() {
            let mut ids = Ids::default();
            declared_ids(&inst.model, true, &mut ids);
            let p = inst.prefix.clone();
            let map = |set: &HashSet<String>| set.iter().map(|i| (i.clone(), format!("{p}{i}"))).collect();
            let renames = Renames { sids: map(&ids.sids), units: map(&ids.units), metaids: map(&ids.metaids) };
            rename_refs(&mut inst.model, &renames, true, true, &[]);
        }
        for k in 0..inst.subs.len() {
            let mut sub_path = path.to_vec();
            sub_path.push(k);
            self.rename_all(&sub_path);
        }
    }

    /// Step 4, top-down as libSBML does it: this model's replacedElements,
    /// then each submodel's time/extent conversion and its own replacements,
    /// then this model's replacedBys (so the topmost names win).
    fn process(&mut self, path: &[usize]) -> Result<(), CompError> {
        let replaced = inst_at(&self.root, path).replaced.clone();
        for rec in replaced {
            // A carrier that was itself replaced from above has been handled
            // by the cascade in `replace_with`.
            if self.removed.contains(&rec.carrier) {
                continue;
            }
            let Some(target) = &rec.target else { continue };
            let inst = inst_at(&self.root, path);
            let (new_id, cf) = replacement_info(inst, &rec);
            self.replace_with(target, new_id.as_deref(), cf)?;
        }
        let n = inst_at(&self.root, path).subs.len();
        for k in 0..n {
            let mut sub_path = path.to_vec();
            sub_path.push(k);
            self.convert_time_extent(path, k);
            self.process(&sub_path)?;
        }
        let replaced_by = inst_at(&self.root, path).replaced_by.clone();
        for rec in replaced_by {
            if self.removed.contains(&rec.carrier) {
                continue;
            }
            let Some(target) = rec.target else { continue };
            let inst = inst_at(&self.root, path);
            let Some(carrier) = inst.model.find(rec.carrier) else { continue };
            let new_id = carrier.attr("id").map(str::to_string);
            let new_meta = carrier.attr("metaid").map(str::to_string);
            let owner = inst_at_mut(&mut self.root, &target.path);
            if let Some(t) = owner.model.find(target.uid) {
                let is_unit = t.name == "unitDefinition";
                let old_id = t.attr("id").map(str::to_string);
                if let (Some(old), Some(new)) = (old_id, new_id.as_deref()) {
                    rename_one(&mut owner.model, &old, new, is_unit);
                }
            }
            if let Some(t) = owner.model.find_mut(target.uid) {
                if let Some(new) = &new_id {
                    t.set_attr("id", new);
                }
                if let Some(meta) = &new_meta {
                    t.set_attr("metaid", meta);
                }
            }
            self.removed.insert(rec.carrier);
        }
        Ok(())
    }

    /// Redirects every reference to `target` (in its own model) to `new_id`,
    /// applies the conversion factor, and cascades into whatever `target`
    /// itself replaced or was replaced by.
    fn replace_with(&mut self, target: &Target, new_id: Option<&str>, cf: Option<Elem>) -> Result<(), CompError> {
        let owner = inst_at_mut(&mut self.root, &target.path);
        let Some(t) = owner.model.find(target.uid) else { return Ok(()) };
        let is_unit = t.name == "unitDefinition";
        let is_local = t.name == "localParameter";
        let old_id = t.attr("id").map(str::to_string);
        if let (Some(old), Some(new)) = (old_id.as_deref(), new_id) {
            if is_local {
                // A local parameter is only visible in its kinetic law, whose
                // math it would keep shadowing: drop it, then rename there.
                if let Some(kl) = kinetic_law_containing(&mut owner.model, target.uid) {
                    let uid = target.uid;
                    for list in kl.elems_mut() {
                        list.children.retain(|c| !matches!(c, Node::Elem(p) if p.uid == uid));
                    }
                    let renames = Renames {
                        sids: HashMap::from([(old.to_string(), new.to_string())]),
                        units: HashMap::new(),
                        metaids: HashMap::new(),
                    };
                    for m in kl.elems_mut().filter(|m| is_math(m)) {
                        rename_math(m, &renames, &mut Vec::new());
                    }
                }
            } else {
                rename_one(&mut owner.model, old, new, is_unit);
            }
        }
        if let (Some(cf), Some(new)) = (&cf, new_id) {
            convert_references(&mut owner.model, new, cf);
        }
        self.removed.insert(target.uid);
        let owner = inst_at(&self.root, &target.path);
        let cascade: Vec<(Target, Option<Elem>)> = owner
            .replaced
            .iter()
            .chain(owner.replaced_by.iter())
            .filter(|r| r.carrier == target.uid)
            .filter_map(|r| {
                let t = r.target.clone()?;
                let own_cf = owner
                    .model
                    .find(r.node)
                    .and_then(|n| comp_attr(n, "conversionFactor"))
                    .map(|c| ci(c, n_like(&owner.model)));
                Some((t, combine(cf.clone(), own_cf)))
            })
            .collect();
        for (t, cf) in cascade {
            self.replace_with(&t, new_id, cf)?;
        }
        Ok(())
    }

    /// Applies the submodel `k` of the instance at `parent`'s time and extent
    /// conversion factors to its math, and hands them down to its own
    /// submodels.
    fn convert_time_extent(&mut self, parent: &[usize], k: usize) {
        let pinst = inst_at(&self.root, parent);
        let sub = &pinst.subs[k];
        let Some(sub_el) = pinst.model.find(sub.uid) else { return };
        let like = n_like(sub_el);
        let tcf_id = comp_attr(sub_el, "timeConversionFactor").map(str::to_string);
        let xcf_id = comp_attr(sub_el, "extentConversionFactor").map(str::to_string);
        let tcf = tcf_id.as_deref().map(|c| ci(c, like.clone()));
        let xcf = xcf_id.as_deref().map(|c| ci(c, like.clone()));
        if tcf.is_none() && xcf.is_none() {
            return;
        }
        // Kinetic laws become extent per parent time: times xcf / tcf.
        let klmod = match (&xcf, &tcf) {
            (Some(x), Some(t)) => Some(apply("divide", vec![x.clone(), t.clone()], &like)),
            (Some(x), None) => Some(x.clone()),
            (None, Some(t)) => Some(apply("divide", vec![cn_one(&like), t.clone()], &like)),
            (None, None) => None,
        };
        let core_ns = self.core_ns.clone();
        let inst = &mut inst_at_mut(&mut self.root, parent).subs[k].inst;
        if let Some(klmod) = &klmod {
            // A reaction's id stands for its rate, which is about to be scaled.
            let mut reactions = Vec::new();
            collect_named(&inst.model, "reaction", &mut reactions);
            let map: HashMap<String, Elem> = reactions
                .into_iter()
                .map(|r| (r.clone(), apply("divide", vec![ci(&r, like.clone()), klmod.clone()], &like)))
                .collect();
            replace_cis(&mut inst.model, &map);
        }
        for_each_math(&mut inst.model, &mut |owner, math, _| {
            let Some(expr) = take_expr(math) else { return };
            let mut expr = match &tcf {
                Some(t) if owner != "functionDefinition" => convert_csymbols(expr, t),
                _ => expr,
            };
            match (owner, &tcf, &klmod) {
                ("kineticLaw", _, Some(k)) => expr = apply("times", vec![k.clone(), expr], &like),
                ("rateRule", Some(t), _) => expr = apply("divide", vec![expr, t.clone()], &like),
                ("delay", Some(t), _) => expr = apply("times", vec![t.clone(), expr], &like),
                _ => {}
            }
            put_expr(math, expr);
        });
        // Nested submodels inherit the factors; where they have their own,
        // libSBML multiplies them into a new parameter `own_times_inherited`
        // (whose name shows up in the suite's expected flat models).
        let sub_uids: Vec<u32> = inst.subs.iter().map(|s| s.uid).collect();
        for uid in sub_uids {
            for (attr, factor) in [("timeConversionFactor", &tcf_id), ("extentConversionFactor", &xcf_id)] {
                let Some(factor) = factor else { continue };
                let Some(nested) = inst.model.find(uid) else { continue };
                let value = match comp_attr(nested, attr) {
                    Some(own) => {
                        let own = own.to_string();
                        new_product_parameter(&mut inst.model, core_ns.clone(), &own, factor, &like)
                    }
                    None => factor.clone(),
                };
                if let Some(nested) = inst.model.find_mut(uid) {
                    nested.attrs.retain(|a| a.name != attr);
                    nested.set_attr(attr, &value);
                }
            }
        }
    }

    /// Step 5: the main model with every surviving element of every instance
    /// appended to its lists, comp constructs removed.
    fn merge(&self) -> Result<Elem, CompError> {
        let top = &self.root.model;
        let mut lists: HashMap<String, Elem> = HashMap::new();
        let mut other = Vec::new();
        for c in top.elems() {
            if c.ns_is(is_comp_ns) {
                continue;
            }
            if is_core(c) && LIST_ORDER.contains(&c.name.as_str()) {
                if let Some(s) = self.strip(c) {
                    lists.insert(c.name.clone(), s);
                }
            } else if let Some(s) = self.strip(c) {
                other.push(s);
            }
        }
        self.append_instances(&self.root, &mut lists)?;
        let mut model = Elem::new(top.ns.clone(), "model", top.file.clone(), top.line);
        model.attrs = top.attrs.iter().filter(|a| !a.ns.as_deref().is_some_and(is_comp_ns)).cloned().collect();
        // notes and annotation come first in SBML; other packages' children follow the core lists.
        let (first, rest): (Vec<Elem>, Vec<Elem>) = other.into_iter().partition(is_opaque);
        model.children.extend(first.into_iter().map(Node::Elem));
        for name in LIST_ORDER {
            if let Some(l) = lists.remove(*name) {
                if l.elems().next().is_some() {
                    model.children.push(Node::Elem(l));
                }
            }
        }
        model.children.extend(rest.into_iter().map(Node::Elem));
        Ok(model)
    }

    fn append_instances(&self, inst: &Instance, lists: &mut HashMap<String, Elem>) -> Result<(), CompError> {
        for sub in &inst.subs {
            if self.removed.contains(&sub.uid) {
                continue;
            }
            for c in sub.inst.model.elems() {
                if c.ns_is(is_comp_ns) || is_opaque(c) {
                    continue;
                }
                if !(is_core(c) && LIST_ORDER.contains(&c.name.as_str())) {
                    return Err(CompError::UnsupportedPackage {
                        file: c.file.to_string(),
                        line: c.line,
                        element: c.name.clone(),
                    });
                }
                let Some(stripped) = self.strip(c) else { continue };
                let list = lists.entry(c.name.clone()).or_insert_with(|| {
                    let mut l = stripped.clone();
                    l.attrs.clear();
                    l.children.clear();
                    l
                });
                list.children.extend(stripped.children);
            }
            self.append_instances(&sub.inst, lists)?;
        }
        Ok(())
    }

    /// A copy of `e` without comp elements and attributes and without removed
    /// elements; lists left empty are dropped (L3V1 forbids empty lists).
    fn strip(&self, e: &Elem) -> Option<Elem> {
        if self.removed.contains(&e.uid) && e.uid != 0 {
            return None;
        }
        let mut out = e.clone();
        out.attrs.retain(|a| !a.ns.as_deref().is_some_and(is_comp_ns));
        if is_opaque(e) || is_math(e) {
            return Some(out);
        }
        let had_children = e.elems().next().is_some();
        out.children = e
            .children
            .iter()
            .filter_map(|c| match c {
                Node::Elem(c) if c.ns_is(is_comp_ns) => None,
                Node::Elem(c) => self.strip(c).map(Node::Elem),
                Node::Text(t) => Some(Node::Text(t.clone())),
            })
            .collect();
        if had_children && e.name.starts_with("listOf") && is_core(e) && out.elems().next().is_none() {
            return None;
        }
        Some(out)
    }
}

/// Adds the constant parameter `a_times_b` (made unique) with the initial
/// assignment `a * b` to `model`, and returns its id.
fn new_product_parameter(model: &mut Elem, core_ns: Rc<str>, a: &str, b: &str, like: &Elem) -> String {
    let mut ids = Ids::default();
    declared_ids(model, true, &mut ids);
    let base = format!("{a}_times_{b}");
    let mut id = base.clone();
    let mut i = 0;
    while ids.sids.contains(&id) {
        i += 1;
        id = format!("{base}_{i}");
    }
    let ns = Some(core_ns);
    let mut param = Elem::new(ns.clone(), "parameter", like.file.clone(), like.line);
    param.set_attr("id", &id);
    param.set_attr("constant", "true");
    let mut ia = Elem::new(ns.clone(), "initialAssignment", like.file.clone(), like.line);
    ia.set_attr("symbol", &id);
    let mut math = Elem::math("math", like);
    math.children.push(Node::Elem(apply("times", vec![ci(a, n_like(like)), ci(b, n_like(like))], like)));
    ia.children.push(Node::Elem(math));
    for (list, item) in [("listOfParameters", param), ("listOfInitialAssignments", ia)] {
        if !model.elems().any(|l| l.name == list && is_core(l)) {
            model.children.push(Node::Elem(Elem::new(ns.clone(), list, like.file.clone(), like.line)));
        }
        if let Some(l) = model.elems_mut().find(|l| l.name == list && is_core(l)) {
            l.children.push(Node::Elem(item));
        }
    }
    id
}

fn kinetic_law_containing(e: &mut Elem, uid: u32) -> Option<&mut Elem> {
    if e.name == "kineticLaw" && e.find(uid).is_some() {
        return Some(e);
    }
    e.elems_mut().find_map(|c| kinetic_law_containing(c, uid))
}

fn drop_local_parameters(inst: &mut Instance, removed: &HashSet<u32>) {
    fn prune(e: &mut Elem, removed: &HashSet<u32>) {
        e.children.retain(|c| !matches!(c, Node::Elem(c) if c.name == "localParameter" && removed.contains(&c.uid)));
        for c in e.elems_mut() {
            prune(c, removed);
        }
    }
    prune(&mut inst.model, removed);
    for s in &mut inst.subs {
        drop_local_parameters(&mut s.inst, removed);
    }
}

fn replacement_info(inst: &Instance, rec: &Replacing) -> (Option<String>, Option<Elem>) {
    let new_id = inst.model.find(rec.carrier).and_then(|c| c.attr("id")).map(str::to_string);
    let cf = inst.model.find(rec.node).and_then(|n| comp_attr(n, "conversionFactor").map(|c| ci(c, n_like(n))));
    (new_id, cf)
}

/// Pairs (carrier element, replacedElement/replacedBy element) in a model.
fn collect_carriers<'a>(e: &'a Elem, out: &mut Vec<(&'a Elem, &'a Elem)>) {
    for c in e.elems() {
        if is_opaque(c) || is_math(c) {
            continue;
        }
        if is_comp(c, "listOfReplacedElements") {
            for r in c.elems().filter(|r| is_comp(r, "replacedElement")) {
                out.push((e, r));
            }
        } else if is_comp(c, "replacedBy") {
            out.push((e, c));
        } else if !c.ns_is(is_comp_ns) {
            collect_carriers(c, out);
        }
    }
}

#[derive(Default)]
struct Ids {
    sids: HashSet<String>,
    units: HashSet<String>,
    metaids: HashSet<String>,
}

fn declared_ids(e: &Elem, is_root: bool, ids: &mut Ids) {
    if is_opaque(e) || is_math(e) {
        return;
    }
    if let Some(m) = e.attr("metaid") {
        ids.metaids.insert(m.to_string());
    }
    if is_core(e) && !is_root {
        if let Some(id) = e.attr("id") {
            match e.name.as_str() {
                "unitDefinition" => {
                    ids.units.insert(id.to_string());
                }
                "localParameter" => {}
                _ => {
                    ids.sids.insert(id.to_string());
                }
            }
        }
    }
    for c in e.elems() {
        declared_ids(c, false, ids);
    }
}

struct Renames {
    sids: HashMap<String, String>,
    units: HashMap<String, String>,
    metaids: HashMap<String, String>,
}

fn rename_one(model: &mut Elem, old: &str, new: &str, is_unit: bool) {
    let one = HashMap::from([(old.to_string(), new.to_string())]);
    let renames = if is_unit {
        Renames { sids: HashMap::new(), units: one, metaids: HashMap::new() }
    } else {
        Renames { sids: one, units: HashMap::new(), metaids: HashMap::new() }
    };
    rename_refs(model, &renames, false, true, &[]);
}

/// Renames references (and, with `defs`, the definitions themselves) in `e`.
/// `shadow` holds the local parameter ids in scope, which are never renamed.
fn rename_refs(e: &mut Elem, r: &Renames, defs: bool, is_root: bool, shadow: &[String]) {
    if is_opaque(e) {
        return;
    }
    if is_math(e) {
        rename_math(e, r, &mut shadow.to_vec());
        return;
    }
    let core = is_core(e);
    let comp = e.ns_is(is_comp_ns);
    let name = e.name.clone();
    for a in &mut e.attrs {
        let unqualified = a.ns.is_none();
        let map = if a.name == "metaid" && unqualified {
            if !defs {
                continue;
            }
            &r.metaids
        } else if core && unqualified && a.name == "id" {
            if !defs || is_root || name == "localParameter" {
                continue;
            }
            if name == "unitDefinition" {
                &r.units
            } else {
                &r.sids
            }
        } else if core && unqualified && SIDREF_ATTRS.contains(&a.name.as_str()) {
            &r.sids
        } else if core && unqualified && UNITREF_ATTRS.contains(&a.name.as_str()) {
            &r.units
        } else if comp && COMP_SIDREF_ATTRS.contains(&a.name.as_str()) {
            &r.sids
        } else {
            continue;
        };
        if let Some(n) = map.get(&a.value) {
            a.value = n.clone();
        }
    }
    let mut inner: Vec<String>;
    let shadow = if core && name == "kineticLaw" {
        inner = shadow.to_vec();
        inner.extend(local_parameters(e));
        &inner[..]
    } else {
        shadow
    };
    for c in e.elems_mut() {
        rename_refs(c, r, defs, false, shadow);
    }
}

fn local_parameters(kl: &Elem) -> Vec<String> {
    kl.elems()
        .filter(|l| l.name == "listOfLocalParameters" || l.name == "listOfParameters")
        .flat_map(|l| l.elems())
        .filter_map(|p| p.attr("id").map(str::to_string))
        .collect()
}

fn rename_math(e: &mut Elem, r: &Renames, bound: &mut Vec<String>) {
    if e.name == "ci" {
        let t = e.text();
        let t = t.trim();
        if !bound.iter().any(|b| b == t) {
            if let Some(n) = r.sids.get(t) {
                e.set_text(n);
            }
        }
        return;
    }
    if e.name == "cn" {
        for a in &mut e.attrs {
            if a.name == "units" && a.ns.as_deref().is_some_and(is_core_ns) {
                if let Some(n) = r.units.get(&a.value) {
                    a.value = n.clone();
                }
            }
        }
        return;
    }
    let n = bound.len();
    if e.name == "lambda" {
        bound.extend(bvars(e));
    }
    for c in e.elems_mut() {
        rename_math(c, r, bound);
    }
    bound.truncate(n);
}

fn bvars(lambda: &Elem) -> Vec<String> {
    lambda
        .elems()
        .filter(|b| b.name == "bvar")
        .flat_map(|b| b.elems())
        .filter(|c| c.name == "ci")
        .map(|c| c.text().trim().to_string())
        .collect()
}

/// Calls `f(owner element name, math element, local parameters in scope)`
/// for every `<math>` of the model.
fn for_each_math(e: &mut Elem, f: &mut dyn FnMut(&str, &mut Elem, &[String])) {
    fn walk(e: &mut Elem, f: &mut dyn FnMut(&str, &mut Elem, &[String]), shadow: &[String]) {
        let locals;
        let shadow = if e.name == "kineticLaw" {
            locals = local_parameters(e);
            &locals[..]
        } else {
            shadow
        };
        let owner = e.name.clone();
        for c in e.elems_mut() {
            if is_math(c) && c.name == "math" {
                f(&owner, c, shadow);
            } else if !is_opaque(c) && !is_math(c) {
                walk(c, f, shadow);
            }
        }
    }
    walk(e, f, &[]);
}

/// libSBML's conversion of a replaced element: references to the replacement
/// inside the submodel become `replacement / cf`, and whatever assigns it
/// (rules, assignments, the kinetic law of a replaced reaction) is multiplied
/// by `cf`.
fn convert_references(model: &mut Elem, new_id: &str, cf: &Elem) {
    let like = n_like(model);
    let map = HashMap::from([(new_id.to_string(), apply("divide", vec![ci(new_id, like.clone()), cf.clone()], &like))]);
    replace_cis(model, &map);
    multiply_assignments(model, new_id, cf);
}

fn multiply_assignments(e: &mut Elem, id: &str, cf: &Elem) {
    if is_opaque(e) || is_math(e) {
        return;
    }
    let assigns = match e.name.as_str() {
        "assignmentRule" | "rateRule" | "algebraicRule" | "eventAssignment" => e.attr("variable") == Some(id),
        "initialAssignment" => e.attr("symbol") == Some(id),
        _ => false,
    };
    let is_reaction = e.name == "reaction" && e.attr("id") == Some(id);
    if assigns {
        multiply_math_of(e, cf);
    }
    if is_reaction {
        if let Some(kl) = e.elems_mut().find(|k| k.name == "kineticLaw") {
            multiply_math_of(kl, cf);
        }
    }
    for c in e.elems_mut() {
        multiply_assignments(c, id, cf);
    }
}

fn multiply_math_of(e: &mut Elem, cf: &Elem) {
    let like = n_like(e);
    if let Some(m) = e.elems_mut().find(|m| is_math(m) && m.name == "math") {
        if let Some(expr) = take_expr(m) {
            put_expr(m, apply("times", vec![expr, cf.clone()], &like));
        }
    }
}

/// Replaces `<ci>` of the ids in `map` by the given expressions in one pass
/// (the inserted expressions are not revisited), respecting lambda and
/// local-parameter scopes.
fn replace_cis(model: &mut Elem, map: &HashMap<String, Elem>) {
    fn in_math(e: &mut Elem, map: &HashMap<String, Elem>, bound: &mut Vec<String>) {
        let n = bound.len();
        if e.name == "lambda" {
            bound.extend(bvars(e));
        }
        for c in e.children.iter_mut() {
            let Node::Elem(ce) = c else { continue };
            if ce.name == "ci" {
                let t = ce.text();
                let t = t.trim();
                if !bound.iter().any(|b| b == t) {
                    if let Some(rep) = map.get(t) {
                        *c = Node::Elem(rep.clone());
                    }
                }
            } else {
                in_math(ce, map, bound);
            }
        }
        bound.truncate(n);
    }
    for_each_math(model, &mut |_, math, shadow| in_math(math, map, &mut shadow.to_vec()));
}

fn convert_csymbols(e: Elem, tcf: &Elem) -> Elem {
    if e.name == "csymbol" && e.attr("definitionURL").map(str::trim) == Some(TIME_URL) {
        let like = n_like(&e);
        return apply("divide", vec![e, tcf.clone()], &like);
    }
    let mut e = e;
    let children = std::mem::take(&mut e.children);
    e.children = children
        .into_iter()
        .map(|c| match c {
            Node::Elem(c) => Node::Elem(convert_csymbols(c, tcf)),
            t => t,
        })
        .collect();
    let is_delay = e.name == "apply"
        && e.elems()
            .next()
            .is_some_and(|op| op.name == "csymbol" && op.attr("definitionURL").map(str::trim) == Some(DELAY_URL));
    if is_delay {
        let like = n_like(&e);
        let mut idx = e.children.iter().enumerate().filter(|(_, c)| matches!(c, Node::Elem(_))).map(|(i, _)| i);
        if let Some(i) = idx.nth(2) {
            if let Node::Elem(d) = std::mem::replace(&mut e.children[i], Node::Text(String::new())) {
                e.children[i] = Node::Elem(apply("times", vec![tcf.clone(), d], &like));
            }
        }
    }
    e
}

fn take_expr(math: &mut Elem) -> Option<Elem> {
    let i = math.children.iter().position(|c| matches!(c, Node::Elem(_)))?;
    match math.children.remove(i) {
        Node::Elem(e) => Some(e),
        Node::Text(_) => None,
    }
}

fn put_expr(math: &mut Elem, expr: Elem) {
    math.children.retain(|c| !matches!(c, Node::Text(_)));
    math.children.insert(0, Node::Elem(expr));
}

fn collect_named(e: &Elem, name: &str, out: &mut Vec<String>) {
    for c in e.elems() {
        if is_opaque(c) || is_math(c) {
            continue;
        }
        if c.name == name && is_core(c) {
            if let Some(id) = c.attr("id") {
                out.push(id.to_string());
            }
        }
        collect_named(c, name, out);
    }
}

/// A template carrying file and line for newly built MathML.
fn n_like(e: &Elem) -> Elem {
    Elem::new(None, "", e.file.clone(), e.line)
}

fn ci(name: &str, like: Elem) -> Elem {
    let mut e = Elem::math("ci", &like);
    e.set_text(name);
    e
}

fn cn_one(like: &Elem) -> Elem {
    let mut e = Elem::math("cn", like);
    e.attrs.push(Attr { ns: None, name: "type".into(), value: "integer".into() });
    e.set_text("1");
    e
}

fn apply(op: &str, args: Vec<Elem>, like: &Elem) -> Elem {
    let mut e = Elem::math("apply", like);
    e.children.push(Node::Elem(Elem::math(op, like)));
    e.children.extend(args.into_iter().map(Node::Elem));
    e
}

fn combine(a: Option<Elem>, b: Option<Elem>) -> Option<Elem> {
    match (a, b) {
        (Some(a), Some(b)) => {
            let like = n_like(&a);
            Some(apply("times", vec![a, b], &like))
        }
        (a, b) => a.or(b),
    }
}
