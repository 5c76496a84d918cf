"""Open a local HTML file in headless Chromium (Debian's `chromium`, driven by Playwright)
and record what a person's browser would do: requests, console messages, dialogs, errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]  # fmt: skip


def open_page(path: Path) -> dict:
    if CHROMIUM is None:
        pytest.skip("needs Debian's chromium (apt-get install chromium)")
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    seen = {"requests": [], "console": [], "dialogs": [], "errors": []}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page()
        page.on("request", lambda r: seen["requests"].append(r.url))
        page.on("console", lambda m: seen["console"].append(f"{m.type}: {m.text}"))
        page.on("dialog", lambda d: (seen["dialogs"].append(d.message), d.dismiss()))
        page.on("pageerror", lambda e: seen["errors"].append(str(e)))
        page.goto(Path(path).resolve().as_uri())
        page.wait_for_load_state("load")
        seen["text"] = page.inner_text("body")
        seen["token_texts"] = page.locator(".tokens").all_text_contents()  # shown or folded away
        seen["scripts"] = page.locator("script").count()
        seen["title"] = page.title()
        page.evaluate("document.querySelectorAll('details').forEach(d => { d.open = true; })")
        seen["unfolded_text"] = page.inner_text("body")  # as shown once every <details> is opened
        # how far the page runs past the window's width (0: it fits)
        seen["overflow"] = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        browser.close()
    return seen
