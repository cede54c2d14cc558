#!/bin/bash
# Fault matrix: root's mfx writes into a directory another user can write.
# That user (nobody) swaps the run directory, while mfx records, for one of
# symlinks named like every file mfx writes (and their old ".tmp" names),
# pointing at root-only files.  Nothing outside the run directory may
# change: mfx writes through the fd of the directory it created, every file
# O_EXCL|O_NOFOLLOW.  A run directory that already is a symlink is refused
# in one line.  Even tries attach, odd ones launch; every third try plants
# the symlink before mfx starts.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../matrix.sh"
[ "$(id -u)" = 0 ] || skip "needs root (another user swaps the directory)"
need setpriv
need jq
as_user() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
pub=$TMP/pub victims=$TMP/victims
mkdir -p "$pub" "$victims"
chmod 0777 "$pub"	# writable by anyone, no sticky bit: renames allowed
names="summary.json smaps report.html heatmap_allocations.png impact_memory_usage.png
	page_occupancy.png trace.mfx .stop mftrace_log.csv"
for f in $names; do
	echo "root's own $f" >"$victims/$f"
	chmod 600 "$victims/$f"
done
sums() { (cd "$victims" && md5sum .[!.]* * 2>/dev/null | sort); }
before=$(sums)

# plant DIR : make DIR (as nobody) a directory of symlinks to the victims
plant() {
	as_user mkdir "$1" || return 1
	for f in $names; do
		as_user ln -s "$victims/$f" "$1/$f"
		as_user ln -s "$victims/$f" "$1/$f.tmp"
	done
}

tries=$(matrix_tries 3)
for ((i = 0; i < tries; i++)); do
	run=$pub/run$i err=$TMP/err$i why="" harm=""
	if ((i % 3 == 2)); then	# the name is a symlink before mfx starts
		as_user ln -s "$victims" "$run"
		target_start
		"$MFX" attach -q --for 300ms -o "$run" "$TPID" >/dev/null 2>"$err"
		rc=$?
		ans=$(answered $rc "$err" 1 2)
		grep -q "symbolic link" "$err" || why="not refused as a symlink: rc=$rc $(cat "$err")"
	else
		if ((i % 2 == 0)); then
			target_start
			"$MFX" attach --for 1s -o "$run" "$TPID" >/dev/null 2>"$err" &
		else
			[ -p "$TMP/tin" ] || mkfifo "$TMP/tin"
			exec 7<>"$TMP/tin"
			TOUT=$TMP/launch$i.out
			"$MFX" launch --for 1s -o "$run" -- "$TARGETS/attach_target" <&7 >"$TOUT" 2>"$err" &
		fi
		mpid=$!
		track $mpid
		if ((i % 2 == 0)); then
			mfx_attached $mpid "$err" || why="did not attach: $(cat "$err")"
		else
			wait_grep ready "$TOUT" 10
			TPID=$(pgrep -P $mpid attach_target | head -1)
		fi
		as_user mv "$run" "$run.orig" || why="could not swap the directory"
		plant "$run"
		tdo_quiet "run 500" || harm="the target did not finish: $(harmed_by)"
		((i % 2)) && tcmd quit
		wait $mpid
		rc=$?
		ans=$(answered $rc "$err" 0)
		[ -s "$run.orig/summary.json" ] || why="the report did not land in mfx's own directory"
		[ "$(find "$run" -type f | wc -l)" = 0 ] || why="mfx wrote into the swapped-in directory"
	fi
	[ "$(sums)" = "$before" ] || { why="a root-only file outside the run directory changed"; ans=0; }
	[ -z "$harm" ] && harm=$(harmed_by)
	((i % 2)) && ! ((i % 3 == 2)) && harm=""	# (the launched program quit on purpose)
	[ -n "$why" ] && ans=0
	note "try $i: rc=$rc $(grep -Ev "$MFX_NOTE_RE" "$err" | head -1)"
	matrix_try "$([ -z "$harm" ] && echo 1 || echo 0)" "$ans" "$harm $why $(cat "$err")"
	if ((i % 2 == 0)) || ((i % 3 == 2)); then	# (a launched program quit already)
		tcmd quit
		wait "$TPID" 2>/dev/null
	fi
done
# The victims are not summaries: out of the way of lib.sh's check of every
# summary.json (mfx's own, in the .orig directories, stay checked).
find "$pub" -type l -delete
rm -rf "$victims"
matrix_end symlink-swap
