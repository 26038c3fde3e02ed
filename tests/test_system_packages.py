"""`make test` installs the Debian packages its tests need (README, "Development").

scripts/system_packages.sh runs before pytest: it installs what is missing when it can (root, or
password-less sudo) and otherwise fails at once with the one command to run. Nothing here
installs anything: the missing package is one that cannot exist.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from conftest import ROOT

SCRIPT = ROOT / "scripts" / "system_packages.sh"
NEVER = "/nonexistent/dbos-airflow-probe dbos-airflow-no-such-package the test of scripts/system_packages.sh"


def _readable_by_nobody(script: Path) -> Path:
    """A copy of ``script`` that user nobody can read: the checkout may sit in a 0700 home directory
    (the tests must not depend on where it is cloned), and pytest's tmp_path is private (0700) too."""
    folder = Path(tempfile.mkdtemp(prefix="dbos-airflow-system-packages-"))
    folder.chmod(0o755)
    copy = folder / script.name
    shutil.copyfile(script, copy)
    copy.chmod(0o644)
    return copy


def run(*args: str, as_nobody: bool, tmp_path: Path, extra: str | None = NEVER) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ["PATH"]}
    if extra:
        env["SYSTEM_PACKAGES_EXTRA"] = extra
    argv = ["bash", str(SCRIPT), *args]
    if as_nobody and os.getuid() == 0:
        script = _readable_by_nobody(SCRIPT)
        try:
            argv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "bash", str(script), *args]
            return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, cwd="/")
        finally:
            shutil.rmtree(script.parent)
    elif as_nobody:  # already not root: make sure a password-less sudo is not found either
        (tmp_path / "sudo").write_text("#!/bin/sh\nexit 1\n")
        (tmp_path / "sudo").chmod(0o755)
        env["PATH"] = f"{tmp_path}{os.pathsep}{env['PATH']}"
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, cwd="/")


def test_everything_needed_is_installed_after_make_test_set_up(tmp_path: Path) -> None:
    done = run("--check", as_nobody=False, tmp_path=tmp_path, extra=None)
    assert done.returncode == 0, done.stdout + done.stderr
    assert Path("/usr/bin/chromium").exists()


def test_a_user_who_cannot_install_gets_the_one_command_at_once(tmp_path: Path) -> None:
    started = time.monotonic()
    done = run(as_nobody=True, tmp_path=tmp_path)
    assert done.returncode == 1
    assert time.monotonic() - started < 10  # at once: no apt-get, no password prompt
    assert "/nonexistent/dbos-airflow-probe is missing" in done.stdout
    assert "cannot install as" in done.stderr
    assert "apt-get install -y -qq dbos-airflow-no-such-package" in done.stderr
    assert "chromium" not in done.stderr  # installed already: only what is missing is named


def test_check_names_what_is_missing_and_installs_nothing(tmp_path: Path) -> None:
    done = run("--check", as_nobody=False, tmp_path=tmp_path)
    assert done.returncode == 1
    assert "Debian package 'dbos-airflow-no-such-package' is needed by the test" in done.stdout
    assert "installing" not in done.stdout
