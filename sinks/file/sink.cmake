# sinks/file: whole writes from sinks/shared. Included by the top-level
# CMakeLists.txt with ${sink} = file.
target_link_libraries(lf_sink_${sink} PRIVATE lf_sink_shared)
