#!/bin/bash
# report.html is interactive in a real browser (headless Chromium, driven
# over the DevTools protocol by tests/cdp.py): it loads from file:// with
# no console error; a click on a flame-graph box zooms into it; typing in
# the search box highlights the function and filters the functions table;
# the figure switches; a site table sorts on a click of its header; the
# memory-over-time chart draws lines and stacked areas.  Then a trace with
# 131,072 distinct stacks: its page stays small and loads quickly (time
# measured and printed), and the same clicks work.
. "$(dirname "$0")/../lib.sh"
command -v chromium >/dev/null || skip "chromium not installed"
[ -x /usr/bin/python3 ] || skip "python3 not installed"
run_mfx launch -q -o "$TMP/demo" -- "$TARGETS/demo_app" 1
expect_eq "$MFX_RC" 0 "launch demo_app"
run_mfx launch -q --no-report -o "$TMP/many" -- "$TARGETS/many_stacks" 17
expect_eq "$MFX_RC" 0 "launch many_stacks"
t0=$(date +%s%N)
run_mfx report -q "$TMP/many"
expect_eq "$MFX_RC" 0 "report of 131072 stacks"
note "mfx report on 131072 stacks: $(( ($(date +%s%N) - t0) / 1000000 )) ms"
for d in demo many; do
	[ -s "$TMP/$d/sites_over_time.png" ] || fail "$d: no sites_over_time.png"
	if grep -Eq '(src|href)="(https?:)?//' "$TMP/$d/report.html"; then fail "$d: report.html refers to the network"; fi
done
size=$(stat -c %s "$TMP/many/report.html")
expect_le "$size" 4000000 "report.html of 131072 stacks, bytes"
mkdir -p "$TMP/chrome"
# the browsers' pids, killed at the end whatever happens (cdp.py closes them itself)
trap 'for p in $(cat "$TMP/chrome.pids" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done; _cleanup' EXIT
CDP_PIDFILE=$TMP/chrome.pids MFX_TESTS=$MFX_ROOT/tests /usr/bin/python3 - "$TMP" <<'EOP' || fail "the browser checks failed"
import json, os, sys, tempfile
sys.path.insert(0, os.environ["MFX_TESTS"])
from cdp import Browser
tmp = sys.argv[1]
bad = []
def check(ok, what):
    print(("ok: " if ok else "FAIL: ") + what)
    if not ok:
        bad.append(what)

def box_of(b, fn):
    """Mark the flame box of function fn; its centre, width, or None."""
    return b.eval("""(function () {
        var gs = document.querySelectorAll('#flame g[data-i]');
        for (var j = 0; j < gs.length; j++)
            if (mfxReport.label(+gs[j].getAttribute('data-i')) === %s &&
                gs[j].querySelector('rect').getBoundingClientRect().width > 8) {
                gs[j].id = 'probe';
                return true;
            }
        return false;
    })()""" % json.dumps(fn))

def explore(b, page, clicked, searched):
    secs = b.open("file://%s/%s/report.html" % (tmp, page))
    r = b.eval("JSON.stringify({ready: !!window.mfxReport && mfxReport.ready, render: mfxReport.renderMs,"
               " nodes: mfxReport.nodes, boxes: mfxReport.state.boxes})")
    r = json.loads(r)
    print("# %s: loaded in %.2f s (navigation to load event), script %.0f ms, %d nodes, %d boxes drawn"
          % (page, secs, r["render"], r["nodes"], r["boxes"]))
    check(r["ready"], page + ": the script ran")
    check(not b.errors, page + ": no console error after loading: %s" % b.errors)
    check(secs < 30, page + ": loaded in %.1f s (< 30 s even on a busy machine)" % secs)
    check(0 < r["boxes"] <= 20000 and r["nodes"] <= 20000, page + ": the flame graph is bounded")
    # a real click on a box zooms into it
    check(box_of(b, clicked), page + ": a box for %s" % clicked)
    x, y, w, h = b.click("#probe")
    z = b.eval("mfxReport.zoomed()")
    check(z == clicked, page + ": the click zoomed into %s (zoomed: %r)" % (clicked, z))
    full = b.eval("""(function () {
        var svg = document.querySelector('#flame svg'), gs = svg.querySelectorAll('g[data-i]');
        for (var j = 0; j < gs.length; j++)
            if (mfxReport.label(+gs[j].getAttribute('data-i')) === %s && !gs[j].classList.contains('faded'))
                return gs[j].querySelector('rect').getAttribute('width') / svg.getAttribute('width');
        return 0;
    })()""" % json.dumps(clicked))
    check(full > 0.99, page + ": %s now spans the graph (%.2f of its width)" % (clicked, full))
    # back out, then type into the search box
    b.click("#reset")
    check(b.eval("mfxReport.zoomed()") == "", page + ": reset zoom")
    b.click("#search")
    b.type_text(searched)
    m = json.loads(b.eval("JSON.stringify({n: mfxReport.state.matched, info: document.getElementById('flame-info').textContent,"
                          " marked: Array.prototype.map.call(document.querySelectorAll('#flame g.match'),"
                          " function (g) { return mfxReport.label(+g.getAttribute('data-i')); }),"
                          " rows: Array.prototype.map.call(document.querySelectorAll('#functions tbody tr td:first-child'),"
                          " function (t) { return t.textContent; })})"))
    check(m["n"] > 0 and "match" in m["info"], page + ": searching %r matched %d boxes (%s)" % (searched, m["n"], m["info"]))
    check(m["marked"] and all(searched in s for s in m["marked"]), page + ": highlighted boxes are %s: %s" % (searched, m["marked"][:3]))
    check(m["rows"] and all(searched in s for s in m["rows"]), page + ": the functions table shows only %s: %s" % (searched, m["rows"][:3]))
    b.click('input[name=metric][value="3"]')
    check(b.eval("mfxReport.state.metric") == 3 and b.eval("document.getElementById('flame-info').textContent").startswith("calls"),
          page + ": the figure switched to calls")
    check(not b.errors, page + ": no console error after the clicks: %s" % b.errors)

with Browser(tempfile.mkdtemp(dir=os.path.join(tmp, "chrome"))) as b:
    explore(b, "demo", "cache_fill", "remember")
    # a sortable site table: the allocations table's "calls" column
    col = b.eval("""(function () {
        var t = Array.prototype.find.call(document.querySelectorAll('table.sortable'), function (t) {
            return t.previousElementSibling && /allocations/.test(t.previousElementSibling.previousElementSibling.textContent);
        });
        t.id = 'alloc-table';
        return Array.prototype.findIndex.call(t.tHead.rows[0].cells, function (c) { return c.textContent === 'calls'; });
    })()""")
    vals = "Array.prototype.map.call(document.querySelectorAll('#alloc-table tbody tr'), function (r) { return +r.cells[%d].getAttribute('data-v'); })" % col
    b.click("#alloc-table thead th:nth-child(%d)" % (col + 1))
    v = b.eval(vals)
    check(len(v) > 1 and v == sorted(v, reverse=True), "demo: a click on 'calls' sorts the table down: %s" % v)
    b.click("#alloc-table thead th:nth-child(%d)" % (col + 1))
    v = b.eval(vals)
    check(v == sorted(v), "demo: a second click sorts it up: %s" % v)
    nsites = b.eval("document.querySelectorAll('#sitetime-legend span').length")
    check(b.eval("document.querySelectorAll('#sitetime polyline').length") >= 3, "demo: memory over time drawn as lines")
    b.click('input[name=stmode][value="stacked"]')
    check(b.eval("document.querySelectorAll('#sitetime polygon').length") == nsites - 3 > 0,
          "demo: stacked areas, one per site (%d)" % (nsites - 3))
    check(not b.errors, "demo: no console error at the end: %s" % b.errors)
    b.screenshot(os.path.join(tmp, "demo.png"))
with Browser(tempfile.mkdtemp(dir=os.path.join(tmp, "chrome"))) as b:
    explore(b, "many", "go_left", "go_right")
sys.exit(1 if bad else 0)
EOP
pass
