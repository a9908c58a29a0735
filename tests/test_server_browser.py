"""The web chat page in a real headless Chromium (Debian's, driven by playwright-core from Node) against a real
API process over real Redis/PostgreSQL: streaming answer, tool activity, proposal with chart, Confirm and
Reject, a bad key; plus a screenshot check that the page rendered."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.server_support import REPO, cleanup, free_port, start_api, stop, unique_settings
from tools.market.store import MarketStore

BROWSER_DIR = REPO / "tests" / "browser"


def _browser_ready() -> bool:
    return (
        shutil.which("node") is not None
        and Path("/usr/bin/chromium").exists()
        and (BROWSER_DIR / "node_modules" / "playwright-core").is_dir()
    )


@pytest.fixture(scope="module")
def browser_installed() -> None:
    if not _browser_ready():  # a fresh machine: install what the test needs (idempotent)
        subprocess.run(["bash", str(REPO / "scripts" / "setup_browser.sh")], check=True, timeout=900)
    assert _browser_ready(), (
        "scripts/setup_browser.sh did not provide node, /usr/bin/chromium and playwright-core"
    )


@pytest.mark.slow
@pytest.mark.browser
def test_chat_page_in_headless_chromium(browser_installed, writable_world_path, tmp_path):
    with MarketStore.open(writable_world_path) as store:
        kw = next(k for k in store.scoped("adv_0001").keywords() if k.bid > 0.5)
    new_bid = round(kw.bid * 1.2, 2)
    s = unique_settings(writable_world_path)
    port = free_port()
    api = start_api(s, port, tmp_path / "api.log")
    shot = tmp_path / "chat.png"
    try:
        run = subprocess.run(
            [
                "node",
                str(BROWSER_DIR / "chat_page.mjs"),
                f"http://127.0.0.1:{port}",
                "key-adv1",
                kw.id,
                f"{new_bid}",
                str(shot),
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        stop(api)
        cleanup(s)
    assert run.returncode == 0, f"{run.stdout}\n{run.stderr}\nAPI log: {tmp_path / 'api.log'}"
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    assert seen["series"] >= 2 and "did not change" in seen["afterReject"]
    with MarketStore.open(
        writable_world_path
    ) as store:  # Confirm in the page applied the change, Reject didn't
        assert next(k.bid for k in store.scoped("adv_0001").keywords() if k.id == kw.id) == new_bid

    # The screenshot shows a rendered page: full size, mostly light background, with ink, the accent
    # blue (buttons, user bubbles, chart) and the chart's green profit line.
    import matplotlib.image as mpimg

    img = mpimg.imread(shot)[..., :3]
    assert img.shape[1] == 1280 and img.shape[0] >= 900
    light = (img.mean(axis=2) > 0.9).mean()
    dark = (img.max(axis=2) < 0.35).mean()
    blue = ((img[..., 2] > 0.75) & (img[..., 0] < 0.3) & (img[..., 1] < 0.55)).mean()
    green = ((img[..., 1] > 0.4) & (img[..., 0] < 0.2) & (img[..., 2] < 0.35)).mean()
    assert 0.5 < light < 0.99 and dark > 0.002 and blue > 0.001 and green > 0.0002, (light, dark, blue, green)
    assert len(np.unique((img * 255).astype(np.uint8).reshape(-1, 3), axis=0)) > 50
    if keep := os.environ.get("ADGUIDE_SCREENSHOT_DIR"):  # to look at it
        shutil.copy(shot, Path(keep) / "chat_page.png")
