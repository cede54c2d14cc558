/*
 * format.h - the on-disk layout of trace.mfx, shared by the agent
 * (preload/, the writer of event chunks), the mfx command (attach/, the writer
 * of sample and mark chunks, and the finaliser) and the analyzer (the reader).
 *
 * Everything is little-endian (x86-64 only today).  docs/trace-format.md is the
 * prose version of this file; change both together and bump MFX_TRACE_VERSION
 * when an old reader could misread a new file.
 *
 * File = one 4 KiB header page, a thread-slot table (progress counters), then
 * chunks.  While a process is traced, the agent maps the file MAP_SHARED and
 * every thread owns one raw chunk at a time: records are appended to it with
 * plain stores and `used` is published after each record, so whatever was
 * recorded survives _exit, abort or SIGKILL (the pages are the file's).  Most
 * event chunks go through mfx's spool instead (trace/spool_format.h): mfx's
 * drain thread encodes them (MFX_CODEC_MODEL, trace/evcodec.h) while the
 * window runs and appends them to the file packed in regions of
 * MFX_PACK_REGION bytes.  When the capture ends, mfx copies the file
 * compacted: holes dropped, the chunks still raw compressed, MFX_HF_FINAL
 * set.  A reader accepts both forms.
 *
 *   offset 0                 struct mfx_file_header (4096 bytes)
 *   offset 4096              struct mfx_thread_slot[MFX_THREAD_SLOTS]
 *   offset first_chunk       chunk, chunk, ...   each: struct mfx_chunk_header
 *                            followed by its payload; the next chunk starts
 *                            `span` bytes later (raw slots: span = chunk_size).
 *                            In a file not final, space is handed out in
 *                            whole slots (offset first_chunk + k * chunk_size):
 *                            a magic of 0 means nothing more was written
 *                            there; go on at the next slot boundary.
 */
#ifndef MFX_TRACE_FORMAT_H
#define MFX_TRACE_FORMAT_H

#include <stdint.h>

#define MFX_TRACE_MAGIC      0x313043525458464Dull	/* "MFXTRC01" as bytes */
#define MFX_TRACE_VERSION    2u	/* 2: MFX_CODEC_MODEL, time_quantum; a reader
					   of version 2 reads version 1 too */
#define MFX_HEADER_SIZE      4096u
#define MFX_THREAD_SLOTS     4096u
#define MFX_SLOT_SIZE        64u
#define MFX_CHUNK_SIZE       (64u * 1024u)	/* raw slot size: small enough that a
						   reader holds one per thread */
#define MFX_FIRST_CHUNK      (MFX_HEADER_SIZE + MFX_THREAD_SLOTS * MFX_SLOT_SIZE)
#define MFX_MAX_RECORD       96u	/* largest event record; a chunk is switched
					   when fewer bytes than this remain */
#define MFX_MAX_DEPTH        256u	/* hard cap on --stack-depth */
#define MFX_PACK_REGION      (16u * MFX_CHUNK_SIZE)	/* mfx packs encoded chunks
							   into regions this big */
#define MFX_TIME_QUANTUM_NS  100u	/* the precision of event times mfx keeps */

/* mfx_file_header.flags */
#define MFX_HF_STACKS     0x0001u	/* allocation events carry stack ids */
#define MFX_HF_TSC        0x0002u	/* event time base is TSC >> tsc_shift (else ns) */
#define MFX_HF_ATTACH     0x0004u	/* captured by `mfx attach` (else launch) */
#define MFX_HF_FINAL      0x0008u	/* rewritten by mfx: no holes, chunks may be compressed */
#define MFX_HF_ENDED      0x0010u	/* the agent ended cleanly (stop or exit) */
#define MFX_HF_CHILD      0x0020u	/* a fork/exec descendant of the traced process */
#define MFX_HF_DROPPED    0x0040u	/* some events were dropped (see dropped_events) */
#define MFX_HF_SAMPLED    0x0080u	/* --sample: only sampled calls (see sample_bytes) */

/* mfx_file_header.degraded: what the agent had to give up, and why the
 * trace holds less than a full recording (the reader reports each one;
 * a MARK AGENT_NOTE record says the same in words when it could be written). */
#define MFX_DG_NO_STACKS  0x0001u	/* no stacks: libunwind or the stack table missing */
#define MFX_DG_NO_MODULES 0x0002u	/* the module table could not be mapped: no symbols */
#define MFX_DG_NO_SPOOL   0x0004u	/* the spool could not be mapped: file chunks only */
#define MFX_DG_STOPPED    0x0008u	/* recording stopped early (fail_errno says why) */
#define MFX_DG_DROPPED    0x0010u	/* mfx could not keep up: events dropped, counted */
#define MFX_DG_DRAINED    0x0020u	/* mfx went away: the agent wrote its chunks itself */

/* mfx_file_header.state, written by the agent, read by mfx */
enum mfx_state {
	MFX_ST_INIT = 0, MFX_ST_RECORDING = 1, MFX_ST_STOPPING = 2, MFX_ST_STOPPED = 3,
};

/*
 * The header page.  Fields marked (A) are written by the agent, (M) by the mfx
 * process, (S) are shared counters updated atomically by both.  Offsets are
 * fixed by the order below; add fields only before `reserved`.
 */
struct mfx_file_header {
	uint64_t magic;			/* MFX_TRACE_MAGIC */
	uint32_t version;		/* MFX_TRACE_VERSION */
	uint32_t header_size;		/* MFX_HEADER_SIZE */
	uint32_t chunk_size;		/* raw slot size (A) */
	uint32_t flags;			/* MFX_HF_* */
	uint32_t pid, ppid;		/* (A) */
	uint32_t stack_depth;		/* frames kept per stack (A) */
	uint32_t tsc_shift;		/* event ts unit = TSC >> tsc_shift (A) */
	uint64_t first_chunk;		/* offset of the first chunk */
	uint64_t next_chunk;		/* (S) bump allocator for raw slots */
	uint64_t start_ns;		/* CLOCK_MONOTONIC at agent start (A) */
	uint64_t start_realtime_ns;	/* CLOCK_REALTIME at agent start (A) */
	uint64_t start_tsc;		/* TSC at agent start (A) */
	uint64_t end_ns, end_tsc;	/* at stop or exit, 0 if it never ended cleanly (A) */
	uint64_t tsc_hz;		/* TSC frequency measured by mfx, 0 = unknown (M) */
	uint64_t dropped_events;	/* (S) events lost: disk full, slots exhausted */
	volatile uint32_t stop;		/* (M) non-zero: stop recording now */
	volatile uint32_t state;	/* (A) enum mfx_state */
	uint32_t nthreads;		/* (S) thread slots handed out */
	uint32_t next_stack_id;		/* (A) ids handed out so far (+1) */
	uint64_t window_start_ns;	/* (A) recording armed (attach: after hooks) */
	uint64_t window_end_ns;		/* (A) recording disarmed */
	char exe[512];			/* readlink /proc/self/exe (A) */
	char cmdline[1024];		/* /proc/self/cmdline, NULs turned to spaces (A) */
	int32_t fail_errno;		/* (A) why recording stopped early (errno), 0 = it did not */
	uint32_t tsc_known;		/* (A) 1: TSC is invariant (constant_tsc, nonstop_tsc) */
	uint64_t trace_uid;		/* (A) random: names this trace in spool slots */
	/* (A) MFX_HF_SAMPLED: the mean of the exponential byte countdown; an
	 * allocation of n bytes was recorded with probability
	 * 1 - exp(-n / sample_bytes), a free only for a recorded block */
	uint64_t sample_bytes;
	/* (M) event times are floored to multiples of this many time units
	 * (TSC >> tsc_shift, or ns): set by mfx before its first MODEL chunk
	 * (format 2), 0 = not set (every time as recorded). */
	uint32_t time_quantum;
	uint32_t reserved0;
	uint32_t degraded;		/* (S) MFX_DG_*: what the agent had to give up */
	uint32_t dropped_chunks;	/* (S) chunks dropped (back-pressure, write errors) */
	char fail_what[64];		/* (A) with fail_errno: what failed, in words */
	uint8_t reserved[MFX_HEADER_SIZE - 144 - 512 - 1024 - 32 - 72];
};
_Static_assert(sizeof(struct mfx_file_header) == MFX_HEADER_SIZE, "header page");

/*
 * One cache line per thread, for the progress line: plain stores by the owner
 * thread, read racily by mfx.  tid == 0: free slot.
 */
struct mfx_thread_slot {
	uint32_t tid;
	uint32_t flags;			/* 1 = thread exited */
	uint64_t events;		/* counted calls recorded */
	uint64_t alloc_bytes;		/* requested bytes of allocating calls */
	uint64_t alloc_calls;
	uint64_t free_calls;
	uint64_t reserved[3];
};
_Static_assert(sizeof(struct mfx_thread_slot) == MFX_SLOT_SIZE, "slot");

/* mfx_chunk_header.type */
enum mfx_chunk_type {
	MFX_CT_EVENTS = 1,	/* one thread's events, in time order */
	MFX_CT_META = 2,	/* stack definitions, module loads (agent, any thread) */
	MFX_CT_MFX = 3,		/* samples, marks, info written by the mfx process */
};
/* mfx_chunk_header.codec */
enum mfx_codec {
	MFX_CODEC_RAW = 0,
	MFX_CODEC_ZSTD = 1,	/* one zstd frame */
	/* EVENTS only: the payload split into columns (trace/columns.h):
	 * varint ncols, then per column varint raw_len, varint stored_len,
	 * byte method (0 stored, 1 zstd), then the columns' bytes in order.
	 * Written by format 1's finaliser; read, no longer written. */
	MFX_CODEC_COLS = 2,
	/* EVENTS only (format 2): the events of one or more raw chunks of a
	 * thread (seq = the first one's, used = their raw records' bytes), as
	 * columns of what the model of trace/evcodec.h cannot predict:
	 * varint nevents, varint nallocs, varint quantum, byte ncols, then per
	 * column varint raw_len, varint stored_len, byte method (0 stored,
	 * 1 zstd), then the columns' bytes in order. */
	MFX_CODEC_MODEL = 3,
};

#define MFX_CHUNK_MAGIC 0x4358464Du	/* "MFXC" as bytes */

struct mfx_chunk_header {
	uint32_t magic;		/* MFX_CHUNK_MAGIC; 0 = unwritten slot */
	uint16_t type;		/* enum mfx_chunk_type */
	uint16_t codec;		/* enum mfx_codec */
	uint32_t tid;		/* EVENTS: kernel tid; others: 0 */
	uint32_t seq;		/* EVENTS: per-thread sequence; others: per-writer */
	volatile uint32_t used;	/* raw payload bytes committed (release-stored) */
	uint32_t stored;	/* payload bytes in the file (== used when RAW) */
	uint32_t span;		/* bytes from this header to the next chunk */
	uint32_t timebase;	/* 0 = ts in TSC >> tsc_shift, 1 = ts in ns */
	uint64_t base_ts;	/* first record's ts is a delta from this */
	uint64_t base_ns;	/* CLOCK_MONOTONIC read together with base_ts */
};
_Static_assert(sizeof(struct mfx_chunk_header) == 48, "chunk header");

/*
 * Records.  Every record starts with one byte: low nibble = kind, high nibble
 * = flags.  Integers are LEB128 varints; "zz" marks a zigzag-encoded signed
 * delta.  Per-chunk decoder state, reset at each chunk start:
 *   ts    = base_ts     (every event adds its ts delta)
 *   ptr   = 0           (every pointer is coded relative to it, then it becomes
 *                        that pointer)
 *   stack = 0           (the last stack id coded)
 *
 * alloc (MALLOC, CALLOC, VALLOC, PVALLOC):
 *     b0, ts_delta, size, [zz ptr_delta]  (absent if F_NULL), [stack] (absent
 *     if F_SAME_STACK or the trace has no stacks)
 * aligned (POSIX_MEMALIGN, ALIGNED_ALLOC, MEMALIGN):
 *     b0, ts_delta, size, align, [zz ptr_delta], [stack]
 * realloc (REALLOC, REALLOCARRAY):
 *     b0, ts_delta, size, [zz old_delta] (old pointer relative to ptr; absent
 *     if F_OLD_NULL, i.e. realloc(NULL, n)), [zz new_delta] (result relative to
 *     the old pointer, or to ptr when there is none; absent if F_NULL), [stack];
 *     then ptr = the result, else the old pointer, else unchanged
 * free: b0, ts_delta, zz ptr_delta
 * ext:  b0 (kind EXT, flags 0), ext_kind (1 byte), len (varint), body[len]
 *       -- unknown ext kinds are skipped by length.
 *
 * F_SHR4: every pointer delta of the record is stored shifted right by 4
 * (set when all of them are multiples of 16: glibc, jemalloc and tcmalloc
 * return 16-aligned blocks, so deltas lose one byte more often).
 */
enum mfx_kind {
	MFX_K_PAD = 0,		/* never written; a reader stops at `used` */
	MFX_K_MALLOC = 1,
	MFX_K_CALLOC = 2,	/* size = nmemb * size (saturated on overflow) */
	MFX_K_REALLOC = 3,
	MFX_K_REALLOCARRAY = 4,	/* counted as realloc; size = nmemb * size */
	MFX_K_FREE = 5,		/* free(NULL) is not recorded */
	MFX_K_POSIX_MEMALIGN = 6,
	MFX_K_ALIGNED_ALLOC = 7,
	MFX_K_MEMALIGN = 8,
	MFX_K_VALLOC = 9,
	MFX_K_PVALLOC = 10,
	MFX_K_EXT = 15,
	MFX_K_NKINDS = 16,
};

#define MFX_F_SAME_STACK 0x10u
#define MFX_F_SHR4       0x20u
#define MFX_F_NULL       0x40u	/* the call failed: no result pointer */
#define MFX_F_OLD_NULL   0x80u	/* realloc family: the old pointer was NULL */

/*
 * Extended records.  Bodies are varints unless said otherwise; strings are
 * varint length + bytes (no NUL).  ts_ns fields are CLOCK_MONOTONIC ns.
 */
enum mfx_ext_kind {
	/* STACK (META chunks): id, n, frame[0] (absolute), then n-1 zz deltas
	 * from the previous frame.  Frames are return addresses as unwound
	 * (frame 0 = the caller of the hooked function); the analyzer looks up
	 * ip - 1 for every frame. */
	MFX_EXT_STACK = 1,
	/* MODULE (META chunks): ts_ns, op (1 = loaded/present, 2 = unloaded),
	 * base (load bias), lo, hi (lowest and highest mapped address of its
	 * PT_LOAD segments), build-id (len + bytes), path (string). */
	MFX_EXT_MODULE = 2,
	/* SAMPLE (MFX chunks): ts_ns, nfields, then that many values in the order
	 * of enum mfx_sample_field; readers ignore fields they do not know and
	 * treat missing ones as 0. */
	MFX_EXT_SAMPLE = 3,
	/* MARK (MFX or META chunks): ts_ns, mark kind (enum mfx_mark_kind),
	 * nvals, vals[nvals], text (string, may be empty). */
	MFX_EXT_MARK = 4,
	/* THREAD (MFX chunks): tid, name (string). */
	MFX_EXT_THREAD = 5,
	/* INFO (MFX chunks): key (string), value (string). */
	MFX_EXT_INFO = 6,
	/* SYNC (META and MFX chunks): tsc >> tsc_shift, ns: a clock pair for
	 * converting TSC to ns (written by mfx with every sample). */
	MFX_EXT_SYNC = 7,
};

enum mfx_sample_field {
	MFX_SF_RSS = 0,		/* bytes, from smaps_rollup */
	MFX_SF_PSS,
	MFX_SF_ANON,		/* Anonymous */
	MFX_SF_FILE,		/* Rss - Anonymous - shmem */
	MFX_SF_SHMEM,
	MFX_SF_SWAP,
	MFX_SF_HEAP_RSS,	/* allocator mappings' Rss (see procfs.h); 0 = not measured */
	MFX_SF_MFX_RSS,		/* Rss of mfx's own mappings in the target (trace pages) */
	MFX_SF_HWM,		/* VmHWM of /proc/PID/status: the kernel's RSS high-water
				   mark (attach: since the window began); 0 = unknown */
	MFX_SF_NFIELDS,
};

enum mfx_mark_kind {
	MFX_MARK_WINDOW_START = 1,	/* vals: - */
	MFX_MARK_WINDOW_END = 2,	/* text: why ("duration", "interrupt", "exit") */
	/* TRIM: vals: rss_before, rss_after, heap_rss_before, heap_rss_after,
	 * pause_ns (target thread held), trim_ns (malloc_trim itself), released;
	 * text: "ptrace" | "agent" */
	MFX_MARK_TRIM = 3,
	/* ATTACH: vals: start_to_active_ns (command start -> hooks live),
	 * held_ns (longest stop of the target thread), slots_patched, modules,
	 * attempts (safe-point tries), loader_thread_ns (how long mfx held the
	 * thread of its own that loaded the agent after the hold; 0 when the
	 * held thread loaded it). */
	MFX_MARK_ATTACH = 4,
	MFX_MARK_DROPPED = 5,		/* vals: events dropped; text: reason */
	MFX_MARK_MALLOC_INFO = 6,	/* text: malloc_info(3) XML */
	MFX_MARK_RSS_PEAK = 7,		/* vals: rss, heap_rss of the kept `smaps`, and
					   when it was read (ns; 0 = at the process's exit) */
	MFX_MARK_EXIT = 8,		/* vals: status (wait status) */
	/* MALLINFO (attach): the allocator's own totals, mallinfo2(3): vals:
	 * arena, ordblks, hblks, hblkhd, uordblks, fordblks, keepcost;
	 * text: "start" | "end".  In-use bytes = uordblks + hblkhd: what the
	 * window's events cannot know about blocks allocated before it.
	 * Written by older agents; ALLOC marks carry the same for glibc now. */
	MFX_MARK_MALLINFO = 9,
	/* ALLOC: the figures of the allocator that serves the process's malloc,
	 * read by the agent from the allocator itself (preload/allocator.c):
	 * vals: phase (enum mfx_alloc_phase), valid (bit i set: field i is
	 * known), then the enum mfx_alloc_field figures in bytes; text: the
	 * allocator's name ("glibc", "jemalloc", "tcmalloc", "mimalloc",
	 * "unknown"), then a space and its module's path. */
	MFX_MARK_ALLOC = 10,
	/* EXITING (written by the agent): the program began to exit - main
	 * returned, exit() was called - before any atexit handler or static
	 * destructor ran: frees after it are the program's teardown.  vals:
	 * status (main's return value or exit()'s argument), how (enum
	 * mfx_exit_how). */
	MFX_MARK_EXITING = 11,
	/* AGENT_NOTE: the agent gave something up (MFX_DG_*): vals: the flag,
	 * errno; text: what, in words ("no stacks: cannot map the stack table"). */
	MFX_MARK_AGENT_NOTE = 12,
};

enum mfx_alloc_phase {
	MFX_AP_SAMPLE = 0,	/* during the window (attach: every 100 ms; launch: from hooks) */
	MFX_AP_START = 1, MFX_AP_END = 2, MFX_AP_EXIT = 3,
	MFX_AP_TRIM_BEFORE = 4, MFX_AP_TRIM_AFTER = 5,	/* around --trim-at-end */
};

/* The allocator's own figures (docs/metrics.md says which call gives each). */
enum mfx_alloc_field {
	MFX_AF_IN_USE = 0,	/* bytes in allocated blocks */
	MFX_AF_RESIDENT,	/* its heap's resident bytes (jemalloc, tcmalloc) */
	MFX_AF_MAPPED,		/* mapped or committed from the system */
	MFX_AF_FREE,		/* free bytes it holds that a purge/trim could return */
	MFX_AF_RETAINED,	/* released to the system, still reserved */
	MFX_AF_METADATA,	/* its own bookkeeping */
	MFX_AF_ACTIVE,		/* pages backing allocated blocks (jemalloc) */
	MFX_AF_NFIELDS,
};


enum mfx_exit_how {
	MFX_EXIT_MAIN_RETURN = 1,	/* main returned (launch: the agent's main wrapper) */
	MFX_EXIT_CALL = 2,		/* exit() called (launch: interposed) */
	MFX_EXIT_HANDLER = 3,		/* attach: the agent's on_exit handler, which runs
					   before the handlers registered before it */
};

#endif /* MFX_TRACE_FORMAT_H */
