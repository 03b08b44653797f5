/* safetensors.h - memory-mapped safetensors reader and a small writer.
 *
 * File format: u64 little-endian header length N, N bytes of JSON
 * {"name": {"dtype": "BF16", "shape": [..], "data_offsets": [begin, end]}, ...,
 *  "__metadata__": {...}}, then the data block. The reader validates the header
 * (length within the file, JSON well formed, dtypes known, offsets inside the
 * data block, sizes equal to numel * dtype size, no overlapping tensors) and
 * rejects anything else with AU_EFORMAT naming the tensor; it never trusts a
 * length it has not checked. An `*.safetensors.index.json` opens every shard
 * named in its "weight_map" as one set.
 */
#ifndef AU_SAFETENSORS_H
#define AU_SAFETENSORS_H

#include "status.h"
#include "tensor.h"

typedef struct st_set st_set;

/* Open a .safetensors file or a sharded *.index.json. */
int st_open(st_set **out, const char *path, au_err *err);
/* Parse an in-memory image (used by the fuzzer and tests); the bytes are copied. */
int st_open_memory(st_set **out, const void *bytes, size_t n_bytes, au_err *err);
void st_close(st_set *s);

/* Tensor by name, data pointing into the mapping (host memory); NULL if absent. */
const au_tensor *st_get(const st_set *s, const char *name);
int st_count(const st_set *s);
const char *st_name_at(const st_set *s, int i);
/* Value of a string entry of "__metadata__", or NULL. */
const char *st_metadata(const st_set *s, const char *key);

/* Writer: tensors with host data. */
typedef struct st_entry {
    const char *name;
    au_tensor tensor; /* data on the host */
} st_entry;
/* Write atomically (temporary name, then rename); metadata: NULL or key/value pairs, NULL-terminated. */
int st_write(const char *path, const st_entry *entries, int n, const char *const *metadata, au_err *err);

#endif
