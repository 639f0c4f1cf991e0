"""The distribution: one import root. The wheel holds ``oms/`` (oms.engine, oms.server,
oms.clients, oms.v1) and its dist-info, nothing else, and the console scripts point into it."""
from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_wheel_holds_only_the_oms_package(tmp_path: Path) -> None:
    # Build from a copy of the tracked files, so the checkout gets no build/ or egg-info.
    src = tmp_path / "src"
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split()
    for f in files:
        if (ROOT / f).is_file():
            (src / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / f, src / f)
    out = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--no-build-isolation", "-w", str(out), str(src)], check=True, timeout=300)
    (wheel,) = out.glob("*.whl")
    assert wheel.name.startswith("oms_engine-")
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        top = {n.split("/", 1)[0] for n in names}
        info = next(t for t in top if t.endswith(".dist-info"))
        assert top == {"oms", info}, top
        for pkg in ("engine", "server", "server/redis", "server/services", "server/jobs",
                    "clients", "v1", "server/channels", "server/web"):
            assert f"oms/{pkg}/__init__.py" in names, pkg
        for mod in ("__init__", "lua", "placement", "orders", "stock", "risk", "claims",
                    "refunds", "notify"):
            assert f"oms/server/redis/scripts/{mod}.py" in names, mod
        eps = configparser.ConfigParser()
        eps.read_string(z.read(f"{info}/entry_points.txt").decode())
    scripts = dict(eps["console_scripts"])
    assert scripts == {"oms-server": "oms.server.cli:main", "oms-wave": "oms.server.jobs.wave_job:main",
                       "oms-notify": "oms.server.jobs.notify:main", "oms": "oms.clients.cli:main",
                       "oms-load": "oms.clients.load:main",
                       "oms-channels": "oms.server.jobs.channel_sync:main",
                       "oms-web": "oms.server.web.cli:main"}
