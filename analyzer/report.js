/*
 * report.js - report.html's script (built into mfx: analyzer/assets.c).
 * It reads the JSON object in <script id="mfx-data"> (written by html.c)
 * and draws, with plain DOM and SVG (nothing fetched, works from file://):
 *
 *   the flame graph   an icicle of the allocation call tree: root on top,
 *                     callees below, width = the chosen figure; click to
 *                     zoom, search (a regular expression) to highlight;
 *                     only boxes wider than half a pixel are drawn, so a
 *                     tree of any size costs what fits on the screen
 *   functions         each function's own and total figure, sortable
 *   memory over time  the top sites' live bytes as lines or stacked areas
 *                     under RSS, heap RSS and all live bytes
 *   sortable tables   every <table class=sortable> sorts on a click of its
 *                     header, numbers by their data-v
 *
 * window.mfxReport tells a test what was drawn (ready, renderMs, boxes,
 * zoomed, matched) and lets it drive the page (zoom, search, metric).
 */
(function () {
	'use strict';
	var started = performance.now();
	var D = JSON.parse(document.getElementById('mfx-data').textContent);
	var S = D.strings;
	var NF = 10;				/* numbers per node in D.nodes */
	var N = D.nodes.length / NF;
	var parent = new Uint32Array(N), name = new Uint32Array(N), file = new Uint32Array(N);
	var line = new Uint32Array(N), mod = new Uint32Array(N), more = new Uint32Array(N);
	var depth = new Uint16Array(N);
	var val = [new Float64Array(N), new Float64Array(N), new Float64Array(N), new Float64Array(N)];
	var kids = [];
	var i, k;
	for (i = 0; i < N; i++) {
		var o = i * NF;
		parent[i] = D.nodes[o];
		name[i] = D.nodes[o + 1];
		file[i] = D.nodes[o + 2];
		line[i] = D.nodes[o + 3];
		mod[i] = D.nodes[o + 4];
		more[i] = D.nodes[o + 5];
		for (k = 0; k < 4; k++)
			val[k][i] = D.nodes[o + 6 + k];
		kids.push([]);
		if (i) {
			kids[parent[i]].push(i);
			depth[i] = depth[parent[i]] + 1;
		}
	}

	/* ---- formatting ---------------------------------------------------------------- */

	function fmt(v, unit) {
		if (unit !== 'bytes') {
			if (v >= 1e9) return (v / 1e9).toFixed(2) + 'G';
			if (v >= 1e6) return (v / 1e6).toFixed(2) + 'M';
			if (v >= 1e4) return (v / 1e3).toFixed(1) + 'k';
			return String(Math.round(v));
		}
		var u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'], n = 0;
		while (v >= 1024 && n < u.length - 1) {
			v /= 1024;
			n++;
		}
		return (n ? v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0) : String(Math.round(v))) + ' ' + u[n];
	}
	function esc(s) {
		return String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
			.replace(/"/g, '&quot;');
	}
	function base(p) {
		var j = p.lastIndexOf('/');
		return j < 0 ? p : p.slice(j + 1);
	}
	function label(n) {
		if (more[n]) return '(' + more[n] + ' more)';
		return S[name[n]] || '??';
	}
	function where(n) {
		var s = '';
		if (file[n]) s = base(S[file[n]]) + (line[n] ? ':' + line[n] : '');
		if (mod[n]) s += (s ? ' ' : '') + '[' + base(S[mod[n]]) + ']';
		return s;
	}
	/* warm colours by name, stable across redraws (flamegraph.pl's idea) */
	function colour(n) {
		var s = S[name[n]] || '', h = 0;
		for (var j = 0; j < s.length; j++) h = (h * 31 + s.charCodeAt(j)) >>> 0;
		return 'hsl(' + (8 + h % 38) + ',' + (70 + (h >> 8) % 25) + '%,' + (58 + (h >> 16) % 14) + '%)';
	}

	/* ---- the flame graph -------------------------------------------------------------- */

	var flame = document.getElementById('flame');
	var info = document.getElementById('flame-info');
	var search = document.getElementById('search');
	var tip = document.createElement('div');
	tip.className = 'tip';
	flame.appendChild(tip);
	var state = { metric: 0, zoom: 0, re: null, boxes: 0, matched: 0, matchedValue: 0 };
	var sorted = [];			/* per metric: children by value, largest first */
	var ROW = 17;

	function children(n) {
		var m = state.metric;
		if (!sorted[m]) sorted[m] = [];
		if (!sorted[m][n])
			sorted[m][n] = kids[n].filter(function (c) { return val[m][c] > 0; })
				.sort(function (a, b) { return val[m][b] - val[m][a]; });
		return sorted[m][n];
	}
	function matches(n) {
		return state.re !== null && !more[n] && state.re.test(S[name[n]] || '');
	}
	function box(out, n, x, w, row, cls) {
		var y = row * ROW, t = '';
		if (w > 28) {
			var s = label(n), room = Math.floor((w - 6) / 6.7);
			t = '<text x="' + (x + 3).toFixed(1) + '" y="' + (y + 12) + '">' +
				esc(s.length > room ? s.slice(0, Math.max(room - 1, 1)) + '\u2026' : s) + '</text>';
		}
		out.push('<g class="' + cls + '" data-i="' + n + '"><rect x="' + x.toFixed(2) + '" y="' + y +
			'" width="' + Math.max(w, 0.5).toFixed(2) + '" height="' + (ROW - 1) + '" fill="' +
			colour(n) + '"/>' + t + '</g>');
		state.boxes++;
	}
	/* n and its callees in [x, x + w), on row `row` and below */
	function lay(out, n, x, w, row, maxrow) {
		var cls = more[n] ? 'fold' : matches(n) ? 'match' : '';
		box(out, n, x, w, row, cls);
		if (row > maxrow.v) maxrow.v = row;
		var v = val[state.metric][n];
		if (!v) return;
		var cs = children(n), cx = x;
		for (var j = 0; j < cs.length; j++) {
			var cw = w * val[state.metric][cs[j]] / v;
			if (cw < 0.5) break;	/* sorted: the rest are narrower */
			lay(out, cs[j], cx, cw, row + 1, maxrow);
			cx += cw;
		}
	}
	function drawFlame() {
		var t = performance.now(), W = flame.clientWidth || 1180, out = [], chain = [];
		state.boxes = 0;
		for (var a = state.zoom; a; a = parent[a]) chain.unshift(a);
		chain.unshift(0);
		var maxrow = { v: 0 };
		for (var j = 0; j < chain.length - 1; j++)	/* the zoomed node's callers, faded */
			box(out, chain[j], 0, W, j, 'faded');
		lay(out, state.zoom, 0, W, chain.length - 1, maxrow);
		var h = (maxrow.v + 1) * ROW + 2;
		var svg = '<svg xmlns="http://www.w3.org/2000/svg" width="' + W + '" height="' + h + '">' +
			out.join('') + '</svg>';
		var old = flame.querySelector('svg');
		if (old) old.remove();
		flame.insertAdjacentHTML('afterbegin', svg);
		state.drawMs = performance.now() - t;
		describe();
	}
	function describe() {
		var m = state.metric, tot = val[m][0], z = state.zoom, s;
		s = D.metrics[m] + ': ' + fmt(tot, D.units[m]) + ' in all';
		if (z) s += '; zoomed into ' + esc(label(z)) + ' (' + fmt(val[m][z], D.units[m]) + ', ' +
			(100 * val[m][z] / (tot || 1)).toFixed(1) + '%)';
		if (state.re)
			s += '; <b>' + state.matched + '</b> function box' + (state.matched === 1 ? '' : 'es') +
				' match, ' + fmt(state.matchedValue, D.units[m]) + ' (' +
				(100 * state.matchedValue / (tot || 1)).toFixed(1) + '%)';
		info.innerHTML = s;
	}
	/* Matches over the whole tree; a match inside a match counts once. */
	function countMatches() {
		var m = state.metric, n = 0, sum = 0, stack = [[0, false]];
		while (stack.length) {
			var e = stack.pop(), x = e[0], inside = e[1], hit = matches(x);
			if (hit) {
				n++;
				if (!inside) sum += val[m][x];
			}
			for (var j = 0; j < kids[x].length; j++) stack.push([kids[x][j], inside || hit]);
		}
		state.matched = n;
		state.matchedValue = sum;
	}
	function setSearch(text) {
		var re = null;
		if (text) {
			try { re = new RegExp(text, 'i'); } catch (e) {
				re = new RegExp(text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'), 'i');
			}
		}
		state.re = re;
		countMatches();
		drawFlame();
		drawFunctions();
	}
	function zoom(n) {
		if (more[n]) return;
		state.zoom = n;
		drawFlame();
	}
	function nodeOf(ev) {
		var g = ev.target.closest ? ev.target.closest('g[data-i]') : null;
		return g ? +g.getAttribute('data-i') : -1;
	}
	flame.addEventListener('click', function (ev) {
		var n = nodeOf(ev);
		if (n >= 0) zoom(n === state.zoom && n ? parent[n] : n);
	});
	flame.addEventListener('mousemove', function (ev) {
		var n = nodeOf(ev);
		if (n < 0) { tip.style.display = 'none'; return; }
		var m = state.metric, tot = val[m][0] || 1, r = flame.getBoundingClientRect();
		tip.innerHTML = '<b>' + esc(label(n)) + '</b>' + (where(n) ? '<br>' + esc(where(n)) : '') +
			'<br>' + D.metrics.map(function (name_, q) {
				return (q === m ? '<b>' : '') + name_ + ': ' + fmt(val[q][n], D.units[q]) + ' (' +
					(100 * val[q][n] / (val[q][0] || 1)).toFixed(1) + '%)' + (q === m ? '</b>' : '');
			}).join('<br>') + (state.zoom ? '<br>of the zoomed box: ' +
				(100 * val[m][n] / (val[m][state.zoom] || 1)).toFixed(1) + '%' : '') +
			(more[n] ? '<br>folded: the smallest call paths here' : '');
		void tot;
		tip.style.display = 'block';
		var x = ev.clientX - r.left + 14, y = ev.clientY - r.top + 14;
		if (x + 380 > r.width) x = Math.max(0, x - 400);
		tip.style.left = x + 'px';
		tip.style.top = y + 'px';
	});
	flame.addEventListener('mouseleave', function () { tip.style.display = 'none'; });
	search.addEventListener('input', function () { setSearch(search.value); });
	document.getElementById('reset').addEventListener('click', function () {
		search.value = '';
		state.zoom = 0;
		setSearch('');
	});
	var radios = document.querySelectorAll('input[name=metric]');
	for (i = 0; i < radios.length; i++)
		radios[i].addEventListener('change', function (ev) { setMetric(+ev.target.value); });
	function setMetric(m) {
		state.metric = m;
		if (!val[m][state.zoom]) state.zoom = 0;
		for (var j = 0; j < radios.length; j++) radios[j].checked = +radios[j].value === m;
		countMatches();
		drawFlame();
		drawFunctions();
	}

	/* ---- functions --------------------------------------------------------------------- */

	var fnBox = document.getElementById('functions');
	var fnSort = { key: 'total', desc: true };
	/* per function name: own (as a site: what its callees do not account for) and total
	 * (counted once per path, recursion included once) */
	function functionTable() {
		var m = state.metric, self = {}, total = {}, where_ = {}, onPath = {}, stack = [[0, 0]];
		while (stack.length) {
			var e = stack.pop(), n = e[0];
			if (e[1] === 1) { onPath[name[n]]--; continue; }
			if (n && !more[n]) {
				var key = name[n], sub = 0;
				for (var j = 0; j < kids[n].length; j++) sub += val[m][kids[n][j]];
				self[key] = (self[key] || 0) + Math.max(val[m][n] - sub, 0);
				if (!onPath[key]) total[key] = (total[key] || 0) + val[m][n];
				if (!(key in where_)) where_[key] = n;
				onPath[key] = (onPath[key] || 0) + 1;
				stack.push([n, 1]);
			}
			for (var q = 0; q < kids[n].length; q++) stack.push([kids[n][q], 0]);
		}
		return Object.keys(total).map(function (key) {
			return { name: S[key] || '??', self: self[key] || 0, total: total[key], node: where_[key] };
		});
	}
	function drawFunctions() {
		var m = state.metric, rows = functionTable(), tot = val[m][0] || 1;
		if (state.re) rows = rows.filter(function (r) { return state.re.test(r.name); });
		var key = fnSort.key, sgn = fnSort.desc ? -1 : 1;
		rows.sort(function (a, b) {
			var x = a[key], y = b[key];
			return (x < y ? -1 : x > y ? 1 : 0) * sgn;
		});
		var shown = rows.slice(0, 300), h = [];
		h.push('<table class=sortable-fn><thead><tr>');
		[['name', 'function'], ['where', 'where'], ['self', 'own (as the site)'], ['total', 'total'],
		 ['pct', '% of all']].forEach(function (c) {
			var cls = c[0] === key ? (fnSort.desc ? 'sorted-desc' : 'sorted-asc') : '';
			h.push('<th data-key="' + c[0] + '" class="' + cls + '">' + c[1] + '</th>');
		});
		h.push('</tr></thead><tbody>');
		shown.forEach(function (r) {
			h.push('<tr><td><code>' + esc(r.name) + '</code></td><td class=mod>' + esc(where(r.node)) +
				'</td><td class=n>' + fmt(r.self, D.units[m]) + '</td><td class=n>' +
				fmt(r.total, D.units[m]) + '</td><td class=n>' + (100 * r.total / tot).toFixed(1) +
				'%</td></tr>');
		});
		h.push('</tbody></table>');
		if (rows.length > shown.length)
			h.push('<p class=note>' + (rows.length - shown.length) + ' more; the search box narrows the list.</p>');
		fnBox.innerHTML = h.join('');
		state.functions = rows.length;
	}
	fnBox.addEventListener('click', function (ev) {
		var th = ev.target.closest('th[data-key]');
		if (!th) return;
		var key = th.getAttribute('data-key');
		if (key === 'where' || key === 'pct') key = key === 'pct' ? 'total' : 'name';
		fnSort.desc = fnSort.key === key ? !fnSort.desc : key !== 'name';
		fnSort.key = key;
		drawFunctions();
	});

	/* ---- memory over time, by site ------------------------------------------------------- */

	var TM = D.time, stBox = document.getElementById('sitetime');
	var stLegend = document.getElementById('sitetime-legend'), stInfo = document.getElementById('sitetime-info');
	var PAL = ['#1f77b4', '#2ca02c', '#9467bd', '#8c564b', '#17becf', '#bcbd22', '#e377c2', '#7f7f7f'];
	var series = [], stMode = 'lines';
	(function () {
		var rss = TM.rss.map(function (p) { return [p[0], p[1]]; });
		var heap = TM.rss.filter(function (p) { return p[2] > 0; }).map(function (p) { return [p[0], p[2]]; });
		series.push({ name: 'RSS', colour: '#d62728', pts: rss, kind: 'top' });
		series.push({ name: 'heap RSS', colour: '#ff7f0e', pts: heap, kind: 'top' });
		series.push({ name: 'all live bytes', colour: '#555', pts: TM.t.map(function (t, j) {
			return [t, TM.live[j]];
		}), kind: 'top', dash: true });
		TM.sites.forEach(function (s, j) {
			series.push({ name: S[s.name] + (s.file ? ' ' + base(S[s.file]) + ':' + s.line : '') +
				' (peak ' + fmt(s.peak, 'bytes') + ')', colour: PAL[j % PAL.length],
				v: s.v, kind: 'site' });
		});
		series.forEach(function (s) { s.on = true; });
	})();
	function drawLegend() {
		stLegend.innerHTML = series.map(function (s, j) {
			return '<span data-s="' + j + '" class="' + (s.on ? '' : 'off') + '"><i style="background:' +
				s.colour + '"></i>' + esc(s.name) + '</span>';
		}).join('');
	}
	function drawSiteTime() {
		var W = stBox.clientWidth || 1180, H = 380, L = 70, R = 16, T = 12, B = 34;
		var xmax = 0, ymax = 0, stacked = stMode === 'stacked', acc = TM.t.map(function () { return 0; });
		var sites = series.filter(function (s) { return s.kind === 'site' && s.on; });
		TM.t.forEach(function (t) { if (t > xmax) xmax = t; });
		series.forEach(function (s) {
			if (!s.on) return;
			if (s.pts) s.pts.forEach(function (p) { if (p[0] > xmax) xmax = p[0]; if (p[1] > ymax) ymax = p[1]; });
			else if (!stacked) s.v.forEach(function (v) { if (v > ymax) ymax = v; });
		});
		if (stacked) sites.forEach(function (s) { s.v.forEach(function (v, j) { acc[j] += v; }); });
		acc.forEach(function (v) { if (v > ymax) ymax = v; });
		xmax = xmax || 1;
		ymax = (ymax || 1) * 1.05;
		function X(t) { return L + (W - L - R) * t / xmax; }
		function Y(v) { return T + (H - T - B) * (1 - v / ymax); }
		var o = ['<svg xmlns="http://www.w3.org/2000/svg" width="' + W + '" height="' + H + '">'];
		for (var g = 0; g <= 5; g++) {
			var yv = ymax * g / 5, xv = xmax * g / 5;
			o.push('<line x1="' + L + '" x2="' + (W - R) + '" y1="' + Y(yv) + '" y2="' + Y(yv) +
				'" stroke="#eee"/><text x="' + (L - 6) + '" y="' + (Y(yv) + 4) +
				'" text-anchor="end">' + fmt(yv, 'bytes') + '</text><text x="' + X(xv) + '" y="' +
				(H - B + 16) + '" text-anchor="middle">' + xv.toFixed(xmax < 10 ? 2 : 0) + ' s</text>');
		}
		var base_ = TM.t.map(function () { return 0; });
		sites.forEach(function (s) {
			if (stacked) {
				var top = s.v.map(function (v, j) { return base_[j] + v; }), d = [];
				TM.t.forEach(function (t, j) { d.push(X(t).toFixed(1) + ',' + Y(top[j]).toFixed(1)); });
				for (var j = TM.t.length - 1; j >= 0; j--) d.push(X(TM.t[j]).toFixed(1) + ',' + Y(base_[j]).toFixed(1));
				o.push('<polygon points="' + d.join(' ') + '" fill="' + s.colour + '" fill-opacity="0.55" stroke="' +
					s.colour + '" stroke-width="0.8"/>');
				base_ = top;
			} else {
				o.push('<polyline fill="none" stroke-width="1.6" stroke="' + s.colour + '" points="' +
					TM.t.map(function (t, j) { return X(t).toFixed(1) + ',' + Y(s.v[j]).toFixed(1); }).join(' ') + '"/>');
			}
		});
		series.forEach(function (s) {
			if (!s.on || !s.pts || !s.pts.length) return;
			o.push('<polyline fill="none" stroke-width="1.8" stroke="' + s.colour + '"' +
				(s.dash ? ' stroke-dasharray="5,3"' : '') + ' points="' +
				s.pts.map(function (p) { return X(p[0]).toFixed(1) + ',' + Y(p[1]).toFixed(1); }).join(' ') + '"/>');
		});
		o.push('<line id=st-cursor x1="0" x2="0" y1="' + T + '" y2="' + (H - B) + '" stroke="#999" visibility="hidden"/>');
		o.push('<text x="' + ((L + W - R) / 2) + '" y="' + (H - 4) + '" text-anchor="middle">time since start</text></svg>');
		stBox.innerHTML = o.join('');
		stBox.onmousemove = function (ev) {
			var r = stBox.getBoundingClientRect(), t = (ev.clientX - r.left - L) / (W - L - R) * xmax;
			if (t < 0 || t > xmax || !TM.t.length) return;
			var j = 0;
			while (j < TM.t.length - 1 && TM.t[j] < t) j++;
			var c = stBox.querySelector('#st-cursor');
			c.setAttribute('x1', X(TM.t[j]));
			c.setAttribute('x2', X(TM.t[j]));
			c.setAttribute('visibility', 'visible');
			stInfo.innerHTML = 'at ' + TM.t[j].toFixed(3) + ' s: ' + series.filter(function (s) {
				return s.on && s.kind === 'site';
			}).map(function (s) {
				return '<span style="color:' + s.colour + '">' + esc(s.name.split(' ')[0]) + ' ' +
					fmt(s.v[j], 'bytes') + '</span>';
			}).concat(['all live ' + fmt(TM.live[j], 'bytes')]).join(', ');
		};
	}
	stLegend.addEventListener('click', function (ev) {
		var e = ev.target.closest('span[data-s]');
		if (!e) return;
		var s = series[+e.getAttribute('data-s')];
		s.on = !s.on;
		drawLegend();
		drawSiteTime();
	});
	var modes = document.querySelectorAll('input[name=stmode]');
	for (i = 0; i < modes.length; i++)
		modes[i].addEventListener('change', function (ev) { stMode = ev.target.value; drawSiteTime(); });

	/* ---- sortable tables ---------------------------------------------------------------- */

	function cellKey(tr, c) {
		var td = tr.children[c];
		if (!td) return '';
		var v = td.getAttribute('data-v');
		return v !== null ? +v : td.textContent.trim().toLowerCase();
	}
	function sortTable(table, c, desc) {
		var tb = table.tBodies[0], rows = Array.prototype.slice.call(tb.rows);
		rows.sort(function (a, b) {
			var x = cellKey(a, c), y = cellKey(b, c);
			return (x < y ? -1 : x > y ? 1 : 0) * (desc ? -1 : 1);
		});
		rows.forEach(function (r) { tb.appendChild(r); });
		var ths = table.tHead.rows[0].cells;
		for (var j = 0; j < ths.length; j++)
			ths[j].className = j === c ? (desc ? 'sorted-desc' : 'sorted-asc') : '';
	}
	Array.prototype.forEach.call(document.querySelectorAll('table.sortable'), function (table) {
		if (!table.tHead || !table.tBodies.length) return;
		table.tHead.addEventListener('click', function (ev) {
			var th = ev.target.closest('th');
			if (!th) return;
			var c = th.cellIndex, desc = th.className !== 'sorted-desc';
			/* names sort up first, figures down first */
			if (th.className === '' && typeof cellKey(table.tBodies[0].rows[0], c) !== 'number') desc = false;
			sortTable(table, c, desc);
		});
		var first = table.getAttribute('data-sort');
		if (first !== null) sortTable(table, +first, false);
	});

	/* ---- go -------------------------------------------------------------------------------- */

	countMatches();
	drawFlame();
	drawFunctions();
	drawLegend();
	drawSiteTime();
	window.addEventListener('resize', function () { drawFlame(); drawSiteTime(); });
	window.mfxReport = {
		ready: true,
		nodes: N,
		folded: D.folded,
		renderMs: performance.now() - started,
		state: state,
		zoomed: function () { return state.zoom ? label(state.zoom) : ''; },
		label: label,
		zoom: zoom,
		search: setSearch,
		metric: setMetric,
		functions: function () { return state.functions; }
	};
})();
