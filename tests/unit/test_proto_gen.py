"""Regenerating the protobuf code must change nothing: the committed code matches proto/."""
import filecmp
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_generated_code_is_up_to_date(tmp_path: Path) -> None:
    subprocess.run(["bash", str(ROOT / "scripts/gen_proto.sh"), str(tmp_path)], check=True,
                   env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"}, cwd=ROOT)
    fresh = sorted(p.name for p in (tmp_path / "oms/v1").iterdir() if p.suffix in (".py", ".pyi"))
    committed = sorted(p.name for p in (ROOT / "oms/v1").iterdir() if p.suffix in (".py", ".pyi"))
    assert fresh == committed
    for name in fresh:
        assert filecmp.cmp(tmp_path / "oms/v1" / name, ROOT / "oms/v1" / name, shallow=False), name
