"""The web interface end to end, in a real browser (Chromium driven by Playwright).

Everything a user does here goes through the page, by the ``data-testid`` hooks that
docs/server.md lists: logging in, creating a project and jobs, setting parameters, connecting
outputs by dragging them onto inputs, overriding, clearing and resetting a slot, picking a
version, queueing, watching the status, reading the outputs, events, log and plots. What the
page did is then checked in the instance itself.

The fixtures (``live_server``, ``browser_page``) are in ``support/browser.py``; screenshots of
each step go to ``test-artifacts/screenshots/``. The jobs are tiny (a 32-px phantom, 300
particles). CRYOWEAVE_TEST_BROWSER=0 skips these tests.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from cryoweave.store import accounts
from support.browser import ACTION_TIMEOUT_MS, VIEWPORT, LiveServer, Shots, hook, log_in, sel

pytestmark = pytest.mark.slow

#: How long the tiny jobs may take to complete, from queueing (s).
JOB_TIMEOUT_S = 120
#: How long the page may take to show what the API already holds (ms).
UI_TIMEOUT_MS = 10_000


# -- steps through the page -------------------------------------------------------------------


def project_job(server: LiveServer, project: str, job: str) -> Any:
    return server.instance.project(project).job(job)


def overrides(server: LiveServer, project: str, job: str, input_name: str = "particles") -> dict[str, str]:
    """The slots of an input's first connection bound by hand, as addresses."""
    connection = project_job(server, project, job).inputs[input_name][0]
    return {slot: str(ref) for slot, ref in connection.overrides.items()}


def has_class(name: str) -> re.Pattern[str]:
    """Matches a class attribute holding ``name`` as one of its classes (``met``, not ``unmet``)."""
    return re.compile(rf"(^|\s){re.escape(name)}(\s|$)")


def eventually(check, what: str, timeout_s: float = UI_TIMEOUT_MS / 1000) -> None:
    """Wait until ``check()`` is true (the page saves in the background); fail naming ``what``."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not so after {timeout_s:g} s", pytrace=False)
        time.sleep(0.1)


def new_job(page: Page, job_type: str, expect_uid: str) -> None:
    """Create a job from the new-job picker; its builder opens."""
    picker = hook(page, "new-job-type")
    picker.select_option(job_type)
    hook(page, "new-job-submit").click()
    hook(page, f"builder-{expect_uid}")


def set_param(page: Page, server: LiveServer, project: str, job: str, name: str, value: Any) -> None:
    """Type a parameter into the builder's ``param-NAME`` input; the job's record then holds it."""
    field = hook(page, f"param-{name}")
    if field.evaluate("el => el.tagName") == "SELECT":
        field.select_option(str(value))
    else:
        field.fill(str(value))
        field.press("Tab")  # the change event: the builder saves on change
    eventually(lambda: project_job(server, project, job).refresh().params.get(name) == value,
               f"{project} {job}: parameter {name} = {value!r} typed into param-{name}")


def drag(page: Page, source: str, target: str) -> None:
    """Drag the handle ``source`` onto ``target`` (both data-testid names), HTML5 drag and drop."""
    hook(page, source)
    hook(page, target)
    page.drag_and_drop(sel(source), sel(target))


def queue(page: Page, job: str) -> None:
    hook(page, f"queue-{job}").click()


def wait_completed(page: Page, job: str, timeout_s: float = JOB_TIMEOUT_S) -> None:
    """Watch ``job-status-J..`` until it reads completed (failed or killed fails at once)."""
    status = hook(page, f"job-status-{job}")
    deadline = time.monotonic() + timeout_s
    while True:
        text = status.inner_text().strip().lower()
        if "completed" in text:
            return
        if "failed" in text or "killed" in text:
            pytest.fail(f"{job} {text} (see its events and job.log)", pytrace=False)
        if time.monotonic() > deadline:
            pytest.fail(f"job-status-{job} still reads {text!r} after {timeout_s:g} s", pytrace=False)
        time.sleep(0.25)
        status = page.locator(sel(f"job-status-{job}")).first  # the view may re-render it


def expect_slot(page: Page, slot: str, address: str) -> None:
    """The builder's ``slot-...`` shows the bound address."""
    expect(hook(page, f"slot-{slot}")).to_contain_text(address, timeout=UI_TIMEOUT_MS)


# -- the walkthroughs ---------------------------------------------------------------------------


def test_page_loads(live_server, browser_page):
    """The page is served and shows the login form to a visitor."""
    page = browser_page
    page.goto(live_server.url + "/")
    hook(page, "login-username")
    page.shot("login-form")
    assert page.title()


def test_walkthrough(live_server, browser_page):
    """A user logs in, makes a project and a chain of three jobs, runs it and reads its outputs."""
    page, server = browser_page, live_server

    # Log in through the form, as the user (not the admin).
    page.goto(server.url + "/")
    hook(page, "login-username").fill(server.user)
    hook(page, "login-password").fill(server.password)
    page.shot("login")
    hook(page, "login-submit").click()
    hook(page, "logout")
    page.shot("logged-in")

    # A project through the form: it is the user's, and its card opens it.
    hook(page, "new-project-title").fill("Browser walkthrough")
    hook(page, "new-project-submit").click()
    # The page may open the new project at once, or list its card.
    card, picker = page.locator(sel("project-card-P1")), page.locator(sel("new-job-type"))
    card.or_(picker).first.wait_for()
    page.shot("project-created")
    if card.is_visible():
        card.click()
    hook(page, "new-job-type")
    assert [(p.uid, p.title) for p in server.instance.projects()] == [("P1", "Browser walkthrough")]
    assert [(name, str(access)) for name, access in accounts.members(server.instance.store, "P1")] == \
        [(server.user, "owner")]

    # J1: a small phantom, queued at once.
    new_job(page, "generate_phantom", "J1")
    set_param(page, server, "P1", "J1", "box", 32)
    set_param(page, server, "P1", "J1", "num_atoms", 300)
    page.shot("J1-built")
    queue(page, "J1")

    # J2: 300 particles of J1's volume, connected by dragging J1's output group onto the input.
    new_job(page, "simulate_data", "J2")
    set_param(page, server, "P1", "J2", "num_particles", 300)
    drag(page, "output-group-J1.volume", "input-group-volume")
    expect_slot(page, "volume.0.map", "J1.volume.map.F")
    expect(hook(page, "input-requirements-volume")).to_have_class(has_class("met"))
    page.shot("J2-connected")
    assert [(c.job, c.group) for c in project_job(server, "P1", "J2").inputs["volume"]] == [("J1", "volume")]
    queue(page, "J2")

    # J3: a reconstruction of J2's particles.
    new_job(page, "homo_reconstruct", "J3")
    expect(hook(page, "input-requirements-particles")).to_have_class(has_class("unmet"))
    set_param(page, server, "P1", "J3", "padding_factor", 1)
    drag(page, "output-group-J2.particles", "input-group-particles")
    expect_slot(page, "particles.0.blob", "J2.particles.blob.F")
    expect(hook(page, "input-requirements-particles")).to_have_class(has_class("met"))
    page.shot("J3-connected")
    queue(page, "J3")
    page.shot("queued")

    wait_completed(page, "J3")
    page.shot("J3-completed")
    for job in ("J1", "J2", "J3"):
        assert project_job(server, "P1", job).status == "completed", job

    # J3's outputs tab: both groups, with their item counts.
    page.goto(server.url + "/#/P1/J3")
    hook(page, "tab-outputs").click()
    expect(hook(page, "output-group-J3.particles")).to_contain_text("300")
    expect(hook(page, "output-group-J3.volume")).to_contain_text("1")
    page.shot("J3-outputs")
    # the map itself downloads from its link, byte for byte the file the result names
    link = hook(page, "download-map-J3.volume.map").get_attribute("href")
    with page.expect_download() as download:
        hook(page, "download-map-J3.volume.map").click()
    named = project_job(server, "P1", "J3").load_output("volume")["map/path"][0]
    assert Path(download.value.path()).read_bytes() == (project_job(server, "P1", "J3").project.directory /
                                                        named).read_bytes(), link

    # Its events and log.
    hook(page, "tab-events").click()
    expect(hook(page, "event-list")).not_to_be_empty()
    page.shot("J3-events")
    hook(page, "tab-log").click()
    expect(hook(page, "job-log")).not_to_be_empty()

    # Its plots: the FSC with the resolution, and central slices of the map (a PNG made by the server).
    hook(page, "tab-plots").click()
    expect(hook(page, "fsc-resolution")).to_contain_text("Å")
    slices = hook(page, "slices-J3.volume.map").locator("img")
    slices.scroll_into_view_if_needed()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=slices.element_handle())
    page.shot("J3-plots")

    # The project as a tree (parents are the edges) and as a table, filtered by type.
    page.goto(server.url + "/#/P1")
    hook(page, "view-tree").click()
    for job in ("J1", "J2", "J3"):
        hook(page, f"tree-node-{job}")
    page.shot("tree")
    hook(page, "view-table").click()
    for job in ("J1", "J2", "J3"):
        expect(hook(page, f"table-row-{job}")).to_contain_text("completed")
    hook(page, "filter-type").select_option("simulate_data")
    expect(page.locator("[data-testid^=table-row-]")).to_have_count(1)
    expect(hook(page, "table-row-J2")).to_be_visible()
    page.shot("table-filtered")

    # Logging out leads back to the form.
    hook(page, "logout").click()
    hook(page, "login-username")


def test_override_and_version(live_server, browser_page):
    """One slot bound to another job's result, then to version 1 of an external job's result."""
    page, server = browser_page, live_server
    project = server.instance.create_project("Builder", server.projects_dir)  # no owner: the admin's
    phantom = project.create_job("generate_phantom", params={"box": 32, "num_atoms": 300}).execute()
    particles = project.create_job("simulate_data", params={"num_particles": 300})
    particles.connect("volume", f"{phantom.uid}.volume").execute()
    other = project.create_job("simulate_data", params={"num_particles": 300, "seed": 1})
    other.connect("volume", f"{phantom.uid}.volume").execute()
    external = project.create_external_job(title="Three versions")
    external.add_input("particle", "particles", slots=["blob"])
    external.add_output("particle", "particles", slots=["blob"], passthrough="particles")
    external.connect("particles", f"{particles.uid}.particles")
    with external.run():
        items = external.load_input("particles")
        for version in range(3):
            external.save_output("particles", items.filter_prefixes(["blob"]), version=version)
    assert [j.status for j in (phantom, particles, other, external.refresh())] == ["completed"] * 4
    P, J2, J3, J4 = project.uid, particles.uid, other.uid, external.uid

    log_in(page, server, server.admin)
    page.goto(f"{server.url}/#/{P}")
    hook(page, f"job-card-{J4}")
    page.shot("project")

    # J5 reads J2's particles, then its blob slot is bound to J3's blob (another job's result).
    new_job(page, "homo_reconstruct", "J5")
    drag(page, f"output-group-{J2}.particles", "input-group-particles")
    expect_slot(page, "particles.0.blob", f"{J2}.particles.blob.F")
    hook(page, f"expand-{J3}.particles").click()
    drag(page, f"output-result-{J3}.particles.blob", "slot-particles.0.blob")
    expect_slot(page, "particles.0.blob", f"{J3}.particles.blob.F")
    page.shot("slot-overridden")
    assert overrides(server, P, "J5") == {"blob": f"{J3}.particles.blob.F"}

    # An optional slot left empty, then bound to its connection's group again.
    hook(page, "slot-clear-particles.0.ctf").click()
    expect(hook(page, "slot-reset-particles.0.ctf")).to_be_visible()
    expect(hook(page, "slot-particles.0.ctf")).not_to_contain_text(f"{J2}.particles.ctf")
    eventually(lambda: project_job(server, P, "J5").inputs["particles"][0].cleared == ["ctf"], "J5: ctf cleared")
    page.shot("slot-cleared")
    hook(page, "slot-reset-particles.0.ctf").click()
    expect_slot(page, "particles.0.ctf", f"{J2}.particles.ctf.F")
    eventually(lambda: project_job(server, P, "J5").inputs["particles"][0].cleared == [], "J5: ctf reset")

    # Version 1 of J4's blob, picked in J4's outputs tab and dropped onto the same slot.
    page.goto(f"{server.url}/#/{P}/{J4}")
    hook(page, "tab-outputs").click()
    versions = hook(page, f"versions-{J4}.particles.blob")
    versions.select_option("1")
    page.shot("version-picked")
    drag(page, f"output-result-{J4}.particles.blob", "slot-particles.0.blob")
    expect_slot(page, "particles.0.blob", f"{J4}.particles.blob.1")
    page.shot("version-bound")
    assert overrides(server, P, "J5") == {"blob": f"{J4}.particles.blob.1"}

    # The job runs with the overridden slot; its card shows the status.
    queue(page, "J5")
    page.goto(f"{server.url}/#/{P}")
    wait_completed(page, "J5")
    page.shot("J5-completed")


def test_sharing_and_read_only(live_server, browser_page, chromium):
    """An owner shares a project read-only through the members form; the reader sees but cannot change it."""
    page, server = browser_page, live_server
    accounts.add_user(server.instance.store, "bob", server.password)

    # Alice makes a project through the page; two jobs (left in building) come through the API.
    log_in(page, server, server.user)
    hook(page, "new-project-title").fill("Shared")
    hook(page, "new-project-submit").click()
    hook(page, "new-job-type")
    project = server.instance.project("P1")
    project.create_job("generate_phantom", title="the phantom")
    project.create_job("generate_phantom", title="another")

    # The members form: an unknown user is refused with the server's words, bob gets read access.
    page.goto(f"{server.url}/#/P1/data")
    expect(hook(page, "members-list")).to_contain_text(server.user)
    hook(page, "member-name").fill("carol")
    hook(page, "member-add").click()
    expect(hook(page, "error")).to_contain_text("carol")
    hook(page, "member-name").fill("bob")
    hook(page, "member-access").select_option("read")
    hook(page, "member-add").click()
    expect(hook(page, "member-bob")).to_contain_text("bob")
    page.shot("bob-added")
    assert dict((name, str(a)) for name, a in accounts.members(server.instance.store, "P1")) == \
        {server.user: "owner", "bob": "read"}
    # The only owner cannot be removed: the server's detail is shown.
    hook(page, f"member-remove-{server.user}").click()
    expect(hook(page, "error")).to_contain_text("only owner")

    # Alice tags J1 in its overview (and retitles it).
    page.goto(f"{server.url}/#/P1/J1")
    hook(page, "tags-input").fill("keep, best map")
    hook(page, "job-title-input").fill("the kept phantom")
    hook(page, "tags-save").click()
    expect(hook(page, "job-tags-J1")).to_contain_text("best map")
    eventually(lambda: project_job(server, "P1", "J1").refresh().record.tags == ["best map", "keep"], "J1 tagged")
    assert project_job(server, "P1", "J1").title == "the kept phantom"
    page.shot("J1-tagged")

    # Bob, in a browser context of his own, sees the project without anything that changes it.
    context = chromium.new_context(viewport=VIEWPORT)
    context.set_default_timeout(ACTION_TIMEOUT_MS)
    try:
        bob = context.new_page()
        bob_shot = Shots(bob, f"{page.shot.test_name}-bob")
        log_in(bob, server, "bob")
        hook(bob, "project-card-P1").click()
        hook(bob, "job-card-J1")
        hook(bob, "read-only")
        for absent in ("new-job-type", "new-job-submit", "new-workspace-title"):
            expect(bob.locator(sel(absent))).to_have_count(0)
        bob_shot("project")
        hook(bob, "job-card-J2").click()  # a building job: its page, not the builder
        expect(bob).to_have_url(re.compile(r"#/P1/J2$"))
        hook(bob, "job-status-J2")
        expect(bob.locator("#builder")).to_be_hidden()
        for absent in ("action-kill", "action-clear", "action-build", "queue-J2", "tags-save", "tags-input",
                       "job-title-input"):
            expect(bob.locator(sel(absent))).to_have_count(0)
        bob_shot("job-read-only")
        # The tag alice set filters the table.
        bob.goto(f"{server.url}/#/P1?view=table")
        hook(bob, "table-row-J2")
        hook(bob, "filter-tag").fill("keep")
        expect(bob.locator("[data-testid^=table-row-]")).to_have_count(1)
        expect(hook(bob, "table-row-J1")).to_contain_text("best map")
        bob_shot("table-filtered-by-tag")
        # The members list without the controls.
        bob.goto(f"{server.url}/#/P1/data")
        expect(hook(bob, "members-list")).to_contain_text("bob")
        for absent in ("member-add", "member-name", "member-remove-bob", "clear-intermediate-dry-run"):
            expect(bob.locator(sel(absent))).to_have_count(0)
        bob_shot("members-read-only")
    finally:
        context.close()


def test_served_under_a_prefix(live_server, browser_page):
    """Mounted under /cryoweave/ (as behind a proxy that strips it), the page asks only for URLs under it."""
    import threading

    import uvicorn
    from fastapi import FastAPI

    from cryoweave.server.app import create_app
    from cryoweave.server.serve import free_port

    page, server = browser_page, live_server
    server.instance.create_project("Behind a proxy", server.projects_dir).create_job("generate_phantom")
    outer = FastAPI()
    outer.mount("/cryoweave", create_app(server.instance, projects_dir=server.projects_dir))
    port = free_port()
    proxied = uvicorn.Server(uvicorn.Config(outer, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=proxied.run, daemon=True)
    thread.start()
    eventually(lambda: proxied.started, "the prefixed server started")
    base = f"http://127.0.0.1:{port}/cryoweave/"
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    try:
        page.goto(base)
        hook(page, "login-username").fill(server.admin)
        hook(page, "login-password").fill(server.password)
        hook(page, "login-submit").click()
        hook(page, "project-card-P1").click()
        hook(page, "job-card-J1")
        page.shot("project")
        hook(page, "job-card-J1").locator("a.uid").click()
        hook(page, "tab-outputs").click()
        hook(page, "tab-events").click()
        hook(page, "event-list")
        page.goto(base + "#/P1/data")
        hook(page, "members-list")
        hook(page, "storage-total")
        page.shot("data")
    finally:
        proxied.should_exit = True
        thread.join(timeout=15)
    fetched = [url for url in requested if url.startswith("http")]
    assert any("/cryoweave/api/projects" in url for url in fetched)
    assert all(url.startswith(base) for url in fetched), [u for u in fetched if not u.startswith(base)]


def test_admin_attaches_a_project_directory(live_server, browser_page, tmp_path):
    """A project made on another instance is attached from the projects page by an admin; users see no form."""
    from cryoweave.api import Instance

    page, server = browser_page, live_server
    with Instance(home=tmp_path / "elsewhere") as other:
        moved = other.create_project("Moved here", tmp_path / "elsewhere-projects")
        moved.create_job("generate_phantom", params={"box": 32})
        directory = moved.directory  # still held by the other instance: its lock names it
    log_in(page, server, server.user)
    expect(page.locator(sel("attach-directory"))).to_have_count(0)
    hook(page, "logout").click()
    log_in(page, server)
    hook(page, "attach-directory").fill(str(directory))
    hook(page, "attach-submit").click()
    expect(hook(page, "error")).to_contain_text("--take-over")  # the lock is refused until taken over
    hook(page, "attach-take-over").check()
    hook(page, "attach-submit").click()
    expect(hook(page, "job-card-J1")).to_contain_text("generate_phantom")
    page.shot("attached")
    assert [p.title for p in server.instance.projects()] == ["Imported: Moved here"]
