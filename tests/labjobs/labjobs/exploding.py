"""A plugin module that fails on import: cryoweave must report it, not crash."""

raise RuntimeError("labjobs.exploding needs a GPU driver that is not installed")
