"""Properties that must hold for any input (hypothesis)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from hypothesis import HealthCheck, assume, example, given, settings, strategies as st

from pipeline import config
from pipeline.errors import ConfigError
from pipeline.normalize import canonical_url, html_to_text, parse_feed

URLS = st.one_of(
    st.text(max_size=200),
    st.builds(lambda scheme, host, path, query, frag: f"{scheme}://{host}{path}?{query}#{frag}",
              st.sampled_from(["http", "HTTPS", "Http", "ftp", ""]),
              st.text(alphabet="abcXYZ.-[]:%0123456789@", min_size=0, max_size=30),
              st.text(max_size=40), st.text(max_size=40), st.text(max_size=10)),
)


@given(URLS)
@example("HTTP://Example.COM:80/a?utm_source=x&b=1#f")
@example("http://[::1")
@example("https://example.com:99999/")
def test_canonical_url_never_raises_and_is_idempotent(url):
    once = canonical_url(url)
    assert canonical_url(once) == once


FEEDISH = st.one_of(
    st.binary(max_size=2000),
    st.builds(lambda title, body: (f'<?xml version="1.0"?><rss version="2.0"><channel><title>{title}</title>'
                                   f"<item><title>{title}</title><description>{body}</description>"
                                   "</item></channel></rss>").encode("utf-8", "surrogatepass"),
              st.text(max_size=100), st.text(max_size=300)),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(FEEDISH, st.sampled_from(["", "application/rss+xml", "text/html", "application/xml; charset=utf-16"]))
def test_normalizing_any_bytes_as_a_feed_never_raises(body, content_type):
    parsed = parse_feed(body, "https://feed.example/rss", content_type)
    for entry in parsed.entries:
        assert entry.url and entry.title and entry.published_at and entry.week


@given(st.text(max_size=500))
def test_html_to_text_never_raises_and_leaves_no_tags(markup):
    text = html_to_text(markup)
    assert "<script" not in text.lower() or "<script" in markup.lower()


TOML_VALUES = st.recursive(
    st.one_of(st.booleans(), st.integers(-10, 10**9), st.floats(allow_nan=False, allow_infinity=False),
              st.text(max_size=30)),
    lambda children: st.one_of(st.lists(children, max_size=3),
                               st.dictionaries(st.text(min_size=1, max_size=12), children, max_size=3)),
    max_leaves=8,
)
SECTIONS = st.sampled_from(["database", "schedule", "collect", "nlp", "email", "brief", "watch", "feeds", "other"])
KEYS = st.sampled_from(["path", "timezone", "collect", "briefing", "concurrency", "timeout_s", "max_bytes",
                        "allow_private_hosts", "model", "enabled", "to", "from", "security", "url", "name",
                        "companies", "products", "nope"])


def toml_text(document: dict) -> str:
    """A small TOML writer for the generated documents (tables of scalars and lists)."""
    def value(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, str):
            return '"' + v.encode("unicode_escape").decode("ascii").replace('"', '\\"') + '"'
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return "{" + ", ".join(f'"{k}" = {value(x)}' for k, x in v.items()) + "}"
    lines = []
    for section, table in document.items():
        lines.append(f"[{section}]")
        lines += [f'"{k}" = {value(v)}' for k, v in table.items()]
    return "\n".join(lines) + "\n"


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(SECTIONS, st.dictionaries(KEYS, TOML_VALUES, max_size=4), max_size=4))
def test_any_config_loads_or_fails_with_one_line(tmp_path, document):
    path = Path(tmp_path) / "config.toml"
    text = toml_text(document)
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        assume(False)
    path.write_text(text, encoding="utf-8")
    try:
        loaded = config.load(path)
    except ConfigError as exc:
        message = str(exc)
        assert message and "\n" not in message and message.startswith("config.toml")
    else:
        assert loaded.path == path.resolve()


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_as_config_load_or_fail_with_one_line(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("cfg") / "config.toml"
    path.write_bytes(data)
    try:
        config.load(path)
    except ConfigError as exc:
        assert "\n" not in str(exc)
