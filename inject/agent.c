/*
 * agent.c - the agent as inject/ sees it: the facts of mfx's own agent
 * file (build-id, exported symbols), its copies mapped in a process (by
 * build-id, read from the target's memory), and its doorbell
 * (inject_agent_ring): reaching a loaded agent without stopping any thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "mfx/control.h"
#include "common/elffile.h"
#include "common/error.h"
#include "common/util.h"
#include "inject/agent.h"
#include "inject/internal.h"

struct agent_file agent_file;

/* The agent file's build-id note: its file offset (= vaddr in the first
 * segment) and bytes. */
static int agent_build_id(const char *path, struct agent_file *af)
{
	struct elf_file ef;
	int err = elf_file_open(path, &ef);
	if (err)
		return err == -MFX_E_NOEXEC ? -ENOENT : err;
	err = -ENOENT;
	Elf_Scn *scn = NULL;
	GElf_Shdr sh;
	while ((scn = elf_file_section(&ef, scn, SHT_NULL, ".note.gnu.build-id", &sh))) {
		Elf_Data *d = elf_getdata(scn, NULL);
		if (sh.sh_size > sizeof(af->id) || !d || d->d_size != sh.sh_size)
			continue;
		memcpy(af->id, d->d_buf, sh.sh_size);
		af->id_len = sh.sh_size;
		af->id_off = sh.sh_addr;
		err = 0;
		break;
	}
	elf_file_close(&ef);
	return err;
}

/* Exported symbols of our own agent file (mfx's, trusted): st_value. */
static void agent_syms(const char *path, const char *const *names, uint64_t *vals)
{
	struct elf_file ef;
	for (size_t k = 0; names[k]; k++)
		vals[k] = 0;
	if (elf_file_open(path, &ef))
		return;
	Elf_Scn *scn = NULL;
	GElf_Shdr sh;
	while ((scn = elf_file_section(&ef, scn, SHT_DYNSYM, NULL, &sh))) {
		Elf_Data *d = elf_getdata(scn, NULL);
		size_t n = d && sh.sh_entsize ? sh.sh_size / sh.sh_entsize : 0;
		for (size_t i = 0; i < n; i++) {
			GElf_Sym s;
			const char *nm;
			if (!gelf_getsym(d, (int)i, &s) || s.st_shndx == SHN_UNDEF ||
			    !(nm = elf_strptr(ef.e, sh.sh_link, s.st_name)))
				continue;
			for (size_t k = 0; names[k]; k++)
				if (!strcmp(nm, names[k]))
					vals[k] = s.st_value;
		}
	}
	elf_file_close(&ef);
}

int agent_file_read(const char *path)
{
	struct agent_file *af = &agent_file;
	if (af->ok && !strcmp(af->path, path))
		return 0;
	memset(af, 0, sizeof(*af));
	snprintf(af->path, sizeof(af->path), "%s", path);
	int err = agent_build_id(path, af);
	if (err)
		return err;
	const char *names[] = { "mfx_agent_start", "mfx_agent_doorbell", "mfx_agent_inert", NULL };
	uint64_t vals[3];
	agent_syms(path, names, vals);
	af->start_off = vals[0];
	af->bell_off = vals[1];
	af->inert_off = vals[2];
	af->ok = af->bell_off != 0;
	return af->ok ? 0 : -MFX_E_AGENT;
}

/* Does the module at base carry our build-id? */
static int same_build(pid_t pid, uint64_t base)
{
	uint8_t theirs[sizeof(agent_file.id)];
	return base && inject_peek(pid, base + agent_file.id_off, theirs, agent_file.id_len) == 0 &&
	       !memcmp(agent_file.id, theirs, agent_file.id_len);
}

int agent_copies(pid_t pid, struct agent_copy *c, int max, int *others)
{
	static const char *const names[] = { "/memfd:libmfx.so (deleted)", "/libmfx.so" };
	struct inject_module m[AGENT_MAX_COPIES];
	int n = 0;
	*others = 0;
	for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
		int found = inject_find_modules(pid, names[k], m, AGENT_MAX_COPIES);
		for (int i = 0; i < found; i++) {
			if (!same_build(pid, m[i].base)) {
				(*others)++;	/* another build of the agent */
				continue;
			}
			if (n == max)
				continue;
			int32_t inert = 0;
			c[n].base = m[i].base;
			c[n].inode = m[i].inode;
			c[n].inert = agent_file.inert_off &&
				     inject_peek(pid, m[i].base + agent_file.inert_off, &inert, 4) == 0 && inert;
			n++;
		}
	}
	return n;
}

/* pid as the process itself sees it (the last NSpid: its own namespace). */
static pid_t pid_inside(pid_t pid)
{
	return inject_ns_id(pid, pid);
}

static int pidfd_get(int pidfd, int remote_fd);

/* The doorbell of a copy: its socket, taken from the process. */
static int bell_take(pid_t pid, uint64_t base, int *bell)
{
	struct mfx_doorbell b;
	*bell = -1;
	if (inject_peek(pid, base + agent_file.bell_off, &b, sizeof(b)) || b.magic != MFX_DOORBELL_MAGIC ||
	    b.fd < 0 || !b.pid || (b.pid != pid && b.pid != pid_inside(pid)))
		return -ENOENT;	/* loaded, but never started here (a fork child) */
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pidfd < 0)
		return -errno;
	int fd = pidfd_get(pidfd, b.fd);
	close(pidfd);
	if (fd < 0)
		return fd;
	struct stat st;
	if (fstat(fd, &st) || !S_ISSOCK(st.st_mode) || st.st_ino != b.ino) {
		close(fd);
		return -ENOTSOCK;	/* the program closed it and reused the number */
	}
	*bell = fd;
	return 0;
}

/* HELLO carrying one end of a socketpair of ours; WELCOME proves a live
 * agent thread holds the other. */
static int hello(int bell, int timeout_ms, int *chan)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv))
		return -errno;
	struct mfx_ctl m;
	mfx_ctl_init(&m, MFX_CTL_HELLO);
	int err = mfx_ctl_send(bell, &m, sizeof(m), &sv[1], 1, MSG_DONTWAIT);
	close(sv[1]);
	struct pollfd p = { sv[0], POLLIN, 0 };
	int r = 0;
	while (!err && (r = poll(&p, 1, timeout_ms)) < 0 && errno == EINTR)
		;
	if (!err && r <= 0)
		err = r ? -errno : -ETIMEDOUT;
	else if (!err && (recv(sv[0], &m, sizeof(m), MSG_DONTWAIT) != (ssize_t)sizeof(m) ||
			  m.magic != MFX_CTL_MAGIC || m.type != MFX_CTL_WELCOME))
		err = -EPROTO;
	if (err) {
		close(sv[0]);
		return err;
	}
	*chan = sv[0];
	return 0;
}

int inject_agent_ring(pid_t pid, const char *agent, int timeout_ms, int *chan)
{
	struct agent_copy c[AGENT_MAX_COPIES];
	int others, err = agent_file_read(agent);
	*chan = -1;
	if (err)
		return err;
	int n = agent_copies(pid, c, AGENT_MAX_COPIES, &others), res = -ENOENT;
	for (int i = 0; i < n && *chan < 0; i++) {
		int bell;
		if (c[i].inert || (res = bell_take(pid, c[i].base, &bell)))
			continue;
		res = hello(bell, timeout_ms, chan);
		close(bell);
	}
	return *chan >= 0 ? 0 : res;
}

static int pidfd_get(int pidfd, int remote_fd)
{
	int fd = (int)syscall(SYS_pidfd_getfd, pidfd, remote_fd, 0);
	if (fd >= 0) {
		fcntl(fd, F_SETFD, FD_CLOEXEC);
		return fd;
	}
	return errno == ENOSYS ? -MFX_E_KERNEL : -errno;
}

int agent_take_fd(pid_t pid, int remote_fd, mode_t type, const char *link_prefix)
{
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pidfd < 0)
		return errno == ENOSYS ? -MFX_E_KERNEL : -errno;
	int fd = pidfd_get(pidfd, remote_fd);
	close(pidfd);
	if (fd < 0)
		return fd;
	/* what the process handed us must be what we asked it to make: a
	 * hostile or racing process could put a FIFO or a socket there */
	struct stat st;
	char p[64], link[256];
	snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
	ssize_t l = readlink(p, link, sizeof(link) - 1);
	if (l >= 0)
		link[l] = 0;
	if (fstat(fd, &st) || (st.st_mode & S_IFMT) != type || l < 0 ||
	    (link_prefix && strncmp(link, link_prefix, strlen(link_prefix)))) {
		close(fd);
		return -EBADF;
	}
	return fd;
}
