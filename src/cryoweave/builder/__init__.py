"""Layer 6: building jobs: their records, parameters, connections and status changes."""
