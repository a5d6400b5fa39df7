"""The sandbox's Kubernetes API emulator: routes, RBAC, patches, selectors, injected failures."""
