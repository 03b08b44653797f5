/* backend.c - backend-independent entry points of backend.h: be_destroy.
 * Each backend frees its own state through ops->destroy. */
#include "backend.h"

void be_destroy(au_backend *be) {
    if (be && be->ops && be->ops->destroy)
        be->ops->destroy(be);
}
