"""Activities that talk to the Kubernetes API: inspection and the steps that change workloads."""
