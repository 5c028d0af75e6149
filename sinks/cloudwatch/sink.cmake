# sinks/cloudwatch: answers are parsed with jansson; the module sends to
# several log streams at once on its own small pool of threads; templates
# come from sinks/shared.
target_link_libraries(lf_sink_${sink} PRIVATE PkgConfig::JANSSON
                      Threads::Threads lf_sink_shared)
