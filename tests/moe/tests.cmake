# test_moe reads the PyTorch reference fixtures (tests/reference/fixtures/moe) with the safetensors reader.
if(TARGET test_moe)
  target_link_libraries(test_moe PRIVATE moe_io)
endif()
