"""The application layer: config -> model assembly, the esm-run and esm-params commands (the only place that knows hydra)."""
