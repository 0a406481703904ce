"""Release gate: the release checklist (seeds 000/001) and breaking-change detection."""
