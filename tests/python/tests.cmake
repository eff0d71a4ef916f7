# The Python module's tests (label python): each test_*.py runs under Debian's python3 with the module
# on PYTHONPATH, next to the `moe` binary it compares with.
if(TARGET moe_python)
  include(${PROJECT_SOURCE_DIR}/cmake/TokenizerFixtures.cmake)
  file(GLOB python_tests CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/test_*.py)
  foreach(script IN LISTS python_tests)
    get_filename_component(name ${script} NAME_WE)
    add_test(NAME python_${name} COMMAND ${Python3_EXECUTABLE} -m unittest -v ${name}
             WORKING_DIRECTORY ${CMAKE_CURRENT_LIST_DIR})
    set_tests_properties(python_${name} PROPERTIES
      LABELS python
      ENVIRONMENT "PYTHONPATH=$<TARGET_FILE_DIR:moe_python>;PYTHONDONTWRITEBYTECODE=1;MOE_BINARY=$<TARGET_FILE:moe>;MOE_TEST_DATA_DIR=${PROJECT_SOURCE_DIR}/tests;MOE_TOKENIZER_FIXTURES=${MOE_TOKENIZER_FIXTURES};MOE_SOURCE_DIR=${PROJECT_SOURCE_DIR}")
  endforeach()
endif()
