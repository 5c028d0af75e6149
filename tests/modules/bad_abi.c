/* A sink built against a future ABI: the loader must refuse it. */
#include <logferry/sink.h>

static const lf_sink_ops ops = {
    .abi_version = LF_SINK_ABI_VERSION + 1,
    .struct_size = sizeof(lf_sink_ops),
    .name = "badabi",
};
LF_SINK_MODULE(ops)
