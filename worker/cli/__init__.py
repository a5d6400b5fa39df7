"""The `runbook` command: start, status, approve, follow, and the worker and webhook processes."""
