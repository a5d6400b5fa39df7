"""Activities that talk to Redis: diagnosis, analysis, remediation, the hit-rate watch, access."""
