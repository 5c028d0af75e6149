/* A module whose table names another type than its file. */
#include <logferry/sink.h>

static int create(const lf_conf_value *v, const lf_host *h, void **out,
                  char *err, size_t errlen)
{
    (void)v, (void)h, (void)err, (void)errlen;
    *out = (void *)1;
    return 0;
}
static lf_deliver_status deliver(void *inst, lf_batch *b)
{
    (void)inst, (void)b;
    return LF_DELIVER_OK;
}
static void destroy(void *inst)
{
    (void)inst;
}
static const lf_sink_ops ops = {
    .abi_version = LF_SINK_ABI_VERSION,
    .struct_size = sizeof(lf_sink_ops),
    .name = "someoneelse",
    .create = create,
    .deliver = deliver,
    .destroy = destroy,
};
LF_SINK_MODULE(ops)
