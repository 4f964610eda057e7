"""Example job types, declared as data (see docs/projects.md, "Jobs").

Each entry point in ``pyproject.toml`` names one of these dictionaries; cryoweave checks it as a
job type spec when it loads the ``cryoweave.jobs`` group. Nothing here runs a job: a spec says
what a job takes, what it makes and what it can be told.
"""

IMPORT_PARTICLES = {
    "type": "import_particles",
    "title": "Import particles",
    "description": "Import particle stacks with their CTF parameters.",
    "category": "import",
    "outputs": [{"name": "particles", "type": "particle", "slots": ["blob", "ctf"]}],
    "params": [
        {"name": "stack_path", "type": "path", "help": "Particle stacks (.mrcs), a glob"},
        {"name": "psize_A", "type": "number", "default": 1.0, "minimum": 0.1, "maximum": 20,
         "help": "Pixel size in Å"},
        {"name": "voltage_kv", "type": "integer", "default": 300, "help": "Accelerating voltage in kV"},
    ],
}

SUBSET_PARTICLES = {
    "type": "subset_particles",
    "title": "Subset particles",
    "description": "Keep a fraction of the particles; every other result passes through.",
    "category": "particle curation",
    "inputs": [{"name": "particles", "type": "particle", "slots": ["blob", "?ctf"], "count_min": 1,
                "count_max": 1}],
    "outputs": [{"name": "particles", "type": "particle", "slots": [], "passthrough": "particles"}],
    "params": [
        {"name": "fraction", "type": "number", "default": 0.5, "minimum": 0, "maximum": 1,
         "help": "Fraction of the particles to keep"},
        {"name": "seed", "type": "integer", "help": "Random seed (default: a new one each run)"},
    ],
}
