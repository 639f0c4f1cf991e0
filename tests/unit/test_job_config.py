"""Every entry point's config is one dataclass built by server/config.py's parse_config: the
jobs' settings are checked like the server's (flag or ``OMS_*`` variable, one-line ConfigError),
and the shared main() helper turns a bad value into one line and exit status 2."""
from __future__ import annotations

import os
from dataclasses import fields

import pytest

from oms.server.config import Config, ConfigError, env_of, flag_of, parse_config
from oms.server.jobs.job_runner import run_job, store_url
from oms.server.jobs.notify_config import NotifyConfig
from oms.server.jobs.wave_job import WaveConfig


def _numeric(cls: type) -> list[str]:
    return [f.name for f in fields(cls) if isinstance(getattr(cls(), f.name), int | float)
            and not isinstance(getattr(cls(), f.name), bool)]


@pytest.mark.parametrize("cls", [NotifyConfig, WaveConfig])
def test_defaults_without_flags_or_variables(cls: type, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("OMS_"):
            monkeypatch.delenv(name)
    built = parse_config(cls, [], "prog")
    fresh = cls()
    for f in fields(cls):
        if f.name != "consumer":  # host-pid: the same process, the same name
            assert getattr(built, f.name) == getattr(fresh, f.name), f.name


@pytest.mark.parametrize("cls, name", [(c, n) for c in (NotifyConfig, WaveConfig)
                                       for n in _numeric(c)])
def test_every_numeric_job_setting_rejects_garbage(cls: type, name: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_config(cls, [f"{flag_of(name)}=not-a-number"], "prog")
    assert str(e.value).startswith(flag_of(name) + ": ") and "\n" not in str(e.value)


@pytest.mark.parametrize("cls", [NotifyConfig, WaveConfig])
def test_server_settings_keep_the_server_defaults_and_rules(cls: type) -> None:
    shared = [f.name for f in fields(cls) if f.name in {g.name for g in fields(Config)}]
    assert {"redis_url", "data_dir", "log_level"} <= set(shared)
    for name in shared:
        assert getattr(cls(), name) == getattr(Config(), name)
    with pytest.raises(ConfigError, match="--log-level"):
        parse_config(cls, ["--log-level", "LOUD"], "prog")
    with pytest.raises(ConfigError, match="--redis-url"):
        parse_config(cls, ["--redis-url", "http://x"], "prog")


def test_notify_variables_and_switches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMS_NOTIFY_FROM", "Shop <shop@example.org>")
    monkeypatch.setenv("OMS_NOTIFY_GROUP", "g2")
    monkeypatch.setenv("OMS_SMTP_STARTTLS", "yes")
    cfg = parse_config(NotifyConfig, ["--once"], "oms-notify")
    assert (cfg.from_address, cfg.group, cfg.smtp_starttls, cfg.once) == (
        "Shop <shop@example.org>", "g2", True, True)
    assert cfg.smtp_port == 587  # derived from the TLS mode when not given
    monkeypatch.delenv("OMS_SMTP_STARTTLS")
    assert parse_config(NotifyConfig, ["--smtp-ssl"], "oms-notify").smtp_port == 465
    assert parse_config(NotifyConfig, [], "oms-notify").smtp_port == 25
    with pytest.raises(ConfigError, match="exclude each other"):
        parse_config(NotifyConfig, ["--smtp-ssl", "--smtp-starttls"], "oms-notify")
    monkeypatch.setenv(env_of("smtp_timeout"), "0")
    with pytest.raises(ConfigError, match="OMS_SMTP_TIMEOUT"):
        parse_config(NotifyConfig, [], "oms-notify")


def test_wave_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMS_WAVE_INTERVAL", "12.5")
    monkeypatch.setenv("OMS_WAVE_MAX_ORDERS", "40")
    cfg = parse_config(WaveConfig, ["--no-reallocate", "--batch-max-items", "12"], "oms-wave")
    assert (cfg.interval, cfg.max_orders, cfg.no_reallocate, cfg.no_backorders,
            cfg.batch_max_items) == (12.5, 40, True, False, 12)


def test_job_main_bad_value_is_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    async def never(*_: object) -> int:
        raise AssertionError("the job must not start")

    assert run_job("oms-x", WaveConfig, ["--interval", "-1"], "", never) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["oms-x: error: --interval: -1 must be more than 0 and at most 604800"]


def test_store_url_from_data_dir() -> None:
    assert store_url("redis://h:1/0", "ignored") == "redis://h:1/0"
    assert store_url("", "/tmp/d") == "unix:///tmp/d/redis.sock?db=0"


def test_jobs_find_an_embedded_cluster_in_the_data_dir(tmp_path) -> None:
    import json

    from oms.server.jobs.job_runner import store_target

    # no cluster recorded: the embedded single Redis (or the URL as given)
    assert store_target("", str(tmp_path), False) == (f"unix://{tmp_path}/redis.sock?db=0", False)
    assert store_target("redis://h:1", str(tmp_path), True) == ("redis://h:1", True)
    # oms-server --embedded-cluster N records its nodes in cluster.json
    (tmp_path / "cluster.json").write_text(json.dumps(
        {"masters": 3, "replicas": 0, "host": "127.0.0.1", "ports": [17001, 17002, 17003]}))
    assert store_target("", str(tmp_path), False) == ("redis://127.0.0.1:17001", True)
    assert store_target("redis://h:1", str(tmp_path), False) == ("redis://h:1", False)
    (tmp_path / "cluster.json").write_text("{broken")
    assert store_target("", str(tmp_path), False)[1] is False
