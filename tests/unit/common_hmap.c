/*
 * common_hmap.c - unit tests of common/hmap.c against a plain array that
 * knows the truth: insert, find, delete (backward shift, also across the
 * table's wrap-around) and growth with many keys, key 0, iteration, and
 * keys built to collide (sequential, multiples of a large power of two).
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/hmap.h"
#include "tests/unit/check.h"

struct val {
	uint64_t a, b;
};

static uint64_t rng = 88172645463325252ull;

static uint64_t next_rand(void)	/* xorshift64 */
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* The reference: key i's value and presence, keys a bijection of i. */
struct ref {
	uint64_t *key;
	struct val *val;
	unsigned char *in;
	size_t n, count;
};

/* Compare the whole map with the reference: every key, and iteration. */
static int same(const struct hmap *m, const struct ref *r)
{
	if (hmap_count(m) + (hmap_get(m, 0) != NULL) != r->count)
		return 0;
	for (size_t i = 0; i < r->n; i++) {
		const struct val *v = hmap_get(m, r->key[i]);
		if (r->in[i] ? !v || memcmp(v, &r->val[i], sizeof(*v)) : v != NULL)
			return 0;
	}
	size_t seen = 0;
	uint64_t k;
	struct val *v;
	for (size_t pos = 0; (pos = hmap_next(m, pos, &k, (void **)&v));)
		seen++;
	return seen == r->count;
}

/* Random puts and deletes over r's keys; checks now and then. */
static void churn(const char *what, struct ref *r, size_t ops, size_t min_cap)
{
	struct hmap m;
	hmap_init(&m, sizeof(struct val), min_cap);
	int ok = 1;
	for (size_t op = 0; op < ops && ok; op++) {
		size_t i = next_rand() % r->n;
		if (next_rand() % 3) {
			int added = -1;
			struct val *v = hmap_put(&m, r->key[i], &added);
			ok = v && added == !r->in[i] && (r->in[i] || (!v->a && !v->b));
			if (ok) {
				*v = (struct val){ next_rand(), op };
				r->val[i] = *v;
				r->count += !r->in[i];
				r->in[i] = 1;
			}
		} else {
			struct val out = { 0, 0 };
			int was = hmap_del(&m, r->key[i], &out);
			ok = was == r->in[i] && (!was || !memcmp(&out, &r->val[i], sizeof(out)));
			r->count -= r->in[i];
			r->in[i] = 0;
		}
		if (op % (ops / 16) == 0)
			ok = ok && same(&m, r);
	}
	CHECK(ok && same(&m, r), "%s: %zu random puts/deletes agree with the reference", what, ops);
	/* delete everything, in key order: the map ends empty */
	for (size_t i = 0; i < r->n; i++)
		if (r->in[i]) {
			ok &= hmap_del(&m, r->key[i], NULL) == 1;
			r->in[i] = 0;
			r->count--;
		}
	CHECK(ok && hmap_count(&m) == 0 && same(&m, r), "%s: emptied", what);
	hmap_free(&m);
}

static void run_keys(const char *what, uint64_t (*key)(size_t), size_t n, size_t ops,
		     size_t min_cap)
{
	struct ref r = { calloc(n, sizeof(uint64_t)), calloc(n, sizeof(struct val)), calloc(n, 1),
			 n, 0 };
	if (!r.key || !r.val || !r.in) {
		CHECK(0, "%s: out of memory", what);
		return;
	}
	for (size_t i = 0; i < n; i++)
		r.key[i] = key(i);
	churn(what, &r, ops, min_cap);
	free(r.key);
	free(r.val);
	free(r.in);
}

static uint64_t key_mixed(size_t i)	/* odd multiplier: a bijection, 0 -> 0 */
{
	return (uint64_t)i * 0x9E3779B97F4A7C15ull;
}
static uint64_t key_seq(size_t i)
{
	return i + 1;
}
static uint64_t key_pow2(size_t i)	/* pointers aligned to 1 MiB, and key 0 */
{
	return (uint64_t)i << 20;
}
static uint64_t key_high(size_t i)	/* differ only in the top bits */
{
	return (uint64_t)i << 48 | 0x10;
}

static void test_basic(void)
{
	struct hmap m;
	hmap_init(&m, sizeof(uint32_t), 0);
	CHECK(hmap_get(&m, 5) == NULL && hmap_get(&m, 0) == NULL, "empty map finds nothing");
	CHECK(hmap_del(&m, 5, NULL) == 0 && hmap_del(&m, 0, NULL) == 0, "empty map deletes nothing");
	uint64_t k;
	void *v;
	CHECK(hmap_next(&m, 0, &k, &v) == 0, "empty map iterates nothing");
	int added;
	uint32_t *p = hmap_put(&m, 5, &added);
	CHECK(p && added == 1 && *p == 0, "put adds a zeroed value");
	*p = 55;
	p = hmap_put(&m, 5, &added);
	CHECK(p && added == 0 && *p == 55, "put of a present key gives its value");
	p = hmap_put(&m, 0, &added);
	CHECK(p && added == 1 && *p == 0, "key 0 is a key like any other");
	*p = 100;
	CHECK(hmap_get(&m, 0) && *(uint32_t *)hmap_get(&m, 0) == 100, "key 0 found");
	/* growth keeps key 0's value */
	for (uint64_t i = 1000; i < 1000 + 5000; i++)
		*(uint32_t *)hmap_put(&m, i, NULL) = (uint32_t)i;
	CHECK(hmap_count(&m) == 5001 && *(uint32_t *)hmap_get(&m, 0) == 100 &&
	      *(uint32_t *)hmap_get(&m, 5) == 55, "growth keeps every value (count %zu)",
	      hmap_count(&m));
	CHECK((m.cap & (m.cap - 1)) == 0 && m.n * 10 < m.cap * 7, "power of two below 70%% load");
	uint32_t out = 0;
	CHECK(hmap_del(&m, 0, &out) == 1 && out == 100 && !hmap_get(&m, 0), "key 0 deleted");
	hmap_free(&m);
	CHECK(hmap_get(&m, 5) == NULL && hmap_count(&m) == 0, "freed map is empty");
	CHECK(hmap_put(&m, 7, NULL) != NULL, "a freed map can be used again");
	hmap_free(&m);
}

int main(void)
{
	test_basic();
	run_keys("mixed keys", key_mixed, 50000, 400000, 0);
	run_keys("sequential keys", key_seq, 50000, 400000, 0);
	run_keys("1 MiB-aligned keys", key_pow2, 20000, 200000, 0);
	run_keys("top-bit keys", key_high, 20000, 200000, 0);
	/* a small key set in a small table: deletes wrap around its end */
	run_keys("small table", key_seq, 40, 100000, 64);
	return check_done("common_hmap");
}
