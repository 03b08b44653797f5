/* cuda_graph.cu - recording the backend's ops into a CUDA graph and running it again
 * (backend.h: record_begin, record_end, graph_run, graph_free; engine/replay.h uses them).
 *
 * Recording is stream capture of the backend's stream in thread-local mode (CUDA calls of
 * other threads are not affected), instantiated once at record_end. While recording,
 * cuda_scratch refuses to grow (a cudaFree cannot be captured) and any host wait fails the
 * capture, so a recording holds only stream work on fixed memory. A graph keeps the scratch
 * generation (stats.scratch_allocs) it was recorded under; after the scratch has been
 * replaced, running it is refused with AU_ECONFLICT and the caller records again.
 */
#include "cuda_internal.cuh"

#include <stdlib.h>

struct au_graph {
    cudaGraphExec_t exec;
    uint64_t scratch_allocs; /* the scratch buffer the recording uses */
};

int cuda_record_begin(au_backend *be, au_err *err) {
    const char *op = "record";
    cuda_state *cs = cuda_of(be);
    if (cs->recording)
        return au_errf(err, AU_ECONFLICT, "%s: already recording", op);
    CUDA_TRY(cudaStreamBeginCapture(cs->stream, cudaStreamCaptureModeThreadLocal));
    cs->recording = 1;
    return 0;
}

int cuda_record_end(au_backend *be, au_graph **out, au_err *err) {
    const char *op = "record";
    cuda_state *cs = cuda_of(be);
    if (!cs->recording)
        return au_errf(err, AU_ECONFLICT, "%s: not recording", op);
    cs->recording = 0;
    cudaGraph_t graph = NULL;
    cudaError_t e = cudaStreamEndCapture(cs->stream, &graph);
    if (!out || e != cudaSuccess) {
        if (graph)
            cudaGraphDestroy(graph);
        if (!out) {
            cudaGetLastError(); /* a capture an op invalidated: dropped on purpose */
            return 0;
        }
        return cuda_fail_rt(err, op, "cudaStreamEndCapture", __FILE__, __LINE__, e);
    }
    *out = NULL;
    cudaGraphExec_t exec = NULL;
    e = cudaGraphInstantiate(&exec, graph, 0);
    cudaGraphDestroy(graph);
    if (e != cudaSuccess)
        return cuda_fail_rt(err, op, "cudaGraphInstantiate", __FILE__, __LINE__, e);
    au_graph *g = (au_graph *)calloc(1, sizeof *g);
    if (!g) {
        cudaGraphExecDestroy(exec);
        return au_errf(err, AU_ENOMEM, "%s: out of host memory", op);
    }
    g->exec = exec;
    g->scratch_allocs = cs->stats.scratch_allocs;
    cs->stats.graphs_recorded++;
    *out = g;
    return 0;
}

int cuda_graph_run(au_backend *be, au_graph *g, au_err *err) {
    const char *op = "graph";
    cuda_state *cs = cuda_of(be);
    if (!g)
        return au_errf(err, AU_EINVAL, "%s: no graph", op);
    if (g->scratch_allocs != cs->stats.scratch_allocs)
        return au_errf(err, AU_ECONFLICT, "%s: the scratch memory was replaced since the recording", op);
    CUDA_TRY(cudaGraphLaunch(g->exec, cs->stream));
    cs->stats.graph_launches++;
    return 0;
}

void cuda_graph_free(au_backend *be, au_graph *g) {
    (void)be;
    if (!g)
        return;
    cudaGraphExecDestroy(g->exec);
    free(g);
}
