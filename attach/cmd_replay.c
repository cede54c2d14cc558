/*
 * cmd_replay.c - `mfx replay`: the command line of Approach B (the replay
 * itself is analyzer/replay/).
 */
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <getopt.h>
#include <libelf.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "analyzer/replay/replay.h"
#include "attach/cmdline.h"
#include "attach/commands.h"
#include "common/util.h"

/* --allocator PATH: an ELF shared object (ET_DYN) whose dynamic symbol
 * table defines malloc; anything else would replay under glibc and label
 * glibc's figures with the file's name.  0 or -MFX_E_NOTALLOC / -errno. */
static int check_allocator(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	elf_version(EV_CURRENT);
	Elf *e = elf_begin(fd, ELF_C_READ, NULL);
	GElf_Ehdr eh;
	int found = 0;
	Elf_Scn *scn = NULL;
	if (e && elf_kind(e) == ELF_K_ELF && gelf_getehdr(e, &eh) && eh.e_type == ET_DYN)
		while (!found && (scn = elf_nextscn(e, scn))) {
			GElf_Shdr sh;
			Elf_Data *d;
			if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_DYNSYM || !sh.sh_entsize ||
			    !(d = elf_getdata(scn, NULL)))
				continue;
			for (size_t i = 0; !found && i < sh.sh_size / sh.sh_entsize; i++) {
				GElf_Sym sym;
				const char *n;
				found = gelf_getsym(d, (int)i, &sym) && sym.st_shndx != SHN_UNDEF &&
					(n = elf_strptr(e, sh.sh_link, sym.st_name)) && !strcmp(n, "malloc");
			}
		}
	if (e)
		elf_end(e);
	close(fd);
	return found ? 0 : -MFX_E_NOTALLOC;
}

static void replay_help(void)
{
	printf("usage: mfx replay RUN_DIR [OPTIONS]\n\n"
	       "Approach B: replay the captured window's allocation calls - same threads,\n"
	       "same sizes, same order, cross-thread frees after their allocations, no\n"
	       "more threads at once than the original had - under glibc, jemalloc,\n"
	       "tcmalloc and mimalloc (and glibc tunables), and compare their memory\n"
	       "with the original's.  The native replayer (mfx-replay) reads\n"
	       "the calls from replay.ops, any number of them; mfx samples each run's RSS\n"
	       "from outside and copies its smaps at the highest RSS.  replay.c is the same\n"
	       "calls as a plain C program (compiled into RUN/replay and run once under\n"
	       "glibc as a cross-check).  Writes replay.ops, replay.c, replay, replay.json,\n"
	       "smaps_replay* and rss_comparison.png into RUN_DIR, and refreshes report.html.\n\n"
	       "Options (before or after RUN_DIR):\n"
	       "        --allocator LIST   comma-separated: glibc,jemalloc,tcmalloc,mimalloc,\n"
	       "                           or the path of an allocator library (LD_PRELOAD)\n"
	       "                           (default: every one installed)\n"
	       "        --tunable T        also replay under glibc with tunable T, e.g.\n"
	       "                           M_ARENA_MAX=2 or glibc.malloc.trim_threshold=0\n"
	       "                           (repeatable)\n"
	       "        --max-ops N        replay only the window's first N calls\n"
	       "        --max-live-bytes SIZE  stop a replay when its live bytes would pass SIZE\n"
	       "                           (its address space is limited to 4 x SIZE + 1 GiB)\n"
	       "        --c-max-calls N    calls written into replay.c (default 50000)\n"
	       "        --no-compile       write replay.c but do not compile or run it\n"
	       "        --sweep            replay under a grid of settings - glibc's arena_max\n"
	       "                           1/2/4/8, trim_threshold, mmap_threshold, top_pad,\n"
	       "                           tcache_count=0; jemalloc, tcmalloc, mimalloc with\n"
	       "                           their usual knobs - rank them by RSS peak, RSS end\n"
	       "                           and time, and recommend one: the line to apply it\n"
	       "                           to the real program, its measured saving and cost\n"
	       "    -q, --quiet            no progress\n"
	       "    -h, --help             this text\n\n"
	       "Examples:\n"
	       "    mfx replay results/app-4242-20261125-101500\n"
	       "    mfx replay RUN_DIR --allocator glibc,jemalloc --tunable M_ARENA_MAX=2\n"
	       "    mfx replay RUN_DIR --sweep\n"
	       "    cd RUN_DIR && LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2 ./replay\n");
}

int cmd_replay(int argc, char **argv)
{
	struct replay_opts o = {
		.max_ops = UINT64_MAX, .max_live_bytes = UINT64_MAX, .c_max_calls = 50000,
	};
	static const struct option opts[] = {
		{ "max-live-bytes", required_argument, NULL, 'L' },
		{ "allocator", required_argument, NULL, 'a' },
		{ "tunable", required_argument, NULL, 't' },
		{ "max-ops", required_argument, NULL, 'm' },
		{ "no-compile", no_argument, NULL, 'n' },
		{ "sweep", no_argument, NULL, 's' },
		{ "c-max-calls", required_argument, NULL, 'c' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;
	struct cmdline cl = { 0 };
	while ((c = cmdline_next(&cl, argc, argv, ":qh", opts)) != -1) {
		switch (c) {
		case 'a': o.allocators = optarg; break;
		case 't':
			if (o.ntunables == REPLAY_MAX_TUNABLES)
				return mfx_usage("replay", "at most %d --tunable", REPLAY_MAX_TUNABLES);
			o.tunables[o.ntunables++] = optarg;
			break;
		case 'm':
			if (parse_uint(optarg, UINT64_MAX, &o.max_ops) || !o.max_ops)
				return mfx_usage("replay", "--max-ops wants a positive number");
			break;
		case 'L':
			if (parse_size(optarg, &o.max_live_bytes) || !o.max_live_bytes)
				return mfx_usage("replay", "--max-live-bytes wants a size (e.g. 2G)");
			break;
		case 'n': o.no_compile = 1; break;
		case 's': o.sweep = 1; break;
		case 'c':
			if (parse_uint(optarg, UINT32_MAX, &o.c_max_calls))
				return mfx_usage("replay", "--c-max-calls wants a number");
			break;
		case 'q': o.quiet = 1; break;
		case 'h': replay_help(); return EXIT_OK;
		case ':':
			return mfx_usage("replay", "option '%s' needs a value", argv[optind - 1]);
		default:
			return mfx_usage("replay", "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (o.sweep && (o.allocators || o.ntunables))
		return mfx_usage("replay", "--sweep chooses the allocators and tunables itself "
					   "(drop --allocator and --tunable)");
	if (o.allocators) {
		char buf[256];
		snprintf(buf, sizeof(buf), "%s", o.allocators);
		for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
			if (strchr(tok, '/')) {	/* --allocator /path/to/libfoo.so */
				int err = check_allocator(tok);
				if (err)
					return mfx_usage("replay", "--allocator '%s': %s", tok,
							 mfx_strerror(-err));
			} else if (strcmp(tok, "glibc") && strcmp(tok, "jemalloc") &&
				   strcmp(tok, "tcmalloc") && strcmp(tok, "mimalloc")) {
				return mfx_usage("replay", "unknown allocator '%s' (glibc, jemalloc, "
							   "tcmalloc, mimalloc)", tok);
			}
		}
	}
	const char *dir;
	int rc = cmdline_run_dir("replay", &cl, &dir);
	return rc ? rc : replay_run(dir, &o);
}
