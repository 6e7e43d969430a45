// Entry point of the unit test executable (Catch2 supplies main).
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
