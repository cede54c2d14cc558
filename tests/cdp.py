"""cdp.py - a small Chrome DevTools Protocol client for the tests, over
Chromium's --remote-debugging-pipe (JSON messages ended by a NUL byte on
fds 3 and 4 of the browser: no network port, no WebSocket library).

    from cdp import Browser
    with Browser(profile_dir) as b:
        b.open("file:///tmp/report.html")      # waits for the load event
        b.eval("document.title")
        b.click_at(x, y); b.type_text("abc")
        b.errors                                # console errors, exceptions

Chromium as root needs --no-sandbox; the profile directory must be fresh.
"""
import base64
import json
import os
import select
import shutil
import time

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--disable-default-apps", "--mute-audio", "--hide-scrollbars",
         "--remote-debugging-pipe"]


class CDPError(Exception):
    pass


class Browser:
    def __init__(self, profile, width=1300, height=900, timeout=60):
        self.timeout = timeout
        exe = shutil.which("chromium") or shutil.which("chromium-browser")
        if not exe:
            raise CDPError("chromium not installed")
        to_r, to_w = os.pipe()        # we write, the browser reads (its fd 3)
        from_r, from_w = os.pipe()    # the browser writes (its fd 4), we read
        self.pid = os.fork()
        if self.pid == 0:
            try:
                import fcntl
                hi_r = fcntl.fcntl(to_r, fcntl.F_DUPFD, 10)     # out of the way of 3 and 4
                hi_w = fcntl.fcntl(from_w, fcntl.F_DUPFD, 10)
                os.dup2(hi_r, 3)
                os.dup2(hi_w, 4)
                os.set_inheritable(3, True)
                os.set_inheritable(4, True)
                null = os.open(os.devnull, os.O_RDWR)
                for fd in (0, 1, 2):
                    os.dup2(null, fd)
                os.closerange(5, 1024)
                os.execv(exe, [exe] + FLAGS + ["--user-data-dir=" + profile,
                                               "--window-size=%d,%d" % (width, height), "about:blank"])
            finally:
                os._exit(127)
        os.close(to_r)
        os.close(from_w)
        if os.environ.get("CDP_PIDFILE"):     # for the test's cleanup, should we be killed
            with open(os.environ["CDP_PIDFILE"], "a") as f:
                f.write("%d\n" % self.pid)
        self.w, self.r = to_w, from_r
        self.buf = b""
        self.next_id = 0
        self.events = []
        self.errors = []
        self.session = None
        self.width, self.height = width, height

    # ---- the wire ---------------------------------------------------------------
    def _send(self, method, params=None, session=True):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session and self.session:
            msg["sessionId"] = self.session
        os.write(self.w, json.dumps(msg).encode() + b"\0")
        return self.next_id

    def _read_one(self, deadline):
        while b"\0" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CDPError("the browser did not answer in time")
            ready, _, _ = select.select([self.r], [], [], left)
            if ready:
                chunk = os.read(self.r, 1 << 20)
                if not chunk:
                    raise CDPError("the browser closed its pipe")
                self.buf += chunk
        msg, self.buf = self.buf.split(b"\0", 1)
        m = json.loads(msg)
        if "method" in m:
            self._event(m)
        return m

    def _event(self, m):
        self.events.append(m)
        p, name = m.get("params", {}), m["method"]
        if name == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            self.errors.append("exception: %s %s" % (d.get("text"), d.get("exception", {}).get("description")))
        elif name == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            self.errors.append("console.%s: %s" % (p["type"], " ".join(
                str(a.get("value", a.get("description"))) for a in p.get("args", []))))
        elif name == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            self.errors.append("log: %s %s" % (p["entry"].get("text"), p["entry"].get("url", "")))

    def call(self, method, params=None, session=True):
        i = self._send(method, params, session)
        deadline = time.monotonic() + self.timeout
        while True:
            m = self._read_one(deadline)
            if m.get("id") == i:
                if "error" in m:
                    raise CDPError("%s: %s" % (method, m["error"]))
                return m.get("result", {})

    def wait_event(self, method, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        for m in self.events:
            if m["method"] == method:
                self.events.remove(m)
                return m
        while True:
            m = self._read_one(deadline)
            if m.get("method") == method:
                self.events.remove(m)
                return m

    # ---- pages --------------------------------------------------------------------
    def open(self, url):
        """Attach to the page, load url; seconds from navigation to the load event."""
        if not self.session:
            pages = [t for t in self.call("Target.getTargets", session=False)["targetInfos"]
                     if t["type"] == "page"]
            tid = pages[0]["targetId"] if pages else \
                self.call("Target.createTarget", {"url": "about:blank"}, session=False)["targetId"]
            self.session = self.call("Target.attachToTarget", {"targetId": tid, "flatten": True},
                                     session=False)["sessionId"]
            for domain in ("Page", "Runtime", "Log"):
                self.call(domain + ".enable")
            self.call("Emulation.setDeviceMetricsOverride", {"width": self.width, "height": self.height,
                                                            "deviceScaleFactor": 1, "mobile": False})
        t = time.monotonic()
        self.call("Page.navigate", {"url": url})
        self.wait_event("Page.loadEventFired")
        return time.monotonic() - t

    def eval(self, expr):
        r = self.call("Runtime.evaluate", {"expression": expr, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in r:
            raise CDPError("%s: %s" % (expr, r["exceptionDetails"].get("exception", {}).get("description")))
        return r["result"].get("value")

    def center_of(self, selector):
        """Scroll the element into view; its centre in the viewport, or None."""
        return self.eval("""(function () {
            var e = document.querySelector(%s);
            if (!e) return null;
            e.scrollIntoView({block: 'center', inline: 'center'});
            var r = e.getBoundingClientRect();
            return [r.left + r.width / 2, r.top + r.height / 2, r.width, r.height];
        })()""" % json.dumps(selector))

    def click_at(self, x, y):
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y, "button": "left",
                                                   "clickCount": 1, "buttons": 1 if kind == "mousePressed" else 0})

    def click(self, selector):
        c = self.center_of(selector)
        if not c:
            raise CDPError("nothing matches %s" % selector)
        self.click_at(c[0], c[1])
        return c

    def type_text(self, text):
        self.call("Input.insertText", {"text": text})

    def screenshot(self, path, full=True):
        params = {"format": "png"}
        if full:
            h = self.eval("document.documentElement.scrollHeight")
            params["clip"] = {"x": 0, "y": 0, "width": self.width, "height": min(h, 16000), "scale": 1}
            params["captureBeyondViewport"] = True
        data = self.call("Page.captureScreenshot", params)["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))

    def close(self):
        try:
            self.call("Browser.close", session=False)
        except (CDPError, OSError):
            pass
        for _ in range(50):
            pid, _ = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                break
            time.sleep(0.1)
        else:
            os.kill(self.pid, 9)
            os.waitpid(self.pid, 0)
        os.close(self.w)
        os.close(self.r)

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()
