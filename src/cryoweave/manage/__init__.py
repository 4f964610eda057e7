"""Layer 9: data management: export and import of jobs and groups, storage statistics, clearing and
cleanup, archives, and the integrity check of a project directory."""
