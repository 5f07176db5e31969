"""How the briefing looks: headless Chromium at phone and desktop widths.

Screenshots land in out/screenshots/ (test artifacts, git-ignored) for a person to look at;
the assertions are the mechanical part: nothing wider than the screen, nothing loaded but
the page itself.
"""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from pipeline import brief, gazetteer

from . import browser
from .golden import fixture

SCREENSHOTS = Path(__file__).resolve().parents[1] / "out" / "screenshots"
WIDTHS = (375, 1024)


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> dict[str, Path]:
    """The fixture week, a quiet week and the archive index, as written by write_briefing."""
    folder = tmp_path_factory.mktemp("render")
    db = fixture.build(folder / "fixture.db")
    gaz, utc, out = gazetteer.load(), ZoneInfo("UTC"), folder / "briefings"
    week = brief.write_briefing(db, gaz, fixture.WEEK, utc, out)
    quiet = brief.write_briefing(db, gaz, "2024-W32", utc, out)
    return {"briefing": week.html_path, "quiet": quiet.html_path, "index": out / "index.html"}


@pytest.fixture(scope="module")
def page():
    with browser.open_page() as tab:
        yield tab


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("name", ["briefing", "quiet", "index"])
def test_page_fits_the_screen_and_loads_nothing_else(page, pages, name, width):
    page.load(pages[name], width)
    layout = page.measure()
    assert layout["innerWidth"] == width
    assert layout["scrollWidth"] <= layout["innerWidth"], f"{name} overflows horizontally at {width}px"
    assert page.requests() == [pages[name].resolve().as_uri()]         # no images, fonts or stylesheets
    assert not page.failed_loads() and layout["brokenImages"] == 0
    shot = page.screenshot(SCREENSHOTS / f"{name}-{width}.png", width)
    assert shot.stat().st_size > 10_000


def test_the_column_is_at_most_640_pixels_wide_on_a_desktop(page, pages):
    page.load(pages["briefing"], 1024)
    width = page.send("Runtime.evaluate", {"expression": "document.querySelector('h1').closest('table')"
                                                        ".getBoundingClientRect().width", "returnByValue": True})
    assert width["result"]["value"] <= 640
