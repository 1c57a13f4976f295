//! The TOML configuration (stub).
