/*
 * elffile.c - libelf open and walks (see elffile.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/elffile.h"
#include "common/error.h"

int elf_file_open(const char *path, struct elf_file *f)
{
	struct stat st;
	memset(f, 0, sizeof(*f));
	/* without blocking: a FIFO at the path would block open() forever */
	f->fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (f->fd < 0)
		return -errno;
	if (fstat(f->fd, &st) || !S_ISREG(st.st_mode) || fcntl(f->fd, F_SETFL, 0)) {
		close(f->fd);
		f->fd = -1;
		return -MFX_E_NOEXEC;
	}
	/* libelf wants its version set once before elf_begin (libelf(3)). */
	elf_version(EV_CURRENT);
	f->e = elf_begin(f->fd, ELF_C_READ, NULL);
	if (!f->e || elf_kind(f->e) != ELF_K_ELF || elf_getphdrnum(f->e, &f->nphdr)) {
		elf_file_close(f);
		return -MFX_E_NOEXEC;
	}
	if (elf_getshdrstrndx(f->e, &f->shstrndx))
		f->shstrndx = (size_t)-1;
	return 0;
}

void elf_file_close(struct elf_file *f)
{
	if (f->e)
		elf_end(f->e);
	if (f->fd >= 0)
		close(f->fd);
	memset(f, 0, sizeof(*f));
	f->fd = -1;
}

int elf_file_phdr(const struct elf_file *f, size_t i, GElf_Phdr *ph)
{
	return i < f->nphdr && gelf_getphdr(f->e, (int)i, ph) != NULL;
}

Elf_Scn *elf_file_section(const struct elf_file *f, Elf_Scn *after, unsigned type,
			  const char *name, GElf_Shdr *sh)
{
	Elf_Scn *scn = after;
	while ((scn = elf_nextscn(f->e, scn))) {
		if (!gelf_getshdr(scn, sh) || (type != SHT_NULL && sh->sh_type != type))
			continue;
		if (name) {
			const char *n = f->shstrndx == (size_t)-1 ? NULL :
					elf_strptr(f->e, f->shstrndx, sh->sh_name);
			if (!n || strcmp(n, name))
				continue;
		}
		return scn;
	}
	return NULL;
}
