"""(being written)"""

JOBS: list = []
