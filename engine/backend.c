/* backend.c - backend-independent entry points of backend.h: be_destroy and the argument
 * check every backend shares. Each backend frees its own state through ops->destroy. */
#include "backend.h"

void be_destroy(au_backend *be) {
    if (be && be->ops && be->ops->destroy)
        be->ops->destroy(be);
}

int be_check_tensor(const char *op, const char *name, const au_tensor *t, au_err *err) {
    if (!t)
        return au_errf(err, AU_EINVAL, "%s: %s is NULL", op, name);
    if (t->ndim < 1 || t->ndim > AU_MAX_DIMS)
        return au_errf(err, AU_EINVAL, "%s: %s has ndim %d", op, name, t->ndim);
    for (int i = 0; i < t->ndim; i++)
        if (t->shape[i] < 0)
            return au_errf(err, AU_EINVAL, "%s: %s has negative dim %d", op, name, i);
    if (!t->data && au_numel(t) > 0)
        return au_errf(err, AU_EINVAL, "%s: %s has no data", op, name);
    return 0;
}
