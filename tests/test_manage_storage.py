"""Storage statistics (``cryoweave.manage.storage``): exact sizes against a walk of our own, the cache,
the background refresh and ``cryoweave storage``.

The projects hold real jobs (an import of particles whose stacks are linked from ``imported/``, a
generated phantom) and hand-made files: hard links shared by two jobs, links to raw data outside the
project, a broken link, link loops, an ``exports/`` folder and a folder a user added.
"""

from __future__ import annotations

import importlib.util
import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cryoweave.api import Instance
from cryoweave.cli.storage import storage as storage_command
from cryoweave.display import si_size as human_size
from cryoweave.manage.storage import start_background_refresh, storage_report
from cryoweave.manage.storage_cache import cache_path, refresh, refresh_lock
from cryoweave.manage.storage_walk import reference_walk

ROOT = Path(__file__).resolve().parent.parent


def du_links(paths: list[Path]) -> tuple[int, int]:
    """(bytes, files) of regular files under ``paths``, links followed, each inode once: the test's own
    walk (recursive, loops cut by the real path of each folder)."""
    seen: set[tuple[int, int]] = set()
    folders: set[str] = set()
    total = count = 0

    def visit(path: Path) -> None:
        nonlocal total, count
        try:
            st = os.stat(path)
        except OSError:  # broken link, link loop
            return
        if stat.S_ISDIR(st.st_mode):
            real = os.path.realpath(path)
            if real in folders:
                return
            folders.add(real)
            for child in sorted(os.listdir(path)):
                visit(path / child)
        elif stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            total += st.st_size
            count += 1

    for path in paths:
        visit(path)
    return total, count


def sample_particles(out: Path) -> Path:
    spec = importlib.util.spec_from_file_location("sample_particles", ROOT / "examples" / "sample_particles.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main([str(out), "--particles", "40", "--box", "16", "--micrographs", "2"])
    return out / "particles.star"


def write(path: Path, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(size))
    return path


_ages = iter(range(7200, 0, -1))


def age(*paths: Path) -> None:
    """Set these files' and folders' times an hour or two back (each call a different time), as if the
    change were old: a change within the last second is walked twice (see ``RACY_NS``), which is slower."""
    when = time.time() - next(_ages)
    for path in paths:
        os.utime(path, (when, when), follow_symlinks=False)


def hand_made_jobs(project, n: int, sizes: dict[str, int], **kwargs) -> list:
    """``n`` jobs (created, not run, aged) with a file of ``sizes[uid]`` bytes each (``data.bin``)."""
    jobs = [project.create_job("generate_phantom", **kwargs) for _ in range(n)]
    for job in jobs:
        write(job.directory / "data.bin", sizes.get(job.uid, 1000))
        age(job.directory, *job.directory.iterdir())
    age(project.directory, *project.directory.iterdir())
    return jobs


def test_sizes_are_exact_with_links_hard_links_loops_and_parts(tmp_path: Path) -> None:
    star = sample_particles(tmp_path / "raw")
    outside = write(tmp_path / "raw" / "big.bin", 10_000)
    with Instance(home=tmp_path / "home") as inst:
        project = inst.create_project("Sizes", tmp_path / "projects")
        j1 = project.create_job("import_particles", params={"particle_meta_path": str(star),
                                                            "micrograph_shape": "4096x4096"})
        j1.execute()
        j2 = project.create_job("generate_phantom", params={"box": 16})
        j2.execute()
        assert (j1.status, j2.status) == ("completed", "completed")
        j3 = project.create_job("generate_phantom")
        root, d1, d2, d3 = project.directory, j1.directory, j2.directory, j3.directory
        assert any(p.is_symlink() for p in (d1 / "imported").iterdir())
        (d2 / "raw_link").symlink_to(outside)
        (d3 / "raw_link_too").symlink_to(outside)  # the same raw file from two jobs: once in the total
        write(d2 / "hard.bin", 5000)
        os.link(d2 / "hard.bin", d3 / "hard_copy.bin")  # one inode in two jobs
        os.link(d2 / "hard.bin", d2 / "hard_again.bin")  # and twice in one job: once in J2
        write(d2 / "sub" / "deeper" / "x.bin", 3000)
        (d3 / "alias").symlink_to(d2 / "sub")  # a link inside the project
        (d3 / "broken").symlink_to(tmp_path / "nowhere")
        (d3 / "loop_a").symlink_to(d3 / "loop_b")
        (d3 / "loop_b").symlink_to(d3 / "loop_a")
        (d3 / "sub").mkdir()
        (d3 / "sub" / "up").symlink_to(d3)  # a folder linked from inside itself
        write(root / "exports" / "jobs" / "P1_J2" / "J2_volume.cs", 700)
        write(root / "notes" / "readme.txt", 123)
        (root / "notes" / "old_raw").symlink_to(outside)

        report = storage_report(inst.store, project.uid)

    rows = {row.key: row for row in report.rows("job")}
    for job, folder in (("J1", d1), ("J2", d2), ("J3", d3)):
        assert (rows[job].bytes, rows[job].files) == du_links([folder]), job
        assert (rows[job].bytes, rows[job].files) == reference_walk(folder), job
    mrcs = sum(p.stat().st_size for p in (d1 / "imported").iterdir())
    assert rows["J1"].linked_bytes == mrcs > 0
    assert rows["J2"].linked_bytes == rows["J3"].linked_bytes == 10_000
    own = sum(p.stat().st_size for p in d3.iterdir()
              if p.is_file() and not p.is_symlink() and p.name != "hard_copy.bin")
    assert rows["J3"].bytes == 10_000 + 5000 + 3000 + own  # big.bin, the hard link, x.bin through alias
    others = [root / name for name in os.listdir(root) if name not in ("J1", "J2", "J3", "exports")]
    assert (rows["exports"].bytes, rows["exports"].files) == (700, 1)
    assert (rows["other"].bytes, rows["other"].files) == du_links(others)
    assert rows["other"].linked_bytes == 10_000
    assert (report.total.bytes, report.total.files) == du_links([root])
    assert report.total.bytes < sum(r.bytes for r in rows.values())  # the hard link and big.bin count once
    assert report.total.linked_bytes == mrcs + 10_000
    assert report.freed_by_deleting == report.total.bytes - mrcs - 10_000
    notes = " ".join(rows["J3"].notes)
    assert "broken link" in notes and "link loop" in notes and "sub/up" in notes
    assert not report.stale and sorted(report.walked) == ["J1", "J2", "J3", "exports", "other"]
    sizes = [r.bytes for r in report.rows("job")]
    assert sizes == sorted(sizes, reverse=True)


def test_type_and_workspace_rows_sum_their_jobs_with_reclaimable_space(tmp_path: Path) -> None:
    with Instance(home=tmp_path / "home") as inst:
        project = inst.create_project("Groups", tmp_path / "projects")
        w1, w2 = project.create_workspace("First"), project.create_workspace("Second")
        hand_made_jobs(project, 2, {"J1": 4000, "J2": 3000}, workspace=w1.uid)
        both = project.create_job("import_volumes", workspace=[w1.uid, w2.uid])
        write(both.directory / "data.bin", 50_000)
        reclaim = {"clear intermediate results": {"J1": 1500, "J3": 20_000},
                   "clear killed/failed jobs": {"J2": 3000}}
        report = storage_report(inst.store, project.uid, reclaim=reclaim)
        jobs = {r.key: r for r in report.rows("job")}
        assert jobs["J3"].workspaces == (w1.uid, w2.uid) == ("W1", "W2")
        assert jobs["J1"].reclaim == {"clear intermediate results": 1500, "clear killed/failed jobs": 0}

        types = {r.key: r for r in report.rows("type")}
        assert types["generate_phantom"].bytes == jobs["J1"].bytes + jobs["J2"].bytes
        assert types["generate_phantom"].jobs == 2
        assert types["generate_phantom"].reclaim == {"clear intermediate results": 1500,
                                                     "clear killed/failed jobs": 3000}
        assert types["import_volumes"].bytes == jobs["J3"].bytes
        assert [r.key for r in report.rows("type")][:2] == ["import_volumes", "generate_phantom"]

        spaces = {r.key: r for r in report.rows("workspace")}
        assert spaces["W1"].bytes == sum(jobs[j].bytes for j in ("J1", "J2", "J3"))
        assert spaces[w2.uid].bytes == jobs["J3"].bytes and spaces[w2.uid].title == "Second"
        assert spaces["W1"].reclaim["clear intermediate results"] == 21_500
        assert {"exports", "other"} <= set(spaces)

        assert report.reclaim_totals() == {"clear intermediate results": 21_500, "clear killed/failed jobs": 3000}
        data = report.to_json("workspace")
        assert data["reclaim"]["clear intermediate results"] == {
            "bytes": 21_500, "command": "cryoweave project clear-intermediate P1 --dry-run"}
        assert storage_report(inst.store, project.uid).reclaim_totals() == {}


def test_cache_walks_only_what_changed(tmp_path: Path) -> None:
    with Instance(home=tmp_path / "home") as inst:
        project = inst.create_project("Cache", tmp_path / "projects")
        hand_made_jobs(project, 3, {"J1": 2000, "J2": 3000, "J3": 4000})
        first = storage_report(inst.store, project.uid, refresh="now")
        assert sorted(first.walked) == ["J1", "J2", "J3", "exports", "other"]
        assert storage_report(inst.store, project.uid, refresh="now").walked == []
        walked_at = {uid: c["walked_at"] for uid, c in _cache(inst, project)["jobs"].items()}

        write(project.directory / "J2" / "more.bin", 777)  # a new file in the job folder
        age(project.directory / "J2")
        second = storage_report(inst.store, project.uid, refresh="now")
        assert second.walked == ["J2"]
        assert {r.key: r.bytes for r in second.job_rows}["J2"] == {r.key: r.bytes for r in first.job_rows}["J2"] + 777
        assert second.total.bytes == first.total.bytes + 777

        inst.store.add_event(project.uid, "J3", "a note")  # only events.jsonl grows
        age(project.directory / "J3" / "events.jsonl")
        assert storage_report(inst.store, project.uid, refresh="now").walked == ["J3"]
        after = {uid: c["walked_at"] for uid, c in _cache(inst, project)["jobs"].items()}
        assert after["J1"] == walked_at["J1"] and after["J2"] != walked_at["J2"]

        write(project.directory / "exports" / "groups" / "g.cs", 300)
        age(project.directory / "exports", project.directory / "exports" / "groups")
        assert storage_report(inst.store, project.uid, refresh="now").walked == ["exports"]

        # A change just now is walked, then once more after a second (a change in the same clock tick
        # would not show in the folder's time); the cache then holds the settled figures.
        write(project.directory / "J1" / "now.bin", 55)
        started = time.monotonic()
        settled = storage_report(inst.store, project.uid, refresh="now")
        assert settled.walked == ["J1"] and time.monotonic() - started > 0.5
        assert not _cache(inst, project)["jobs"]["J1"]["racy"] and not settled.stale

        # A cache made for another directory (the project re-attached elsewhere) is not used.
        data = _cache(inst, project)
        data["directory"] = str(tmp_path / "elsewhere")
        cache_path(inst.store.settings.home, project.uid).write_text(json.dumps(data))
        never = storage_report(inst.store, project.uid, refresh="never")
        assert never.computed_at is None and never.stale and never.total.bytes == 0
        assert len(storage_report(inst.store, project.uid).walked) == 5  # no usable cache: computed now


def _cache(inst: Instance, project) -> dict:
    return json.loads(cache_path(inst.store.settings.home, project.uid).read_text())


def test_stale_cache_is_refreshed_in_the_background(tmp_path: Path) -> None:
    with Instance(home=tmp_path / "home") as inst:
        project = inst.create_project("Background", tmp_path / "projects")
        hand_made_jobs(project, 2, {"J1": 2000, "J2": 3000})
        home = inst.store.settings.home
        before = storage_report(inst.store, project.uid)
        computed = before.computed_at
        write(project.directory / "J1" / "late.bin", 4321)

        stale = storage_report(inst.store, project.uid)  # "auto": cached figures now, a refresh behind
        assert stale.stale and stale.refreshing and stale.computed_at == computed
        rows = {r.key: r for r in stale.job_rows}
        assert rows["J1"].stale and not rows["J2"].stale
        assert rows["J1"].bytes == {r.key: r.bytes for r in before.job_rows}["J1"]

        deadline = time.monotonic() + 60
        while _cache(inst, project)["computed_at"] == computed:
            assert time.monotonic() < deadline, (home / "storage" / "P1.log").read_text()
            time.sleep(0.1)
        with refresh_lock(home, project.uid, wait=True):  # the refresh process is done
            pass
        fresh = storage_report(inst.store, project.uid, refresh="never")
        assert not fresh.stale and fresh.walked == []
        assert {r.key: r.bytes for r in fresh.job_rows}["J1"] == rows["J1"].bytes + 4321
        assert fresh.total.bytes == before.total.bytes + 4321
        assert "P1: refreshed, walked 1 (J1)" in (home / "storage" / "P1.log").read_text()


def test_one_refresh_at_a_time(tmp_path: Path) -> None:
    with Instance(home=tmp_path / "home") as inst:
        project = inst.create_project("Lock", tmp_path / "projects")
        hand_made_jobs(project, 1, {})
        home = inst.store.settings.home
        with refresh_lock(home, project.uid, wait=False) as held:
            assert held
            assert not start_background_refresh(inst.store, project.uid)
            assert refresh(inst.store, project.uid, wait=False) is None
            proc = subprocess.run([sys.executable, "-m", "cryoweave.manage.storage", "--home", str(home),
                                   "--database-url", inst.store.settings.database_url, project.uid],
                                  capture_output=True, text=True, timeout=60)
            assert proc.returncode == 0 and "already running" in proc.stdout
            assert not cache_path(home, project.uid).exists()
        assert refresh(inst.store, project.uid, wait=False).walked == ["J1", "exports", "other"]


def test_cli_storage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    home = tmp_path / "home"
    with Instance(home=home) as inst:
        project = inst.create_project("Cli", tmp_path / "projects")
        hand_made_jobs(project, 2, {"J1": 1_234_567, "J2": 2000})
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("CRYOWEAVE_")}, "CRYOWEAVE_HOME": str(home)}

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "cryoweave", "storage", *args], capture_output=True,
                              text=True, env=env, timeout=120)

    proc = cli("P1")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split()[:2] == ["job", "type"] and lines[1].split()[0] == "J1"
    assert "1.2 MB" in lines[1] and "total" in proc.stdout and "deleting P1 would free" in proc.stdout

    monkeypatch.setenv("CRYOWEAVE_HOME", str(home))
    monkeypatch.delenv("CRYOWEAVE_DATABASE_URL", raising=False)
    storage_command("P1", by="type", refresh=False, no_refresh=True, as_json=True)
    data = json.loads(capsys.readouterr().out)
    assert data["by"] == "type" and data["rows"][0]["key"] == "generate_phantom"
    assert data["rows"][0]["bytes"] == sum(du_links([project.directory / j])[0] for j in ("J1", "J2"))
    assert data["total"]["bytes"] == du_links([project.directory])[0] and not data["stale"]
    storage_command("P1", by="workspace", refresh=True, no_refresh=False, as_json=False)
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:2] == ["workspace", "title"] and "Default workspace" in out

    for args, message in ((["P1", "--refresh", "--no-refresh"], "not both"), (["P1", "--by", "size"], "--by"),
                          (["P7"], "no project P7")):
        proc = cli(*args)
        assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and message in proc.stderr, proc.stderr

    listed = subprocess.run([sys.executable, "-m", "cryoweave", "project", "list", "--json"], capture_output=True,
                            text=True, env=env, timeout=120)
    assert json.loads(listed.stdout)[0]["size_bytes"] == du_links([project.directory])[0]  # the cached total


def test_human_sizes() -> None:
    assert [human_size(n) for n in (0, 999, 1000, 1_234_567, 12_345_678_901, 2 * 10**15)] == [
        "0 B", "999 B", "1.0 kB", "1.2 MB", "12.3 GB", "2.0 PB"]
