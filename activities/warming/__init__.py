"""Warming a cold cache after a flush or an outage, as the runbook's warm script does: critical
keys first, then the rest. Each target has its own warmers: an HTTP endpoint of the
application, a Kubernetes Job running the application's warm script in its own image, or a
Python callable. A warmer that fails is reported; the step fails only when every one did."""
