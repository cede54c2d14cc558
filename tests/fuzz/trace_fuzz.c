/*
 * trace_fuzz.c - libFuzzer target for the trace reader: any bytes given to
 * trace_open_mem() must give an error or a trace whose every event, stack,
 * module, sample and mark can be read, never a crash, hang or leak.
 * Built and run by scripts/fuzz.sh (`make fuzz`).
 */
#include <stddef.h>
#include <stdint.h>

#include "trace/reader.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct trace *t;
	if (trace_open_mem(data, size, &t))
		return 0;
	struct trace_event ev;
	uint64_t n = 0;
	while (trace_next(t, &ev) > 0 && n++ < 10000000) {
		uint32_t depth;
		const uint64_t *st = trace_stack(t, ev.stack, &depth);
		for (uint32_t i = 0; st && i < depth; i++)
			(void)trace_module_at(t, st[i]);
	}
	const struct trace_sample *s;
	const struct trace_mark *m;
	const struct trace_module *mods;
	(void)trace_samples(t, &s);
	(void)trace_marks(t, &m);
	(void)trace_modules(t, &mods);
	(void)trace_info(t);
	trace_close(t);
	return 0;
}
