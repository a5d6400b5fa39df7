"""Approvals you can trust: front doors that prove who decides (an ID token, a signed Slack
request) and sign what they proved for the worker to check."""
