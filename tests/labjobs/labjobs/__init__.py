"""A lab's own job types, declared as data: the fake plugin the CLI tests install.

``tests/labjobs`` is put on ``PYTHONPATH``; ``labjobs-1.0.dist-info/entry_points.txt`` declares
these in the ``cryoweave.jobs`` group, as ``pip install`` of a real package would.
"""

IMPORT_PARTICLES = {
    "type": "import_particles",
    "title": "Import particles",
    "description": "Import particle stacks with their CTF.",
    "category": "import",
    "outputs": [{"name": "particles", "type": "particle", "slots": ["blob", "ctf"]}],
    "params": [
        {"name": "psize_A", "type": "number", "default": 1.0, "minimum": 0.1, "maximum": 20,
         "help": "Pixel size in Å"},
        {"name": "voltage_kv", "type": "integer", "default": 300, "help": "Accelerating voltage in kV"},
        {"name": "phase_plate", "type": "boolean", "default": False, "help": "Data taken with a phase plate"},
        {"name": "stack_path", "type": "path", "help": "Particle stacks (.mrcs), a glob"},
    ],
}

IMPORT_MICROGRAPHS = {
    "type": "import_micrographs",
    "title": "Import micrographs",
    "category": "import",
    "outputs": [{"name": "micrographs", "type": "exposure", "slots": ["micrograph_blob"]}],
    "params": [{"name": "psize_A", "type": "number", "default": 1.0, "help": "Pixel size in Å"}],
}

SUBSET_PARTICLES = {
    "type": "subset_particles",
    "title": "Subset particles",
    "category": "particle curation",
    "inputs": [{"name": "particles", "type": "particle", "slots": ["blob", "?ctf"], "count_min": 1,
                "count_max": 1}],
    "outputs": [{"name": "particles", "type": "particle", "slots": [], "passthrough": "particles"}],
    "params": [
        {"name": "fraction", "type": "number", "default": 0.5, "minimum": 0, "maximum": 1,
         "help": "Fraction of the particles to keep"},
        {"name": "order", "type": "enum", "choices": ["random", "first"], "default": "random",
         "help": "Which particles to keep"},
        {"name": "seed", "type": "integer", "help": "Random seed (default: a new one each run)"},
    ],
}

JOIN_PARTICLES = {
    "type": "join_particles",
    "title": "Join particles",
    "category": "particle curation",
    "inputs": [{"name": "particles", "type": "particle", "slots": ["blob"], "count_min": 1, "count_max": None}],
    "outputs": [{"name": "particles", "type": "particle", "slots": [], "passthrough": "particles"}],
}

BAD_SPEC = {  # an enum without choices: reported as broken, the others still load
    "type": "bad_spec",
    "title": "Bad spec",
    "params": [{"name": "mode", "type": "enum"}],
}
