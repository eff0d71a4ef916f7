# The real tokenizer.json files are committed as tar.gz; unpack them into the build tree at
# configure time (CMake's own libarchive, no extra dependency) for test_tokenizer and test_cli.
set(MOE_TOKENIZER_FIXTURES ${CMAKE_BINARY_DIR}/tokenizer_fixtures)
file(GLOB tokenizer_tarballs CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/../reference/fixtures/tokenizer/*.tar.gz)
foreach(tarball IN LISTS tokenizer_tarballs)
  get_filename_component(name ${tarball} NAME_WE)
  set(stamp ${MOE_TOKENIZER_FIXTURES}/${name}/.stamp)
  if(NOT EXISTS ${stamp} OR ${tarball} IS_NEWER_THAN ${stamp})
    file(ARCHIVE_EXTRACT INPUT ${tarball} DESTINATION ${MOE_TOKENIZER_FIXTURES}/${name})
    file(TOUCH ${stamp})
  endif()
endforeach()
foreach(t test_tokenizer test_cli)  # test_cli runs `moe tokenize` on them
  if(TARGET ${t})
    target_compile_definitions(${t} PRIVATE MOE_TOKENIZER_FIXTURES="${MOE_TOKENIZER_FIXTURES}")
  endif()
endforeach()
