/* A sink whose ops table is shorter than ABI 1 needs. */
#include <logferry/sink.h>

static const lf_sink_ops ops = {
    .abi_version = LF_SINK_ABI_VERSION,
    .struct_size = 16,
    .name = "smalltable",
};
LF_SINK_MODULE(ops)
