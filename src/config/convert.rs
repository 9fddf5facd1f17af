//! Conversion to pipeline endpoints (compiled out until the endpoint module lands).
