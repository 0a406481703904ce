"""Performance budgets over Lighthouse and coach reports (seed 003)."""
