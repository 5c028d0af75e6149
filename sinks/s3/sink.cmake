# The s3 sink: zstd and zlib for compression, expat for S3's XML answers,
# libcrypto for Content-MD5, templates from sinks/shared. Included by the top-level CMakeLists.txt with
# ${sink} = s3.
pkg_check_modules(ZLIB REQUIRED IMPORTED_TARGET zlib)
target_link_libraries(lf_sink_${sink} PRIVATE PkgConfig::ZSTD PkgConfig::ZLIB
  PkgConfig::EXPAT PkgConfig::OPENSSL Threads::Threads lf_sink_shared)
