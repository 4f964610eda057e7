"""Job types from plugins: the ``cryoweave.jobs`` entry point group, as a lab's pip package declares it."""

from __future__ import annotations

import importlib
import textwrap

import pytest

from cryoweave.errors import JobTypeError, NotFoundError
from cryoweave.jobs import ENTRY_POINT_GROUP, Registry
from cryoweave.jobs.library import library_jobs
from cryoweave.jobs.registry import BUILT_IN
from cryoweave.model import JobTypeSpec


def install_plugin(root, name, entry_points: dict[str, str], modules: dict[str, str]):
    """Lay out a package and its dist-info the way pip installs them, under ``root``."""
    for module, source in modules.items():
        (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{name}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    lines = "\n".join(f"{k} = {v}" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{lines}\n")


@pytest.fixture
def plugins(tmp_path, monkeypatch):
    install_plugin(tmp_path, "mylab-jobs", {
        "subset_particles": "mylab_subset:JOB",
        "pick_blobs": "mylab_pick:PickBlobs",
        "broken_import": "mylab_broken:JOB",
        "bad_spec": "mylab_bad:JOB",
        "misnamed": "mylab_subset:OTHER",
        "import_particles": "mylab_pick:OurImport",
    }, {
        "mylab_subset": '''
            from cryoweave.model import JobTypeSpec
            JOB = JobTypeSpec.parse({"type": "subset_particles", "title": "Subset particles",
                                     "inputs": [{"name": "particles", "type": "particle", "slots": ["blob"]}],
                                     "params": [{"name": "fraction", "type": "number", "default": 0.5}]})
            OTHER = {"type": "something_else", "title": "Other"}
        ''',
        "mylab_pick": '''
            class PickBlobs:
                spec = {"type": "pick_blobs", "title": "Pick blobs", "category": "picking",
                        "outputs": [{"name": "particles", "type": "particle", "slots": ["location"]}]}
                def run(self, ctx):
                    raise NotImplementedError
            OurImport = {"type": "import_particles", "title": "Our own import"}
        ''',
        "mylab_broken": "raise ImportError('needs torch')\n",
        "mylab_bad": "JOB = {'type': 'bad_spec', 'title': 'Bad', 'inputs': [{'name': 'p', 'type': 'particles'}]}\n",
    })
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    return tmp_path


def test_plugins_are_found_through_entry_points(plugins):
    registry = Registry()
    types = {t.name: t for t in registry.types()}
    assert {"subset_particles", "pick_blobs"} <= set(types)
    only_mylab = Registry(packages=["MyLab_Jobs"])  # names compare as packaging normalises them
    assert {t.name for t in only_mylab.types() if t.source != BUILT_IN} == {"subset_particles", "pick_blobs"}
    assert types["subset_particles"].spec.param("fraction").default == 0.5
    assert types["pick_blobs"].spec.category == "picking"
    assert "mylab-jobs" in types["pick_blobs"].source and "mylab_pick:PickBlobs" in types["pick_blobs"].source
    assert hasattr(types["pick_blobs"].implementation, "run")  # the object behind the spec is kept


def test_the_built_in_job_types_are_always_there_and_their_names_reserved(plugins):
    registry = Registry(packages=["mylab-jobs"])
    names = {t.name for t in registry.types()}
    assert {j.spec["type"] for j in library_jobs()} <= names  # whatever the packages say
    assert registry.get("import_particles").source == BUILT_IN
    assert registry.get("import_particles").spec.title == "Import Particle Stack"  # not the plugin's
    reason = registry.broken["import_particles (mylab-jobs (mylab_pick:OurImport))"]
    assert reason == ("mylab-jobs (mylab_pick:OurImport) declares job type 'import_particles', which is built into "
                      "cryoweave; a plugin cannot replace a built-in job type: give the lab's job type a name of "
                      "its own")
    with pytest.raises(JobTypeError, match=r"'import_particles' from registered in Python is already provided by "
                                           r"cryoweave \(built in\)"):
        registry.register({"type": "import_particles", "title": "Mine"})


def test_an_instance_loads_only_the_packages_it_names(plugins, monkeypatch):
    from cryoweave.jobs import registry as registry_module

    assert [t.source for t in Registry(packages=["another-lab"]).types()] == [BUILT_IN] * len(library_jobs())
    monkeypatch.setattr(registry_module, "_default", None)
    monkeypatch.setenv("CRYOWEAVE_JOB_PACKAGES", "another-lab, mylab-jobs")
    loaded = registry_module.default_registry().types()
    assert {t.name for t in loaded if t.source != BUILT_IN} == {"subset_particles", "pick_blobs"}
    assert registry_module.default_registry().packages == {"another-lab", "mylab-jobs"}


def test_the_example_lab_package_declares_valid_job_types(monkeypatch):
    """``examples/example_lab_jobs`` (shown in the README) loads as its pyproject declares."""
    import tomllib
    from pathlib import Path

    root = Path(__file__).parent.parent / "examples" / "example_lab_jobs"
    declared = tomllib.loads((root / "pyproject.toml").read_text())["project"]["entry-points"][ENTRY_POINT_GROUP]
    monkeypatch.syspath_prepend(str(root))
    registry = Registry(packages=[])
    for name, target in declared.items():
        module, attribute = target.split(":")
        job_type = registry.register(getattr(importlib.import_module(module), attribute), "example-lab-jobs")
        assert job_type.name == name
    assert [t.name for t in registry.types() if t.source != BUILT_IN] == ["lab_import_particles", "subset_particles"]


def test_the_example_lab_jobs_run_a_chain(monkeypatch, tmp_path):
    """The README's example package: import particles from a .cs, keep a random half, passthroughs joined."""
    from pathlib import Path

    from builder_helpers import particles
    from cryoweave.api import Instance

    root = Path(__file__).parent.parent / "examples" / "example_lab_jobs"
    monkeypatch.syspath_prepend(str(root))
    lab = importlib.import_module("example_lab_jobs")
    registry = Registry(packages=[])
    registry.register(lab.LAB_IMPORT_PARTICLES_JOB, "example-lab-jobs")
    registry.register(lab.SUBSET_PARTICLES_JOB, "example-lab-jobs")
    particles(range(500, 540), "blob", "ctf", ctf__df1_A=range(40)).save(tmp_path / "particles.cs")
    with Instance(home=tmp_path / "home", registry=registry) as inst:
        project = inst.create_project("Lab", tmp_path / "projects")
        imp = project.create_job("lab_import_particles", params={"metadata_path": str(tmp_path / "particles.cs")})
        sub = project.create_job("subset_particles", params={"fraction": 0.25, "seed": 3})
        sub.connect("particles", "J1.particles")
        assert (imp.execute().status, sub.execute().status) == ("completed", "completed")
        data = sub.load_output("particles")
        assert len(data) == 10 and set(data["uid"]) <= set(range(500, 540))
        assert (data["ctf/df1_A"] == data["uid"] - 500).all()  # each item kept its own CTF


def test_broken_plugins_are_reported_and_do_not_stop_the_others(plugins):
    registry = Registry(packages=["mylab-jobs"])
    registry.types()
    assert "ImportError: needs torch" in registry.broken["broken_import"]
    assert "Input should be 'exposure'" in registry.broken["bad_spec"]
    assert "declares job type 'something_else'; the two names must be the same" in registry.broken["misnamed"]
    assert "something_else" not in {t.name for t in registry.types()}
    with pytest.raises(JobTypeError, match=r"job type 'broken_import' is installed but broken: .*needs torch"):
        registry.get("broken_import")
    with pytest.raises(NotFoundError, match=r"no job type 'nope'; `cryoweave job types` lists the \d+ installed"):
        registry.get("nope")


def test_registering_in_python():
    registry = Registry()
    registry._loaded = True  # no plugins in this test
    spec = JobTypeSpec.parse({"type": "noop", "title": "Do nothing"})
    assert registry.register(spec).spec is spec
    assert registry.register({"type": "noop2", "title": "Also nothing"}).name == "noop2"
    registry.register(spec)  # the same source again: replaces itself
    with pytest.raises(JobTypeError, match="already provided by registered in Python"):
        registry.register(spec, "another package")
    with pytest.raises(JobTypeError, match="is not valid"):
        registry.register({"type": "x"})
    assert [t.name for t in registry.types() if t.source != BUILT_IN] == ["noop", "noop2"]
