# The real tokenizer.json fixtures, unpacked into the build tree (cmake/TokenizerFixtures.cmake).
include(${PROJECT_SOURCE_DIR}/cmake/TokenizerFixtures.cmake)
foreach(t test_tokenizer test_cli)  # test_cli runs `moe tokenize` on them
  if(TARGET ${t})
    target_compile_definitions(${t} PRIVATE MOE_TOKENIZER_FIXTURES="${MOE_TOKENIZER_FIXTURES}")
  endif()
endforeach()
