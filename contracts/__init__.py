"""The public contracts: what crosses the wire between alert sources, the CLI, the workflow and the
activities. The bottom layer: it imports pydantic only. Changing a field is a breaking change for
in-flight incidents and for people who start workflows by hand."""
