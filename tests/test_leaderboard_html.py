"""The static leaderboard page in a real browser: headless Chromium (the Debian package) loads the self-contained
HTML, a click on a column header sorts the table, the order is checked, and a screenshot is written.

Chromium is driven over the DevTools protocol (``--remote-debugging-port``) with a minimal WebSocket client written
on the standard library, so no extra package is needed. The test skips, saying why, only where no Chromium is
installed (``apt-get install chromium``; ``.ci/run`` installs it)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import struct
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from himbench.leaderboard import read_published, render_html

PUBLISHED = Path(__file__).resolve().parents[1] / "leaderboard" / "published.csv"
CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


class _WebSocket:
    """Just enough RFC 6455 for the DevTools protocol: masked text frames out, (possibly fragmented) frames in."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        assert url.startswith("ws://")
        host_port, _, path = url[len("ws://"):].partition("/")
        host, _, port = host_port.partition(":")
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (f"GET /{path} HTTP/1.1\r\nHost: {host_port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
        self.sock.sendall(request.encode())
        response = b""
        while b"\r\n\r\n" not in response:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("DevTools closed the connection during the handshake")
            response += chunk
        head, _, self.buffer = response.partition(b"\r\n\r\n")
        if b" 101 " not in head.split(b"\r\n")[0]:
            raise ConnectionError(head.decode(errors="replace"))

    def send(self, text: str) -> None:
        payload = text.encode()
        mask = os.urandom(4)
        header = bytes([0x81])
        n = len(payload)
        if n < 126:
            header += bytes([0x80 | n])
        elif n < 65536:
            header += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            header += bytes([0x80 | 127]) + struct.pack(">Q", n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def _read(self, n: int) -> bytes:
        while len(self.buffer) < n:
            chunk = self.sock.recv(max(65536, n - len(self.buffer)))
            if not chunk:
                raise ConnectionError("DevTools closed the connection")
            self.buffer += chunk
        out, self.buffer = self.buffer[:n], self.buffer[n:]
        return out

    def recv(self) -> str:
        message = b""
        while True:
            first, second = self._read(2)
            n = second & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._read(8))[0]
            mask = self._read(4) if second & 0x80 else b""
            payload = self._read(n)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            opcode = first & 0x0F
            if opcode == 0x8:
                raise ConnectionError("DevTools sent close")
            if opcode in (0x1, 0x2, 0x0):
                message += payload
                if first & 0x80:
                    return message.decode()

    def close(self) -> None:
        self.sock.close()


class _DevTools:
    def __init__(self, ws: _WebSocket) -> None:
        self.ws, self.next_id, self.events = ws, 0, []

    def call(self, method: str, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def wait_event(self, name: str, timeout: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for i, event in enumerate(self.events):
                if event.get("method") == name:
                    return self.events.pop(i)
            self.events.append(json.loads(self.ws.recv()))
        raise TimeoutError(name)

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(result["exceptionDetails"])
        return result["result"].get("value")


@pytest.fixture
def browser(tmp_path):
    if CHROMIUM is None:
        pytest.skip("no Chromium installed (Debian: apt-get install chromium); the browser test needs a real browser")
    profile = tmp_path / "profile"
    process = subprocess.Popen(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
         f"--user-data-dir={profile}", "--remote-debugging-port=0", "--window-size=1400,1000", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"Chromium did not start its DevTools endpoint (exit code {process.poll()})")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10).read())
        page = next(t for t in targets if t.get("type") == "page")
        ws = _WebSocket(page["webSocketDebuggerUrl"])
        yield _DevTools(ws)
        ws.close()
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def _measured_rows() -> list[dict]:
    rows = []
    for name, mad, imq in (("mask-cf@m-him2k", "31.5", "70.1"), ("mask-only@m-him2k", "55.25", "50.3"),
                           ("e2ehim-tiny", "", "0.4")):
        row = {"method": name, "data": "HIM2K_M-HIM2K", "split": "natural", "environment": "cpu-test-2t",
               "trained": "True", "IMQ_mad@0.5": imq, "latency_ms": "12", "params": "0", "size_protocol": "maggie",
               "command": f"himbench bench --methods {name.split('@')[0]} --size-protocol maggie"}
        if mad:
            row.update({"maggie_MAD": mad, "maggie_MSE": "10", "maggie_Grad": "9", "maggie_Conn": "13",
                        "mask_set": "mean of 10 sets", "guidance": "disk"})
        rows.append(row)
    return rows


def _png(width: int = 4, height: int = 3) -> bytes:
    import cv2
    import numpy as np

    ok, data = cv2.imencode(".png", np.full((height, width, 3), 200, np.uint8))
    assert ok
    return data.tobytes()


def test_page_is_self_contained():
    page = render_html(_measured_rows(), read_published(PUBLISHED), {"qualitative.png": _png()})
    assert "data:image/png;base64," in page and "<script>" in page
    for external in ('src="http', "src='http", '<link rel="stylesheet"', "cdn.", "@import"):
        assert external not in page
    assert page.count('class="published"') == len(read_published(PUBLISHED)) and 'class="measured"' in page
    assert 'id="cmd-0"' in page and "--size-protocol maggie" in page


def test_clicking_a_header_sorts_the_column_in_chromium(browser, tmp_path):
    page = tmp_path / "index.html"
    page.write_text(render_html(_measured_rows(), read_published(PUBLISHED),
                                {"accuracy_vs_latency.png": _png(), "qualitative.png": _png(8, 6)}))
    browser.call("Page.enable")
    browser.call("Page.navigate", url=page.as_uri())
    browser.wait_event("Page.loadEventFired")
    assert browser.evaluate("document.images.length") == 2
    assert browser.evaluate("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
    # The MaGGIe Table 5 comparison: column 7 is MAD (Kind, Method, Benchmark, Subset, Protocol, Environment, MAD...).
    column = ("Array.from(document.querySelectorAll('#compare-0 tbody tr')).map("
              "r => [r.className, r.cells[1].textContent, r.cells[6].getAttribute('data-value')])")
    before = browser.evaluate(column)
    assert {kind for kind, _, _ in before} == {"published", "measured"}
    header = "document.querySelector('#compare-0 thead th:nth-child(7)')"
    assert browser.evaluate(f"{header}.textContent") == "MAD"

    def click() -> None:
        box = browser.evaluate(f"{header}.scrollIntoView({{block: 'center'}}); "
                               f"JSON.stringify({header}.getBoundingClientRect())")
        rect = json.loads(box)
        x, y = rect["x"] + rect["width"] / 2, rect["y"] + rect["height"] / 2
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            browser.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    click()
    after = browser.evaluate(column)
    values = [float(v) for _, _, v in after]
    assert values == sorted(values) and len(after) == len(before)
    assert after[0][1].startswith("InstMatt (public weights)")  # 12.85: the lowest composite MAD in Table 5
    assert browser.evaluate(f"{header}.getAttribute('aria-sort')") == "ascending"
    click()
    values = [float(v) for _, _, v in browser.evaluate(column)]
    assert values == sorted(values, reverse=True)
    shot = browser.call("Page.captureScreenshot", format="png")
    path = tmp_path / "leaderboard.png"
    path.write_bytes(base64.b64decode(shot["data"]))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 1000
