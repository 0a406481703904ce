"""Security scan: one findings model, parsers (Trivy, Grype, OSV-Scanner, Clair v4), policy."""
