"""The runbook's pure logic: classify, plan, approvals, outcome, review, retries. No I/O."""
