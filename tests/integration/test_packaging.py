"""A plain, non-editable install works away from the checkout.

An editable install (what `make install` does) maps the packages onto the repository, so a
command that reads a file of the checkout passes every other test and breaks on a real install.
Here the checkout's sources are copied out, built into a wheel by pip (as `pip install .`
would), and the wheel is installed without its dependencies into a fresh venv whose only other
path is this venv's site-packages (a ``.pth`` line), so the dependencies come from here and the
run stays offline and fast. A ``.pth`` path line adds the directory without running the ``.pth``
files inside it, so this venv's editable hook for our own packages stays inert: what runs is
the wheel. The commands then run from a directory that is not the checkout.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# What the wheel is built from ([tool.setuptools.packages.find] and [project] readme).
SOURCES = (
    "pyproject.toml",
    "README.md",
    "controller",
    "reconcilers",
    "crds_equivalent",
    "devstack",
)
JOB_JSON = "controller/deploy/mesh-controller.nomad.json"


def _run(args: list[str], cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    return subprocess.run(
        args, cwd=cwd, env=env, input=stdin, capture_output=True, text=True, timeout=180
    )


def _copy_sources(dest: Path) -> None:
    """Build from a copy, so the build's egg-info and build/ never land in the checkout."""
    junk = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", ".mypy_cache")
    for name in SOURCES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=junk)
        else:
            shutil.copy2(src, dest / name)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the fresh venv's bin directory, the wheel), with the wheel installed in that venv."""
    base = tmp_path_factory.mktemp("packaging")
    src, dist, venv = base / "src", base / "dist", base / "venv"
    src.mkdir()
    _copy_sources(src)
    built = _run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), "."], src
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = dist.glob("nomad_tls_mesh-*.whl")
    made = _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], base)
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps"]
    done = _run([*pip, "--no-index", str(wheel)], base)
    assert done.returncode == 0, done.stderr
    purelib = _run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], base
    )
    ours = sysconfig.get_paths()["purelib"]
    (Path(purelib.stdout.strip()) / "outer-deps.pth").write_text(ours + "\n")
    return venv / "bin", wheel


def test_the_wheel_holds_the_system_job_and_not_the_dev_tools(installed: tuple[Path, Path]) -> None:
    _, wheel = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    assert JOB_JSON in names
    assert json.loads(zipfile.ZipFile(wheel).read(JOB_JSON)) == json.loads(
        (ROOT / JOB_JSON).read_text()
    )
    assert not [n for n in names if "hcl2json" in n or "hclexpr" in n or "deploytools" in n]


def test_the_installed_package_is_the_wheel_and_finds_its_job(
    installed: tuple[Path, Path], tmp_path: Path
) -> None:
    bin_dir, _ = installed
    probe = (
        "import json, controller\n"
        "from controller.deploy.install import packaged_job_file\n"
        "job = json.loads(packaged_job_file().read_text())\n"
        "print(controller.__file__)\n"
        "print(job['Job']['ID'], job['Job']['Type'])\n"
    )
    out = _run([str(bin_dir / "python"), "-c", probe], tmp_path)
    assert out.returncode == 0, out.stderr
    where, job = out.stdout.splitlines()
    assert Path(where).is_relative_to(bin_dir.parent), f"not the installed copy: {where}"
    assert job == "mesh-controller system"


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (["controller", "--help"], "run"),
        (["controllerctl", "--help"], "install"),
        (["controllerctl", "install", "--dry-run", "--help"], "--job-file"),
    ],
)
def test_the_installed_commands_run_outside_the_checkout(
    installed: tuple[Path, Path], tmp_path: Path, command: list[str], expected: str
) -> None:
    bin_dir, _ = installed
    out = _run([str(bin_dir / command[0]), *command[1:]], tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("Usage: ") and expected in out.stdout


def test_the_installed_render_meshes_a_job(installed: tuple[Path, Path], tmp_path: Path) -> None:
    """Beyond --help: the installed controllerctl runs the injection end to end."""
    bin_dir, _ = installed
    job = {
        "ID": "web",
        "Meta": {"mesh.tls": "true"},
        "TaskGroups": [
            {
                "Name": "web",
                "Networks": [{"DynamicPorts": [{"Label": "http"}]}],
                "Services": [{"Name": "web", "PortLabel": "http"}],
                "Tasks": [{"Name": "app", "Driver": "docker"}],
            }
        ],
    }
    out = _run([str(bin_dir / "controllerctl"), "render", "-"], tmp_path, stdin=json.dumps(job))
    assert out.returncode == 0, out.stderr
    (group,) = json.loads(out.stdout)["TaskGroups"]
    assert "mesh-tls-proxy" in [t["Name"] for t in group["Tasks"]]
