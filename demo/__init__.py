"""`make demo`: the sandbox with a failure injected, followed to its review. Never runtime code."""
