/*
 * debuginfo.c - what would name the frames of a module without debug info
 * (see debuginfo.h): the Debian package that owns its file (from dpkg's
 * file lists, one pass over /var/lib/dpkg/info/PKG.list for every module),
 * whose -dbgsym package holds its DWARF; debuginfod; or, for a program of
 * the user's own, a build with -g or its .debug file by build-id.
 */
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyzer/debuginfo.h"
#include "common/util.h"

#define DPKG_INFO "/var/lib/dpkg/info"

/* A module needs a hint when some of its addresses have no name or no line. */
int debuginfo_needed(const struct sym_module *d)
{
	return d->addrs && !d->stale && !d->missing && (!d->has_dwarf || d->unnamed);
}

/* Does list (a dpkg .list file's text) hold the line `path`? */
static int lists_path(const char *list, const char *path)
{
	size_t l = strlen(path);
	if (!l)
		return 0;
	for (const char *p = list; (p = strstr(p, path)); p += l)
		if ((p == list || p[-1] == '\n') && (p[l] == '\n' || !p[l]))
			return 1;
	return 0;
}

/* With merged /usr, dpkg may list /lib/... for a module loaded as
 * /usr/lib/... and the reverse. */
static void other_form(const char *path, char *out, size_t n)
{
	if (!strncmp(path, "/usr/", 5))
		snprintf(out, n, "%s", path + 4);
	else
		snprintf(out, n, "/usr%s", path);
}

/* owner[i] (malloc'ed): the package whose file list holds mods[i]'s path. */
static void find_owners(const struct sym_module *mods, size_t n, char **owner)
{
	DIR *d = opendir(DPKG_INFO);
	struct dirent *e;
	size_t left = 0;
	for (size_t i = 0; i < n; i++)
		left += debuginfo_needed(&mods[i]);
	while (d && left && (e = readdir(d))) {
		size_t l = strlen(e->d_name);
		if (l < 6 || strcmp(e->d_name + l - 5, ".list"))
			continue;
		char path[PATH_MAX], *text;
		if (read_file(path_join(path, sizeof(path), DPKG_INFO, e->d_name), &text, NULL))
			continue;
		for (size_t i = 0; i < n; i++) {
			char alt[PATH_MAX];
			if (owner[i] || !debuginfo_needed(&mods[i]))
				continue;
			other_form(mods[i].path, alt, sizeof(alt));
			if (lists_path(text, mods[i].path) || lists_path(text, alt)) {
				/* "libstdc++6:amd64.list" names package libstdc++6 */
				size_t k = strcspn(e->d_name, ":");
				owner[i] = strndup(e->d_name, k < l - 5 ? k : l - 5);
				left--;
			}
		}
		free(text);
	}
	if (d)
		closedir(d);
}

static void hint(const struct sym_module *d, const char *pkg, char *buf, size_t n)
{
	const char *urls = getenv("DEBUGINFOD_URLS");
	char dbg[300] = "";
	if (urls && *urls)
		snprintf(dbg, sizeof(dbg), "; debuginfod (DEBUGINFOD_URLS=%s) had none for build-id %s",
			 urls, d->build_id[0] ? d->build_id : "?");
	else if (d->build_id[0])
		snprintf(dbg, sizeof(dbg), ", or set DEBUGINFOD_URLS=https://debuginfod.debian.net "
			 "and run 'mfx report' again");
	if (pkg)
		snprintf(buf, n, "install the debug symbols of package %s (%s-dbgsym from the "
			 "debian-debug archive, or its source's -dbg package)%s", pkg, pkg, dbg);
	else if (d->has_symtab)
		snprintf(buf, n, "build it with -g, or put its debug file at "
			 "/usr/lib/debug/.build-id/%.2s/%s.debug%s", d->build_id,
			 d->build_id[0] ? d->build_id + 2 : "", dbg);
	else
		snprintf(buf, n, "it is stripped: keep the unstripped file's debug info "
			 "(objcopy --only-keep-debug) at /usr/lib/debug/.build-id/%.2s/%s.debug%s",
			 d->build_id, d->build_id[0] ? d->build_id + 2 : "", dbg);
}

int debuginfo_hints(const struct sym_module *mods, size_t n, char ***out)
{
	char **owner = calloc(n + 1, sizeof(*owner));
	char **h = calloc(n + 1, sizeof(*h));
	if (!owner || !h) {
		free(owner);
		free(h);
		return -1;
	}
	find_owners(mods, n, owner);
	for (size_t i = 0; i < n; i++) {
		char buf[1024];
		if (!debuginfo_needed(&mods[i]))
			continue;
		hint(&mods[i], owner[i], buf, sizeof(buf));
		h[i] = strdup(buf);
		free(owner[i]);
	}
	free(owner);
	*out = h;
	return 0;
}
