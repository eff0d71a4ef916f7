# The real tokenizer.json files are committed as tar.gz; unpack them into the build tree at
# configure time (CMake's own libarchive, no extra dependency). Sets MOE_TOKENIZER_FIXTURES.
# Used by the tests (test_tokenizer, test_cli) and the fuzz targets (fuzz_encode).
set(MOE_TOKENIZER_FIXTURES ${CMAKE_BINARY_DIR}/tokenizer_fixtures)
file(GLOB tokenizer_tarballs CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/tests/reference/fixtures/tokenizer/*.tar.gz)
foreach(tarball IN LISTS tokenizer_tarballs)
  get_filename_component(name ${tarball} NAME_WE)
  set(stamp ${MOE_TOKENIZER_FIXTURES}/${name}/.stamp)
  if(NOT EXISTS ${stamp} OR ${tarball} IS_NEWER_THAN ${stamp})
    file(ARCHIVE_EXTRACT INPUT ${tarball} DESTINATION ${MOE_TOKENIZER_FIXTURES}/${name})
    file(TOUCH ${stamp})
  endif()
endforeach()
