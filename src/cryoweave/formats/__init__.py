"""Layer 3: files other than datasets: .csg result groups and RELION .star."""
