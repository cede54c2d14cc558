/*
 * elffile.h - opening an ELF file with libelf and walking its program
 * headers and sections: what `mfx launch` (is the program static?) and
 * inject/ (symbols of the target's libc, the agent's build-id) both need.
 *
 *	struct elf_file ef;
 *	if ((err = elf_file_open(path, &ef)))
 *		return err;
 *	GElf_Phdr ph;
 *	for (size_t i = 0; elf_file_phdr(&ef, i, &ph); i++)
 *		...
 *	GElf_Shdr sh;
 *	for (Elf_Scn *s = NULL; (s = elf_file_section(&ef, s, SHT_DYNSYM, NULL, &sh));)
 *		...
 *	elf_file_close(&ef);
 */
#ifndef MFX_COMMON_ELFFILE_H
#define MFX_COMMON_ELFFILE_H

#include <gelf.h>
#include <libelf.h>

struct elf_file {
	int fd;		/* read-only, close-on-exec: for pread of segments */
	Elf *e;
	size_t nphdr;
	size_t shstrndx;	/* section names' string table, or (size_t)-1 */
};

/* 0, -errno (cannot open), or -MFX_E_NOEXEC (not an ELF file). */
int elf_file_open(const char *path, struct elf_file *f);
void elf_file_close(struct elf_file *f);
/* Program header i into *ph: 1, or 0 past the last (or unreadable). */
int elf_file_phdr(const struct elf_file *f, size_t i, GElf_Phdr *ph);
/* The next section after `after` (NULL: from the first) of the given type
 * (SHT_NULL: any) and name (NULL: any), its header in *sh; NULL at the end. */
Elf_Scn *elf_file_section(const struct elf_file *f, Elf_Scn *after, unsigned type,
			  const char *name, GElf_Shdr *sh);

#endif /* MFX_COMMON_ELFFILE_H */
