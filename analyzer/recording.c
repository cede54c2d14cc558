/*
 * recording.c - what the recording lacks, said in the report (recording.h):
 * the trace header's `degraded` flags and the agent's AGENT_NOTE marks (what
 * it gave up: stacks, the spool, the module map; that it drained its own
 * chunks because mfx was gone), the events dropped under back-pressure and
 * why the recording stopped early.
 */
#include <stdio.h>
#include <string.h>

#include "analyzer/model.h"
#include "analyzer/recording.h"
#include "common/json.h"
#include "common/util.h"

static const struct {
	uint32_t flag;
	const char *text;	/* when no AGENT_NOTE mark says it in the agent's words */
} dg_text[] = {
	{ MFX_DG_NO_STACKS, "no stacks: the agent could not unwind in the process" },
	{ MFX_DG_NO_MODULES, "no module map: stacks cannot be symbolized" },
	{ MFX_DG_NO_SPOOL, "no spool: chunks were mapped from the trace file (slower)" },
	{ MFX_DG_DRAINED, "mfx went away during the window: the agent wrote its last chunks itself" },
};

/* The agent's notes, in its words where it left them. */
static void agent_notes(const struct model *m, void (*fn)(const char *, void *), void *arg)
{
	const struct trace_mark *mk;
	size_t n = trace_marks(m->t, &mk);
	uint32_t said = MFX_DG_DROPPED | MFX_DG_STOPPED;	/* said with their figures */
	for (size_t i = 0; i < n; i++)
		if (mk[i].kind == MFX_MARK_AGENT_NOTE && mk[i].nvals >= 1 &&
		    !(said & (uint32_t)mk[i].vals[0])) {
			said |= (uint32_t)mk[i].vals[0];
			fn(mk[i].text, arg);
		}
	for (size_t i = 0; i < sizeof(dg_text) / sizeof(dg_text[0]); i++)
		if ((m->info->degraded & dg_text[i].flag) && !(said & dg_text[i].flag))
			fn(dg_text[i].text, arg);
}

static void stopped_early(const struct trace_info *in, char *buf, size_t n)
{
	snprintf(buf, n, "%s%s%s", in->fail_what, *in->fail_what ? ": " : "",
		 mfx_strerror(in->fail_errno));
}

void recording_notes(const struct model *m, void (*fn)(const char *, void *), void *arg)
{
	const struct trace_info *in = m->info;
	char line[400], a[32];
	if (in->fail_errno) {
		char why[300];
		stopped_early(in, why, sizeof(why));
		snprintf(line, sizeof(line), "recording stopped early: %s", why);
		fn(line, arg);
	}
	if (in->dropped_events) {
		snprintf(line, sizeof(line), "%s events dropped (%u chunks) while mfx could not keep "
			 "up; every figure counts only what was kept",
			 fmt_count(in->dropped_events, a, sizeof(a)), in->dropped_chunks);
		fn(line, arg);
	}
	agent_notes(m, fn, arg);
}

static void note_json(const char *text, void *j)
{
	json_str(j, NULL, text);
}

void recording_json(struct json *j, const struct model *m)
{
	const struct trace_info *in = m->info;
	json_obj(j, "recording");
	json_bool(j, "complete", !in->dropped_events && !in->dropped_chunks && !in->fail_errno);
	json_uint(j, "dropped_events", in->dropped_events);
	json_uint(j, "dropped_chunks", in->dropped_chunks);
	if (in->fail_errno) {
		char why[300];
		stopped_early(in, why, sizeof(why));
		json_str(j, "stopped_early", why);
	} else {
		json_null(j, "stopped_early");
	}
	json_arr(j, "notes");
	agent_notes(m, note_json, j);
	json_end(j);
	json_end(j);
}
