/*
 * agent.h - the agent's (libmfx.so) internal interface, shared by its files.
 * Nothing here is exported from the library: the exports are the hooked
 * names (launch: symbol interposition) and the mfx_agent_* entry points
 * listed in libmfx.map.
 *
 * Life of the agent:
 *   launch:  the constructor reads MFX_* from the environment, resolves the
 *            real functions with RTLD_NEXT and calls agent_begin(); hooks
 *            record until exit, or until mfx sets the header's stop flag.
 *   attach:  mfx dlopen()s the library inside the target and calls
 *            mfx_agent_start(); the agent's own thread (control.c) resolves
 *            the real functions with RTLD_DEFAULT, calls agent_begin(),
 *            patches GOT slots (got.c) to point at the hooks, and at the end
 *            of the window restores them and calls agent_end().  The library
 *            is never unloaded: a later attach re-arms it.
 */
#ifndef MFX_PRELOAD_AGENT_H
#define MFX_PRELOAD_AGENT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define MFX_EXPORT __attribute__((visibility("default")))
#define likely(x)   __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

/* The functions the hooks forward to. */
struct agent_real {
	void *(*malloc)(size_t);
	void *(*calloc)(size_t, size_t);
	void *(*realloc)(void *, size_t);
	void *(*reallocarray)(void *, size_t, size_t);
	void (*free)(void *);
	int (*posix_memalign)(void **, size_t, size_t);
	void *(*aligned_alloc)(size_t, size_t);
	void *(*memalign)(size_t, size_t);
	void *(*valloc)(size_t);
	void *(*pvalloc)(size_t);
	int (*malloc_trim)(size_t);
	int (*dlclose)(void *);	/* hooked for the fast unwinder (fastunwind.c) */
	int (*malloc_info)(int, FILE *);
};
extern struct agent_real agent_real;

/* Resolve agent_real: attach = 0 looks past the agent (RTLD_NEXT, the
 * LD_PRELOAD case), attach = 1 takes the definition the program's GOT
 * slots bind to (got_find_defined, never a PLT stub).  0 or -ENOENT. */
int agent_resolve(int attach);

struct agent_config {
	int trace_fd;			/* open O_RDWR trace file, or -1: create trace_path */
	int spool_fd;			/* mfx's spool memfd (trace/spool_format.h), or -1: none */
	char trace_path[4096];
	unsigned stack_depth;		/* 0 = no stacks */
	int attach;			/* 1: MFX_HF_ATTACH, window marks */
	int child;			/* 1: fork/exec descendant (MFX_HF_CHILD) */
	uint64_t sample_bytes;		/* --sample: mean bytes between samples; 0 = every call */
};

/* Parse "key=value,key=value" (trace=PATH, fd=N, spool=N, depth=N,
 * stacks=0|1, attach=0|1, sample=BYTES) into *c, after setting defaults.
 * 0 or -EINVAL. */
int agent_parse_config(const char *s, struct agent_config *c);

/* Start recording into the trace described by *c: map it, fill the header,
 * record the module map, arm the hooks.  0 or -errno. */
int agent_begin(const struct agent_config *c);
/* Stop recording: hooks pass through from now on.  Waits (bounded) until
 * no thread is writing a record, gives every chunk back (spool slots to
 * mfx), writes the end time and state STOPPED into the header and closes the
 * trace file.  Safe to call twice, and from a hook. 0 or -errno. */
int agent_end(const char *why);
/* attach: the GOT slots now point at the hooks (window_start_ns). */
void agent_window_started(void);
/* Hooks stop recording now (window_end_ns); agent_end does the rest. */
void agent_disarm(void);
/* Non-zero while hooks record. */
int agent_recording(void);
/* The header of the current trace, or NULL (read-only use by control.c). */
struct mfx_file_header *agent_header(void);

/* Append the current module map to the trace (new and unloaded modules only);
 * cheap when nothing changed.  Called after dlopen/dlclose. */
void agent_modules_changed(void);
/* Append a MARK record to the trace (META chunk). */
void agent_mark(uint32_t kind, const uint64_t *vals, uint32_t nvals, const char *text);

/* The hooks, for GOT patching: { "malloc", (void *)malloc }, ..., { NULL }. */
struct agent_hook {
	const char *name;
	void *hook;
};
extern const struct agent_hook agent_hooks[];

/* got.c: patch every loaded module's GOT slots of hooked names (counts
 * returned); patch modules loaded since; put every slot back. */
int got_patch_all(unsigned *slots, unsigned *modules);
/* Where `name` binds: the first module in load order defining it (never
 * the agent, never a PLT stub).  NULL if none. */
void *got_find_defined(const char *name);
/* `name` as defined by the module that maps address `in` (not looked up
 * anywhere else), or NULL. */
void *got_module_sym(const void *in, const char *name);
void got_patch_new(void);
void got_restore_all(void);
/* fork: got_lock across it; in the child, restore != 0 puts every slot back. */
void got_fork_prepare(void);
void got_fork_parent(void);
void got_fork_child(int restore);
/* A recording fork child's end: every slot back from the patch list. */
void got_restore_list(void);

/* allocator.c: the allocator that serves malloc (include/mfx/allocators.h).
 * alloc_detect() once (cheap after); the rest detect on first use. */
void alloc_detect(void);
int alloc_kind(void);			/* enum mfx_allocator */
const char *alloc_name(void);		/* "glibc", "jemalloc", ... */
const char *alloc_module(void);		/* the file defining the malloc called */
int alloc_direct(void);			/* a prefixed jemalloc called directly */
/* Its own figures (enum mfx_alloc_field); *valid: bit i set when v[i] is
 * known.  0, or -ENOSYS when it gives none. */
int alloc_stats(uint64_t *v, uint32_t *valid);
/* Give free memory back its own way: *call names the call made, *ret is
 * its return (malloc_trim's 1/0, mallctl's 0/errno). 0 or -errno. */
int alloc_release(int64_t *ret, const char **call);
/* Its statistics as it prints them (malloc_info XML, malloc_stats_print
 * text, MallocExtension_GetStats, mi_stats_print_out) into f. 0 or -errno. */
int alloc_print(FILE *f);
/* jemalloc: one "arena I THREADS ACTIVE DIRTY MUZZY RESIDENT" line per arena. */
void alloc_arenas(FILE *f);
/* An ALLOC mark (trace/format.h) with the figures of now. */
void alloc_mark(unsigned phase);
/* A SAMPLE-phase mark if 100 ms went by (not for glibc: see allocator.c). */
void alloc_tick(void);
/* Launch mode: let the hooks call alloc_tick (sets alloc_sampling). */
void alloc_launch_sampling(void);
extern int alloc_sampling;

/* control.c: in a fork child, forget the control thread and its doorbell. */
void control_after_fork(void);
/* control.c: attach, from the constructor: open the doorbell and start the
 * agent's thread without a session (mfx rings once its hold is over). */
void control_autostart(void);

/* Monotonic ns (vDSO). */
uint64_t agent_now_ns(void);

#endif /* MFX_PRELOAD_AGENT_H */
