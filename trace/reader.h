/*
 * reader.h - reading a trace.mfx: its header, its metadata (stacks, modules,
 * samples, marks, threads) and its events merged across threads in time order.
 *
 * Metadata is loaded by trace_open() (it is small); events are streamed by
 * trace_next(), holding one decoded chunk per thread, so memory is bounded by
 * the thread count, not the trace length.  Works on both the raw file the agent
 * writes during a capture and the compacted file mfx leaves afterwards.
 *
 *	struct trace *t;
 *	int err = trace_open("run/trace.mfx", &t);
 *	if (err) fprintf(stderr, "mfx: %s\n", mfx_strerror(-err));
 *	struct trace_event ev;
 *	while ((err = trace_next(t, &ev)) > 0)
 *		...;
 *	trace_close(t);
 */
#ifndef MFX_TRACE_READER_H
#define MFX_TRACE_READER_H

#include <stddef.h>
#include <stdint.h>

#include "trace/format.h"

struct trace_event {
	uint64_t ts_ns;		/* CLOCK_MONOTONIC ns */
	uint64_t ptr;		/* alloc: result; free: the pointer; realloc: new
				   pointer (0 when the call failed) */
	uint64_t old_ptr;	/* realloc: the old pointer (0 = realloc(NULL, n)) */
	uint64_t size;		/* requested bytes; calloc/reallocarray: nmemb*size */
	uint64_t align;		/* memalign family; 0 otherwise */
	uint32_t tid;		/* kernel thread id */
	uint32_t thread;	/* dense index 0..info.nthreads-1 (same order as
				   trace_info.tids) */
	uint32_t stack;		/* stack id, 0 = no stack */
	uint8_t kind;		/* enum mfx_kind (never EXT or PAD) */
	uint8_t failed;		/* the call returned NULL / an error */
};

/* Counting class of a kind, per SPEC.md: "malloc", "calloc", "realloc",
 * "free", "memalign". */
enum trace_class {
	TC_MALLOC, TC_CALLOC, TC_REALLOC, TC_FREE, TC_MEMALIGN, TC_NCLASSES
};
enum trace_class trace_kind_class(unsigned kind);
const char *trace_class_name(enum trace_class c);
/* API name of a kind: "malloc", "reallocarray", "posix_memalign", ... */
const char *trace_kind_name(unsigned kind);

struct trace_module {
	uint64_t base;		/* load bias */
	uint64_t lo, hi;	/* mapped address range [lo, hi) */
	uint64_t ts_ns;
	int unloaded;		/* an unload record was seen after the load */
	uint8_t build_id[64];
	uint32_t build_id_len;
	char *path;
};

struct trace_sample {
	uint64_t ts_ns;
	uint64_t v[MFX_SF_NFIELDS];	/* enum mfx_sample_field */
};

struct trace_mark {
	uint64_t ts_ns;
	uint32_t kind;		/* enum mfx_mark_kind */
	uint32_t nvals;
	uint64_t vals[16];
	char *text;		/* never NULL; "" when empty */
};

struct trace_info {
	uint32_t version, flags;	/* MFX_HF_* */
	uint32_t pid, ppid;
	uint32_t stack_depth;
	const char *exe;		/* "" when unknown */
	const char *command;		/* cmdline with spaces */
	uint64_t start_ns, end_ns;	/* first and last event or sample time */
	uint64_t window_start_ns, window_end_ns; /* 0 = unknown */
	uint64_t start_realtime_ns;
	uint64_t dropped_events;	/* events the agent could not keep (counted) */
	uint32_t dropped_chunks;	/* chunks lost whole (back-pressure, write errors) */
	uint32_t degraded;		/* MFX_DG_*: what the agent had to give up */
	int32_t fail_errno;		/* recording stopped early (0: it did not) */
	const char *fail_what;		/* with fail_errno: what failed ("" if unknown) */
	uint32_t nthreads;
	const uint32_t *tids;		/* [nthreads], dense index order */
	uint64_t nevents;		/* events in the file (known after open) */
	uint64_t file_bytes;
	uint64_t sample_bytes;		/* MFX_HF_SAMPLED: mean bytes between samples, else 0 */
};

struct trace;

/* Open a trace file; reads and checks the header and loads all metadata.
 * Returns 0 or -errno / -MFX_E_CORRUPT / -MFX_E_VERSION / -MFX_E_TRUNCATED. */
int trace_open(const char *path, struct trace **out);
/* Same, from memory (the buffer must outlive the trace; used by fuzzers). */
int trace_open_mem(const void *buf, size_t len, struct trace **out);
void trace_close(struct trace *t);

const struct trace_info *trace_info(const struct trace *t);

/* Next event in time order (ties: file order).  1 = *ev filled, 0 = end,
 * < 0 = error (the events before it were good). */
int trace_next(struct trace *t, struct trace_event *ev);
/* Start the event stream again from the beginning. */
int trace_rewind(struct trace *t);

/* Stack `id`: frames (return addresses, innermost first); NULL if unknown. */
const uint64_t *trace_stack(const struct trace *t, uint32_t id, uint32_t *depth);
uint32_t trace_nstacks(const struct trace *t);	/* highest id + 1 */

size_t trace_modules(const struct trace *t, const struct trace_module **mods);
/* The module whose mapped range holds `addr`, or NULL. */
const struct trace_module *trace_module_at(const struct trace *t, uint64_t addr);
size_t trace_samples(const struct trace *t, const struct trace_sample **s);
size_t trace_marks(const struct trace *t, const struct trace_mark **m);
/* Thread name from THREAD records, or NULL. */
const char *trace_thread_name(const struct trace *t, uint32_t tid);
/* Value of an INFO record, or NULL. */
const char *trace_info_value(const struct trace *t, const char *key);

#endif /* MFX_TRACE_READER_H */
