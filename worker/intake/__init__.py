"""The alert webhook: sources, auth, routing, deduplication and the incidents alerts land in."""
