//! SBML reader. (Being written: see the helper brief in the commit log.)
pub mod comp;
