"""The MLflow UI in a real browser: two short runs, seen through `mlflow ui` in headless Chromium.

Slow (`make test-full`): two `debug=limit` trainings, an `mlflow ui` start (about 25 s on 2
cores) and a browser session. Needs Debian's Chromium (`apt-get install chromium
chromium-driver`: /usr/bin/chromium, /usr/bin/chromedriver) and Selenium (dev extras); skipped
without them. The browser is driven as a user would: home page, "Model training", the
experiment, a run, its Artifacts tab; then the two runs' checkboxes and the Compare button.
Screenshots go to outputs/ui/.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_mlflow_server import mlflow_process
from test_run import RUN_ID, client_for, run_cli  # pytest puts tests/ on sys.path

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOTS = Path(__file__).resolve().parents[1] / "outputs" / "ui"
TIMEOUT = 60  # seconds per wait: the UI is a React app on a 2-core machine
# No network here: keep Chromium from reaching out (updates, sync, QUIC probes).
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--window-size=1600,1000")

pytestmark = pytest.mark.slow


@pytest.fixture
def browser(tmp_path):
    if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
        pytest.skip(f"needs Debian's chromium and chromium-driver ({CHROMIUM}, {CHROMEDRIVER}): "
                    "apt-get install chromium chromium-driver")
    webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (dev extras)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def ui_over_two_runs(tmp_path, mitdb_cache_dir):
    """(URL, {run_id: run_name}) of `mlflow ui` over a project store holding two short runs."""
    run_ids = []
    for seed in ("1", "2"):
        result = run_cli(tmp_path, mitdb_cache_dir, "debug=limit", f"seed={seed}")
        assert result.returncode == 0, result.stderr[-3000:]
        run_ids.append(RUN_ID.search(result.stdout).group(1))
    client = client_for(tmp_path)
    names = {run_id: client.get_run(run_id).info.run_name for run_id in run_ids}

    with mlflow_process(["ui", "--backend-store-uri", f"sqlite:///{tmp_path}/outputs/mlflow.db"],
                        tmp_path / "ui.log", cwd=tmp_path, timeout=120) as url:
        yield url, names


def test_mlflow_ui_shows_a_run_its_artifacts_and_a_comparison(ui_over_two_runs, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    url, names = ui_over_two_runs
    (first_id, first_name), (second_id, second_name) = names.items()
    wait = WebDriverWait(browser, TIMEOUT)

    def page_text() -> str:
        return browser.find_element(By.TAG_NAME, "body").text

    def click_text(text: str) -> None:
        wait.until(EC.element_to_be_clickable(
            (By.XPATH, f"//*[normalize-space(text())='{text}']"))).click()

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    # Home page -> "Model training" -> the experiment -> its runs table.
    browser.get(f"{url}/")
    click_text("Model training")
    wait.until(EC.element_to_be_clickable((By.LINK_TEXT, "ecg-lightning"))).click()
    wait.until(EC.element_to_be_clickable((By.LINK_TEXT, second_name)))
    runs_table = browser.current_url
    wait.until(EC.element_to_be_clickable((By.LINK_TEXT, first_name))).click()

    # The run page: its name and its metrics.
    wait.until(lambda _: f"/runs/{first_id}" in browser.current_url)
    wait.until(lambda _: "test/accuracy" in page_text())
    text = page_text()
    assert first_name in text
    for metric in ("test/f1_macro", "test/auroc_macro", "val/f1_macro"):
        assert metric in text, metric
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", browser.find_element(
        By.XPATH, "//*[normalize-space(text())='test/accuracy']"))
    browser.save_screenshot(str(SCREENSHOTS / "run.png"))

    # Its Artifacts tab lists the confusion matrix; opening it shows the picture.
    click_text("Artifacts")
    wait.until(lambda _: browser.current_url.endswith(f"/runs/{first_id}/artifacts"))
    for name in ("confusion_matrix.png", "config.yaml", "metrics_test.json"):
        wait.until(lambda _: name in page_text(), f"{name} not listed")
    click_text("confusion_matrix.png")
    wait.until(lambda _: browser.execute_script(
        "return Array.from(document.images).some(i => i.complete && i.naturalWidth > 100"
        " && i.src.startsWith('blob:'))"), "the confusion matrix preview never loaded")
    browser.save_screenshot(str(SCREENSHOTS / "artifacts.png"))

    # Back to the runs table: tick both runs, press Compare.
    browser.get(runs_table)
    wait.until(EC.element_to_be_clickable((By.LINK_TEXT, first_name)))
    for run_id in names:  # ag-grid's inputs are transparent (opacity 0): wait for presence
        wait.until(EC.presence_of_element_located(
            (By.CSS_SELECTOR, f"[role=row][row-id='{run_id}'] input[type=checkbox]"))).click()
    wait.until(EC.element_to_be_clickable(
        (By.CSS_SELECTOR, "[data-testid=runs-compare-button]"))).click()

    wait.until(lambda _: "#/compare-runs" in browser.current_url)
    wait.until(lambda _: "Comparing 2 Runs" in page_text())
    for run_id, run_name in names.items():
        wait.until(lambda _: run_id in page_text() and run_name in page_text(),
                   f"{run_id} ({run_name}) not on the compare page")
    assert first_id in browser.current_url and second_id in browser.current_url
    run_details = browser.find_element(By.XPATH, "//*[normalize-space(text())='Run details']")
    browser.execute_script("arguments[0].scrollIntoView()", run_details)
    browser.save_screenshot(str(SCREENSHOTS / "compare.png"))
