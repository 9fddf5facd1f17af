//! Environment variable overrides.
