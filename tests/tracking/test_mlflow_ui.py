"""The lineage the product promises, seen in the MLflow UI by a real browser.

A store is built for real: the demo (`python -m reconciler.demo`, as `make demo` runs it)
converges a one-use-case desired state committed to git — the tiny base registered and
served, a LoRA copy trained and evaluated, a canary on live gateway traffic, the promotion —
so the registry holds a trained `champion` and its base as `previous`. `reconciler ui` (what
`make ui` runs) serves that store with `mlflow server`, and headless Chromium, driven through
its chromedriver by Selenium, reads the pages a person would:

- the registered model page shows both aliases and the lineage tags of the serving version;
- the champion's version page shows its alias, every lineage tag with its value, and links
  to the training run (Source Run) and to the evaluation run (in its description);
- the training run shows its dataset inputs; the evaluation run its prompts and metrics;
- the previous champion's page shows `previous` and that it is the base.

Every wait is for a condition on the page, with a deadline. Screenshots are saved under the
test's temporary folder (`screenshots/`).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import git
import pytest
from mlflow import MlflowClient
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from reconciler import lineage
from reconciler.child_process import free_port, wait_until_serving
from reconciler.registry.mlflow_registry import MlflowRegistry
from reconciler.training.lineage_tags import TRAINING_RUN, dataset_digest_tag

USE_CASE = "npc-dialogue"
PAGE_DEADLINE = 60.0
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1600,2000",
)


@dataclass(frozen=True)
class Store:
    tracking_uri: str
    commit: str
    champion: str
    previous: str
    client: MlflowClient


def _one_use_case_repo(shipped_repo: Path, tiny_base_model: Path) -> tuple[Path, str]:
    """The shipped npc-dialogue, trained briefly and canaried in two steps, in a git commit."""
    for other in shipped_repo.glob("desired_state/*.yaml"):
        if other.name != f"{USE_CASE}.yaml":
            other.unlink()
    spec = shipped_repo / "desired_state" / f"{USE_CASE}.yaml"
    text = spec.read_text()
    for old, new in [
        ("{epochs: 3,", "{epochs: 1, maxSteps: 8,"),
        ("steps: [10, 25, 50, 75, 100]", "steps: [50, 100]"),
        ("      failureLimit: 2", "      minRequests: 5\n      failureLimit: 2"),
    ]:
        assert old in text, old
        text = text.replace(old, new)
    # Latency is not what this test is about: on a loaded machine a slow p95 would fail the
    # evaluation or the canary and leave no champion to look at.
    text, limits = re.subn(r"latencyP95Ms: \{max: \d+\}", "latencyP95Ms: {max: 120000}", text)
    assert limits == 2, text
    spec.write_text(text)
    shutil.copytree(tiny_base_model, shipped_repo / "models" / "tiny-base")
    (shipped_repo / ".gitignore").write_text("models/\n")
    repo = git.Repo.init(shipped_repo)
    repo.index.add([".gitignore", "desired_state", "policies", "reconciler"])
    actor = git.Actor("game-ai", "game-ai@example.com")
    commit = repo.index.commit("npc-dialogue on the tiny base", author=actor, committer=actor)
    return shipped_repo, commit.hexsha


@pytest.fixture
def store(shipped_repo: Path, tmp_path: Path, tiny_base_model: Path) -> Store:
    repo, commit = _one_use_case_repo(shipped_repo, tiny_base_model)
    tracking_uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": tracking_uri,
        "RECONCILER_STATE_DIR": str(tmp_path / "state"),
    }
    env.pop("MLFLOW_REGISTRY_URI", None)
    # Not run inside the copy: its reconciler/spec/schema.json folder would shadow the package.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # --time-scale: bakes of 30m become 5.4 s, time for the players to send minRequests at a
    # 50% canary.
    demo = subprocess.run(
        [sys.executable, "-m", "reconciler.demo", "--repo", str(repo), "--time-scale", "0.003"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )
    assert demo.returncode == 0, demo.stdout[-6000:] + demo.stderr[-3000:]
    model = MlflowRegistry(tracking_uri).snapshot([USE_CASE])[USE_CASE]
    assert model is not None
    champion, previous = model.aliases.get("champion"), model.aliases.get("previous")
    assert champion is not None and previous is not None, dict(model.aliases)
    # The registry URI explicitly: MLflow's default is process-wide, and another test may
    # have pointed it at its own store.
    client = MlflowClient(tracking_uri, registry_uri=tracking_uri)
    return Store(tracking_uri, commit, champion, previous, client)


@pytest.fixture
def ui_url(store: Store, tmp_path: Path) -> Iterator[str]:
    """`reconciler ui` over the store, in its own process group, stopped with all it started."""
    port = free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": store.tracking_uri}
    log_path = tmp_path / "ui.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "reconciler.cli", "ui", "--port", str(port)],
            cwd=tmp_path / "elsewhere",
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            wait_until_serving(f"{url}/health", process, timeout=120, log=log_path)
            yield url
        finally:
            _stop_group(process)


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server and its workers; SIGKILL what is left after a deadline."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


def _system_chromium() -> tuple[str, str]:
    browser = next(
        (
            found
            for name in ("chromium", "chromium-browser", "google-chrome")
            if (found := shutil.which(name))
        ),
        None,
    )
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        pytest.fail(
            "Chromium and chromedriver are needed: `apt-get install chromium chromium-driver` "
            "(.ci/run installs them)"
        )
    return browser, driver


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    binary, driver_path = _system_chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    try:
        yield Browser(driver, tmp_path / "screenshots")
    finally:
        driver.quit()


class Browser:
    """The few things the test does with a page: open, wait for text, click, screenshot."""

    def __init__(self, driver: WebDriver, screenshots: Path) -> None:
        self.driver = driver
        self.screenshots = screenshots
        screenshots.mkdir()
        self.taken: list[Path] = []

    def open(self, url: str) -> None:
        self.driver.get(url)

    def text(self) -> str:
        return str(self.driver.find_element(By.TAG_NAME, "body").text)

    def wait_for(self, *needles: str) -> str:
        """The page's text once it shows every needle; fails naming the missing ones."""
        wait = WebDriverWait(
            self.driver,
            PAGE_DEADLINE,
            poll_frequency=0.25,
            ignored_exceptions=(StaleElementReferenceException,),  # the page re-rendered
        )
        try:
            wait.until(lambda _: all(needle in self.text() for needle in needles))
        except TimeoutException:
            self.screenshot("timed-out")
            missing = [n for n in needles if n not in self.text()]
            pytest.fail(f"{self.driver.current_url} never showed {missing}")
        return self.text()

    def follow_link(self, href_part: str) -> None:
        """Click the link whose target contains `href_part`, and follow it into the tab it
        opens (links in a markdown description open a new one)."""
        before = set(self.driver.window_handles)
        link = WebDriverWait(self.driver, PAGE_DEADLINE).until(
            expected_conditions.element_to_be_clickable(
                (By.CSS_SELECTOR, f"a[href*='{href_part}']")
            )
        )
        link.click()
        WebDriverWait(self.driver, PAGE_DEADLINE).until(
            lambda driver: (
                href_part in driver.current_url or len(set(driver.window_handles) - before) == 1
            )
        )
        opened = set(self.driver.window_handles) - before
        if opened:
            self.driver.switch_to.window(opened.pop())

    def click_text(self, text: str) -> None:
        element = WebDriverWait(self.driver, PAGE_DEADLINE).until(
            expected_conditions.element_to_be_clickable(
                (By.XPATH, f"//*[normalize-space(text())='{text}']")
            )
        )
        element.click()

    def screenshot(self, name: str) -> Path:
        path = self.screenshots / f"{len(self.taken) + 1:02d}-{name}.png"
        assert self.driver.save_screenshot(str(path)), path
        self.taken.append(path)
        return path


@pytest.mark.integration
def test_the_mlflow_ui_shows_where_the_serving_model_came_from(
    store: Store, ui_url: str, browser: Browser
) -> None:
    champion = store.client.get_model_version(USE_CASE, store.champion)
    tags = dict(champion.tags)
    training_run = tags[TRAINING_RUN]
    evaluation_run = tags[lineage.EVALUATION_RUN]
    # What the lineage must say, from what the test itself set up: the commit it made, the
    # base the spec names, and the training run MLflow links the version to.
    expected = {
        lineage.BASE_MODEL: "models/tiny-base",
        lineage.BASE_REVISION: "tiny-v1",
        lineage.DESIRED_COMMIT: store.commit,
        lineage.ROLE: "trained",
        lineage.EVALUATION_VERDICT: "passed",
        TRAINING_RUN: champion.run_id,
    }
    for key, value in expected.items():
        assert tags.get(key) == value, key
    datasets = ("initial", "train", "validation")
    lineage_keys = [
        *expected,
        lineage.KEY,
        lineage.EVALUATION_RUN,
        *(dataset_digest_tag(name) for name in datasets),
    ]

    # The registered model: both aliases, and the serving version's lineage in its row.
    browser.open(f"{ui_url}/#/models/{USE_CASE}")
    page = browser.wait_for(
        f"Version {store.champion}", f"Version {store.previous}", "@ champion", "@ previous"
    )
    for key in lineage_keys:
        assert key in page, key
    for value in (store.commit, training_run, evaluation_run):
        assert value in page
    browser.screenshot("registered-model")

    # The champion's page: its alias, every lineage tag with its full value.
    browser.open(f"{ui_url}/#/models/{USE_CASE}/versions/{store.champion}")
    page = browser.wait_for("Aliases", "@ champion", "Source Run", *lineage_keys)
    for key in lineage_keys:
        assert f"{key}\n{tags[key]}" in page, key
    assert "@ previous" not in page
    browser.screenshot("champion-version")

    # Its training run, through the Source Run link: the run that made it, with its datasets.
    browser.follow_link(f"/runs/{training_run}")
    page = browser.wait_for(training_run, "Datasets", f"{USE_CASE}-initial")
    initial_digest = tags[dataset_digest_tag("initial")].removeprefix("sha256:")
    assert f"{USE_CASE}-initial ({initial_digest[:36]})" in page
    inputs = store.client.get_run(training_run).inputs.dataset_inputs
    names = {i.dataset.name for i in inputs}
    assert {f"{USE_CASE}-{name}" for name in datasets} <= names
    browser.click_text(f"+{len(inputs) - 1}")  # the other inputs fold behind a counter
    browser.wait_for(*names)
    browser.screenshot("training-run-datasets")

    # The evaluation that let it roll out, through the link in the version's description.
    browser.open(f"{ui_url}/#/models/{USE_CASE}/versions/{store.champion}")
    browser.wait_for(f"evaluate-v{store.champion}")
    browser.follow_link(f"/runs/{evaluation_run}")
    page = browser.wait_for(
        evaluation_run, "behavior_similarity", "safety_pass_rate", f"{USE_CASE}-evaluation"
    )
    assert f"reconciler.champion_version\n: {store.previous}" in page
    browser.screenshot("evaluation-run")

    # The rollback target: the base it was trained from.
    browser.open(f"{ui_url}/#/models/{USE_CASE}/versions/{store.previous}")
    page = browser.wait_for("@ previous", lineage.ROLE)
    assert f"{lineage.ROLE}\nbase" in page
    assert "@ champion" not in page
    browser.screenshot("previous-version")

    assert [p.name for p in browser.taken] == [
        "01-registered-model.png",
        "02-champion-version.png",
        "03-training-run-datasets.png",
        "04-evaluation-run.png",
        "05-previous-version.png",
    ]
    for path in browser.taken:
        assert path.stat().st_size > 10_000, path  # a rendered page, not a blank one
