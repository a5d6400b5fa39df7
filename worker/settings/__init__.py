"""The worker's configuration: runbook.yaml with environment overrides, and its loader."""
