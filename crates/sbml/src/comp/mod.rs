//! comp package flattening (being written).
