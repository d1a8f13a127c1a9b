"""The control API: one module per resource, each a thin HTTP layer over the operations."""
