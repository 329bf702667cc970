"""The demo report opened in a real browser: Debian's headless Chromium, driven through
the DevTools protocol over a pipe (`--remote-debugging-pipe`, standard library only).

Why DevTools rather than `chromium --dump-dom --enable-logging=stderr`: Chromium's log
prints every console message at INFO, so console.error cannot be told from console.log,
and failed resource loads are not printed at all; the protocol reports each with its
level. It also lets the test open the Tables view (the tables live in an iframe the
report creates on click) and take the screenshots. Playwright would need npm packages.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium")
# CI collects the screenshots from here ($LSKD_ARTIFACTS to change it).
ARTIFACTS = Path(os.environ.get("LSKD_ARTIFACTS", REPO / "results" / "ci"))
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None, reason="chromium missing: scripts/setup.sh installs it"
    ),
]


def _onto_3_and_4(read_fd: int, write_fd: int) -> None:
    """In the child: the pipe ends become fds 3 and 4 (via copies above 10, so neither
    dup2 can overwrite the other end)."""
    high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (read_fd, write_fd)]
    os.dup2(high[0], 3)
    os.dup2(high[1], 4)


class Browser:
    """Headless Chromium with one page, spoken to over fds 3 (in) and 4 (out)."""

    def __init__(self, profile: Path, size: tuple[int, int] = (1400, 1000)):
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()
        # docs/install.md#headless-chromium: no sandbox (root), no GPU, no network.
        args = [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            f"--window-size={size[0]},{size[1]}",
            "--remote-debugging-pipe",
            "about:blank",
        ]
        self.proc = subprocess.Popen(
            args,
            pass_fds=(3, 4),
            preexec_fn=lambda: _onto_3_and_4(to_chrome_r, from_chrome_w),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buf, self._next_id, self.events = b"", 0, []
        target = self.call("Target.getTargets")["targetInfos"]
        page = next(t for t in target if t["type"] == "page")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=page, flatten=True)[
            "sessionId"
        ]
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable", session=True)

    def call(self, method: str, session: bool = False, **params):
        self._next_id += 1
        msg = {"id": self._next_id, "method": method, "params": params}
        if session:
            msg["sessionId"] = self.session
        os.write(self._to_chrome, json.dumps(msg).encode() + b"\0")
        while True:
            reply = self._read()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    def _read(self) -> dict:
        while b"\0" not in self._buf:
            chunk = os.read(self._from_chrome, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe")
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        msg = json.loads(raw)
        if "method" in msg:
            self.events.append(msg)
        return msg

    def evaluate(self, expression: str):
        result = self.call(
            "Runtime.evaluate",
            session=True,
            expression=expression,
            awaitPromise=True,
            returnByValue=True,
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression[:60]}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def navigate(self, url: str, timeout: float = 60) -> None:
        """Open `url` and return once its load event fired."""
        seen = len(self.events)
        self.call("Page.navigate", session=True, url=url)
        deadline = time.monotonic() + timeout
        while not any(
            ev["method"] == "Page.loadEventFired" for ev in self.events[seen:]
        ):
            if time.monotonic() > deadline:
                raise AssertionError(f"{url}: no load event in {timeout} s")
            self._read()

    def wait_for(self, expression: str, timeout: float = 20) -> None:
        """Poll a JavaScript expression until it is true (errors count as false)."""
        guarded = (
            f"(() => {{ try {{ return {expression}; }} catch {{ return false; }} }})()"
        )
        deadline = time.monotonic() + timeout
        while not self.evaluate(guarded):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for: {expression}")
            time.sleep(0.1)

    def frame_text(self, expect: str, timeout: float = 20) -> str:
        """innerText of the first child frame (the report shows HTML results in an
        iframe with a data: URL, opaque to the page's own scripts) once it contains
        `expect`."""
        deadline = time.monotonic() + timeout
        text = ""
        while expect not in text:
            if time.monotonic() > deadline:
                raise AssertionError(f"no frame shows {expect!r}: {text[:300]!r}")
            time.sleep(0.2)
            tree = self.call("Page.getFrameTree", session=True)["frameTree"]
            if not tree.get("childFrames"):
                continue
            frame = tree["childFrames"][0]["frame"]["id"]
            world = self.call("Page.createIsolatedWorld", session=True, frameId=frame)[
                "executionContextId"
            ]
            reply = self.call(
                "Runtime.evaluate",
                session=True,
                contextId=world,
                expression="document.body ? document.body.innerText : ''",
                returnByValue=True,
            )
            text = reply["result"].get("value") or ""
        return text

    def screenshot(self, path: Path) -> None:
        data = self.call("Page.captureScreenshot", session=True, format="png")["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))

    def errors(self) -> list[str]:
        """Console errors/asserts, uncaught exceptions and error log entries (failed
        loads, blocked requests, CSP) seen so far."""
        found = []
        for ev in self.events:
            p = ev.get("params", {})
            if ev["method"] == "Runtime.consoleAPICalled" and p["type"] in (
                "error",
                "assert",
            ):
                found.append(" ".join(str(a.get("value")) for a in p["args"]))
            elif ev["method"] == "Runtime.exceptionThrown":
                details = p["exceptionDetails"]
                found.append(details.get("exception", {}).get("description", str(p)))
            elif ev["method"] == "Log.entryAdded" and p["entry"]["level"] == "error":
                found.append(f"{p['entry']['source']}: {p['entry']['text']}")
        return found

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()
        os.close(self._to_chrome)
        os.close(self._from_chrome)


# Click the "eye" (view) button of the result row whose text contains `label`; true if
# one was found (React handlers see the click).
VIEW = """(label => {
  const row = [...document.querySelectorAll('tr')]
    .find(tr => tr.innerText.includes(label) && tr.querySelector('a[iconname="eye"]'));
  if (row) row.querySelector('a[iconname="eye"]').click();
  return Boolean(row);
})(%s)"""

# Whether the first element matching `selector` starts inside the window as opened
# (not scrolled): "visible", or where it is.
FIRST_SCREEN = """(selector => {
  const el = document.querySelector(selector);
  if (!el) return "missing";
  const top = el.getBoundingClientRect().top;
  return top >= 0 && top < window.innerHeight ? "visible" : `top at ${top} px`;
})(%s)"""

# Click the menu entry (a link) whose text is exactly `label`.
MENU = """(label => {
  const a = [...document.querySelectorAll('a')].find(a => a.innerText.trim() === label);
  if (a) a.click();
  return Boolean(a);
})(%s)"""


def test_report_in_chromium(demo_run, tmp_path):
    report = demo_run / "results" / "report.html"
    table = pd.read_csv(
        demo_run / "results/tables/fmnist_mlp128-mlp128_n50.csv", index_col=0
    )
    start = time.perf_counter()
    browser = Browser(tmp_path / "chromium-profile")
    try:
        browser.navigate(report.as_uri())
        # The report is a React app: wait until it replaced its "Loading" placeholder.
        browser.wait_for("document.body.innerText.includes('Tables')")
        landing = demo_run / "results" / "report-screenshot.png"
        browser.screenshot(landing)
        # the answers are on the first screen: the page starts at its top, not
        # centred in Snakemake's scrolling box with its top cut off
        answer = browser.evaluate(FIRST_SCREEN % json.dumps(".lskd-headline"))
        assert browser.evaluate(MENU % json.dumps("Tables")), "no 'Tables' menu entry"
        browser.wait_for("document.querySelector('a[iconname=\"eye\"]') !== null")
        assert browser.evaluate(VIEW % json.dumps("mlp128 → mlp128")), "no table row"
        shown = browser.frame_text("Teacher mlp128")
        browser.screenshot(demo_run / "results" / "report-table-screenshot.png")
        errors = browser.errors()
    finally:
        browser.close()
    elapsed = time.perf_counter() - start
    print(f"report opened, table shown and screenshots taken in {elapsed:.1f} s")
    assert errors == [], "browser console errors:\n" + "\n".join(errors)
    assert answer == "visible", f"the answers are not on the first screen: {answer}"
    # Every row label and every cell of the table CSV is on the rendered page.
    for row, cells in table.iterrows():
        assert row in shown
        for cell in cells:
            assert str(cell) in shown, f"{row}: {cell} not in the rendered table"
    for png in ("report-screenshot.png", "report-table-screenshot.png"):
        data = (demo_run / "results" / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(demo_run / "results" / png, ARTIFACTS / png)
