//! Internal tests and loom models.
