"""config.toml: validated, frozen, and every problem named in one line with exit code 2."""

from __future__ import annotations

import dataclasses

import pytest

from pipeline import config
from pipeline.errors import ConfigError


def load_text(tmp_path, text: str) -> config.Config:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return config.load(path)


def test_the_shipped_config_loads_with_real_feeds():
    loaded = config.load("config.toml")
    assert len(loaded.feeds) >= 6
    assert any("aws.amazon.com" in f.url for f in loaded.feeds)
    assert any("nvidia" in f.url for f in loaded.feeds)


def test_config_is_frozen(tmp_path):
    loaded = load_text(tmp_path, "")
    with pytest.raises(dataclasses.FrozenInstanceError):
        loaded.collect.timeout_s = 1  # type: ignore[misc]


@pytest.mark.parametrize("text, message", [
    ('[schedule]\ncollect = "*/61 * * * *"\n',
     'config.toml: schedule.collect: "*/61 * * * *" is not a valid cron expression'),
    ('[collect]\nconcurency = 3\n', "config.toml: collect.concurency: unknown key"),
    ('[collect]\ntimeout_s = "fast"\n', "config.toml: collect.timeout_s: expected a number"),
    ('[[feeds]]\nname = "x"\nurl = "file:///etc/passwd"\n',
     'config.toml: feeds[0].url: "file:///etc/passwd" is not an http(s) URL'),
    ('[email]\nsecurity = "tls"\n', "config.toml: email.security: 'tls' is not one of ssl, starttls, none"),
    ('[schedule]\ntimezone = "Mars/Olympus"\n',
     'config.toml: schedule.timezone: "Mars/Olympus" is not a known time zone'),
    ('[datbase]\npath = "x"\n', "config.toml: datbase: unknown key"),
    ('[[feeds]]\nurl = "https://a.example/"\n', "config.toml: feeds[0].name: required key is missing"),
    ('[collect]\nconcurrency = 0\n', "config.toml: collect.concurrency: must be greater than 0"),
    ('[collect\n', "config.toml: not valid TOML"),
])
def test_bad_config_names_the_key(tmp_path, text, message):
    with pytest.raises(ConfigError) as caught:
        load_text(tmp_path, text)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_bad_config_exits_2_with_one_line(tmp_path, chipwatch):
    path = tmp_path / "config.toml"
    path.write_text('[schedule]\ncollect = "*/61 * * * *"\n', encoding="utf-8")
    result = chipwatch(path, "status")
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(
        'chipwatch: config.toml: schedule.collect: "*/61 * * * *" is not a valid cron expression')


def test_missing_config_says_where_it_looked(tmp_path, chipwatch, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CHIPWATCH_CONFIG", raising=False)
    result = chipwatch(None, "status")
    assert result.exit_code == 2
    assert str(tmp_path / "config.toml") in result.output
    assert "CHIPWATCH_CONFIG" in result.output


def test_environment_variable_names_the_config(tmp_path, monkeypatch):
    path = tmp_path / "elsewhere.toml"
    path.write_text('[database]\npath = "x.db"\n', encoding="utf-8")
    monkeypatch.setenv("CHIPWATCH_CONFIG", str(path))
    assert config.load().db_path == tmp_path / "x.db"


def test_relative_paths_follow_the_config_file(tmp_path):
    loaded = load_text(tmp_path, '[database]\npath = "data/c.db"\n')
    assert loaded.db_path == tmp_path / "data" / "c.db"
