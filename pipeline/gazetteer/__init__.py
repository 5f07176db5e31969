"""The watchlist as data: companies and products (entities.toml) and word lists (lexicon.toml).

`load(config)` layers the `[[watch.companies]]` / `[[watch.products]]` entries of config.toml
over the packaged files: an entry whose id or name matches a packaged one replaces its
aliases; anything else is added.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources

from ..errors import ConfigError


@dataclass(frozen=True)
class Company:
    id: str
    name: str
    aliases: tuple[str, ...] = ()
    ambiguous: tuple[str, ...] = ()
    not_before: tuple[str, ...] = ()
    not_after: tuple[str, ...] = ()
    not_near: tuple[str, ...] = ()

    @property
    def entity_id(self) -> str:
        return f"company:{self.id}"

    @property
    def surfaces(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)


@dataclass(frozen=True)
class Product:
    id: str
    name: str
    company: str = ""
    family: str = ""
    aliases: tuple[str, ...] = ()
    ambiguous: bool = False
    case_sensitive: bool = False

    @property
    def entity_id(self) -> str:
        return f"product:{self.id}"

    @property
    def surfaces(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)


@dataclass(frozen=True)
class Theme:
    id: str
    title: str
    phrases: tuple[str, ...]


@dataclass(frozen=True)
class Lexicon:
    chip_context: tuple[str, ...]
    strong: tuple[str, ...]
    weak: tuple[str, ...]
    off_topic: tuple[str, ...]
    ai: tuple[str, ...]
    chip_companies: tuple[str, ...]
    ai_companies: tuple[str, ...]
    themes: tuple[Theme, ...]
    forward: tuple[str, ...]
    person_cues: tuple[str, ...] = ()
    candidate_org_stop: tuple[str, ...] = ()
    consumer_families: tuple[str, ...] = ()


@dataclass(frozen=True)
class Gazetteer:
    companies: dict[str, Company]
    products: dict[str, Product]
    lexicon: Lexicon
    version: str = field(default="")

    def company_of(self, product: Product) -> Company | None:
        return self.companies.get(product.company)


def phrase_pattern(phrases: Iterable[str], plurals: bool = False) -> re.Pattern:
    """One regex for a word list: any of the phrases as whole words, the longest first, so
    `findall` returns the phrases found. `plurals` also takes a trailing "s" ("GPUs").
    An empty list gives a pattern that matches nothing."""
    words = sorted({p for p in phrases if p}, key=len, reverse=True)
    if not words:
        return re.compile(r"(?!x)x")
    suffix = "s?" if plurals else ""
    return re.compile(r"(?<![\w-])((?:" + "|".join(map(re.escape, words)) + ")" + suffix + r")(?![\w-])")


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def _read(name: str) -> bytes:
    return resources.files(__package__).joinpath(name).read_bytes()


def _tuple(value) -> tuple[str, ...]:
    return tuple(value or ())


def _company(raw: dict) -> Company:
    return Company(
        id=raw["id"], name=raw["name"], aliases=_tuple(raw.get("aliases")),
        ambiguous=_tuple(raw.get("ambiguous")), not_before=_tuple(raw.get("not_before")),
        not_after=_tuple(raw.get("not_after")), not_near=_tuple(raw.get("not_near")),
    )


def _product(raw: dict) -> Product:
    return Product(
        id=raw["id"], name=raw["name"], company=raw.get("company", ""),
        family=raw.get("family") or raw["name"], aliases=_tuple(raw.get("aliases")),
        ambiguous=bool(raw.get("ambiguous", False)),
        case_sensitive=bool(raw.get("case_sensitive", False)),
    )


def _lexicon(raw: dict) -> Lexicon:
    relevance = raw.get("relevance", {})
    return Lexicon(
        chip_context=_tuple(raw.get("chip_context")),
        strong=_tuple(relevance.get("strong")), weak=_tuple(relevance.get("weak")),
        off_topic=_tuple(relevance.get("off_topic")),
        ai=_tuple(relevance.get("ai")),
        chip_companies=_tuple(relevance.get("chip_companies")),
        ai_companies=_tuple(relevance.get("ai_companies")),
        themes=tuple(Theme(t["id"], t["title"], _tuple(t.get("phrases"))) for t in raw.get("theme", [])),
        forward=_tuple(raw.get("forward", {}).get("phrases")),
        person_cues=_tuple(raw.get("disambiguation", {}).get("person_cues")),
        consumer_families=_tuple(raw.get("disambiguation", {}).get("consumer_families")),
        candidate_org_stop=_tuple(raw.get("candidates", {}).get("org_stop")),
    )


def load(watch=None) -> Gazetteer:
    """Packaged gazetteer plus the config's watchlist (a `WatchConfig` or None)."""
    entities_raw = _read("entities.toml")
    lexicon_raw = _read("lexicon.toml")
    entities = tomllib.loads(entities_raw.decode("utf-8"))
    companies = {c["id"]: _company(c) for c in entities.get("company", [])}
    products = {p["id"]: _product(p) for p in entities.get("product", [])}
    if watch is not None:
        _apply_watch(companies, products, watch)
    lexicon = _lexicon(tomllib.loads(lexicon_raw.decode("utf-8")))
    return Gazetteer(companies, products, lexicon, version=_version(entities_raw, lexicon, watch))


def _version(entities_raw: bytes, lexicon: Lexicon, watch) -> str:
    """What extraction depends on: the entities, the word lists it uses, the config watchlist.

    The briefing's themes and forward-looking words are left out, so editing them does not
    send every article back through extraction.
    """
    used = dataclasses.replace(lexicon, themes=(), forward=())
    return hashlib.sha256(entities_raw + repr(used).encode() + repr(watch).encode()).hexdigest()[:12]


def _find(entries: dict, wanted_id: str, name: str):
    if wanted_id and wanted_id in entries:
        return entries[wanted_id]
    key = name.casefold()
    return next((e for e in entries.values() if e.name.casefold() == key), None)


def _apply_watch(companies: dict[str, Company], products: dict[str, Product], watch) -> None:
    for item in watch.companies:
        existing = _find(companies, item.id, item.name)
        if existing:
            aliases = tuple(dict.fromkeys(existing.aliases + item.aliases))
            companies[existing.id] = Company(**{**existing.__dict__, "aliases": aliases})
        else:
            new_id = item.id or slug(item.name)
            companies[new_id] = Company(id=new_id, name=item.name, aliases=item.aliases)
    for item in watch.products:
        owner = _find(companies, slug(item.company), item.company) if item.company else None
        if item.company and owner is None:
            raise ConfigError(
                f"watch.products: {item.name!r}: company {item.company!r} is not in the watchlist",
                hint="add it under [[watch.companies]] first",
            )
        existing = _find(products, item.id, item.name)
        new_id = existing.id if existing else (item.id or slug(item.name))
        base = existing.__dict__ if existing else {"id": new_id, "name": item.name}
        products[new_id] = Product(**{
            **base,
            "company": owner.id if owner else base.get("company", ""),
            "family": item.family or base.get("family") or item.name,
            "aliases": tuple(dict.fromkeys(tuple(base.get("aliases", ())) + item.aliases)),
            "ambiguous": item.ambiguous or base.get("ambiguous", False),
        })
