"""Data management from the Python API, as a facility admin's script would do it: storage figures, export and
import of a job and of a group into a second instance, a check, an archive attached elsewhere, unarchive.

The actions themselves are tested in depth in the other test_manage_* files; this one checks that every
one of them is reachable from ``Project`` / ``Job`` / ``Instance`` and that the round trips hold.
"""

from __future__ import annotations

import numpy as np
import pytest

from cryoweave.api import Instance
from cryoweave.errors import StatusError, UnsafePathError
from cryoweave.manage.clearing import Action
from library_support import run
from test_manage_transfer import _chain, _other, _same_items


def test_every_action_from_python(tmp_path):
    inst, project = _chain(tmp_path)
    other, target = _other(tmp_path)
    with inst, other:
        report = project.storage(refresh="now")
        jobs = {row.key: row for row in report.rows("job")}
        assert {"J1", "J2", "J3"} <= set(jobs) and report.total.bytes > 0
        assert jobs["J1"].linked_bytes > 0  # the import links the sample stacks
        assert set(report.reclaim_actions) >= {Action.INTERMEDIATE.value, Action.FAILED.value}

        job = project.job("J3")
        exported = job.export()
        with pytest.raises(UnsafePathError, match="--allow-links"):
            target.import_job(exported.folder)
        imported = target.import_job(exported.folder, allow_links=True)
        assert imported.status == "completed" and imported.uid == "J1"
        _same_items(job.load_output("particles"), project.directory,
                    imported.load_output("particles"), target.directory)

        group = project.job("J2").export_group("split_1", copy_data=True)
        again = run(target, "import_result_group", {"csg_path": str(group.csg)})
        _same_items(project.job("J2").load_output("split_1"), project.directory,
                    again.load_output("split_1"), target.directory)

        assert project.check().clean
        assert project.clear_intermediate(dry_run=True).bytes == 0  # nothing iterative here
        job.mark_final()
        assert {j.job for j in project.cleanup(Action.NON_FINAL, dry_run=True).jobs} == set()  # all ancestors
        with pytest.raises(StatusError, match="marked final"):
            job.clear()

        (tmp_path / "archive").mkdir()
        made = project.archive(tmp_path / "archive" / "source.tar.zst")
        assert made.verified and project.archived
        copy = other.attach(made.path, to=tmp_path / "restored", allow_links=True)
        assert not copy.archived
        assert np.array_equal(np.sort(copy.job("J3").load_output("particles")["uid"]),
                              np.sort(job.load_output("particles")["uid"]))
        project.unarchive()
        assert not project.archived


def test_a_second_instance_sees_the_policy_and_final_marks(tmp_path):
    inst, project = _chain(tmp_path)
    with inst:
        project.set_keep_final_only(True)
        project.job("J3").mark_final()
        where = project.detach()
    with Instance(home=tmp_path / "third") as third:
        again = third.attach(where)
        assert again.info().keep_final_only and again.job("J3").record.final
