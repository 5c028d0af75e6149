/* A shared object that is not a sink: no entry symbol. */
__attribute__((visibility("default"))) int not_a_sink(void);
int not_a_sink(void)
{
    return 42;
}
