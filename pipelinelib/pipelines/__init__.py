"""Job compositions that span several steps (the deploy queue)."""
