//! Plots (stub).
