//! Output files (stub).
