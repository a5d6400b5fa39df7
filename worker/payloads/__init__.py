"""What Temporal stores of the runbook's payloads: sealed when a codec key is configured."""
