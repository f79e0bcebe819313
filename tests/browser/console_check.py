"""Drives the analyst console in headless Chromium (selenium + chromedriver) against a running
engine, as an analyst would. Called by tests/tests/console.rs, which started the engine on a
real broker and produced the events; it checks the feedback topic afterwards.

Usage: console_check.py BASE_URL SCREENSHOT_DIR EXPECTED_VERSION EVENT_ID...
Prints one JSON line: {"clicked": <event id of the verdict>, "pages": [...]}; exits non-zero
with the reason when a check fails (and saves a screenshot of the failure).
"""

import json
import sys
import time
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

base, shots, expected_version, *event_ids = sys.argv[1:]
shots = Path(shots)
shots.mkdir(parents=True, exist_ok=True)

options = Options()
options.binary_location = "/usr/bin/chromium"
for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1500,1000"):
    options.add_argument(argument)
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
wait = WebDriverWait(driver, 30)
pages = []


def shot(name):
    path = shots / f"{name}.png"
    driver.save_screenshot(str(path))
    pages.append(str(path))


def click(selector):
    """Clicks the element at `selector`, again if the page re-rendered it meanwhile (the
    live view and the entity list refresh every 2 s)."""
    for _ in range(10):
        try:
            wait.until(EC.element_to_be_clickable((By.CSS_SELECTOR, selector))).click()
            return
        except StaleElementReferenceException:
            time.sleep(0.2)
    raise RuntimeError(f"{selector} kept going stale")


def fail(message):
    shot("failure")
    print(json.dumps({"error": message, "pages": pages}))
    driver.quit()
    sys.exit(1)


try:
    # 1. Live view: the events this test produced appear (all events, not only high risk).
    driver.get(base + "/console")
    checkbox = wait.until(EC.element_to_be_clickable((By.ID, "filter-flagged")))
    if checkbox.is_selected():
        checkbox.click()
    wanted = set(event_ids)
    clicked = None
    deadline = time.time() + 60
    while clicked is None and time.time() < deadline:
        listed = driver.execute_script(
            "return [...document.querySelectorAll('#events-table tbody tr')]"
            ".map(row => row.dataset.eventId)")
        clicked = next((event_id for event_id in listed if event_id in wanted), None)
        if clicked is None:
            time.sleep(1)
    if clicked is None:
        fail("none of the produced events is listed in the live view")
    shot("live")

    # 2. Event detail: contributions with the event's value and the training median.
    click(f'#events-table tbody tr[data-event-id="{clicked}"]')
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#contributions tbody tr")))
    contributions = driver.find_elements(By.CSS_SELECTOR, "#contributions tbody tr")
    if not contributions:
        fail("the event detail lists no contributions")
    medians = [r.find_elements(By.TAG_NAME, "td")[2].text for r in contributions]
    if not any(m.strip() for m in medians):
        fail("no contribution shows a training median")
    if driver.find_element(By.ID, "detail-model-version").text != expected_version:
        fail("the detail does not show the model version")
    shot("detail")

    # 3. Verdict: one click on "False positive" writes the verdict.
    click('button[data-verdict="false_positive"]')
    wait.until(EC.text_to_be_present_in_element((By.ID, "verdict-status"), "recorded"))
    shot("verdict")

    # 4. Entities: the entity list and one entity's risk over time.
    driver.find_element(By.ID, "tab-entities").click()
    click("#entities-table tbody tr")
    wait.until(EC.presence_of_element_located((By.ID, "entity-stats")))
    shot("entities")

    # 5. Models: the current version of every bound model.
    driver.find_element(By.ID, "tab-models").click()
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, ".model .model-version")))
    versions = [e.text for e in driver.find_elements(By.CSS_SELECTOR, ".model .model-version")]
    if expected_version not in versions:
        fail(f"the models page shows {versions}, not {expected_version}")
    shot("models")

    # 6. Try it: the sample prompt through the scoring API.
    driver.find_element(By.ID, "tab-try").click()
    driver.find_element(By.ID, "try-score").click()
    wait.until(EC.text_to_be_present_in_element((By.ID, "try-result"), "model_version"))
    shot("try")
except Exception as error:  # a timeout names no check: say where it stopped
    fail(f"{type(error).__name__}: {error}")

driver.quit()
print(json.dumps({"clicked": clicked, "pages": pages}))
