/*
 * common_elffile.c - unit tests of common/elffile.c on real files: this
 * test program (dynamic: PT_INTERP, .dynsym, a build-id note), the static
 * test target when it was built, a text file and a missing one.  The
 * answers are checked against readelf's own reading of the same files.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/elffile.h"
#include "common/error.h"
#include "tests/unit/check.h"

/* How many lines of `readelf ARGS path` match the grep pattern; -1 when
 * readelf is not there. */
static int readelf_count(const char *args, const char *path, const char *pattern)
{
	char cmd[PATH_MAX + 256];
	snprintf(cmd, sizeof(cmd), "command -v readelf >/dev/null && readelf %s '%s' | grep -c '%s'",
		 args, path, pattern);
	FILE *p = popen(cmd, "r");
	int n = -1;
	if (p && fscanf(p, "%d", &n) != 1)
		n = -1;
	if (p)
		pclose(p);
	return n;
}

static int interp_of(const char *path, size_t *nphdr)
{
	struct elf_file ef;
	int err = elf_file_open(path, &ef);
	if (err)
		return err;
	int interp = 0;
	GElf_Phdr ph;
	size_t i;
	for (i = 0; elf_file_phdr(&ef, i, &ph); i++)
		interp |= ph.p_type == PT_INTERP;
	*nphdr = i;
	elf_file_close(&ef);
	return interp;
}

static void test_self(const char *self)
{
	size_t nph = 0;
	CHECK(interp_of(self, &nph) == 1, "this test is dynamic (PT_INTERP)");
	int want = readelf_count("-lW", self, "^  [A-Z_][A-Z_]* *0x");
	CHECK(want < 0 || (size_t)want == nph, "%zu program headers, readelf sees %d", nph, want);
	struct elf_file ef;
	CHECK(elf_file_open(self, &ef) == 0, "open self");
	GElf_Shdr sh;
	Elf_Scn *s = elf_file_section(&ef, NULL, SHT_DYNSYM, NULL, &sh);
	CHECK(s && sh.sh_type == SHT_DYNSYM && sh.sh_entsize, "a .dynsym section");
	CHECK(!elf_file_section(&ef, s, SHT_DYNSYM, NULL, &sh), "only one .dynsym");
	s = elf_file_section(&ef, NULL, SHT_NULL, ".note.gnu.build-id", &sh);
	int has_id = readelf_count("-SW", self, "\\.note\\.gnu\\.build-id");
	CHECK(has_id < 0 || (s != NULL) == (has_id > 0), "build-id note found as readelf finds it");
	CHECK(!elf_file_section(&ef, NULL, SHT_NULL, ".no-such-section", &sh), "no such section");
	size_t all = 0;
	for (s = NULL; (s = elf_file_section(&ef, s, SHT_NULL, NULL, &sh));)
		all++;
	int nsec = readelf_count("-SW", self, "^  \\[ *[0-9]");
	/* readelf lists the null section 0, elf_nextscn starts after it */
	CHECK(nsec < 0 || (size_t)nsec == all + 1, "%zu sections, readelf %d", all, nsec);
	elf_file_close(&ef);
}

int main(void)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	self[n > 0 ? n : 0] = 0;
	test_self(self);
	/* build/tests/unit/X -> build/tests/static_target (not in build/san) */
	char stat_path[PATH_MAX + 32];
	snprintf(stat_path, sizeof(stat_path), "%s", self);
	char *cut = strstr(stat_path, "/build/");
	size_t nph;
	if (cut) {
		strcpy(cut, "/build/tests/static_target");
		if (access(stat_path, R_OK) == 0)
			CHECK(interp_of(stat_path, &nph) == 0, "static_target has no PT_INTERP");
		else
			printf("no %s: the static case is skipped\n", stat_path);
	}
	CHECK(interp_of("/proc/self/status", &nph) == -MFX_E_NOEXEC, "a text file is not ELF");
	CHECK(interp_of("/nonexistent/mfx", &nph) == -ENOENT, "a missing file");
	return check_done("common_elffile");
}
