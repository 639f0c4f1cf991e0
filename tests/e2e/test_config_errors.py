"""Bad configuration is one clear line and exit status 2, never a traceback (issue 11,
finding 16); the ``oms`` CLI takes its global options on either side of the subcommand."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from dataclasses import fields

import pytest

from oms.server.config import Config, ConfigError
from tests.conftest import ADMIN_KEY


def _run(module: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True,
                          timeout=60, env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL)


def _assert_one_line_exit_2(p: subprocess.CompletedProcess[str], prog: str, *needles: str) -> None:
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert "Traceback" not in p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith(f"{prog}: error: "), lines[0]
    for n in needles:
        assert n in lines[0], lines[0]


@pytest.mark.parametrize("args, needles", [
    (["--risk-hold-score", "1000"], ["--risk-hold-score", "1000", "0..100"]),
    (["--workers", "zero"], ["--workers", "zero"]),
    (["--wave-time-budget-s", "nan"], ["--wave-time-budget-s"]),
    (["--metrics-port", "70000"], ["--metrics-port"]),
    (["--log-level", "LOUD"], ["--log-level"]),
    (["--fsync", "sometimes"], ["--fsync", "always", "everysec"]),
    (["--listen", "no-port-here"], ["--listen"]),
    (["--no-such-flag", "1"], ["--no-such-flag"]),
])
def test_bad_server_flag_is_one_line_and_exit_2(args: list[str], needles: list[str],
                                                capsys: pytest.CaptureFixture[str]) -> None:
    from oms.server.cli import main  # noqa: PLC0415

    code = main(args)  # returns before starting anything
    err = capsys.readouterr().err
    _assert_one_line_exit_2(subprocess.CompletedProcess(args, code, "", err), "oms-server", *needles)


def test_bad_server_flag_as_a_process() -> None:
    _assert_one_line_exit_2(_run("oms.server.cli", "--risk-hold-score", "1000"), "oms-server",
                            "--risk-hold-score: 1000 must be in 0..100")


def test_bad_server_env_value_names_the_variable() -> None:
    p = _run("oms.server.cli", env={"OMS_PROMISE_DAYS": "-3"})
    _assert_one_line_exit_2(p, "oms-server", "OMS_PROMISE_DAYS", "-3")


def _bad_values(default: object) -> list[str]:
    if isinstance(default, bool):
        return []
    if isinstance(default, int):
        return ["not-a-number", "1.5", str(2**63), str(-(2**63) - 1)]
    if isinstance(default, float):
        return ["not-a-number", "nan", "inf", "-inf", "1e400"]
    return ["with\nnewline", "x" * 5000]


@pytest.mark.parametrize("name", [f.name for f in fields(Config)])
def test_every_config_value_is_checked(name: str) -> None:
    """The class, not the example: every field rejects values of the wrong form or out of any
    sensible range, through the flag and through its environment variable."""
    flag = "--" + name.replace("_", "-")
    env_name = "OMS_" + name.upper()
    for bad in _bad_values(getattr(Config(), name)):
        with pytest.raises(ConfigError) as e:
            Config.from_args([f"{flag}={bad}"])  # "=": "-inf" is a value, not an option
        assert str(e.value).startswith(flag + ": ")
        assert "\n" not in str(e.value) and len(str(e.value)) < 300
        os.environ[env_name] = bad
        try:
            with pytest.raises(ConfigError) as e:
                Config.from_args([])
            assert str(e.value).startswith(env_name + ": ")
        finally:
            del os.environ[env_name]


def test_defaults_and_good_values_pass() -> None:
    c = Config.from_args(["--risk-hold-score", "100", "--workers", "2", "--log-level", "debug",
                          "--fsync", "always", "--wave-time-budget-s", "0.5"])
    assert (c.risk_hold_score, c.workers, c.log_level, c.fsync) == (100, 2, "DEBUG", "always")
    assert math.isclose(c.wave_time_budget_s, 0.5)
    assert Config.from_args([]) == Config()


@pytest.mark.parametrize("args, needles", [
    (["--risk-hold-score", "1000"], ["--risk-hold-score", "0..100"]),
    (["--interval", "nan"], ["--interval"]),
    (["--max-orders", "-1"], ["--max-orders"]),
])
def test_bad_wave_job_flag_is_one_line_and_exit_2(args: list[str], needles: list[str],
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from oms.server.jobs.wave_job import main  # noqa: PLC0415

    code = main(["--once", *args])
    err = capsys.readouterr().err
    _assert_one_line_exit_2(subprocess.CompletedProcess(args, code, "", err), "oms-wave", *needles)


def test_bad_wave_job_env_value_is_one_line_and_exit_2() -> None:
    p = _run("oms.server.jobs.wave_job", "--once", env={"OMS_FRAUD_HOLD_SECONDS": "soon"})
    _assert_one_line_exit_2(p, "oms-wave", "OMS_FRAUD_HOLD_SECONDS")


def test_global_options_on_either_side_of_the_subcommand(server) -> None:
    target = f"127.0.0.1:{server.port}"
    key = ["--api-key", ADMIN_KEY]
    for argv in (["--target", target, *key, "--timeout", "60", "audit"],
                 ["audit", "--target", target, "--timeout", "60", *key],
                 ["warehouse", *key, "--target", target, "list"],
                 ["warehouse", "list", "--target", target, *key]):
        p = _run("oms.clients.cli", *argv, env={"OMS_TARGET": "127.0.0.1:1",
                                                "OMS_ADMIN_KEY_FILE": os.devnull})
        assert p.returncode == 0, (argv, p.stderr)
        if "audit" in argv:
            assert p.stdout.startswith("audit: ok"), p.stdout
        else:
            assert json.loads(p.stdout) == []
